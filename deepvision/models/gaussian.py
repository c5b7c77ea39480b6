r"""The Gaussian (PCA) model: the baseline that models of natural-image patches are compared with.

A full-covariance multivariate normal fitted by maximum likelihood,

  p(x) = N(x; μ, Σ) = (2π)^(−D/2) |Σ|^(−1/2) exp(−½ (x − μ)ᵀ Σ⁻¹ (x − μ)),
  μ = (1/N) Σ_n x_n,   Σ = (1/N) Σ_n (x_n − μ)(x_n − μ)ᵀ + ridge · I,

with inpainting by Gaussian conditioning, o observed and m missing:

  x_m | x_o ~ N(μ_m + Σ_mo Σ_oo⁻¹ (x_o − μ_o),  Σ_mm − Σ_mo Σ_oo⁻¹ Σ_om).

It captures exactly the second-order statistics that PCA sees; what a gated MRF gains over it is what
it learns beyond them (Ranzato, Mnih, Susskind & Hinton, "Modeling natural images using gated MRFs",
PAMI 2013). NumPy float64 throughout.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np

_LOG_2PI = math.log(2.0 * math.pi)


def _real_batch(x: Any, what: str) -> np.ndarray:
  x = np.asarray(x)
  if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
    raise ValueError(f"{what} needs real numbers, got dtype {x.dtype}")
  return x


@dataclasses.dataclass(frozen=True, eq=False)
class GaussianModel:
  """A multivariate normal N(μ, Σ) over flat vectors of D values.

  On PCA-whitened patches (`deepvision.data.whiten`) it is close to N(0, I) by construction, but mean and
  covariance are fitted anyway, so it is the best Gaussian in whatever space it is given. Everything is
  NumPy float64 (a baseline over tens to a few hundred dimensions); sampling takes a NumPy `Generator` or
  its seed, like `deepvision.data.patches`.

  Example:
    >>> z = whitening.transform(patches)                     # (N, K)
    >>> gaussian = GaussianModel.fit(z[:9000])
    >>> gaussian.log_prob(z[9000:]).mean() + whitening.log_det_jacobian   # nats per patch
    >>> filled = gaussian.inpaint(z_test, observed_mask)     # conditional mean in the holes

  Methods take batches (B, D); `fit` and `log_prob` also take (B, ...) arrays of D elements per
  example, flattened in C order.

  Attributes:
    mean: μ, (D,) float64.
    covariance: Σ, (D, D) float64, symmetric positive definite (checked by its Cholesky factor).
  """

  mean: np.ndarray
  covariance: np.ndarray
  _cholesky: np.ndarray = dataclasses.field(init=False, repr=False)
  _inverse_cholesky: np.ndarray = dataclasses.field(init=False, repr=False)

  def __post_init__(self):
    mean = np.array(self.mean, np.float64)
    covariance = np.array(self.covariance, np.float64)
    if mean.ndim != 1 or mean.size == 0 or covariance.shape != (mean.size, mean.size):
      raise ValueError(f"mean must be (D,) and covariance (D, D) with D ≥ 1, got shapes {mean.shape} "
                       f"and {covariance.shape}")
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(covariance))):
      raise ValueError("mean and covariance must be finite")
    scale = max(float(np.max(np.abs(covariance))), np.finfo(np.float64).tiny)
    if np.max(np.abs(covariance - covariance.T)) > 1e-10 * scale:
      raise ValueError(f"covariance must be symmetric, got max |Σ − Σᵀ| = "
                       f"{np.max(np.abs(covariance - covariance.T)):.3g}")
    covariance = (covariance + covariance.T) / 2
    try:
      cholesky = np.linalg.cholesky(covariance)
    except np.linalg.LinAlgError:
      raise ValueError(f"covariance ({mean.size} × {mean.size}) is not positive definite (smallest "
                       f"eigenvalue {np.linalg.eigvalsh(covariance)[0]:.3g}): fit with more examples "
                       "than dimensions or with ridge > 0") from None
    inverse_cholesky = np.linalg.solve(cholesky, np.eye(mean.size))
    for name, value in (("mean", mean), ("covariance", covariance), ("_cholesky", cholesky),
                        ("_inverse_cholesky", inverse_cholesky)):
      value.setflags(write=False)
      object.__setattr__(self, name, value)

  @property
  def dim(self) -> int:
    """D, the number of variables."""
    return self.mean.size

  @classmethod
  def fit(cls, x: Any, ridge: float = 0.0) -> GaussianModel:
    """The maximum-likelihood Gaussian of x, plus ridge · I on the covariance.

    μ = (1/N) Σ_n x_n,  Σ = (1/N) Σ_n (x_n − μ)(x_n − μ)ᵀ + ridge · I (the 1/N estimate, as PCA
    whitening uses: on whitened training data Σ = I exactly).

    Args:
      x: (N, D) data (or (N, ...) with D elements per example), N ≥ 2, real and finite.
      ridge: ≥ 0, added to the diagonal of Σ; needed when N ≤ D or the data are degenerate.

    Raises:
      ValueError: fewer than 2 examples, non-real or non-finite data, ridge < 0, or a singular
        covariance (the message suggests ridge).
    """
    if isinstance(ridge, bool) or not isinstance(ridge, numbers.Real) or not 0 <= ridge < math.inf:
      raise ValueError(f"ridge must be a finite number ≥ 0, got {ridge!r}")
    x = _real_batch(x, "fit")
    if x.ndim < 2 or x.shape[0] < 2 or 0 in x.shape[1:]:
      raise ValueError(f"fit needs (N, D) data with N ≥ 2 examples, got shape {x.shape}")
    x = x.reshape(x.shape[0], -1).astype(np.float64)
    if not np.all(np.isfinite(x)):
      raise ValueError(f"fit got {int(np.sum(~np.isfinite(x)))} non-finite values")
    mean = x.mean(axis=0)
    centred = x - mean
    covariance = centred.T @ centred / x.shape[0] + float(ridge) * np.eye(x.shape[1])
    return cls(mean, covariance)

  def _flat(self, x: Any, what: str) -> np.ndarray:
    """x as a float64 (B, D) batch, or a ValueError naming the shapes."""
    x = _real_batch(x, what)
    if x.ndim < 2 or math.prod(x.shape[1:]) != self.dim:
      raise ValueError(f"{what} got an array of shape {x.shape}, but the Gaussian has D = {self.dim} "
                       f"variables: expected (B, {self.dim}) (or (B, ...) of {self.dim} elements)")
    return x.reshape(x.shape[0], self.dim).astype(np.float64)

  def log_prob(self, x: Any) -> np.ndarray:
    """log N(x; μ, Σ) = −½ [D log 2π + log |Σ| + (x − μ)ᵀ Σ⁻¹ (x − μ)] per example, (B,) float64.

    Uses the Cholesky factor Σ = L Lᵀ: log |Σ| = 2 Σ_i log L_ii and (x − μ)ᵀ Σ⁻¹ (x − μ) = |L⁻¹(x − μ)|².
    """
    x = self._flat(x, "log_prob")
    y = (x - self.mean) @ self._inverse_cholesky.T
    log_det = 2.0 * np.sum(np.log(np.diag(self._cholesky)))
    return -0.5 * (self.dim * _LOG_2PI + log_det + np.sum(y * y, axis=1))

  def sample(self, seed: int | np.random.Generator, n: int) -> np.ndarray:
    """n independent draws x = μ + L ε, ε ~ N(0, I): (n, D) float64.

    Args:
      seed: seed of a NumPy `Generator`, or a Generator (the same seed gives the same samples).
      n: the number of samples, ≥ 1.
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
      raise ValueError(f"n must be a positive integer, got {n!r}")
    noise = np.random.default_rng(seed).standard_normal((int(n), self.dim))
    return self.mean + noise @ self._cholesky.T

  def _masked_batch(self, x: Any, observed_mask: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    """(x as float64 (B, D), mask as (B, D) bool), checked; missing entries of x may be anything (NaN)."""
    x = _real_batch(x, what)
    mask = np.asarray(observed_mask)
    if x.ndim < 2 or math.prod(x.shape[1:]) != self.dim:
      raise ValueError(f"{what} got x of shape {x.shape}, but the Gaussian has D = {self.dim} "
                       f"variables: expected (B, {self.dim}) (or (B, ...) of {self.dim} elements)")
    if mask.dtype != np.bool_:
      raise ValueError(f"observed_mask must be a bool array (True = observed), got dtype {mask.dtype}")
    if mask.shape == x.shape[1:]:
      mask = np.broadcast_to(mask.reshape(1, self.dim), (x.shape[0], self.dim))
    elif mask.shape == x.shape:
      mask = mask.reshape(x.shape[0], self.dim)
    else:
      raise ValueError(f"observed_mask has shape {mask.shape}; for x of shape {x.shape} it must be "
                       f"shared, {x.shape[1:]}, or per example, {x.shape}")
    x = x.reshape(x.shape[0], self.dim).astype(np.float64)
    none_observed, none_missing = ~mask.any(axis=1), mask.all(axis=1)
    for bad, what_is_wrong in ((none_observed, "nothing observed"), (none_missing, "nothing missing")):
      if bad.any():
        raise ValueError(f"observed_mask has {what_is_wrong} for {int(bad.sum())} example(s), e.g. "
                         f"example {int(np.argmax(bad))}: each example needs at least one observed "
                         "and one missing value")
    if not np.all(np.isfinite(x[mask])):
      raise ValueError(f"{what} got {int(np.sum(~np.isfinite(x[mask])))} non-finite observed values "
                       "(missing entries may hold anything, NaN included)")
    return x, mask

  def conditional(self, x: Any, observed_mask: Any) -> tuple[np.ndarray, np.ndarray]:
    """The Gaussian of every example given its observed values, as a degenerate Gaussian on R^D.

    For example b with observed indices o (observed_mask[b] True) and missing ones m:

      mean[b, m] = μ_m + Σ_mo Σ_oo⁻¹ (x_o − μ_o),   mean[b, o] = x_o,
      cov[b][m, m] = Σ_mm − Σ_mo Σ_oo⁻¹ Σ_om,       cov[b] zero in the rows and columns o,

    i.e. x_m | x_o ~ N(mean[b, m], cov[b][m, m]) and the observed values are fixed.

    Args:
      x: (B, D) data (or (B, ...) of D elements); entries at missing positions are ignored and
        may be NaN.
      observed_mask: bool, True where observed: shared, of shape x.shape[1:], or per example, of
        x's shape. Every example needs at least one observed and one missing value.

    Returns:
      (mean (B, D), cov (B, D, D)), float64.

    Raises:
      ValueError: shapes that do not match D or each other, a non-bool mask, an example with
        nothing observed or nothing missing, or non-finite observed values.
    """
    x, mask = self._masked_batch(x, observed_mask, "conditional")
    mean = np.where(mask, x, 0.0)  # float64; observed values copied exactly
    cov = np.zeros((x.shape[0], self.dim, self.dim))
    patterns, which = np.unique(mask, axis=0, return_inverse=True)
    for p, pattern in enumerate(patterns):
      rows = np.flatnonzero(which.reshape(-1) == p)
      o, m = np.flatnonzero(pattern), np.flatnonzero(~pattern)
      sigma_oo = self.covariance[np.ix_(o, o)]
      sigma_om = self.covariance[np.ix_(o, m)]
      gain = np.linalg.solve(sigma_oo, sigma_om).T  # Σ_mo Σ_oo⁻¹, (|m|, |o|)
      mean[np.ix_(rows, m)] = self.mean[m] + (x[np.ix_(rows, o)] - self.mean[o]) @ gain.T
      block = self.covariance[np.ix_(m, m)] - gain @ sigma_om
      cov[np.ix_(rows, m, m)] = (block + block.T) / 2
    return mean, cov

  def inpaint(self, x: Any, observed_mask: Any) -> np.ndarray:
    """x with its missing values replaced by their conditional mean μ_m + Σ_mo Σ_oo⁻¹ (x_o − μ_o).

    Equivalently, with the precision Λ = Σ⁻¹, x_m | x_o ~ N(μ_m − Λ_mm⁻¹ Λ_mo (x_o − μ_o), Λ_mm⁻¹).

    Observed values are kept exactly (bit for bit). Same shape as x; floating x keeps its dtype,
    other x comes back float64. Arguments and errors as `conditional`.
    """
    dtype = np.asarray(x).dtype
    dtype = dtype if np.issubdtype(dtype, np.floating) else np.dtype(np.float64)
    shape = np.shape(x)
    mean, _ = self.conditional(x, observed_mask)
    flat_x = np.asarray(x).reshape(shape[0], self.dim)
    mask = np.broadcast_to(np.asarray(observed_mask).reshape(-1, self.dim), flat_x.shape)
    filled = np.where(mask, flat_x, mean.astype(dtype))
    return filled.astype(dtype).reshape(shape)

  def to_dict(self) -> dict[str, list]:
    """{'mean': list, 'covariance': nested lists} (JSON-friendly; exact through JSON)."""
    return {"mean": self.mean.tolist(), "covariance": self.covariance.tolist()}

  @classmethod
  def from_dict(cls, d: Mapping[str, Any]) -> GaussianModel:
    """The inverse of `to_dict`."""
    missing = {"mean", "covariance"} - set(d)
    if missing:
      raise ValueError(f"a GaussianModel dict needs keys 'mean' and 'covariance'; missing "
                       f"{sorted(missing)}")
    return cls(np.asarray(d["mean"], np.float64), np.asarray(d["covariance"], np.float64))
