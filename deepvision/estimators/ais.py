r"""Annealed importance sampling (AIS) estimates of log partition functions: RBMs and gated MRFs.

Salakhutdinov & Murray, "On the quantitative analysis of deep belief networks", ICML 2008; the generic
loop (Neal 2001) is `annealing`, the continuous-visible estimator (gated MRFs, HMC) `ais_continuous`,
both re-exported here. Binary RBM: a "base-rate" base model with visible biases b_A = log(p / (1 − p)),
p the smoothed data mean (`base_rate_biases`), and the path (hiddens summed out)

  log f_β(v) = (1−β) b_Aᵀv + β b_vᵀv + Σ_j softplus(β (b_h_j + (vᵀW)_j)),  log Z_0 = Σ_i softplus(b_A_i) + H log 2;

Gaussian-Bernoulli RBMs anneal from N(b_v, diag σ²) (`_gaussian_path`). Both run in `ais_log_partition`.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from deepvision.estimators import partition
from deepvision.estimators.ais_continuous import (DEFAULT_CONTINUOUS_TEMPERATURES, DEFAULT_NUM_LEAPFROG,
                                                  DEFAULT_STEP_SIZE, ais_log_partition_continuous,
                                                  gaussian_base_energy, gaussian_base_log_partition)
from deepvision.estimators.annealing import (DEFAULT_NUM_RUNS, AISResult, annealed_importance_sampling, check_betas,
                                             default_betas, linear_betas, summarize_log_weights)

__all__ = ["DEFAULT_CONTINUOUS_TEMPERATURES", "DEFAULT_NUM_LEAPFROG", "DEFAULT_NUM_RUNS", "DEFAULT_STEP_SIZE",
           "AISResult", "ais_log_partition", "ais_log_partition_continuous", "annealed_importance_sampling",
           "base_rate_biases", "check_betas", "default_betas", "gaussian_base_energy",
           "gaussian_base_log_partition", "linear_betas", "softplus_increments", "summarize_log_weights"]

Array = jax.Array

BASE_RATE_SMOOTHING = 0.05  # the p = (Σ v + 0.05) / (N + 0.1) of Salakhutdinov's base-rate model


def base_rate_biases(data: Array, smoothing: float = BASE_RATE_SMOOTHING) -> Array:
  """b_A = log(p / (1 − p)), p = (Σ_n v_n + smoothing) / (N + 2·smoothing), for (N, V) data in [0, 1].

  With the default smoothing, p = (Σ_n v_n + 0.05) / (N + 0.1), Salakhutdinov's base-rate model.
  """
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
  """(log f_β, its increments, Gibbs transition at β, initial sampler, log Z_0) of the base-rate path.

  log f_β and log Z_0 as in the module docstring; Gibbs transitions h ~ σ(β (b_h + vᵀW)),
  v ~ σ((1−β) b_A + β (b_v + W h)).
  """
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
  """(log f_β, its increments, Gibbs transition at β, initial sampler, log Z_0) of the Gaussian path.

  Gaussian-Bernoulli RBM: base N(b_v, diag σ²),

    log f_β(v) = −Σ_i (v_i − b_v_i)²/(2σ_i²) + Σ_j softplus(β (b_h_j + Σ_i v_i W_ij/σ_i)),
    log Z_0 = Σ_i log(√(2π) σ_i) + H log 2,

  transitions h ~ σ(β (b_h + (v/σ)ᵀW)), v ~ N(b_v + β σ ⊙ W h, diag σ²).
  """
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

  Defaults: Salakhutdinov's 14,500 temperatures (`default_betas`) and 100 runs, one `lax.scan` in one jit;
  increments term by term (`softplus_increments`) with compensated summation, log Z_0 added in float64.

  Example:
    >>> result = ais_log_partition(model, variables, jax.random.key(0), data=train_images)
    >>> print(result.log_z, result.log_z_lower, result.log_z_upper)

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
