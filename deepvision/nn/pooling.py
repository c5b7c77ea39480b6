"""Spatial pooling of NHWC feature maps: max, average and L2, chosen by name.

For a window W(p) of the input around output position p:

* max:  y_p = max_{q ∈ W(p)} x_q
* avg:  y_p = (1/|W(p)|) Σ_{q ∈ W(p)} x_q   (Jarrett et al. 2009's P_A with 'VALID' windows)
* l2:   y_p = sqrt(Σ_{q ∈ W(p)} x_q²)       (Hyvärinen's subspace energy; the p = 2 case of the
  L_p pooling of Sermanet, Chintala & LeCun, "Convolutional neural networks applied to house
  numbers digit classification", ICPR 2012).

Every pool returns maps of its input's dtype (arguments: `pool`).
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from deepvision.nn import fastpool
from deepvision.registry import check_choice

Array = jax.Array
Size = int | Sequence[int]
Padding = str | Sequence[tuple[int, int]]

POOLS = ("max", "avg", "l2")


def _pair(name: str, value: Size) -> tuple[int, int]:
  pair = (value, value) if isinstance(value, int) else tuple(value)
  if len(pair) != 2 or not all(isinstance(v, int) and v >= 1 for v in pair):
    raise ValueError(f"pooling {name} must be a positive int or a pair of them, got {value!r}")
  return pair


def _arguments(x: Array, window: Size, strides: Size | None, padding: Padding):
  if x.ndim != 4:
    raise ValueError(f"pooling expects NHWC maps (N, H, W, C), got shape {tuple(x.shape)}")
  window = _pair("window", window)
  strides = window if strides is None else _pair("strides", strides)
  if isinstance(padding, str):
    check_choice("pooling padding", padding, ["VALID", "SAME"])
  else:
    padding = tuple(tuple(p) for p in padding)
  return window, strides, padding


def max_pool(x: Array, window: Size = 2, strides: Size | None = None,
             padding: Padding = "VALID") -> Array:
  """Max over each window (padding cells count as −∞).

  Non-overlapping windows go through `deepvision.nn.fastpool.max_pool`: the same values and
  gradients as `flax.linen.max_pool` (the first maximum of a window takes the gradient), with a
  backward pass ~25× cheaper on CPU; it supports reverse-mode differentiation only. Other
  windows use `flax.linen.max_pool`.
  """
  window, strides, padding = _arguments(x, window, strides, padding)
  return fastpool.max_pool(x, window, strides, padding)


def avg_pool(x: Array, window: Size = 2, strides: Size | None = None,
             padding: Padding = "VALID", count_include_pad: bool = False) -> Array:
  """Mean over each window; padding cells are left out of the count unless `count_include_pad`.

  In the module docstring's y_p = (1/|W(p)|) Σ x_q, |W(p)| is then the number of cells inside the image.

  The output has x's dtype (flax divides by a float32 count where padding cells are left out,
  which would turn bfloat16 maps into float32 ones).
  """
  x = jnp.asarray(x)
  window, strides, padding = _arguments(x, window, strides, padding)
  return nn.avg_pool(x, window, strides, padding,
                     count_include_pad=count_include_pad).astype(x.dtype)


def l2_pool(x: Array, window: Size = 2, strides: Size | None = None,
            padding: Padding = "VALID") -> Array:
  """sqrt of the sum of squares over each window (zero padding), with a finite gradient at 0.

  The gradient x_q / y_p is set to 0 where the window is all zeros (the subgradient), so it is finite
  everywhere.
  """
  window, strides, padding = _arguments(x, window, strides, padding)
  energy = nn.pool(x * x, 0.0, jax.lax.add, window, strides, padding)
  positive = energy > 0
  return jnp.where(positive, jnp.sqrt(jnp.where(positive, energy, 1.0)), 0.0)


_POOL_FNS = {"max": max_pool, "avg": avg_pool, "l2": l2_pool}


def pool(x: Array, kind: str, window: Size = 2, strides: Size | None = None,
         padding: Padding = "VALID") -> Array:
  """Pooling chosen by name: 'max', 'avg' or 'l2'.

  `window` and `strides` are an int (square) or a (height, width) pair; `strides` defaults to
  `window` (non-overlapping pooling); `padding` is 'VALID', 'SAME' or ((top, bottom), (left, right)).
  Every pool returns maps of its input's dtype, so a bfloat16 network stays in bfloat16.
  """
  check_choice("pooling kind", kind, list(POOLS))
  return _POOL_FNS[kind](x, window, strides, padding)


class Pool(nn.Module):
  """Pooling layer (no parameters) chosen by name.

  Attributes:
    kind: 'max', 'avg' or 'l2'.
    window: window size, an int or (height, width).
    strides: step between windows; defaults to `window`.
    padding: 'VALID', 'SAME' or explicit ((top, bottom), (left, right)).
  """

  kind: str = "max"
  window: Size = 2
  strides: Size | None = None
  padding: Padding = "VALID"

  def __post_init__(self):
    check_choice("pooling kind", self.kind, list(POOLS))
    _pair("window", self.window)
    if self.strides is not None:
      _pair("strides", self.strides)
    super().__post_init__()

  def __call__(self, x: Array) -> Array:
    return pool(x, self.kind, self.window, self.strides, self.padding)
