"""Variance-preserving weight initialisers chosen by the non-linearity that follows the layer.

"Initialise so that each feature across layers has similar variance" (Ranzato's recipe). For
y = W x with fan-in n and i.i.d. zero-mean weights of variance s²,
E[y²] = n s² E[x²], where x = f(previous pre-activation a). Keeping E[y²] = E[a²] needs
s² = gain / n with gain = E[a²] / E[f(a)²] for symmetric a:

  relu          gain 2  (half of the mass is zeroed: He et al. 2015)
  abs, tanh_abs gain 1  (|a|² = a²: the second moment is kept, and so are the gradients)
  tanh, scaled_tanh, linear/none  gain 1  (LeCun et al. 1998, "Efficient BackProp")

The weights are truncated normals (the Flax `variance_scaling` default). `lecun1998_uniform`
is the initialisation of the LeNet-5 paper: uniform in ±2.4 / fan_in.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax.linen import initializers

from deepvision.registry import check_choice

GAINS = {
    "relu": 2.0,
    "abs": 1.0,
    "tanh_abs": 1.0,
    "tanh": 1.0,
    "scaled_tanh": 1.0,
    "linear": 1.0,
    "none": 1.0,
}


def kernel_init(nonlinearity: str,
                distribution: str = "truncated_normal") -> initializers.Initializer:
  """Fan-in variance scaling with the gain of `nonlinearity` (He for relu, LeCun otherwise).

  Works for Dense (in, out) and convolution (kh, kw, in, out) kernels: fan_in is the product of
  all but the last dimension.
  """
  check_choice("nonlinearity", nonlinearity, list(GAINS))
  return initializers.variance_scaling(GAINS[nonlinearity], "fan_in", distribution)


def lecun1998_uniform(fan_in: int | None = None) -> initializers.Initializer:
  """Uniform in [−2.4/F, 2.4/F], F the fan-in (LeCun et al. 1998, appendix).

  Args:
    fan_in: the number of inputs of a unit; by default the product of all but the last
      dimension of the shape (right for Dense and convolution kernels). Pass it for parameters
      whose shape does not show it, such as the one coefficient of a subsampling map.
  """

  def init(key: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
    fan = fan_in if fan_in is not None else math.prod(shape[:-1])
    if fan < 1:
      raise ValueError(f"lecun1998_uniform needs a fan-in ≥ 1; shape {shape} gives {fan}")
    limit = 2.4 / fan
    return jax.random.uniform(key, shape, dtype, -limit, limit)

  return init
