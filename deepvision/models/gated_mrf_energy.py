r"""Closed-form free energies F(x) and input gradients ∂F/∂x of the mcRBM and the mPoT.

Ranzato & Hinton, CVPR 2010 (mcRBM); Ranzato, Mnih & Hinton, NIPS 2010 (mPoT). With s = Cᵀx̃ (B×F)
the factor responses and u_k = ½ Σ_f P_fk s_f² the pooled squared responses:

  mcRBM:  F(x) = ½xᵀx − b_vᵀx − Σ_k softplus(b_c_k − u_k) − Σ_j softplus(W_jᵀx + b_m_j)
  mPoT:   F(x) = Σ_k γ log(1 + u_k) + ½xᵀx − b_vᵀx − Σ_j softplus(W_jᵀx + b_m_j)

where x̃ = x ('paper') or x̃ = x / sqrt(‖x‖²/D + 1/2) ('original', the authors' code). Samplers that
need F and ∂F/∂x many times (HMC) call these on the params dict rather than through `apply`.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from deepvision.models.gated_mrf_pooling import is_concrete

Array = jax.Array

INPUT_NORMS = ("original", "paper")
# L = sqrt(‖x‖²/D + NORM_OFFSET) in the original code's covariance-input normalisation.
NORM_OFFSET = 0.5
MCRBM_PARAMS = ("C", "P", "W", "b_c", "b_m", "b_v")
MPOT_PARAMS = ("C", "P", "W", "b_m", "b_v")


def _norm_scale(x: Array) -> Array:
  """L = sqrt(‖x‖²/D + 1/2) per example, (B,)."""
  return jnp.sqrt(jnp.mean(x * x, axis=-1) + NORM_OFFSET)


def covariance_input(x: Array, input_norm: str = "original") -> Array:
  """x̃: x / sqrt(‖x‖²/D + 1/2) for 'original', x for 'paper'; (B, D)."""
  check_choice("input_norm", input_norm, INPUT_NORMS)
  return x / _norm_scale(x)[:, None] if input_norm == "original" else x


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
  if value not in choices:
    raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")


def _checked_params(params: Any, names: tuple[str, ...], x: Any, fn: str) -> tuple[dict, Array]:
  params = params.get("params", params) if hasattr(params, "get") else params
  missing = [n for n in names if n not in params]
  if missing:
    raise ValueError(f"{fn}: params lack {', '.join(missing)}; expected the entries "
                     f"{', '.join(names)} (the model's 'params' collection)")
  x = jnp.asarray(x)
  dim = params["C"].shape[0]
  if x.ndim != 2 or x.shape[1] != dim or not jnp.issubdtype(x.dtype, jnp.floating):
    raise ValueError(f"{fn}: x must be a float (batch, {dim}) array, got shape {tuple(x.shape)} "
                     f"{x.dtype}")
  return params, x


def mcrbm_free_energy_and_grad(params: Any, x: Any,
                               input_norm: str = "original") -> tuple[Array, Array]:
  """mcRBM F(x) (B,) and ∂F/∂x (B, D) in closed form, without autodiff (for HMC).

  With L = sqrt(‖x‖²/D + 1/2) ('original'; L = 1 and no second term for 'paper'), s = Cᵀx/L,
  σ_c = σ(b_c − ½Pᵀs²), σ_m = σ(Wᵀx + b_m), r = s ⊙ (Pσ_c) and g = Cr:

    ∂F/∂x = g/L − x(xᵀg)/(D L³) + x − b_v − Wσ_m,   where xᵀg = L·sᵀr.

  s, σ_c and σ_m are shared by F and its gradient: one evaluation costs four products with the filters
  (x by C and by W, r/L by Cᵀ, σ_m by Wᵀ) and two with P, 2B(2D(F + M) + 2FN) FLOPs. The products with
  C and W are kept apart rather than concatenated into one with [C | W] (the same FLOPs): on XLA:CPU
  the separate products ran the mcRBM's HMC trajectory about 10% faster (benchmarks/hmc_throughput.py,
  `ablation_concatenated`), and no slice or concatenation of the batch is copied.

  Args:
    params: the model's 'params' collection (C, P, W, b_c, b_m, b_v), or {'params': ...}.
    x: (B, D) float visible batch.
    input_norm: 'original' or 'paper' (as `MCRBM.input_norm`).
  """
  check_choice("input_norm", input_norm, INPUT_NORMS)
  p, x = _checked_params(params, MCRBM_PARAMS, x, "mcrbm_free_energy_and_grad")
  sq_norm = jnp.sum(x * x, axis=-1)
  s = x @ p["C"]  # (B, F)
  if input_norm == "original":
    inv_scale = jax.lax.rsqrt(sq_norm / x.shape[1] + NORM_OFFSET)[:, None]  # 1/L
    s = s * inv_scale
  mean_logits = x @ p["W"] + p["b_m"]
  cov_logits = p["b_c"] - 0.5 * (s * s) @ p["P"]
  free_energy = (0.5 * sq_norm - x @ p["b_v"] - jnp.sum(jax.nn.softplus(cov_logits), axis=-1)
                 - jnp.sum(jax.nn.softplus(mean_logits), axis=-1))
  r = s * (jax.nn.sigmoid(cov_logits) @ p["P"].T)  # ∂F/∂s, (B, F)
  grad = x - p["b_v"] - jax.nn.sigmoid(mean_logits) @ p["W"].T
  if input_norm == "original":
    radial = jnp.sum(s * r, axis=-1, keepdims=True) * (inv_scale * inv_scale) / x.shape[1]
    grad = grad + (r * inv_scale) @ p["C"].T - radial * x
  else:
    grad = grad + r @ p["C"].T
  return free_energy, grad


def mpot_free_energy_and_grad(params: Any, x: Any, gamma: float = 1.0) -> tuple[Array, Array]:
  """mPoT F(x) (B,) (reference form, no N·log Γ(γ)) and ∂F/∂x (B, D) in closed form (for HMC).

  With s = Cᵀx, a = 1 + ½Pᵀs², σ_m = σ(Wᵀx + b_m) and r = s ⊙ (P(γ/a)):

    ∂F/∂x = Cr + x − b_v − Wσ_m,

  computed with four products with the filters (x by C and by W, r by Cᵀ, σ_m by Wᵀ; kept apart as
  in `mcrbm_free_energy_and_grad`) and two with P.

  Args:
    params: the model's 'params' collection (C, P, W, b_m, b_v), or {'params': ...}.
    x: (B, D) float visible batch.
    gamma: the shape parameter γ > 0 (as `MPoT.gamma`).
  """
  p, x = _checked_params(params, MPOT_PARAMS, x, "mpot_free_energy_and_grad")
  check_gamma(gamma)
  s = x @ p["C"]
  mean_logits = x @ p["W"] + p["b_m"]
  rates = 1 + 0.5 * (s * s) @ p["P"]
  free_energy = (gamma * jnp.sum(jnp.log(rates), axis=-1) + 0.5 * jnp.sum(x * x, axis=-1)
                 - x @ p["b_v"] - jnp.sum(jax.nn.softplus(mean_logits), axis=-1))
  r = s * ((gamma / rates) @ p["P"].T)
  grad = r @ p["C"].T - jax.nn.sigmoid(mean_logits) @ p["W"].T + x - p["b_v"]
  return free_energy, grad


def check_gamma(gamma: Any) -> None:
  if not is_concrete(gamma):
    return
  if isinstance(gamma, (bool, str)) or not (np.ndim(gamma) == 0 and np.isfinite(gamma) and gamma > 0):
    raise ValueError(f"gamma must be a finite positive number, got {gamma!r}")
