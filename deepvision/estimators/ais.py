r"""Annealed importance sampling (AIS) estimates of log partition functions: RBMs and gated MRFs.

AIS (Neal 2001) moves samples from a tractable base distribution p_0 = f_0 / Z_0 to the target
p_K = f_K / Z_K through intermediate distributions f_k, 0 = β_0 < β_1 < ... < β_K = 1:

  x_0 ~ p_0,   x_k ~ T_k(x_{k−1}, ·)  (k = 1 … K−1, T_k leaving p_{β_k} invariant),
  log w = log Z_0 + Σ_{k=1}^{K} [log f_{β_k}(x_{k−1}) − log f_{β_{k−1}}(x_{k−1})],

and E[w] = Z_K, so log Ẑ = log mean_m w_m over M independent runs (an unbiased estimate of Z; by
Jensen's inequality log Ẑ tends to underestimate log Z). Following Salakhutdinov & Murray (ICML 2008,
"On the quantitative analysis of deep belief networks"):

Binary RBM. Base: a "base-rate" model with the target's hidden layer but zero weights and hidden biases,
and visible biases b_A fitted to the data, b_A = log(p / (1 − p)) with p the smoothed data mean
(Σ_n v_n + 0.05) / (N + 0.1) (zeros without data). Path (the hiddens summed out):

  p_β(v, h) ∝ exp(−(1−β) E_A(v) − β E_B(v, h)),   E_A(v) = −b_Aᵀv,
  log f_β(v) = (1−β) b_Aᵀv + β b_vᵀv + Σ_j softplus(β (b_h_j + (vᵀW)_j)),
  log Z_0 = Σ_i softplus(b_A_i) + H log 2,

with Gibbs transitions at β: h ~ σ(β (b_h + vᵀW)), v ~ σ((1−β) b_A + β (b_v + W h)).

Gaussian-Bernoulli RBM. Base: N(b_v, diag σ²) with the hidden term scaled by β:

  log f_β(v) = −Σ_i (v_i − b_v_i)² / (2σ_i²) + Σ_j softplus(β (b_h_j + Σ_i v_i W_ij / σ_i)),
  log Z_0 = Σ_i log(√(2π) σ_i) + H log 2,

with Gibbs transitions h ~ σ(β (b_h + (v/σ)ᵀW)), v ~ N(b_v + β σ ⊙ W h, diag σ²).

Schedule: Salakhutdinov's 14,500 temperatures (`default_betas`: steps of 1e-3 up to 0.5, 1e-4 up to
0.9, 1e-5 up to 1) and 100 runs are the defaults. The whole β loop is one `lax.scan` over all runs in
parallel inside one jit; each step costs two (runs × V × H) matrix products and runs × (V + H) uniform
draws, which dominate on CPU (timings: benchmarks/README.md).

Precision: the weight increments are computed term by term (`softplus_increments`) and summed with
compensated summation, and log Z_0 is added in float64, so float32 runs lose nothing measurable to
rounding (on a 784 × 500 RBM over the default schedule: ≤ 1e-5 nats per run, against 7e-3 for the
plain difference log f_β_k − log f_β_{k−1} summed naively).

Error bar: with ŵ = mean w and s = std(w) over the M runs, Salakhutdinov reports log(ŵ ± 3 s/√M);
`AISResult` holds both bounds (the lower one is −inf when ŵ − 3 s/√M ≤ 0) and the delta-method
standard error of log Ẑ, s / (ŵ √M). Everything is computed stably from the log weights.

Continuous visibles (mcRBM, mPoT, any model with a `free_energy` over ℝ^D):
`ais_log_partition_continuous` starts from the model's Gaussian part N(b_v, I), follows the geometric
path F_β = F_0 + β (F − F_0) and moves the runs with HMC trajectories (the fixed-step kernel of
`deepvision.samplers.hmc`); its docstring has the details, and `partition.exact_log_partition_paper_mcrbm`
the exact value it is tested against.

Example:
  >>> result = ais_log_partition(model, variables, jax.random.key(0), data=train_images)
  >>> print(result.log_z, result.log_z_lower, result.log_z_upper)
  >>> result = ais_log_partition_continuous(mcrbm, variables, jax.random.key(0), step_size=0.05)
  >>> held_out = partition.log_likelihood(mcrbm, variables, test_patches, result).mean()
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
from deepvision.samplers import adaptation
from deepvision.samplers import hmc as hmc_lib

Array = jax.Array

BASE_RATE_SMOOTHING = 0.05  # the p = (Σ v + 0.05) / (N + 0.1) of Salakhutdinov's base-rate model
DEFAULT_NUM_RUNS = 100


class AISResult(NamedTuple):
  """An AIS estimate of log Z.

  Attributes:
    log_z: log of the mean importance weight, log Ẑ.
    log_z_std: delta-method standard error of log Ẑ, std(w) / (mean(w) √M).
    log_z_lower: log(mean w − 3 std(w)/√M), −inf when that is ≤ 0.
    log_z_upper: log(mean w + 3 std(w)/√M).
    log_weights: the M log importance weights (each including log Z_0, so each is an estimate of
      log Z), a float64 numpy array.
    log_z_base: log Z_0 of the base distribution.
    num_temperatures: K + 1, the length of the β schedule.
    acceptance_rate: continuous visibles (`ais_log_partition_continuous`): the fraction of HMC
      trajectories accepted over all runs and temperatures (nan without transitions, and for the
      Gibbs transitions of RBMs, which always move).
  """

  log_z: float
  log_z_std: float
  log_z_lower: float
  log_z_upper: float
  log_weights: np.ndarray
  log_z_base: float
  num_temperatures: int
  acceptance_rate: float = float("nan")


def default_betas() -> np.ndarray:
  """Salakhutdinov & Murray's schedule: 0→0.5 in steps of 1e-3, 0.5→0.9 of 1e-4, 0.9→1 of 1e-5.

  Returns 14,501 float64 values (14,500 transitions), exactly 0 first and exactly 1 last.
  """
  return np.concatenate([np.linspace(0.0, 0.5, 501)[:-1], np.linspace(0.5, 0.9, 4001)[:-1],
                         np.linspace(0.9, 1.0, 10001)])


def linear_betas(n: int) -> np.ndarray:
  """n evenly spaced temperatures from exactly 0 to exactly 1 (n ≥ 2), float64."""
  if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 2:
    raise ValueError(f"linear_betas needs an int n >= 2, got {n!r}")
  return np.linspace(0.0, 1.0, int(n))


def check_betas(betas: Any) -> np.ndarray:
  """betas as a float64 numpy array, or a ValueError naming the first offending index and value.

  Accepted: a 1-D sequence of at least 2 finite values, strictly increasing, starting at exactly 0 and
  ending at exactly 1.
  """
  array = np.asarray(betas, dtype=np.float64)
  if array.ndim != 1 or array.size < 2:
    raise ValueError(f"betas must be a 1-D sequence of at least 2 temperatures from 0 to 1, got shape "
                     f"{array.shape}")
  bad = np.flatnonzero(~np.isfinite(array))
  if bad.size:
    raise ValueError(f"betas must be finite; betas[{bad[0]}] = {float(array[bad[0]])}")
  if array[0] != 0.0:
    raise ValueError(f"betas must start at exactly 0, got betas[0] = {float(array[0])!r}")
  if array[-1] != 1.0:
    raise ValueError(f"betas must end at exactly 1, got betas[{array.size - 1}] = "
                     f"{float(array[-1])!r}")
  bad = np.flatnonzero(np.diff(array) <= 0)
  if bad.size:
    i = int(bad[0]) + 1
    raise ValueError(f"betas must be strictly increasing; betas[{i}] = {float(array[i])!r} does not "
                     f"exceed betas[{i - 1}] = {float(array[i - 1])!r}")
  return array


def annealed_importance_sampling(key: Array, init_sample: Any,
                                 log_unnormalized: Callable[[Array, Any], Array],
                                 transition: Callable[[Array, Array, Any], Any], betas: Any,
                                 log_z_base: Any,
                                 log_weight_increment: Callable[[Array, Array, Any], Array] | None = None,
                                 return_final_sample: bool = False) -> Any:
  """The AIS loop over temperatures for a batch of independent runs; returns their log weights.

  log w_m = log Z_0 + Σ_{k=1}^{K} [log f_{β_k}(x_{k−1}) − log f_{β_{k−1}}(x_{k−1})] with
  x_k = transition(key_k, β_k, x_{k−1}) for k = 1 … K−1 (no transition is needed after the last
  weight update). One `lax.scan` over the temperatures; jit-compatible (betas may then be traced,
  and are checked only when concrete). The K increments are summed with Kahan's compensated
  summation, so float32 runs of ~10⁴ temperatures lose nothing to the accumulation itself.

  Args:
    key: typed PRNG key; transition k gets `jax.random.fold_in(key, k)`.
    init_sample: exact samples of the base distribution p_0, a pytree whose first leaf has a
      leading axis of runs (further leaves may carry what the transitions keep, e.g. a step size).
    log_unnormalized: (β, x) -> log f_β(x), one value per run, (runs,).
    transition: (key, β, x) -> x', a Markov transition leaving p_β invariant.
    betas: the schedule, 1-D, 0 = β_0 < … < β_K = 1.
    log_z_base: log Z_0 (a scalar).
    log_weight_increment: optional (β_prev, β, x) -> log f_β(x) − log f_β_prev(x), (runs,), computed
      more accurately than the default difference of two `log_unnormalized` values (in float32 that
      difference is only good to ~1e-7 of their size, e.g. differencing term by term as
      `softplus_increments` does).
    return_final_sample: also return x_{K−1}, the sample pytree after the last transition (for
      diagnostics the transitions keep in it, such as acceptance counts).

  Returns:
    (runs,) log weights; log mean exp(log w) estimates log Z_K. With `return_final_sample`, the
    pair (log weights, x_{K−1}).
  """
  if not isinstance(betas, jax.core.Tracer):
    betas = check_betas(betas)
  x0 = jax.tree.leaves(init_sample)[0]
  betas = jnp.asarray(betas, x0.dtype if jnp.issubdtype(x0.dtype, jnp.floating) else jnp.float32)
  if log_weight_increment is None:
    def log_weight_increment(beta_prev, beta, x):
      return log_unnormalized(beta, x) - log_unnormalized(beta_prev, x)

  def add(total, compensation, value):  # Kahan summation
    value = value - compensation
    new_total = total + value
    return new_total, (new_total - total) - value

  def body(carry, inputs):
    x, total, compensation = carry
    k, beta_prev, beta = inputs
    total, compensation = add(total, compensation, log_weight_increment(beta_prev, beta, x))
    x = transition(jax.random.fold_in(key, k), beta, x)
    return (x, total, compensation), None

  num_steps = betas.shape[0] - 1
  zeros = jnp.zeros(x0.shape[:1], betas.dtype)
  (x, total, compensation), _ = jax.lax.scan(
      body, (init_sample, zeros, zeros),
      (jnp.arange(1, num_steps), betas[:num_steps - 1], betas[1:num_steps]))
  total, _ = add(total, compensation, log_weight_increment(betas[num_steps - 1], betas[num_steps], x))
  log_weights = total + jnp.asarray(log_z_base, betas.dtype)
  return (log_weights, x) if return_final_sample else log_weights


def summarize_log_weights(log_weights: Any, log_z_base: float = float("nan"),
                          num_temperatures: int = 0) -> AISResult:
  """log Ẑ = log mean w, its standard error and log(mean w ± 3 std(w)/√M), stably in float64.

  std uses the M − 1 normaliser (0 for a single run). Non-finite log weights are kept: a +inf or nan
  weight makes the estimate nan/inf rather than hiding the failure.
  """
  log_w = np.asarray(log_weights, dtype=np.float64).reshape(-1)
  m = log_w.size
  shift = np.max(log_w)
  if not np.isfinite(shift):
    nan = float("nan")
    return AISResult(float(shift) if shift == -np.inf else nan, nan, nan, nan, log_w,
                     float(log_z_base), int(num_temperatures))
  w = np.exp(log_w - shift)
  mean = w.mean()
  std = w.std(ddof=1) if m > 1 else 0.0
  half_width = 3.0 * std / math.sqrt(m)
  lower = mean - half_width
  return AISResult(
      log_z=float(shift + np.log(mean)),
      log_z_std=float(std / (mean * math.sqrt(m))),
      log_z_lower=float(shift + np.log(lower)) if lower > 0 else float("-inf"),
      log_z_upper=float(shift + np.log(mean + half_width)),
      log_weights=log_w,
      log_z_base=float(log_z_base),
      num_temperatures=int(num_temperatures))


def base_rate_biases(data: Array, smoothing: float = BASE_RATE_SMOOTHING) -> Array:
  """b_A = log(p / (1 − p)), p = (Σ_n v_n + smoothing) / (N + 2·smoothing), for (N, V) data in [0, 1]."""
  p = (jnp.sum(data, axis=0) + smoothing) / (data.shape[0] + 2 * smoothing)
  return jnp.log(p) - jnp.log1p(-p)


def softplus_increments(beta_prev: Array, beta: Array, logits: Array) -> Array:
  """Σ_j [softplus(β x_j) − softplus(β_prev x_j)] over the last axis of logits x, accurately.

  With d = (β − β_prev) x, softplus(β_prev x + d) − softplus(β_prev x) = log1p(σ(β_prev x) · expm1(d)),
  which keeps the relative precision of the (small) increment itself where the plain difference of
  two softplus values loses ~1e-7 of their size to cancellation in float32. Used when every |d| < 1
  (always, for schedules like Salakhutdinov's); otherwise the plain difference (no overflow).
  """
  d = (beta - beta_prev) * logits

  def accurate():
    return jnp.sum(jnp.log1p(jax.nn.sigmoid(beta_prev * logits) * jnp.expm1(d)), axis=-1)

  def plain():
    return (jnp.sum(jax.nn.softplus(beta * logits), axis=-1)
            - jnp.sum(jax.nn.softplus(beta_prev * logits), axis=-1))

  return jax.lax.cond(jnp.max(jnp.abs(d)) < 1, accurate, plain)


def _binary_path(model, variables, base_bias):
  """(log f_β, its increments, Gibbs transition at β, initial sampler, log Z_0) of the base-rate path."""
  b_v = variables["params"]["b_v"]
  log_z_base = jnp.sum(jax.nn.softplus(base_bias)) + model.n_hidden * math.log(2.0)

  def log_unnormalized(beta, v):
    logits = model.apply(variables, v, method="hidden_logits")
    return v @ ((1 - beta) * base_bias + beta * b_v) + jnp.sum(jax.nn.softplus(beta * logits), -1)

  def increment(beta_prev, beta, v):  # term by term, so no large sums cancel
    logits = model.apply(variables, v, method="hidden_logits")
    return ((beta - beta_prev) * (v @ (b_v - base_bias))
            + softplus_increments(beta_prev, beta, logits))

  def transition(key, beta, v):
    # One uniform draw for both layers: random bits dominate the cost of a step on CPU.
    uniform = jax.random.uniform(key, (v.shape[0], model.n_hidden + model.n_visible), v.dtype)
    logits = model.apply(variables, v, method="hidden_logits")
    h = (uniform[:, :model.n_hidden] < jax.nn.sigmoid(beta * logits)).astype(v.dtype)
    visible_logits = beta * model.apply(variables, h, method="visible_logits") \
        + (1 - beta) * base_bias
    return (uniform[:, model.n_hidden:] < jax.nn.sigmoid(visible_logits)).astype(v.dtype)

  def init(key, num_runs):
    probs = jnp.broadcast_to(jax.nn.sigmoid(base_bias), (num_runs, model.n_visible))
    return jax.random.bernoulli(key, probs).astype(base_bias.dtype)

  return log_unnormalized, increment, transition, init, log_z_base


def _gaussian_path(model, variables):
  """(log f_β, its increments, Gibbs transition at β, initial sampler, log Z_0) of the Gaussian path."""
  b_v = variables["params"]["b_v"]
  sigma = model.apply(variables, method=lambda module: module.sigma)
  log_z_base = (jnp.sum(jnp.log(jnp.sqrt(2 * jnp.pi) * sigma))
                + model.n_hidden * math.log(2.0))

  def log_unnormalized(beta, v):
    logits = model.apply(variables, v, method="hidden_logits")
    quadratic = jnp.sum((v - b_v) ** 2 / (2 * sigma ** 2), axis=-1)
    return -quadratic + jnp.sum(jax.nn.softplus(beta * logits), axis=-1)

  def increment(beta_prev, beta, v):  # the quadratic term does not depend on β
    return softplus_increments(beta_prev, beta, model.apply(variables, v, method="hidden_logits"))

  def transition(key, beta, v):
    hidden_key, visible_key = jax.random.split(key)
    logits = model.apply(variables, v, method="hidden_logits")
    h = jax.random.bernoulli(hidden_key, jax.nn.sigmoid(beta * logits)).astype(v.dtype)
    mean = model.apply(variables, beta * h, method="visible_mean")  # b_v + β σ ⊙ W h
    return mean + sigma * jax.random.normal(visible_key, mean.shape, mean.dtype)

  def init(key, num_runs):
    noise = jax.random.normal(key, (num_runs, model.n_visible), b_v.dtype)
    return b_v + sigma * noise

  return log_unnormalized, increment, transition, init, log_z_base


@functools.partial(jax.jit, static_argnames=("model", "num_runs"))
def _rbm_ais(model, variables, key, base_bias, betas, num_runs):
  if model.visible_kind == "binary":
    log_f, increment, transition, init, log_z_base = _binary_path(model, variables, base_bias)
  else:
    log_f, increment, transition, init, log_z_base = _gaussian_path(model, variables)
  init_key, chain_key = jax.random.split(key)
  # log Z_0 is added in float64 afterwards: the scan sums only the (smaller) increments.
  log_w = annealed_importance_sampling(chain_key, init(init_key, num_runs), log_f, transition,
                                       betas, 0.0, log_weight_increment=increment)
  return log_w, log_z_base


def ais_log_partition(model: nn.Module, variables: Any, key: Array, data: Any = None,
                      betas: Any = None, num_runs: int = DEFAULT_NUM_RUNS) -> AISResult:
  """AIS estimate of log Z of an `RBM` or `GaussianRBM` (Salakhutdinov & Murray 2008).

  Args:
    model: an RBM-like module with `hidden_logits` and `visible_logits` (binary) or `visible_mean`
      and a `sigma` property (Gaussian), params named `b_v`, and `visible_kind`.
    variables: its variables; computed in their dtype (float64 under enable_x64).
    key: typed PRNG key.
    data: binary RBMs: (N, V) training data (or images) in [0, 1] to fit the base-rate visible biases;
      None for a uniform base (b_A = 0), which needs more temperatures for the same accuracy.
      Gaussian RBMs: checked for shape only (the base is N(b_v, σ²)).
    betas: the temperature schedule (1-D, strictly increasing, exactly 0 first and 1 last); default
      `default_betas()` (14,501 temperatures).
    num_runs: number of independent AIS runs M (≥ 1), run in parallel.

  Returns:
    An `AISResult`.

  Raises:
    ValueError: before any compute, for a bad schedule, num_runs < 1, data of the wrong feature size,
      or binary data outside [0, 1].
  """
  kind = partition.visible_kind(model)
  partition.check_size_fields(model, ("n_hidden",))
  betas = check_betas(default_betas() if betas is None else betas)
  if not isinstance(num_runs, (int, np.integer)) or isinstance(num_runs, bool) or num_runs < 1:
    raise ValueError(f"num_runs must be an int >= 1, got {num_runs!r}")
  dtype = partition.params_dtype(variables)
  base_bias = jnp.zeros((model.n_visible,), dtype)
  if data is not None:
    data = partition.check_visible_data(model, variables, data)
    if kind == "binary":
      base_bias = base_rate_biases(data)
  log_w, log_z_base = _rbm_ais(model, variables, key, base_bias, jnp.asarray(betas, dtype),
                               int(num_runs))
  log_z_base = float(log_z_base)
  return summarize_log_weights(np.asarray(log_w, np.float64) + log_z_base, log_z_base, betas.size)


# ----------------------------------------------------------------------------------------------
# Continuous visibles (gated MRFs): a Gaussian base and HMC transitions.

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
