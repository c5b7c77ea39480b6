"""The sampler contract: `(init, step)` pairs run under `lax.scan`.

A sampler (the blackjax `SamplingAlgorithm` shape) is two pure functions:

  state = init(position)                 # a pytree; `state.position` is the current sample batch
  state, info = step(key, state)         # one transition leaving the target distribution invariant

`position` is a batch of independent chains, (num_chains, ...). `info` is a small record of what the
transition did (acceptance, step size, mean hidden activity...). `run_chain` folds the step number into
the key: a chain advanced in pieces (each call given the number of steps already taken as `start_step`)
draws exactly the numbers of one advanced in a single call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array
State = Any
Info = Any


class SamplingAlgorithm(NamedTuple):
  """`init(position) -> state` and `step(key, state) -> (state, info)`."""

  init: Callable[[Any], State]
  step: Callable[[Array, State], tuple[State, Info]]


def run_chain(key: Array, step: Callable[[Array, State], tuple[State, Info]], state: State,
              num_steps: int, trace: Callable[[State], Any] | None = None,
              start_step: Any = 0) -> tuple[State, Info, Any]:
  """Advances `state` by `num_steps` transitions with `lax.scan`.

  Step t (0-based) of this call uses `jax.random.fold_in(key, start_step + t)`: two calls of n steps, the
  second with `start_step=n`, draw exactly the numbers of one call of 2n steps.

  Args:
    key: typed PRNG key.
    step: the sampler's transition.
    state: the starting state.
    num_steps: number of transitions (≥ 0, static).
    trace: optional function of the state recorded after every transition (e.g. the positions, for
      sample chains); None records nothing.
    start_step: the number of steps already taken by this chain (an int or an int array).

  Returns:
    `(final_state, infos, traces)`: infos and traces stacked along a leading axis of `num_steps`
    (traces is None without `trace`).
  """
  if not isinstance(num_steps, int) or num_steps < 0:
    raise ValueError(f"num_steps must be an int >= 0, got {num_steps!r}")

  def body(state, t):
    state, info = step(jax.random.fold_in(key, t), state)
    return state, (info, None if trace is None else trace(state))

  state, (infos, traces) = jax.lax.scan(body, state, start_step + jax.numpy.arange(num_steps))
  return state, infos, traces


def gaussian_mean_and_draw(natural: Array, precision: Array, noise: Array) -> tuple[Array, Array]:
  """(μ, μ + L⁻ᵀε) of N(μ, Λ⁻¹) with μ = Λ⁻¹η, L Lᵀ = Λ, for batches (B, D), (B, D, D), (B, D).

  Computed as one chain of dependent batched LAPACK calls, y = L⁻¹η, then L⁻ᵀ[y, y + ε] in a single
  triangular solve with two right-hand sides. On CPU, jaxlib's batched LAPACK kernels (Cholesky, LU,
  triangular solves) split their batch over XLA's intra-op thread pool and block until their parts are
  done, and XLA runs independent operations at the same time: two such kernels side by side (say an LU
  solve for μ and the Cholesky factor for the draw) can hold every pool thread while waiting for parts
  queued behind each other, a deadlock seen on a 2-core machine (every thread parked on a futex). A
  chain in which each call needs the previous one's output cannot overlap with itself.
  """
  factor = jnp.linalg.cholesky(precision)
  half = jax.lax.linalg.triangular_solve(factor, natural[..., None], left_side=True, lower=True)
  both = jnp.concatenate([half, half + noise[..., None]], axis=-1)
  solved = jax.lax.linalg.triangular_solve(factor, both, left_side=True, lower=True, transpose_a=True)
  return solved[..., 0], solved[..., 1]
