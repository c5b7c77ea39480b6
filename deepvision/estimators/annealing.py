r"""Annealed importance sampling (AIS): the generic loop, its β schedules and the estimate's error bars.

AIS (Neal, "Annealed importance sampling", 2001) moves samples from a tractable base distribution
p_0 = f_0 / Z_0 to the target p_K = f_K / Z_K through intermediate distributions f_k,
0 = β_0 < β_1 < ... < β_K = 1:

  x_0 ~ p_0,   x_k ~ T_k(x_{k−1}, ·)  (k = 1 … K−1, T_k leaving p_{β_k} invariant),
  log w = log Z_0 + Σ_{k=1}^{K} [log f_{β_k}(x_{k−1}) − log f_{β_{k−1}}(x_{k−1})],

and E[w] = Z_K, so log Ẑ = log mean_m w_m over M independent runs (an unbiased estimate of Z; by
Jensen's inequality log Ẑ tends to underestimate log Z). Error bar (Salakhutdinov & Murray, ICML 2008):
with ŵ = mean w and s = std(w), log(ŵ ± 3 s/√M) (the lower bound −inf when ŵ − 3 s/√M ≤ 0) and the
delta-method standard error s / (ŵ √M), all computed stably from the log weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

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
