r"""Gated MRFs: the mean-covariance RBM (`MCRBM`) and the mean-product of Student-t (`MPoT`).

Ranzato & Hinton, "Modeling pixel means and covariances using factorized third-order Boltzmann
machines", CVPR 2010; Ranzato, Mnih & Hinton, "Generating more realistic images using gated MRF's",
NIPS 2010; Ranzato, Mnih, Susskind & Hinton, "Modeling natural images using gated MRFs", PAMI 2013.

Both model D real visibles x (PCA-whitened patches) with N covariance units h_c, which gate a precision
matrix built from F factor filters, and M binary mean units h_m, as in a Gaussian-Bernoulli RBM.
Parameters (reference/gated-mrf.md): `C` (D×F) factor filters, `P` (F×N) non-negative pooling, `W` (D×M)
mean filters, `b_c` (N, mcRBM only), `b_m` (M), `b_v` (D). Free energies: `gated_mrf_energy`; pooling
and the recipe's projections: `gated_mrf_pooling`. Methods take flat batches (B, D) through `apply`;
`__call__(x)` returns `(hidden_probs, {"cov": ..., "mean": ...})`.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from deepvision.models.gated_mrf_energy import (INPUT_NORMS, MCRBM_PARAMS, MPOT_PARAMS, NORM_OFFSET,
                                                check_choice, check_gamma, covariance_input,
                                                mcrbm_free_energy_and_grad, mpot_free_energy_and_grad)
from deepvision.models.gated_mrf_pooling import (POOLING_INITS, normalize_factor_columns, pooling_initializer,
                                                 project_pooling, topographic_mask)
from deepvision.models.rbm import _flat

__all__ = ["INPUT_NORMS", "MCRBM", "MPoT", "NORM_OFFSET", "POOLING_INITS", "covariance_input",
           "mcrbm_free_energy_and_grad", "mpot_free_energy_and_grad", "normalize_factor_columns",
           "project_pooling", "topographic_mask"]

Array = jax.Array


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
    check_choice(f"{type(self).__name__}.pooling_init", self.pooling_init, POOLING_INITS)
    if self.pooling_init == "identity" and self.n_factors != self.n_cov:
      raise ValueError(f"{type(self).__name__}: pooling_init 'identity' needs n_factors == n_cov, got "
                       f"n_factors={self.n_factors}, n_cov={self.n_cov}; use 'topographic'")
    if self.pooling_init == "topographic":
      topographic_mask(self.n_factors, self.n_cov)  # raises for sizes without a topography
    d, f, n, m = self.n_visible, self.n_factors, self.n_cov, self.n_mean
    self.C = self.param("C", nn.initializers.normal(self.factor_init_scale), (d, f))
    self.P = self.param("P", pooling_initializer(self.pooling_init, f, n), (f, n))
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
  r"""Mean-covariance RBM (Ranzato & Hinton 2010), binary h_c; with u_k = ½ Σ_f P_fk (Cᵀx̃)_f²:

    E(x, h_c, h_m) = Σ_k h_c_k u_k − b_cᵀh_c + ½xᵀx − h_mᵀWᵀx − b_mᵀh_m − b_vᵀx
    p(h_c_k = 1 | x) = σ(b_c_k − u_k),   p(h_m_j = 1 | x) = σ(W_jᵀx + b_m_j)

  F(x) is in `gated_mrf_energy`. With x̃ = x ('paper'), p(x | h) = N(Σ(W h_m + b_v), Σ) with
  Σ⁻¹ = C diag(P h_c) Cᵀ + I; with the normalised x̃ ('original') p(x | h) is not Gaussian and samples
  are drawn by Hybrid Monte Carlo on F(x). The quadratic term, `b_v` and the mean branch see the raw x.

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
    check_choice("MCRBM.input_norm", self.input_norm, INPUT_NORMS)
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
    params = {name: getattr(self, name) for name in MCRBM_PARAMS}
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
  r"""Mean-product of Student-t experts (Ranzato, Mnih & Hinton 2010), h_c ∈ (0, ∞)^N:

    E(x, h_c, h_m) = Σ_k [h_c_k a_k + (1 − γ) log h_c_k] + ½xᵀx − h_mᵀWᵀx − b_mᵀh_m − b_vᵀx,
                     a_k = 1 + u_k (with x̃ = x)
    p(h_c_k | x) = Gamma(shape γ, rate a_k),  E[h_c_k | x] = γ/a_k;  p(x | h) as the mcRBM's paper form.

  F(x) (`gated_mrf_energy`) is the reference (published) form. Integrating h_c out exactly gives
  F(x) − N·log Γ(γ): the constant depends on no parameter but γ and is excluded from `free_energy` (it
  vanishes for γ = 1 and cancels in every contrastive gradient). The published mPoT has no visible bias;
  `b_v` (initialised to 0) is kept so that both models share one parameter layout, sampler and trainer.

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
    check_gamma(self.gamma)
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
    params = {name: getattr(self, name) for name in MPOT_PARAMS}
    return mpot_free_energy_and_grad(params, self.visible(x), self.gamma)

  def conditional_gaussian(self, h_c: Any, h_m: Any) -> tuple[Array, Array]:
    """p(x | h) = N(μ, Λ⁻¹): (μ (B, D), Λ (B, D, D)), Λ = C diag(P h_c) Cᵀ + I, μ = Λ⁻¹(W h_m + b_v)."""
    return self._gaussian(h_c, h_m)

  def conditional_natural(self, h_c: Any, h_m: Any) -> tuple[Array, Array]:
    """p(x | h) = N(Λ⁻¹η, Λ⁻¹) by its natural parameters, without a solve: (η = W h_m + b_v, Λ)."""
    return self._natural(h_c, h_m)
