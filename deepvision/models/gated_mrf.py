r"""Gated MRFs: the mean-covariance RBM (`MCRBM`) and the mean-product of Student-t (`MPoT`).

Ranzato & Hinton, "Modeling pixel means and covariances using factorized third-order Boltzmann
machines", CVPR 2010; Ranzato, Mnih & Hinton, "Generating more realistic images using gated MRF's",
NIPS 2010; Ranzato, Mnih, Susskind & Hinton, "Modeling natural images using gated MRFs", PAMI 2013.

Both model a visible vector x of D real units (PCA-whitened image patches) with two groups of hidden
units: N covariance units h_c, which gate a precision matrix built from F factor filters, and M binary
mean units h_m, which shift the mean as in a Gaussian-Bernoulli RBM. Parameters (reference/gated-mrf.md):
`C` (D×F) factor filters, `P` (F×N) non-negative pooling of factors into covariance units, `W` (D×M)
mean filters, `b_c` (N, mcRBM only), `b_m` (M) and `b_v` (D) biases. Notation: s = Cᵀx̃ (B×F) are the
factor responses and u_k = ½ Σ_f P_fk s_f² the pooled squared responses.

mcRBM (binary h_c):

  E(x, h_c, h_m) = Σ_k h_c_k u_k − b_cᵀh_c + ½xᵀx − h_mᵀWᵀx − b_mᵀh_m − b_vᵀx
  F(x)           = ½xᵀx − b_vᵀx − Σ_k softplus(b_c_k − u_k) − Σ_j softplus(W_jᵀx + b_m_j)
  p(h_c_k = 1 | x) = σ(b_c_k − u_k),   p(h_m_j = 1 | x) = σ(W_jᵀx + b_m_j)

with two forms of the covariance input x̃ (`input_norm`): 'paper', x̃ = x, for which
p(x | h) = N(Σ(W h_m + b_v), Σ) with Σ⁻¹ = C diag(P h_c) Cᵀ + I; and 'original' (the default), the
form the authors' code trains, x̃ = x / L with L = sqrt(‖x‖²/D + 1/2), for which p(x | h) is not
Gaussian and samples are drawn by Hybrid Monte Carlo on F(x). The quadratic term, `b_v` and the mean
branch always see the raw x.

mPoT (h_c ∈ (0, ∞)^N, shape parameter γ shared by every unit):

  E(x, h_c, h_m) = Σ_k [h_c_k a_k + (1 − γ) log h_c_k] + ½xᵀx − h_mᵀWᵀx − b_mᵀh_m − b_vᵀx,
                   a_k = 1 + u_k (with x̃ = x)
  F(x)           = Σ_k γ log a_k + ½xᵀx − b_vᵀx − Σ_j softplus(W_jᵀx + b_m_j)
  p(h_c_k | x) = Gamma(shape γ, rate a_k),  E[h_c_k | x] = γ/a_k;  p(x | h) as the mcRBM's paper form.

F here is the reference (published) form. Integrating h_c out exactly gives −log ∫ Σ_h exp(−E) =
F(x) − N·log Γ(γ): the constant depends on no parameter but γ and is excluded from `free_energy`
(it vanishes for γ = 1 and cancels in every contrastive gradient). The mPoT energy as published has
no visible bias; `b_v` (with the −b_vᵀx term, initialised to 0) is kept so that both models share one
parameter layout, sampler and trainer.

Methods take flat batches (B, D) (images of D elements are flattened) and are called through
`apply`, e.g. `model.apply(variables, x, method="free_energy")`; `__call__(x)` returns the features
`(hidden_probs, {"cov": ..., "mean": ...})`. Samplers that need F and ∂F/∂x many times (HMC) use the
closed forms `mcrbm_free_energy_and_grad` / `mpot_free_energy_and_grad` on the params dict.

After every update the original recipe rescales the columns of C to a running common norm
(`normalize_factor_columns`) and projects P onto non-negative, column-L1-normalised matrices, times a
topographic mask if any (`project_pooling`, `topographic_mask`).
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from deepvision.models.rbm import _flat

Array = jax.Array

INPUT_NORMS = ("original", "paper")
POOLING_INITS = ("identity", "topographic")
# L = sqrt(‖x‖²/D + NORM_OFFSET) in the original code's covariance-input normalisation.
NORM_OFFSET = 0.5
_MCRBM_PARAMS = ("C", "P", "W", "b_c", "b_m", "b_v")
_MPOT_PARAMS = ("C", "P", "W", "b_m", "b_v")


# ----------------------------------------------------------------------------------------------
# Pooling and the training recipe's projections (pure functions on arrays).


def _grid_side(count: int, what: str) -> int:
  side = math.isqrt(count)
  if side * side != count:
    raise ValueError(f"a topographic pooling needs a square number of {what}, got {count}")
  return side


def topographic_mask(n_factors: int, n_cov: int, window: int = 3) -> np.ndarray:
  """The 0/1 (n_factors, n_cov) mask of a topographic pooling on a torus.

  Factors lie on a g_f × g_f grid (row-major, g_f² = n_factors) and covariance units on a
  g_n × g_n grid (g_n² = n_cov, g_n ≤ g_f). Unit (i, j) pools the window × window block of factors
  starting at (⌊i·g_f/g_n⌋, ⌊j·g_f/g_n⌋), wrapping around the grid's edges. When g_f = 2·g_n this is
  the original code's 3×3 windows with stride 2, e.g. 576 factors (24×24) → 144 units (12×12);
  other sizes space the windows evenly (256 factors → 144 units: stride 16/12).

  Raises:
    ValueError: n_factors or n_cov not a positive square, more units than factors, or windows
      too sparse to pool every factor (g_f > window·g_n).
  """
  for name, value in (("n_factors", n_factors), ("n_cov", n_cov), ("window", window)):
    if not isinstance(value, (int, np.integer)) or value < 1:
      raise ValueError(f"topographic_mask: {name} must be a positive int, got {value!r}")
  factor_side = _grid_side(n_factors, "factors")
  unit_side = _grid_side(n_cov, "covariance units")
  if unit_side > factor_side:
    raise ValueError(f"topographic_mask: {n_cov} covariance units on a {unit_side}×{unit_side} grid "
                     f"exceed the {factor_side}×{factor_side} grid of {n_factors} factors")
  starts = (np.arange(unit_side) * factor_side) // unit_side
  rows = (starts[:, None] + np.arange(window)[None]) % factor_side  # (g_n, window)
  mask = np.zeros((factor_side, factor_side, unit_side, unit_side), np.float32)
  for i in range(unit_side):
    for j in range(unit_side):
      mask[np.ix_(rows[i], rows[j], [i], [j])] = 1.0
  mask = mask.reshape(n_factors, n_cov)
  if not mask.any(axis=1).all():
    raise ValueError(f"topographic_mask: {window}×{window} windows at {unit_side}×{unit_side} "
                     f"positions leave factors of the {factor_side}×{factor_side} grid unpooled; "
                     f"use at least {-(-factor_side // window)}² covariance units")
  return mask


def _is_concrete(a: Any) -> bool:
  return not isinstance(a, jax.core.Tracer)


def project_pooling(P: Array, mask: Any = None) -> Array:
  """P clipped to ≥ 0, times `mask` if given, each column rescaled to unit L1 norm.

  A column with no positive entry is left at zero (its unit then ignores the factors).

  Args:
    P: (F, N) pooling matrix.
    mask: None or a non-negative (F, N) array (e.g. `topographic_mask(F, N)`).

  Raises:
    ValueError: P not 2-D, a mask of another shape, or (when it is not traced) a negative mask.
  """
  P = jnp.asarray(P)
  if P.ndim != 2:
    raise ValueError(f"project_pooling: P must be a (n_factors, n_cov) matrix, got shape {P.shape}")
  P = jnp.maximum(P, 0)
  if mask is not None:
    if tuple(jnp.shape(mask)) != P.shape:
      raise ValueError(f"project_pooling: mask shape {tuple(jnp.shape(mask))} differs from P's "
                       f"shape {P.shape}")
    if _is_concrete(mask) and np.any(np.asarray(mask) < 0):
      raise ValueError(f"project_pooling: mask must be non-negative, got minimum value "
                       f"{np.min(np.asarray(mask))}")
    P = P * jnp.asarray(mask, P.dtype)
  column_sums = jnp.sum(P, axis=0)
  return P / jnp.where(column_sums > 0, column_sums, 1)


def normalize_factor_columns(C: Array, running_norm: Any,
                             decay: float = 0.95) -> tuple[Array, Array]:
  """Rescales every column of C to a running common norm, as the original code does after updates.

    n ← decay·n + (1 − decay)·mean_f ‖C_f‖,   C_f ← C_f · n / ‖C_f‖

  (n starts at 1; all-zero columns stay zero).

  Args:
    C: (D, F) factor filters.
    running_norm: n, a scalar.
    decay: the running average's decay, in [0, 1].

  Returns:
    (C with columns of norm n_new, n_new).
  """
  C = jnp.asarray(C)
  if C.ndim != 2:
    raise ValueError(f"normalize_factor_columns: C must be a (n_visible, n_factors) matrix, got "
                     f"shape {C.shape}")
  if jnp.ndim(running_norm) != 0:
    raise ValueError(f"normalize_factor_columns: running_norm must be a scalar, got shape "
                     f"{jnp.shape(running_norm)}")
  if _is_concrete(decay) and not 0.0 <= float(decay) <= 1.0:
    raise ValueError(f"normalize_factor_columns: decay must lie in [0, 1], got {decay}")
  norms = jnp.linalg.norm(C, axis=0)
  new_norm = decay * running_norm + (1 - decay) * jnp.mean(norms)
  scale = jnp.where(norms > 0, new_norm / jnp.where(norms > 0, norms, 1), 0)
  return C * scale, jnp.asarray(new_norm, C.dtype)


def _pooling_initializer(pooling_init: str, n_factors: int, n_cov: int):
  """P's initialiser: the identity, or the projected (column-normalised) topographic mask."""

  def init(key: Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> Array:
    del key
    if pooling_init == "identity":
      return jnp.eye(*shape, dtype=dtype)
    return project_pooling(jnp.asarray(topographic_mask(n_factors, n_cov), dtype))

  return init


# ----------------------------------------------------------------------------------------------
# Closed-form free energies and input gradients for samplers (pure functions on the params dict).


def _norm_scale(x: Array) -> Array:
  """L = sqrt(‖x‖²/D + 1/2) per example, (B,)."""
  return jnp.sqrt(jnp.mean(x * x, axis=-1) + NORM_OFFSET)


def covariance_input(x: Array, input_norm: str = "original") -> Array:
  """x̃: x / sqrt(‖x‖²/D + 1/2) for 'original', x for 'paper'; (B, D)."""
  _check_choice("input_norm", input_norm, INPUT_NORMS)
  return x / _norm_scale(x)[:, None] if input_norm == "original" else x


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
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
  _check_choice("input_norm", input_norm, INPUT_NORMS)
  p, x = _checked_params(params, _MCRBM_PARAMS, x, "mcrbm_free_energy_and_grad")
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
  p, x = _checked_params(params, _MPOT_PARAMS, x, "mpot_free_energy_and_grad")
  _check_gamma(gamma)
  s = x @ p["C"]
  mean_logits = x @ p["W"] + p["b_m"]
  rates = 1 + 0.5 * (s * s) @ p["P"]
  free_energy = (gamma * jnp.sum(jnp.log(rates), axis=-1) + 0.5 * jnp.sum(x * x, axis=-1)
                 - x @ p["b_v"] - jnp.sum(jax.nn.softplus(mean_logits), axis=-1))
  r = s * ((gamma / rates) @ p["P"].T)
  grad = r @ p["C"].T - jax.nn.sigmoid(mean_logits) @ p["W"].T + x - p["b_v"]
  return free_energy, grad


def _check_gamma(gamma: Any) -> None:
  if not _is_concrete(gamma):
    return
  if isinstance(gamma, (bool, str)) or not (np.ndim(gamma) == 0 and np.isfinite(gamma) and gamma > 0):
    raise ValueError(f"gamma must be a finite positive number, got {gamma!r}")


# ----------------------------------------------------------------------------------------------
# The Linen modules.


class _GatedMRF:
  """What the mcRBM and mPoT share: parameters, input checks, the mean units, p(x | h).

  A mixin of the Linen modules below (fields `n_visible`, `n_factors`, `n_cov`, `n_mean`,
  `pooling_init`, `factor_init_scale`, `mean_init_scale`, `mean_bias_init`); each defines its own
  covariance units.
  """

  def _setup_params(self, cov_bias_init: float | None) -> None:
    """Checks the fields and creates C, P, W, b_c (unless cov_bias_init is None), b_m and b_v."""
    for field in ("n_visible", "n_factors", "n_cov", "n_mean"):
      value = getattr(self, field)
      if not isinstance(value, int) or value < 1:
        raise ValueError(f"{type(self).__name__}.{field} must be a positive int, got {value!r}")
    _check_choice(f"{type(self).__name__}.pooling_init", self.pooling_init, POOLING_INITS)
    if self.pooling_init == "identity" and self.n_factors != self.n_cov:
      raise ValueError(f"{type(self).__name__}: pooling_init 'identity' needs n_factors == n_cov, got "
                       f"n_factors={self.n_factors}, n_cov={self.n_cov}; use 'topographic'")
    if self.pooling_init == "topographic":
      topographic_mask(self.n_factors, self.n_cov)  # raises for sizes without a topography
    d, f, n, m = self.n_visible, self.n_factors, self.n_cov, self.n_mean
    self.C = self.param("C", nn.initializers.normal(self.factor_init_scale), (d, f))
    self.P = self.param("P", _pooling_initializer(self.pooling_init, f, n), (f, n))
    self.W = self.param("W", nn.initializers.normal(self.mean_init_scale), (d, m))
    if cov_bias_init is not None:
      self.b_c = self.param("b_c", nn.initializers.constant(cov_bias_init), (n,))
    self.b_m = self.param("b_m", nn.initializers.constant(self.mean_bias_init), (m,))
    self.b_v = self.param("b_v", nn.initializers.zeros, (d,))

  def pooling_mask(self) -> np.ndarray | None:
    """The mask `project_pooling` should keep P under: the topographic mask, or None."""
    if self.pooling_init == "topographic":
      return topographic_mask(self.n_factors, self.n_cov)
    return None

  def visible(self, x: Any) -> Array:
    """x checked and flattened to (B, n_visible)."""
    return _flat(self, x, self.n_visible, "visible vectors")

  def _hiddens(self, x: Array, h_c: Any, h_m: Any) -> tuple[Array, Array]:
    h_c = _flat(self, h_c, self.n_cov, "covariance hidden states")
    h_m = _flat(self, h_m, self.n_mean, "mean hidden states")
    if not h_c.shape[0] == h_m.shape[0] == x.shape[0]:
      raise ValueError(f"{type(self).__name__}: batch sizes differ: x {x.shape[0]}, h_c "
                       f"{h_c.shape[0]}, h_m {h_m.shape[0]}")
    return h_c, h_m

  def factor_responses(self, x: Any) -> Array:
    """s = Cᵀx̃, (B, F)."""
    return self.covariance_input(x) @ self.C

  def pooled_responses(self, x: Any) -> Array:
    """u_k = ½ Σ_f P_fk s_f², (B, N)."""
    s = self.factor_responses(x)
    return 0.5 * (s * s) @ self.P

  def mean_hidden_logits(self, x: Any) -> Array:
    """Wᵀx + b_m, (B, M)."""
    return self.visible(x) @ self.W + self.b_m

  def mean_hidden_probs(self, x: Any) -> Array:
    """p(h_m = 1 | x) = σ(Wᵀx + b_m), (B, M)."""
    return jax.nn.sigmoid(self.mean_hidden_logits(x))

  def _visible_terms(self, x: Array) -> Array:
    """½xᵀx − b_vᵀx, (B,)."""
    return 0.5 * jnp.sum(x * x, axis=-1) - x @ self.b_v

  def _mean_energy(self, x: Array, h_m: Array) -> Array:
    """½xᵀx − h_mᵀWᵀx − b_mᵀh_m − b_vᵀx, (B,)."""
    return self._visible_terms(x) - jnp.sum((x @ self.W) * h_m, axis=-1) - h_m @ self.b_m

  def _gaussian(self, h_c: Any, h_m: Any) -> tuple[Array, Array]:
    linear, precision = self._natural(h_c, h_m)
    return jnp.linalg.solve(precision, linear[..., None])[..., 0], precision

  def _natural(self, h_c: Any, h_m: Any) -> tuple[Array, Array]:
    h_c = _flat(self, h_c, self.n_cov, "covariance hidden states")
    h_m = _flat(self, h_m, self.n_mean, "mean hidden states")
    if h_c.shape[0] != h_m.shape[0]:
      raise ValueError(f"{type(self).__name__}: batch sizes differ: h_c {h_c.shape[0]}, h_m "
                       f"{h_m.shape[0]}")
    gains = h_c @ self.P.T  # (B, F)
    precision = (jnp.einsum("df,bf,ef->bde", self.C, gains, self.C)
                 + jnp.eye(self.n_visible, dtype=gains.dtype))
    return h_m @ self.W.T + self.b_v, precision

  def _sample_mean_hidden(self, key: Array, x: Array) -> Array:
    probs = self.mean_hidden_probs(x)
    return jax.random.bernoulli(key, probs).astype(probs.dtype)



class MCRBM(_GatedMRF, nn.Module):
  """Mean-covariance RBM (Ranzato & Hinton 2010); energy and conditionals in the module docstring.

  Attributes:
    n_visible: D, visible units.
    n_factors: F, factor filters (columns of C).
    n_cov: N, binary covariance hidden units.
    n_mean: M, binary mean hidden units.
    input_norm: 'original' (default): the covariance branch sees x̃ = x / sqrt(‖x‖²/D + 1/2), as the
      authors' code trains it; 'paper': x̃ = x, for which p(x | h) is Gaussian.
    pooling_init: 'identity' (P = I, needs F = N) or 'topographic' (`topographic_mask`, columns
      normalised to sum 1 so that the initial P is a fixed point of `project_pooling`).
    factor_init_scale: C ~ factor_init_scale·N(0, 1) (0.02 in the original code).
    mean_init_scale: W ~ mean_init_scale·N(0, 1) (0.05).
    cov_bias_init: b_c's initial value (2).
    mean_bias_init: b_m's initial value (−2); b_v starts at 0.
  """

  n_visible: int
  n_factors: int
  n_cov: int
  n_mean: int
  input_norm: str = "original"
  pooling_init: str = "identity"
  factor_init_scale: float = 0.02
  mean_init_scale: float = 0.05
  cov_bias_init: float = 2.0
  mean_bias_init: float = -2.0

  visible_range = None  # any real value (whitened data)
  visible_kind = "gaussian"

  def setup(self):
    _check_choice("MCRBM.input_norm", self.input_norm, INPUT_NORMS)
    self._setup_params(self.cov_bias_init)

  def covariance_input(self, x: Any) -> Array:
    """x̃, (B, D): x / sqrt(‖x‖²/D + 1/2) ('original') or x ('paper')."""
    return covariance_input(self.visible(x), self.input_norm)

  def cov_hidden_logits(self, x: Any) -> Array:
    """b_c − ½Pᵀ(Cᵀx̃)², (B, N)."""
    return self.b_c - self.pooled_responses(x)

  def cov_hidden_probs(self, x: Any) -> Array:
    """p(h_c = 1 | x) = σ(b_c − ½Pᵀ(Cᵀx̃)²), (B, N)."""
    return jax.nn.sigmoid(self.cov_hidden_logits(x))

  def hidden_probs(self, x: Any) -> Array:
    """[σ_c, σ_m], (B, N + M): the posterior means, the features of the model."""
    return jnp.concatenate([self.cov_hidden_probs(x), self.mean_hidden_probs(x)], axis=-1)

  def __call__(self, x: Any, train: bool = False) -> tuple[Array, dict[str, Array]]:
    del train
    cov, mean = self.cov_hidden_probs(x), self.mean_hidden_probs(x)
    return jnp.concatenate([cov, mean], axis=-1), {"cov": cov, "mean": mean}

  def sample_hidden(self, key: Array, x: Any) -> tuple[Array, Array]:
    """(h_c, h_m) ~ p(h | x), float {0, 1}, (B, N) and (B, M)."""
    cov_key, mean_key = jax.random.split(key)
    probs = self.cov_hidden_probs(x)
    h_c = jax.random.bernoulli(cov_key, probs).astype(probs.dtype)
    return h_c, self._sample_mean_hidden(mean_key, x)

  def energy(self, x: Any, h_c: Any, h_m: Any) -> Array:
    """E(x, h_c, h_m) per example, (B,)."""
    x = self.visible(x)
    h_c, h_m = self._hiddens(x, h_c, h_m)
    cov = jnp.sum(h_c * self.pooled_responses(x), axis=-1) - h_c @ self.b_c
    return cov + self._mean_energy(x, h_m)

  def free_energy(self, x: Any) -> Array:
    """F(x) = ½xᵀx − b_vᵀx − Σ_k softplus(b_c_k − u_k) − Σ_j softplus(W_jᵀx + b_m_j), (B,)."""
    x = self.visible(x)
    return (self._visible_terms(x) - jnp.sum(jax.nn.softplus(self.cov_hidden_logits(x)), axis=-1)
            - jnp.sum(jax.nn.softplus(self.mean_hidden_logits(x)), axis=-1))

  def free_energy_and_grad(self, x: Any) -> tuple[Array, Array]:
    """(F(x), ∂F/∂x) in closed form: `mcrbm_free_energy_and_grad` on this model's parameters."""
    params = {name: getattr(self, name) for name in _MCRBM_PARAMS}
    return mcrbm_free_energy_and_grad(params, self.visible(x), self.input_norm)

  def conditional_gaussian(self, h_c: Any, h_m: Any) -> tuple[Array, Array]:
    """p(x | h) = N(μ, Λ⁻¹) for the 'paper' form: (μ (B, D), Λ (B, D, D)).

    Λ = C diag(P h_c) Cᵀ + I and μ = Λ⁻¹(W h_m + b_v).

    Raises:
      ValueError: for input_norm 'original', where p(x | h) is not Gaussian.
    """
    self._check_gaussian()
    return self._gaussian(h_c, h_m)

  def conditional_natural(self, h_c: Any, h_m: Any) -> tuple[Array, Array]:
    """p(x | h) = N(Λ⁻¹η, Λ⁻¹) by its natural parameters, without a solve: (η = W h_m + b_v (B, D),
    Λ (B, D, D)); 'paper' form only (ValueError otherwise)."""
    self._check_gaussian()
    return self._natural(h_c, h_m)

  def _check_gaussian(self) -> None:
    if self.input_norm != "paper":
      raise ValueError(f"MCRBM with input_norm {self.input_norm!r}: p(x | h) is not Gaussian (the "
                       "covariance branch sees a normalised x); sample x by HMC on free_energy, "
                       "or use input_norm 'paper'")


class MPoT(_GatedMRF, nn.Module):
  """Mean-product of Student-t experts (Ranzato, Mnih & Hinton 2010); energy in the module docstring.

  Attributes:
    n_visible: D, visible units.
    n_factors: F, factor filters.
    n_cov: N, Gamma-distributed covariance hidden units.
    n_mean: M, binary mean hidden units.
    gamma: γ > 0, the Gamma shape parameter shared by every covariance unit, a fixed
      hyper-parameter (not learned). The default 1 makes p(h_c_k | x) exponential with rate a_k
      and log Γ(γ) = 0. The covariance branch sees the raw x (no input normalisation).
    pooling_init, factor_init_scale, mean_init_scale, mean_bias_init: as in `MCRBM`.
  """

  n_visible: int
  n_factors: int
  n_cov: int
  n_mean: int
  gamma: float = 1.0
  pooling_init: str = "identity"
  factor_init_scale: float = 0.02
  mean_init_scale: float = 0.05
  mean_bias_init: float = -2.0

  visible_range = None
  visible_kind = "gaussian"

  def setup(self):
    _check_gamma(self.gamma)
    self._setup_params(None)

  def covariance_input(self, x: Any) -> Array:
    """The covariance branch's input: x itself, (B, D)."""
    return self.visible(x)

  def cov_hidden_rates(self, x: Any) -> Array:
    """a = 1 + ½Pᵀ(Cᵀx)², (B, N): the rates of the Gamma posteriors."""
    return 1 + self.pooled_responses(x)

  def cov_hidden_mean(self, x: Any) -> Array:
    """E[h_c | x] = γ/a, (B, N)."""
    return self.gamma / self.cov_hidden_rates(x)

  def hidden_probs(self, x: Any) -> Array:
    """[γ/a, σ_m], (B, N + M): the posterior means, the features of the model."""
    return jnp.concatenate([self.cov_hidden_mean(x), self.mean_hidden_probs(x)], axis=-1)

  def __call__(self, x: Any, train: bool = False) -> tuple[Array, dict[str, Array]]:
    del train
    cov, mean = self.cov_hidden_mean(x), self.mean_hidden_probs(x)
    return jnp.concatenate([cov, mean], axis=-1), {"cov": cov, "mean": mean}

  def sample_hidden(self, key: Array, x: Any) -> tuple[Array, Array]:
    """h_c ~ Gamma(γ, rate a) (B, N) and h_m ~ Bernoulli(σ_m) (B, M)."""
    cov_key, mean_key = jax.random.split(key)
    rates = self.cov_hidden_rates(x)
    h_c = jax.random.gamma(cov_key, self.gamma, rates.shape, rates.dtype) / rates
    return h_c, self._sample_mean_hidden(mean_key, x)

  def energy(self, x: Any, h_c: Any, h_m: Any) -> Array:
    """E(x, h_c, h_m) per example, (B,); h_c must be positive (or ≥ 0 when γ = 1)."""
    x = self.visible(x)
    h_c, h_m = self._hiddens(x, h_c, h_m)
    cov = jnp.sum(h_c * self.cov_hidden_rates(x), axis=-1)
    if self.gamma != 1:  # (1 − γ) log h_c vanishes for γ = 1, also at h_c = 0
      cov = cov + (1 - self.gamma) * jnp.sum(jnp.log(h_c), axis=-1)
    return cov + self._mean_energy(x, h_m)

  def free_energy(self, x: Any) -> Array:
    """F(x) = Σ_k γ log a_k + ½xᵀx − b_vᵀx − Σ_j softplus(W_jᵀx + b_m_j), (B,), without N·log Γ(γ)."""
    x = self.visible(x)
    return (self.gamma * jnp.sum(jnp.log(self.cov_hidden_rates(x)), axis=-1)
            + self._visible_terms(x) - jnp.sum(jax.nn.softplus(self.mean_hidden_logits(x)), axis=-1))

  def free_energy_and_grad(self, x: Any) -> tuple[Array, Array]:
    """(F(x), ∂F/∂x) in closed form: `mpot_free_energy_and_grad` on this model's parameters."""
    params = {name: getattr(self, name) for name in _MPOT_PARAMS}
    return mpot_free_energy_and_grad(params, self.visible(x), self.gamma)

  def conditional_gaussian(self, h_c: Any, h_m: Any) -> tuple[Array, Array]:
    """p(x | h) = N(μ, Λ⁻¹): (μ (B, D), Λ (B, D, D)), Λ = C diag(P h_c) Cᵀ + I, μ = Λ⁻¹(W h_m + b_v)."""
    return self._gaussian(h_c, h_m)

  def conditional_natural(self, h_c: Any, h_m: Any) -> tuple[Array, Array]:
    """p(x | h) = N(Λ⁻¹η, Λ⁻¹) by its natural parameters, without a solve: (η = W h_m + b_v, Λ)."""
    return self._natural(h_c, h_m)
