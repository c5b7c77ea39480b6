r"""AIS estimates of log Z for models over continuous visibles: mcRBM, mPoT, any `free_energy` over ℝ^D.

`ais_log_partition_continuous` starts from the model's Gaussian part N(b_v, I), follows the geometric
path F_β = F_0 + β (F − F_0) and moves the runs with HMC trajectories (the fixed-step kernel of
`deepvision.samplers.hmc`, Neal 2011), with the generic loop of `deepvision.estimators.annealing`
(Neal 2001); `partition.exact_log_partition_paper_mcrbm` gives the exact value it is tested against.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from deepvision.estimators import partition
from deepvision.estimators.annealing import (DEFAULT_NUM_RUNS, AISResult, annealed_importance_sampling, check_betas,
                                             linear_betas, summarize_log_weights)
from deepvision.samplers import adaptation
from deepvision.samplers import hmc as hmc_lib

Array = jax.Array

DEFAULT_CONTINUOUS_TEMPERATURES = 1000
DEFAULT_NUM_LEAPFROG = 10
DEFAULT_STEP_SIZE = 0.1
_HMC_STEP_SIZE_BOUNDS = adaptation.STEP_SIZE_BOUNDS  # the range an adapted ε stays in
_HMC_TARGET_REJECTION = adaptation.TARGET_REJECTION  # also the running rejection average's start


class _HMCRuns(NamedTuple):
  """The AIS sample of `ais_log_partition_continuous`: the runs and what their transitions carry.

  `position` comes first: `annealed_importance_sampling` reads the number of runs from the first leaf.
  """

  position: Array  # x, (runs, D)
  interaction: Array  # F(x) − F_0(x), (runs,): the next weight increment and HMC's start energy
  step_size: Array  # ε, a scalar shared by the runs
  rejection_avg: Array  # the adaptation's running rejection average, a scalar
  accepted: Array  # accepted trajectories so far, per run, (runs,)


def gaussian_base_energy(x: Array, mean: Array) -> Array:
  """F_0(x) = ½‖x‖² − meanᵀx per example: N(mean, I) is exp(−F_0) / Z_0."""
  return 0.5 * jnp.sum(x * x, axis=-1) - x @ mean


def gaussian_base_log_partition(mean: Any) -> float:
  """log Z_0 = log ∫ exp(−½‖x‖² + meanᵀx) dx = (D/2) log 2π + ½‖mean‖², in float64."""
  mean = np.asarray(mean, np.float64).reshape(-1)
  return 0.5 * mean.size * math.log(2 * math.pi) + 0.5 * float(mean @ mean)


def _hmc(energy_and_grad: Callable[[Array], tuple[Array, Array]], num_leapfrog: int, adapt: bool):
  """The HMC transition of `energy_and_grad` at the ε of the runs: the fixed-step kernel, or with `adapt`
  the kernel in the original code's adaptation (`samplers.adaptation`)."""

  def kernel(step_size):
    return hmc_lib.hmc(lambda x: energy_and_grad(x)[0], num_leapfrog=num_leapfrog, step_size=step_size,
                       energy_and_grad_fn=energy_and_grad)

  if not adapt:
    return kernel
  # ε comes from the state: the initial step size is never used and only has to pass the checks.
  return adaptation.adapt_step_size(kernel, initial_step_size=_HMC_STEP_SIZE_BOUNDS[0],
                                    target_rejection=_HMC_TARGET_REJECTION,
                                    step_size_bounds=_HMC_STEP_SIZE_BOUNDS)


@functools.partial(jax.jit, static_argnames=("model", "num_visible", "num_runs", "num_leapfrog",
                                             "num_trajectories", "adapt"))
def _continuous_ais(model, variables, key, base_mean, betas, step_size, *, num_visible, num_runs,
                    num_leapfrog, num_trajectories, adapt):
  dtype = betas.dtype
  free_energy_and_grad = hmc_lib.model_energy(model, variables).energy_and_grad_fn

  def interaction(x):  # F(x) − F_0(x), with the F that HMC's energies use
    return free_energy_and_grad(x)[0].astype(dtype) - gaussian_base_energy(x, base_mean)

  def log_unnormalized(beta, runs):  # log f_β(x) = −F_0(x) − β (F(x) − F_0(x))
    return -gaussian_base_energy(runs.position, base_mean) - beta * runs.interaction

  def increment(beta_prev, beta, runs):  # F_0 cancels: only the interaction changes with β
    return -(beta - beta_prev) * runs.interaction

  def transition(key, beta, runs):
    def energy_and_grad(x):  # F_β = (1 − β) F_0 + β F and its gradient
      energy, grad = free_energy_and_grad(x)
      return ((1 - beta) * gaussian_base_energy(x, base_mean) + beta * energy.astype(dtype),
              (1 - beta) * (x - base_mean) + beta * grad.astype(dtype))

    sampler = _hmc(energy_and_grad, num_leapfrog, adapt)
    start_energy = gaussian_base_energy(runs.position, base_mean) + beta * runs.interaction
    state = hmc_lib.HMCState(runs.position, start_energy)  # no gradient: F_β changed with β
    step_size, rejection_avg, accepted = runs.step_size, runs.rejection_avg, runs.accepted
    for t in range(num_trajectories):
      if adapt:
        adapted, info = sampler.step(jax.random.fold_in(key, t),
                                     adaptation.AdaptationState(state, step_size, rejection_avg))
        state, step_size, rejection_avg = adapted
      else:
        state, info = sampler(step_size).step(jax.random.fold_in(key, t), state)
      accepted = accepted + info.is_accepted.astype(dtype)
    return _HMCRuns(state.position, interaction(state.position), step_size, rejection_avg, accepted)

  init_key, chain_key = jax.random.split(key)
  x0 = base_mean + jax.random.normal(init_key, (num_runs, num_visible), dtype)
  runs = _HMCRuns(x0, interaction(x0), step_size.astype(dtype),
                  jnp.asarray(_HMC_TARGET_REJECTION, dtype), jnp.zeros((num_runs,), dtype))
  # log Z_0 is added in float64 afterwards: the scan sums only the increments.
  log_w, runs = annealed_importance_sampling(chain_key, runs, log_unnormalized, transition, betas,
                                             0.0, log_weight_increment=increment,
                                             return_final_sample=True)
  return log_w, jnp.sum(runs.accepted)


def _positive_int(name: str, value: Any) -> int:
  if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
    raise ValueError(f"{name} must be an int >= 1, got {value!r}")
  return int(value)


def _continuous_visible_size(model: nn.Module, num_visible: Any) -> int:
  """D from `num_visible` or the model's `n_visible`, which must agree when both are given."""
  own = getattr(model, "n_visible", None)
  if num_visible is None:
    if not isinstance(own, int) or isinstance(own, bool):
      raise ValueError(f"{type(model).__name__} has no int field n_visible: pass num_visible")
    num_visible = own
  num_visible = _positive_int("num_visible", num_visible)
  if isinstance(own, int) and own != num_visible:
    raise ValueError(f"num_visible={num_visible} differs from {type(model).__name__}.n_visible={own}")
  return num_visible


def _base_mean(variables: Any, num_visible: int, dtype: Any) -> Array:
  """The model's visible bias b_v, the base's mean (zeros for a model without one)."""
  params = variables.get("params", {}) if hasattr(variables, "get") else {}
  if "b_v" not in params:
    return jnp.zeros((num_visible,), dtype)
  b_v = jnp.asarray(params["b_v"], dtype)
  if b_v.shape != (num_visible,):
    raise ValueError(f"params['b_v'] must have shape ({num_visible},) to be the base's mean, got "
                     f"{b_v.shape}")
  return b_v


def ais_log_partition_continuous(model: nn.Module, variables: Any, key: Array, *,
                                 num_visible: int | None = None, betas: Any = None,
                                 num_runs: int = DEFAULT_NUM_RUNS,
                                 num_leapfrog: int = DEFAULT_NUM_LEAPFROG,
                                 step_size: float = DEFAULT_STEP_SIZE, num_trajectories: int = 1,
                                 adapt_step_size: bool = False) -> AISResult:
  r"""AIS estimate of log Z = log ∫ exp(−F(x)) dx for an energy model with continuous visibles.

  For the gated MRFs (mcRBM, mPoT; Ranzato & Hinton 2010, Ranzato et al. 2013) and any model whose
  free energy F(x) over real x ∈ ℝ^D is a flax method `free_energy`. Base: the model's own Gaussian
  part, p_0 = N(b_v, I) (b_v the model's visible bias, 0 if it has none), drawn exactly,

    F_0(x) = ½‖x‖² − b_vᵀx,   log Z_0 = (D/2) log 2π + ½‖b_v‖².

  Path: geometric, F_β = (1 − β) F_0 + β F = F_0 + β (F − F_0), i.e. p_β ∝ p_0^{1−β} p^β: for the gated
  MRFs, whose F = F_0 + (hidden terms), this scales the hidden units' contributions (the interactions,
  e.g. −Σ softplus(·) of the mcRBM) by β, not their inputs (unlike the RBM path above, which scales the
  weights inside the softplus). Every p_β is normalisable when p_0 and p are (Hölder's inequality).
  The weight increments are

    log f_{β_k}(x) − log f_{β_{k−1}}(x) = −(β_k − β_{k−1}) (F(x) − F_0(x)),

  accumulated in log space by `annealed_importance_sampling` (one `lax.scan` over the temperatures,
  all runs in parallel in one jit; log Z_0 is added in float64 afterwards).

  Transitions: at each intermediate β, `num_trajectories` HMC trajectories (`deepvision.samplers.hmc`:
  `num_leapfrog` leapfrog steps, Metropolis test, rejected runs return to their start) targeting
  p_β, with ∇F_β = (1 − β)(x − b_v) + β ∇F from the model's closed-form `free_energy_and_grad` when
  it has one, else from autodiff of `free_energy`. With a fixed step size (the default) each
  transition leaves p_β exactly invariant, so the estimate of Z is unbiased. `adapt_step_size=True`
  runs the original code's adaptation (`samplers.adaptation`: ε × 1.01 or × 0.99 after each
  trajectory, steering the running rejection of all runs towards 0.1, within [0.001, 0.25]) through
  the annealing: each trajectory still leaves
  its p_β invariant for the ε it uses, but ε depends on earlier acceptances of all the runs, so the
  runs are no longer exactly independent and unbiasedness holds only approximately (a dependence
  of order 1/num_runs per run). Prefer a fixed ε: the path's curvature ∇²F_β = (1 − β) I + β ∇²F lies
  between the base's and the model's, so a step size that works for the model at β = 1 (e.g. the
  one a PCD trainer's HMC chains adapted to) and for N(b_v, I) (any ε ≲ 0.5) works everywhere.

  Cost: (temperatures × num_trajectories × (num_leapfrog + 1)) free-energy gradients of a
  (num_runs, D) batch. Check `AISResult.acceptance_rate` (a rate near 0 means the runs did not move
  and the estimate is no better than plain importance sampling from the base) and the ±3σ band.

  Randomness: x_0 = b_v + N(0, I) drawn with the first key of `jax.random.split(key)`; transition k
  uses `jax.random.fold_in(second, k)` (and trajectory t within it `fold_in(·, t)`).

  Args:
    model: a Linen module with a `free_energy(x) -> (B,)` method (optionally `free_energy_and_grad`).
    variables: its variables; computed in their dtype (float64 under enable_x64).
    key: typed PRNG key.
    num_visible: D; default the model's `n_visible` (they must agree when both exist).
    betas: the schedule (1-D, strictly increasing, exactly 0 first and 1 last); default
      `linear_betas(DEFAULT_CONTINUOUS_TEMPERATURES)`. With [0, 1] there is no transition and the
      estimate is plain importance sampling from p_0: log w = log Z_0 − F(x_0) + F_0(x_0).
    num_runs: independent AIS runs M (≥ 1).
    num_leapfrog: leapfrog steps L per HMC trajectory (≥ 1).
    step_size: the leapfrog step ε (> 0; the initial one, within [0.001, 0.25], when adapting). A
      Python number or a scalar array (e.g. a trainer's adapted `HMCState.step_size`); traced, so a
      new value does not recompile.
    num_trajectories: HMC trajectories per intermediate temperature (≥ 1).
    adapt_step_size: adapt ε along the annealing (see above; approximate), or keep it fixed.

  Returns:
    An `AISResult` (log Ẑ, its delta-method standard error, the ±3σ bounds, the log weights,
    log Z_0, the number of temperatures and the HMC acceptance rate).

  Raises:
    ValueError: before any compute, for a model without `free_energy`, an unknown or inconsistent D,
      a visible bias of the wrong shape, a bad schedule, or a bad run count, leapfrog count, step size
      or trajectory count.
  """
  if not callable(getattr(model, "free_energy", None)):
    raise ValueError(f"{type(model).__name__} has no free_energy method: AIS needs F(x)")
  num_visible = _continuous_visible_size(model, num_visible)
  betas = check_betas(linear_betas(DEFAULT_CONTINUOUS_TEMPERATURES) if betas is None else betas)
  num_runs = _positive_int("num_runs", num_runs)
  num_trajectories = _positive_int("num_trajectories", num_trajectories)
  if not isinstance(adapt_step_size, bool):
    raise ValueError(f"adapt_step_size must be True or False, got {adapt_step_size!r}")
  if np.ndim(step_size) != 0 or isinstance(step_size, (bool, str)):
    raise ValueError(f"step_size must be a number > 0, got {step_size!r}")
  # The kernel's and the adaptation's own checks (the step size within its bounds when adapting).
  hmc_lib.hmc(lambda x: x, num_leapfrog=num_leapfrog, step_size=float(step_size))
  if adapt_step_size:
    adaptation.check_adaptation(float(step_size), _HMC_TARGET_REJECTION, _HMC_STEP_SIZE_BOUNDS)
  dtype = partition.params_dtype(variables)
  base_mean = _base_mean(variables, num_visible, dtype)
  log_w, accepted = _continuous_ais(
      model, variables, key, base_mean, jnp.asarray(betas, dtype), jnp.asarray(step_size, dtype),
      num_visible=num_visible, num_runs=num_runs, num_leapfrog=int(num_leapfrog),
      num_trajectories=num_trajectories, adapt=adapt_step_size)
  log_z_base = gaussian_base_log_partition(base_mean)
  num_transitions = num_runs * (betas.size - 2) * num_trajectories
  acceptance = float(accepted) / num_transitions if num_transitions else float("nan")
  return summarize_log_weights(np.asarray(log_w, np.float64) + log_z_base, log_z_base,
                               betas.size)._replace(acceptance_rate=acceptance)
