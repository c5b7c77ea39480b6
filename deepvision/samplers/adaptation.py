r"""Step-size adaptation as a wrapper around a kernel: the mcRBM code's rule for HMC.

The original mcRBM code (Ranzato & Hinton, CVPR 2010; Ranzato, Mnih, Susskind & Hinton, PAMI 2013)
runs HMC with one step size ε shared by the batch and, after every trajectory, steers the running
rejection rate r̄ towards a target:

  r̄ ← d·r̄ + (1 − d)·(fraction of the batch rejected)                     (d = 0.9)
  ε ← min(g·ε, ε_max) if r̄ < target else max(s·ε, ε_min)                 (g = 1.01, s = 0.99)

with target 0.1 and [ε_min, ε_max] = [0.001, 0.25]. `adapt_step_size` wraps any kernel built from a step
size into a sampler whose state holds the kernel's state, ε and r̄.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from deepvision.samplers.base import SamplingAlgorithm
from deepvision.samplers.hmc import positive_number

Array = jax.Array

INITIAL_STEP_SIZE = 0.01
TARGET_REJECTION = 0.1
STEP_SIZE_BOUNDS = (0.001, 0.25)
STEP_SIZE_GROW = 1.01
STEP_SIZE_SHRINK = 0.99
REJECTION_DECAY = 0.9


class AdaptationState(NamedTuple):
  """A kernel's state with the adapted step size.

  Attributes:
    inner: the wrapped kernel's state (e.g. `HMCState`).
    step_size: ε, the scalar step size the next transition uses.
    rejection_avg: the running average r̄ of the fraction of the batch rejected, a scalar.
  """

  inner: Any
  step_size: Array
  rejection_avg: Array

  @property
  def position(self) -> Array:
    """The current sample batch (the inner state's)."""
    return self.inner.position


def check_adaptation(initial_step_size: Any = INITIAL_STEP_SIZE, target_rejection: Any = TARGET_REJECTION,
                     step_size_bounds: Any = STEP_SIZE_BOUNDS, step_size_grow: Any = STEP_SIZE_GROW,
                     step_size_shrink: Any = STEP_SIZE_SHRINK,
                     rejection_decay: Any = REJECTION_DECAY, adapting: bool = True) -> tuple[float, float]:
  """Raises ValueError on a bad setting of `adapt_step_size`; returns the bounds (ε_min, ε_max).

  `adapting=False` (settings kept for a sampler whose ε is frozen) lets `initial_step_size` lie outside
  the bounds.
  """
  positive_number("initial_step_size", initial_step_size)
  if (isinstance(target_rejection, bool) or not isinstance(target_rejection, numbers.Real)
      or not 0 < target_rejection < 1):
    raise ValueError(f"target_rejection must be a number in (0, 1), got {target_rejection!r}")
  if not isinstance(step_size_bounds, (tuple, list)) or len(step_size_bounds) != 2:
    raise ValueError(f"step_size_bounds must be a pair (min, max), got {step_size_bounds!r}")
  low = positive_number("step_size_bounds[0]", step_size_bounds[0])
  high = positive_number("step_size_bounds[1]", step_size_bounds[1])
  if low > high:
    raise ValueError(f"step_size_bounds must be ordered (min <= max), got {step_size_bounds!r}")
  if adapting and not low <= initial_step_size <= high:
    raise ValueError(f"initial_step_size must lie within step_size_bounds={tuple(step_size_bounds)} when "
                     f"adapting, got {initial_step_size!r}")
  if positive_number("step_size_grow", step_size_grow) < 1:
    raise ValueError(f"step_size_grow must be >= 1, got {step_size_grow!r}")
  if positive_number("step_size_shrink", step_size_shrink) > 1:
    raise ValueError(f"step_size_shrink must be in (0, 1], got {step_size_shrink!r}")
  if (isinstance(rejection_decay, bool) or not isinstance(rejection_decay, numbers.Real)
      or not 0 <= rejection_decay < 1):
    raise ValueError(f"rejection_decay must be a number in [0, 1), got {rejection_decay!r}")
  return low, high


def running_rejection(rejection_avg: Array, rejection_rate: Array,
                      rejection_decay: float = REJECTION_DECAY) -> Array:
  """r̄ ← d·r̄ + (1 − d)·(the batch's rejection rate)."""
  return rejection_decay * rejection_avg + (1 - rejection_decay) * rejection_rate


def adapt_step_size(kernel: Callable[[Array], SamplingAlgorithm], *,
                    initial_step_size: float = INITIAL_STEP_SIZE, target_rejection: float = TARGET_REJECTION,
                    step_size_bounds: tuple[float, float] = STEP_SIZE_BOUNDS,
                    step_size_grow: float = STEP_SIZE_GROW, step_size_shrink: float = STEP_SIZE_SHRINK,
                    rejection_decay: float = REJECTION_DECAY) -> SamplingAlgorithm:
  """Wraps a kernel built from a step size into the original code's adaptation (module docstring).

  The kernel is built from ε, e.g. `lambda eps: hmc(energy, num_leapfrog=L, step_size=eps)`. r̄ starts
  at the target (a choice: the reference does not say). Since ε depends on past acceptances, the adapted
  chain is only approximately invariant; freeze ε (`step(..., adapt=False)`, e.g. after a burn-in) to
  get the exact fixed-step kernel back. The batch's rejection rate is the kernel info's
  `rejection_rate`; a kernel with an `axis_name` averages it over devices, so every shard adapts the ε
  of the whole batch.

  Args:
    kernel: `step_size -> SamplingAlgorithm`, called with the state's ε (a traced scalar) at every
      transition; its info must have `rejection_rate` (the batch's, e.g. `HMCInfo`).
    initial_step_size: ε at `init`, within `step_size_bounds`.
    target_rejection: the rejection rate the adaptation steers r̄ towards, in (0, 1); r̄'s start.
    step_size_bounds: (ε_min, ε_max), 0 < ε_min ≤ ε_max: the adaptation keeps ε within them.
    step_size_grow: ε ← min(step_size_grow·ε, ε_max) when r̄ < target (≥ 1).
    step_size_shrink: ε ← max(step_size_shrink·ε, ε_min) otherwise (in (0, 1]).
    rejection_decay: d in r̄ ← d·r̄ + (1 − d)·(batch rejection), in [0, 1).

  Returns:
    `SamplingAlgorithm(init, step)`: `init(position, step_size=None, rejection_avg=None) ->
    AdaptationState` (ε defaults to `initial_step_size`, r̄ to `target_rejection`; both cast to the
    positions' dtype) and `step(key, state, adapt=True) -> (AdaptationState, info)`, the kernel's info
    (whose step size is the ε the transition used). `adapt` False (a bool or a traced bool) keeps ε
    (r̄ still follows the rejections): the transition is then exactly the fixed-step kernel's.

  Raises:
    ValueError: a bad setting, before any compute.
  """
  if not callable(kernel):
    raise ValueError(f"kernel must be a callable step_size -> SamplingAlgorithm, got {kernel!r}")
  low, high = check_adaptation(initial_step_size, target_rejection, step_size_bounds, step_size_grow,
                               step_size_shrink, rejection_decay)

  def init(position: Any, step_size: Any = None, rejection_avg: Any = None) -> AdaptationState:
    step_size = initial_step_size if step_size is None else step_size
    inner = kernel(step_size).init(position)
    dtype = inner.position.dtype
    step_size = jnp.asarray(step_size, dtype)
    rejection_avg = jnp.asarray(target_rejection if rejection_avg is None else rejection_avg, dtype)
    if step_size.shape or rejection_avg.shape:
      raise ValueError(f"step_size and rejection_avg are scalars shared by the batch, got shapes "
                       f"{step_size.shape} and {rejection_avg.shape}")
    return AdaptationState(inner, step_size, rejection_avg)

  def step(key: Array, state: AdaptationState, adapt: Any = True) -> tuple[AdaptationState, Any]:
    eps = state.step_size
    dtype = eps.dtype
    inner, info = kernel(eps).step(key, state.inner)
    rejection_avg = running_rejection(state.rejection_avg, info.rejection_rate, rejection_decay)
    new_eps = jnp.where(rejection_avg < target_rejection, jnp.minimum(step_size_grow * eps, high),
                        jnp.maximum(step_size_shrink * eps, low)).astype(dtype)
    if adapt is not True:
      new_eps = jnp.where(adapt, new_eps, eps)
    return AdaptationState(inner, new_eps, rejection_avg.astype(dtype)), info

  return SamplingAlgorithm(init, step)
