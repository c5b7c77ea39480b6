r"""Hybrid (Hamiltonian) Monte Carlo on an energy, as the original mcRBM code runs it.

HMC (Duane, Kennedy, Pendleton & Roweth 1987; Neal 2011, "MCMC using Hamiltonian dynamics") samples
p(x) ∝ exp(−E(x)) by adding a Gaussian momentum p and simulating the dynamics of

  H(x, p) = E(x) + ½‖p‖²

with the leapfrog integrator. One transition of every particle (chain) of the batch, with step size ε and
L leapfrog steps, is the trajectory of Ranzato & Hinton (CVPR 2010) and Ranzato, Mnih, Susskind & Hinton
(PAMI 2013) as their code runs it:

  p ~ N(0, I);  x₀ = x;  H₀ = E(x₀) + ½‖p‖²
  p ← p − ½ε∇E(x);  x ← x + εp                      (a half step of momentum, a full step of position)
  repeat L − 1 times:  p ← p − ε∇E(x);  x ← x + εp
  p ← p − ½ε∇E(x);  H₁ = E(x) + ½‖p‖²                 (the closing half step)
  accept each particle independently with probability min(1, exp(H₀ − H₁)); a rejected particle goes
  back to the start x₀ of its trajectory (not to an intermediate point)

and then the step size, one scalar shared by the batch, adapts to the running rejection rate:

  r̄ ← d·r̄ + (1 − d)·(fraction of the batch rejected)                     (d = 0.9)
  ε ← min(1.01·ε, ε_max) if r̄ < target else max(0.99·ε, ε_min)            (target 0.1, [0.001, 0.25])

The defaults (L = 20, ε₀ = 0.01, target rejection 0.1) are those of the original code; r̄ starts at
the target (a choice: the reference does not say). With `adapt=True` ε depends on the acceptances of past transitions, so the chain is only
approximately invariant (the adaptation keeps moving ε around the value that gives the target rejection;
this is what the original training code does). With `adapt=False` ε stays fixed and every transition is
an exact MCMC kernel leaving p(x) invariant (leapfrog is volume-preserving and reversible, and the
Metropolis test corrects its discretisation error).

The state carries each particle's current energy E(x) and gradient ∇E(x) (those of the trajectory's end
point if it was accepted, else the carried ones), so neither is recomputed at the start of the next
trajectory: a trajectory evaluates the gradient L times, not L + 1 (5% of the work at L = 20). The
carried values belong to `energy_fn`: when the energy changes (the parameters of a model trained by
persistent contrastive divergence are updated between trajectories), start from
`init(state.position, step_size=state.step_size, rejection_avg=state.rejection_avg)` with the new
energy, which recomputes both and keeps the adapted step size, or build `HMCState(position, step_size,
rejection_avg, energy)` without `grad`: a state without a gradient has it computed at the start of
each trajectory (and stays without one), as the original code does.

With `axis_name`, the batch may be split over devices (data parallelism, `deepvision.parallel`): the
acceptance rate that drives the adaptation is averaged over the devices, so every shard keeps the same
step size as one device holding the whole batch would.

`clamp_mask` fixes some coordinates (inpainting with the observed pixels clamped): their momentum is zero
and their position is never written, so they stay bitwise equal to their start, and the chain samples the
conditional distribution of the free coordinates given the clamped ones.

Positions are a batch `(B, ...)` of independent particles; `energy_fn(x)` returns one energy per
particle, `(B,)`. The gradient is `jax.vjp` of `energy_fn` (exact when the particles do not interact), or
`energy_and_grad_fn(x) -> (E (B,), ∇E (B, ...))` when the model has a cheaper closed form (the gated
MRFs have one). The Metropolis test uses the carried energy at the start and the energy that
`energy_and_grad_fn` returns at the end; a gradient of lower precision (e.g. bfloat16 matrix products)
keeps the chain exact as long as those energies are exact, since leapfrog with any gradient that is a
function of x alone is still volume-preserving and reversible; only the acceptance drops. Every step is a
pure function: jit it, or run it with `deepvision.samplers.base.run_chain`.

Speed on a multi-core CPU: the matrix products of one trajectory are small (128 particles of an mcRBM:
about 10 MFLOP each), and XLA:CPU spreads them poorly over the cores; splitting the batch over one CPU
device per core (`jax_num_cpu_devices`, `axis_name`, `jax.pmap`) ran the mcRBM trajectory 1.7× faster
on 2 idle cores than one device did (4.2 ms against 7.4 ms), and no faster while other processes held a
core (benchmarks/hmc_throughput.py records the machine's load with every run).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from deepvision.samplers.base import SamplingAlgorithm

Array = jax.Array
EnergyFn = Callable[[Array], Array]
EnergyAndGradFn = Callable[[Array], tuple[Array, Array]]


class HMCState(NamedTuple):
  """The state of a batch of HMC chains.

  Attributes:
    position: the particles, (B, ...).
    step_size: the leapfrog step size ε, a scalar shared by the batch.
    rejection_avg: the running average r̄ of the fraction of the batch rejected, a scalar.
    energy: E(position) of every particle, (B,), carried so that it is not recomputed.
    grad: ∇E(position), the positions' shape, carried likewise; None (a state built without it): the
      step computes it at the start of the trajectory and returns a state without it.
  """

  position: Array
  step_size: Array
  rejection_avg: Array
  energy: Array
  grad: Array | None = None


class HMCInfo(NamedTuple):
  """What one transition did.

  Attributes:
    acceptance_rate: fraction of the batch whose trajectory was accepted, a scalar.
    rejection_rate: 1 − acceptance_rate.
    step_size: the step size ε the trajectory used (before this transition's adaptation).
    is_accepted: per particle, (B,) bool.
    energy_change: H₁ − H₀ per particle, (B,): the leapfrog's error in the Hamiltonian (the log
      acceptance probability is min(0, −energy_change)).
  """

  acceptance_rate: Array
  rejection_rate: Array
  step_size: Array
  is_accepted: Array
  energy_change: Array


def _positive_number(name: str, value: Any) -> float:
  if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
    raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
  return float(value)


def _check_arguments(num_leapfrog, initial_step_size, target_rejection, adapt, step_size_bounds,
                     step_size_grow, step_size_shrink, rejection_decay) -> tuple[float, float]:
  """Raises ValueError on any bad hyper-parameter; returns the step-size bounds as floats."""
  if isinstance(num_leapfrog, bool) or not isinstance(num_leapfrog, numbers.Integral) or num_leapfrog < 1:
    raise ValueError(f"num_leapfrog must be an int >= 1, got {num_leapfrog!r}")
  _positive_number("initial_step_size", initial_step_size)
  if (isinstance(target_rejection, bool) or not isinstance(target_rejection, numbers.Real)
      or not 0 < target_rejection < 1):
    raise ValueError(f"target_rejection must be a number in (0, 1), got {target_rejection!r}")
  if not isinstance(adapt, bool):
    raise ValueError(f"adapt must be True or False, got {adapt!r}")
  if not isinstance(step_size_bounds, (tuple, list)) or len(step_size_bounds) != 2:
    raise ValueError(f"step_size_bounds must be a pair (min, max), got {step_size_bounds!r}")
  low = _positive_number("step_size_bounds[0]", step_size_bounds[0])
  high = _positive_number("step_size_bounds[1]", step_size_bounds[1])
  if low > high:
    raise ValueError(f"step_size_bounds must be ordered (min <= max), got {step_size_bounds!r}")
  if adapt and not low <= initial_step_size <= high:
    raise ValueError(f"initial_step_size must lie within step_size_bounds={tuple(step_size_bounds)} when "
                     f"adapt=True, got {initial_step_size!r}")
  if _positive_number("step_size_grow", step_size_grow) < 1:
    raise ValueError(f"step_size_grow must be >= 1, got {step_size_grow!r}")
  if _positive_number("step_size_shrink", step_size_shrink) > 1:
    raise ValueError(f"step_size_shrink must be in (0, 1], got {step_size_shrink!r}")
  if (isinstance(rejection_decay, bool) or not isinstance(rejection_decay, numbers.Real)
      or not 0 <= rejection_decay < 1):
    raise ValueError(f"rejection_decay must be a number in [0, 1), got {rejection_decay!r}")
  return low, high


def _free_coordinates(clamp_mask: Any) -> np.ndarray | None:
  """The complement of `clamp_mask` as a NumPy bool array (True: the coordinate moves), or None."""
  if clamp_mask is None:
    return None
  if isinstance(clamp_mask, jax.core.Tracer):
    raise ValueError("clamp_mask must be a concrete array (NumPy or a non-traced jax.Array), got a traced "
                     "value; build the sampler outside jit")
  mask = np.asarray(clamp_mask)
  if mask.ndim == 0 or mask.size == 0:
    raise ValueError(f"clamp_mask must be a non-empty array over a particle's coordinates, got shape "
                     f"{mask.shape}")
  if mask.dtype != np.bool_:
    if not np.issubdtype(mask.dtype, np.number) or not np.isin(mask, (0, 1)).all():
      raise ValueError("clamp_mask must be bool or hold only 0 and 1, got values "
                       f"{np.unique(mask)[:5]} of dtype {mask.dtype}")
    mask = mask.astype(bool)
  return ~mask


def hmc(energy_fn: EnergyFn, *, num_leapfrog: int = 20, initial_step_size: float = 0.01,
        target_rejection: float = 0.1, adapt: bool = True,
        step_size_bounds: tuple[float, float] = (0.001, 0.25), step_size_grow: float = 1.01,
        step_size_shrink: float = 0.99, rejection_decay: float = 0.9,
        energy_and_grad_fn: EnergyAndGradFn | None = None,
        clamp_mask: Any = None, axis_name: str | None = None) -> SamplingAlgorithm:
  """The HMC sampler of an energy (see the module docstring for the transition).

  Args:
    energy_fn: `x (B, ...) -> E(x) (B,)`, one energy per particle; p(x) ∝ exp(−E(x)).
    num_leapfrog: leapfrog steps L per trajectory (int ≥ 1).
    initial_step_size: ε at `init` (> 0; within `step_size_bounds` when adapting).
    target_rejection: the rejection rate the adaptation steers r̄ towards, in (0, 1).
    adapt: adapt ε after every transition (approximately invariant chain, as in the original code);
      False keeps ε fixed (an exact MCMC kernel).
    step_size_bounds: (ε_min, ε_max), 0 < ε_min ≤ ε_max: the adaptation keeps ε within them.
    step_size_grow: ε ← min(step_size_grow·ε, ε_max) when r̄ < target (≥ 1).
    step_size_shrink: ε ← max(step_size_shrink·ε, ε_min) otherwise (in (0, 1]).
    rejection_decay: d in r̄ ← d·r̄ + (1 − d)·(batch rejection), in [0, 1).
    energy_and_grad_fn: optional `x -> (E(x) (B,), ∇E(x) (B, ...))` used instead of autodiff of
      `energy_fn` inside the trajectory; it must agree with `energy_fn`.
    clamp_mask: optional bool (or 0/1) array over a particle's coordinates, of shape `position.shape[1:]`
      or flat `(D,)` with D their number; True coordinates are clamped (never move).
    axis_name: for a batch split over devices (`jax.pmap` / `shard_map` / `vmap` with this axis name,
      e.g. `deepvision.parallel.AXIS`): the acceptance rate is averaged over the axis (`lax.pmean`), so
      every shard adapts the same ε as one device holding the whole batch, and each shard draws its
      own numbers from `fold_in(key, axis_index)`. None (default): the batch is all on one device.

  Returns:
    `SamplingAlgorithm(init, step)`: `init(position, step_size=None, rejection_avg=None) -> HMCState`
    (ε defaults to `initial_step_size`, r̄ to `target_rejection`, as in the original code; E and ∇E
    evaluated at `position`) and
    `step(key, state) -> (HMCState, HMCInfo)`. The step splits `key` into (momentum key, acceptance
    key) and draws p ~ N(0, I) of the positions' shape and dtype from the first and one uniform per
    particle from the second.

  Raises:
    ValueError: on a bad argument (here), or at `init` / `step` on positions whose shape or dtype does
      not fit (not a float batch of ndim ≥ 2, a clamp mask of the wrong size, energies not (B,)).
  """
  if not callable(energy_fn):
    raise ValueError(f"energy_fn must be callable, got {energy_fn!r}")
  if energy_and_grad_fn is not None and not callable(energy_and_grad_fn):
    raise ValueError(f"energy_and_grad_fn must be callable or None, got {energy_and_grad_fn!r}")
  if axis_name is not None and not isinstance(axis_name, str):
    raise ValueError(f"axis_name must be a str or None, got {axis_name!r}")
  low, high = _check_arguments(num_leapfrog, initial_step_size, target_rejection, adapt, step_size_bounds,
                               step_size_grow, step_size_shrink, rejection_decay)
  free = _free_coordinates(clamp_mask)
  num_leapfrog = int(num_leapfrog)

  def checked_position(position: Any) -> Array:
    position = jnp.asarray(position)
    if position.ndim < 2:
      raise ValueError(f"HMC positions must be a batch of particles (B, ...) with ndim >= 2, got shape "
                       f"{position.shape}")
    if not jnp.issubdtype(position.dtype, jnp.floating):
      raise ValueError(f"HMC positions must be floating point, got dtype {position.dtype}")
    return position

  def free_mask(position: Array) -> Array | None:
    """The free coordinates shaped like one particle, or None without clamping."""
    if free is None:
      return None
    shape = position.shape[1:]
    if free.shape != shape and (free.ndim != 1 or free.size != math.prod(shape)):
      raise ValueError(f"clamp_mask of shape {(~free).shape} does not fit particles of shape {shape}: "
                       f"give {shape} or ({math.prod(shape)},)")
    return jnp.asarray(free.reshape(shape))

  def checked_energy(energy: Array, position: Array) -> Array:
    if energy.shape != position.shape[:1]:
      raise ValueError(f"the energy must return one value per particle, shape {position.shape[:1]}, got "
                       f"{energy.shape}")
    return energy.astype(position.dtype)

  def energy_and_grad(x: Array) -> tuple[Array, Array]:
    if energy_and_grad_fn is not None:
      energy, grad = energy_and_grad_fn(x)
    else:
      energy, pullback = jax.vjp(energy_fn, x)
      (grad,) = pullback(jnp.ones_like(energy))
    if grad.shape != x.shape:
      raise ValueError(f"the energy gradient must have the positions' shape {x.shape}, got {grad.shape}")
    return checked_energy(energy, x), grad.astype(x.dtype)

  def init(position: Any, step_size: Any = None, rejection_avg: Any = None) -> HMCState:
    position = checked_position(position)
    free_mask(position)
    dtype = position.dtype
    step_size = jnp.asarray(initial_step_size if step_size is None else step_size, dtype)
    rejection_avg = jnp.asarray(target_rejection if rejection_avg is None else rejection_avg, dtype)
    if step_size.shape or rejection_avg.shape:
      raise ValueError(f"step_size and rejection_avg are scalars shared by the batch, got shapes "
                       f"{step_size.shape} and {rejection_avg.shape}")
    energy, grad = energy_and_grad(position)
    return HMCState(position, step_size, rejection_avg, energy, grad)

  def step(key: Array, state: HMCState) -> tuple[HMCState, HMCInfo]:
    x0 = checked_position(state.position)
    moves = free_mask(x0)
    dtype, eps = x0.dtype, state.step_size
    if axis_name is not None:
      key = jax.random.fold_in(key, jax.lax.axis_index(axis_name))
    momentum_key, accept_key = jax.random.split(key)
    particle_axes = tuple(range(1, x0.ndim))

    def masked(v: Array) -> Array:
      return v if moves is None else jnp.where(moves, v, jnp.zeros((), dtype))

    def drift(x: Array, p: Array) -> Array:
      return x + eps * p if moves is None else jnp.where(moves, x + eps * p, x)

    def kinetic(p: Array) -> Array:
      return 0.5 * jnp.sum(p * p, axis=particle_axes)

    p0 = masked(jax.random.normal(momentum_key, x0.shape, dtype))
    grad0 = energy_and_grad(x0)[1] if state.grad is None else state.grad.astype(dtype)  # E(x0) is carried
    if grad0.shape != x0.shape:
      raise ValueError(f"the state's grad must have the positions' shape {x0.shape}, got {grad0.shape}")
    p = p0 - (0.5 * eps) * masked(grad0)
    x = drift(x0, p)

    def full_step(_, carry):
      x, p = carry
      _, grad = energy_and_grad(x)
      p = p - eps * masked(grad)
      return drift(x, p), p

    x, p = jax.lax.fori_loop(0, num_leapfrog - 1, full_step, (x, p))
    energy, grad = energy_and_grad(x)
    p = p - (0.5 * eps) * masked(grad)

    energy_change = (energy + kinetic(p)) - (state.energy + kinetic(p0))
    log_uniform = jnp.log(jax.random.uniform(accept_key, energy.shape, dtype))
    accepted = log_uniform < -energy_change  # u < exp(H₀ − H₁); NaN never accepts
    expand = accepted.reshape(accepted.shape + (1,) * (x0.ndim - 1))
    position = jnp.where(expand, x, x0)
    energy = jnp.where(accepted, energy, state.energy)
    new_grad = None if state.grad is None else jnp.where(expand, grad, grad0)

    acceptance_rate = jnp.mean(accepted.astype(dtype))
    if axis_name is not None:  # equal shards: the mean of the shards' rates is the batch's
      acceptance_rate = jax.lax.pmean(acceptance_rate, axis_name)
    rejection_rate = 1 - acceptance_rate
    rejection_avg = rejection_decay * state.rejection_avg + (1 - rejection_decay) * rejection_rate
    if adapt:
      new_eps = jnp.where(rejection_avg < target_rejection, jnp.minimum(step_size_grow * eps, high),
                          jnp.maximum(step_size_shrink * eps, low)).astype(dtype)
    else:
      new_eps = eps
    info = HMCInfo(acceptance_rate, rejection_rate, eps, accepted, energy_change)
    return HMCState(position, new_eps, rejection_avg.astype(dtype), energy, new_grad), info

  return SamplingAlgorithm(init, step)
