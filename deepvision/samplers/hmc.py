r"""Hybrid (Hamiltonian) Monte Carlo on an energy: the fixed-step-size kernel.

HMC (Duane, Kennedy, Pendleton & Roweth 1987; Neal 2011, "MCMC using Hamiltonian dynamics") samples
p(x) ∝ exp(−E(x)) by simulating H(x, p) = E(x) + ½‖p‖² with the leapfrog integrator. One transition of
every chain of the batch, step size ε and L leapfrog steps, as in the mcRBM code (Ranzato & Hinton, CVPR
2010; Ranzato, Mnih, Susskind & Hinton, PAMI 2013):

  p ~ N(0, I);  x₀ = x;  H₀ = E(x₀) + ½‖p‖²
  p ← p − ½ε∇E(x);  x ← x + εp                      (a half step of momentum, a full step of position)
  repeat L − 1 times:  p ← p − ε∇E(x);  x ← x + εp
  p ← p − ½ε∇E(x);  H₁ = E(x) + ½‖p‖²                 (the closing half step)
  accept each particle with probability min(1, exp(H₀ − H₁)); a rejected particle goes back to x₀

With ε fixed every transition leaves p(x) invariant; the original code's adaptation of ε is the wrapper
`deepvision.samplers.adaptation.adapt_step_size`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any, NamedTuple

import flax.linen as nn
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
    energy: E(position) of every particle, (B,), carried so that it is not recomputed.
    grad: ∇E(position), the positions' shape, carried likewise; None (a state built without it): the
      step computes it at the start of the trajectory and returns a state without it.
  """

  position: Array
  energy: Array
  grad: Array | None = None


class HMCInfo(NamedTuple):
  """What one transition did.

  Attributes:
    acceptance_rate: fraction of the batch whose trajectory was accepted, a scalar (averaged over
      `axis_name` when the batch is split over devices).
    rejection_rate: 1 − acceptance_rate.
    step_size: the step size ε the trajectory used.
    is_accepted: per particle, (B,) bool.
    energy_change: H₁ − H₀ per particle, (B,): the leapfrog's error in the Hamiltonian (the log
      acceptance probability is min(0, −energy_change)).
  """

  acceptance_rate: Array
  rejection_rate: Array
  step_size: Array
  is_accepted: Array
  energy_change: Array


class EnergyFunctions(NamedTuple):
  """An energy over batches and its gradient.

  Attributes:
    energy_fn: `x (B, ...) -> E(x) (B,)`.
    energy_and_grad_fn: `x -> (E(x) (B,), ∂E/∂x (B, ...))` (what `hmc` takes as `energy_and_grad_fn`).
  """

  energy_fn: EnergyFn
  energy_and_grad_fn: EnergyAndGradFn


def model_energy(model: nn.Module, variables: Any) -> EnergyFunctions:
  """The free energy F(x) of a Linen energy model and its gradient, for HMC.

  The gradient is the model's closed form `free_energy_and_grad` when it has one (the gated MRFs),
  else autodiff (`jax.vjp`) of `free_energy`.
  """

  def energy_fn(x: Array) -> Array:
    return model.apply(variables, x, method="free_energy")

  if callable(getattr(model, "free_energy_and_grad", None)):
    return EnergyFunctions(energy_fn, lambda x: model.apply(variables, x, method="free_energy_and_grad"))

  def energy_and_grad_fn(x: Array) -> tuple[Array, Array]:
    energy, pullback = jax.vjp(energy_fn, x)
    (grad,) = pullback(jnp.ones_like(energy))
    return energy, grad

  return EnergyFunctions(energy_fn, energy_and_grad_fn)


def positive_number(name: str, value: Any) -> float:
  """`value` as a float, or ValueError unless it is a finite real number > 0."""
  if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
    raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
  return float(value)


def _check_step_size(step_size: Any) -> None:
  """A number > 0, or a scalar array (a traced one is checked for its shape only)."""
  if isinstance(step_size, (jax.Array, np.ndarray, np.generic)) and not isinstance(step_size, bool):
    if np.ndim(step_size) != 0:
      raise ValueError(f"step_size must be a scalar, got shape {np.shape(step_size)}")
    if isinstance(step_size, jax.core.Tracer):
      return
    step_size = float(step_size)
  positive_number("step_size", step_size)


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


def hmc(energy_fn: EnergyFn, *, num_leapfrog: int, step_size: Any,
        energy_and_grad_fn: EnergyAndGradFn | None = None, clamp_mask: Any = None,
        axis_name: str | None = None) -> SamplingAlgorithm:
  """The fixed-step-size HMC kernel of an energy (the transition is in the module docstring).

  Leapfrog is volume-preserving and reversible and the Metropolis test corrects its discretisation
  error. `adapt_step_size` builds this kernel with the ε of its state at every transition (`step_size`
  may be a traced scalar). The state carries each particle's energy E(x) and gradient ∇E(x) (of the
  trajectory's end point if it was accepted, else the carried ones), so a trajectory evaluates the
  gradient L times, not L + 1. They belong to `energy_fn`: when the energy changes (parameters updated
  between transitions), start again with `init`, or build `HMCState(position, energy)` without `grad`:
  the gradient is then computed at the start of every trajectory (and the state stays without one), as
  the original code does. `clamp_mask` fixes coordinates (their momentum is zero and they are never
  written), so the chain samples the conditional of the free coordinates. `energy_and_grad_fn` replaces
  autodiff (`jax.vjp`) by a closed form (the gated MRFs have one); the Metropolis test uses the energies
  it returns. With `axis_name` the batch may be split over devices: the acceptance rate in the info is
  averaged over them.

  Args:
    energy_fn: `x (B, ...) -> E(x) (B,)`, one energy per particle; p(x) ∝ exp(−E(x)).
    num_leapfrog: leapfrog steps L per trajectory (int ≥ 1; the original code's is 20).
    step_size: the leapfrog step ε: a number > 0, or a scalar array (it may be traced, e.g. the ε of
      an adaptation wrapper's state; it is cast to the positions' dtype).
    energy_and_grad_fn: optional `x -> (E(x) (B,), ∇E(x) (B, ...))` used instead of autodiff of
      `energy_fn` (`model_energy` gives a model's); it must agree with `energy_fn`.
    clamp_mask: optional bool (or 0/1) array over a particle's coordinates, of shape `position.shape[1:]`
      or flat `(D,)`; True coordinates are clamped (never move).
    axis_name: for a batch split over devices (`jax.pmap` / `shard_map` / `vmap` with this axis name,
      e.g. `deepvision.parallel.AXIS`): the info's acceptance rate is averaged over the axis
      (`lax.pmean`), and each shard draws its own numbers from `fold_in(key, axis_index)`.

  Returns:
    `SamplingAlgorithm(init, step)`: `init(position) -> HMCState` (E and ∇E evaluated at `position`)
    and `step(key, state) -> (HMCState, HMCInfo)`. The step splits `key` into (momentum key,
    acceptance key) and draws p ~ N(0, I) of the positions' shape and dtype from the first and one
    uniform per particle from the second.

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
  if isinstance(num_leapfrog, bool) or not isinstance(num_leapfrog, numbers.Integral) or num_leapfrog < 1:
    raise ValueError(f"num_leapfrog must be an int >= 1, got {num_leapfrog!r}")
  _check_step_size(step_size)
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

  def init(position: Any) -> HMCState:
    position = checked_position(position)
    free_mask(position)
    energy, grad = energy_and_grad(position)
    return HMCState(position, energy, grad)

  def step(key: Array, state: HMCState) -> tuple[HMCState, HMCInfo]:
    x0 = checked_position(state.position)
    moves = free_mask(x0)
    dtype = x0.dtype
    eps = jnp.asarray(step_size, dtype)
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
    info = HMCInfo(acceptance_rate, 1 - acceptance_rate, eps, accepted, energy_change)
    return HMCState(position, energy, new_grad), info

  return SamplingAlgorithm(init, step)
