r"""PCA whitening: the preprocessing of gated MRFs on natural-image patches.

The mcRBM and mPoT are trained on patches projected on their leading principal components and scaled
to unit variance, keeping 99% of the variance (Ranzato & Hinton, "Modeling pixel means and covariances
using factorized third-order Boltzmann machines", CVPR 2010; Ranzato, Mnih, Susskind & Hinton,
"Modeling natural images using gated MRFs", PAMI 2013). With m the data mean and Σ = U Λ Uᵀ the
(maximum-likelihood) covariance, λ_1 ≥ … ≥ λ_D ≥ 0:

  K     = the smallest k with (λ_1 + … + λ_k) / (λ_1 + … + λ_D) ≥ variance
  z     = T(x) = diag(λ_k + ε)^(−1/2) U_Kᵀ (x − m)                  (`transform`, R^D → R^K)
  x̂     = U_K diag(λ_k + ε)^(1/2) z + m = m + U_K U_Kᵀ (x − m)       (`inverse`, R^K → R^D)

Filters learned on whitened data map back to pixels by `filters_to_pixels`; densities over z become
densities over patches with `log_det_jacobian`.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np

FILTER_KINDS = ("weights", "patterns")
_DICT_KEYS = ("mean", "components", "eigenvalues", "epsilon", "variance_kept", "patch_shape")


def _check_variance(variance: Any) -> float:
  if (isinstance(variance, bool) or not isinstance(variance, numbers.Real)
      or not 0.0 < float(variance) <= 1.0):
    raise ValueError(f"variance must be a number in (0, 1] (the fraction of the total variance to "
                     f"keep, e.g. 0.99), got {variance!r}")
  return float(variance)


def _check_epsilon(epsilon: Any) -> float:
  if (isinstance(epsilon, bool) or not isinstance(epsilon, numbers.Real)
      or not 0.0 <= float(epsilon) < math.inf):
    raise ValueError(f"epsilon must be a finite number ≥ 0, got {epsilon!r}")
  return float(epsilon)


def _out_dtype(x: np.ndarray) -> np.dtype:
  """float64 for float64 input, float32 for anything else (as `Standardizer`)."""
  return np.dtype(np.float64) if x.dtype == np.float64 else np.dtype(np.float32)


def _frozen(array: Any) -> np.ndarray:
  array = np.array(array, np.float64)
  array.setflags(write=False)
  return array


def _sign_fixed(vectors: np.ndarray) -> np.ndarray:
  """Eigenvectors (columns) flipped so that each one's largest-magnitude entry is positive.

  eigh fixes each eigenvector up to its sign only; this makes the result reproducible and the
  eigenvectors of a diagonal covariance the unit vectors themselves.
  """
  largest = vectors[np.argmax(np.abs(vectors), axis=0), np.arange(vectors.shape[1])]
  return vectors * np.where(largest < 0, -1.0, 1.0)


@dataclasses.dataclass(frozen=True, eq=False)
class PCAWhitening:
  """PCA whitening x ↦ diag(λ + ε)^(−1/2) U_Kᵀ (x − m), fitted on data, saved as JSON.

  U_K = `components` (D × K) and ε = `epsilon` ≥ 0 (0 by default: with ε = 0 the whitened training data
  has mean 0 and identity covariance exactly; ε > 0 damps the smallest components, their variance becomes
  λ_k / (λ_k + ε)). `inverse(transform(x))` is the orthogonal projection of x − m on the kept subspace,
  plus m: exact when every component is kept, and on the training data its mean squared error per pixel
  is (1/D) Σ_{k>K} λ_k, the discarded variance.

  Example:
    >>> patches = natural_image_patches(8, 10_000, seed=0, remove_dc=True)   # (10000, 8, 8, 1)
    >>> whitening = PCAWhitening.fit(patches, variance=0.99)
    >>> z = whitening.transform(patches)                                   # (10000, K)
    >>> json.dumps(whitening.to_dict())                                    # saved with the model

  Data are batches of flat vectors (B, D) or, when fitted on patches, of patches (B, *patch_shape)
  (flattened in C order, as the RBMs flatten their visible vectors); `transform` accepts both and
  returns (B, K); `inverse` returns the form the whitening was fitted on.

  Attributes:
    mean: m, (D,) float64.
    components: U_K, (D, K) float64, orthonormal columns: the eigenvectors of the data covariance
      with the K largest eigenvalues, largest first, each signed so its largest-magnitude entry is
      positive.
    eigenvalues: λ_1 ≥ … ≥ λ_K > 0, (K,) float64: the variance of the data along each component.
    epsilon: ε ≥ 0, added to each eigenvalue before scaling (0: exact whitening).
    variance_kept: (λ_1 + … + λ_K) / (λ_1 + … + λ_D), the fraction of the variance kept (≥ the
      `variance` asked of `fit`).
    patch_shape: the shape of one example fitted on, e.g. (8, 8, 1), or None for flat (N, D) data.
  """

  mean: np.ndarray
  components: np.ndarray
  eigenvalues: np.ndarray
  epsilon: float = 0.0
  variance_kept: float = 1.0
  patch_shape: tuple[int, ...] | None = None

  def __post_init__(self):
    mean, components, eigenvalues = (_frozen(self.mean), _frozen(self.components),
                                     _frozen(self.eigenvalues))
    if mean.ndim != 1 or components.ndim != 2 or eigenvalues.ndim != 1:
      raise ValueError(f"mean must be (D,), components (D, K) and eigenvalues (K,), got shapes "
                       f"{mean.shape}, {components.shape} and {eigenvalues.shape}")
    if components.shape != (mean.size, eigenvalues.size) or eigenvalues.size == 0:
      raise ValueError(f"components must be (D, K) = ({mean.size}, {eigenvalues.size}) for a mean "
                       f"of {mean.size} values and {eigenvalues.size} eigenvalues (K ≥ 1), got "
                       f"{components.shape}")
    for name, array in (("mean", mean), ("components", components)):
      if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} has {int(np.sum(~np.isfinite(array)))} non-finite values")
    epsilon = _check_epsilon(self.epsilon)
    if not np.all(np.isfinite(eigenvalues) & (eigenvalues >= 0) & (eigenvalues + epsilon > 0)):
      raise ValueError(f"eigenvalues must be finite and ≥ 0 with λ + epsilon > 0, got "
                       f"{eigenvalues.tolist()} and epsilon {epsilon}")
    variance_kept = _check_variance(self.variance_kept)
    patch_shape = self.patch_shape
    if patch_shape is not None:
      patch_shape = tuple(int(n) for n in patch_shape)
      if math.prod(patch_shape) != mean.size or any(n < 1 for n in patch_shape):
        raise ValueError(f"patch_shape {patch_shape} has {math.prod(patch_shape)} elements but the "
                         f"whitening has D = {mean.size} inputs")
    for name, value in (("mean", mean), ("components", components), ("eigenvalues", eigenvalues),
                        ("epsilon", epsilon), ("variance_kept", variance_kept),
                        ("patch_shape", patch_shape)):
      object.__setattr__(self, name, value)

  # --------------------------------------------------------------------------- fitting

  @classmethod
  def fit(cls, x: Any, variance: float = 0.99, epsilon: float = 0.0) -> PCAWhitening:
    """The whitening of x keeping the smallest number of components that reach `variance`.

    m = (1/N) Σ_n x_n,  Σ = (1/N) Σ_n (x_n − m)(x_n − m)ᵀ = U Λ Uᵀ (numpy `eigh`, float64), and K
    the smallest k with (λ_1 + … + λ_k) / (λ_1 + … + λ_D) ≥ variance. Eigenvalues that are zero to
    rounding (≤ D · 2^−52 · λ_1: directions in which the data do not vary, e.g. the mean of
    DC-removed patches, or any direction beyond N − 1 when N ≤ D) are never kept, even with
    variance = 1.

    Args:
      x: (N, D) vectors or (N, *patch_shape) patches, N ≥ 2, real and finite.
      variance: the fraction of the total variance to keep, in (0, 1]; 1 keeps every component
        of non-zero variance (then `inverse(transform(x)) == x` up to rounding).
      epsilon: ε ≥ 0 added to each eigenvalue before scaling.

    Raises:
      ValueError: variance not a number in (0, 1], epsilon < 0, fewer than 2 examples, non-real
        or non-finite data, or data with no variance at all. All are checked before any compute.
    """
    variance = _check_variance(variance)
    epsilon = _check_epsilon(epsilon)
    x = np.asarray(x)
    if x.ndim < 2 or x.shape[0] < 2 or 0 in x.shape[1:]:
      raise ValueError(f"fit needs (N, D) vectors or (N, *patch_shape) patches with N ≥ 2 examples, "
                       f"got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
      raise ValueError(f"fit needs real numbers, got dtype {x.dtype}")
    patch_shape = tuple(int(n) for n in x.shape[1:]) if x.ndim > 2 else None
    x = x.reshape(x.shape[0], -1).astype(np.float64)
    if not np.all(np.isfinite(x)):
      raise ValueError(f"fit got {int(np.sum(~np.isfinite(x)))} non-finite values")

    mean = x.mean(axis=0)
    centred = x - mean
    covariance = centred.T @ centred / x.shape[0]
    values, vectors = np.linalg.eigh(covariance)
    values, vectors = np.maximum(values[::-1], 0.0), vectors[:, ::-1]  # largest first
    if values[0] <= (np.finfo(np.float64).eps * np.max(np.abs(x))) ** 2 * values.size:
      raise ValueError("fit got data with no variance (to rounding): every example is the same")
    rank = int(np.sum(values > values[0] * values.size * np.finfo(np.float64).eps))
    cumulative = np.cumsum(values)
    fractions = cumulative / cumulative[-1]
    k = min(int(np.searchsorted(fractions, variance, side="left")) + 1, rank)
    return cls(mean=mean, components=_sign_fixed(vectors[:, :k]), eigenvalues=values[:k],
               epsilon=epsilon, variance_kept=float(fractions[k - 1]), patch_shape=patch_shape)

  # --------------------------------------------------------------------------- sizes and checks

  @property
  def input_dim(self) -> int:
    """D, the number of inputs (pixels) of one example."""
    return self.mean.size

  @property
  def num_components(self) -> int:
    """K, the number of whitened outputs."""
    return self.eigenvalues.size

  @property
  def scales(self) -> np.ndarray:
    """√(λ_k + ε), (K,): the standard deviation that `transform` divides component k by."""
    return np.sqrt(self.eigenvalues + self.epsilon)

  @property
  def log_det_jacobian(self) -> float:
    r"""log |det ∂z/∂y| = −½ Σ_k log(λ_k + ε), the log volume change of the whitening.

    Precisely: write y = U_Kᵀ (x − m) ∈ R^K for the coordinates of a patch in the kept PCA
    subspace (an orthonormal basis, so volumes there are pixel-space volumes within the subspace).
    Then z = diag(λ + ε)^(−1/2) y, whose Jacobian determinant is Π_k (λ_k + ε)^(−1/2). A density
    q(z) over whitened data (an mcRBM, a `GaussianModel` fitted on z, ...) is the density

      log p(y) = log q(z) + log_det_jacobian

    over the PCA coordinates y, per patch, in nats (divide by D for nats per pixel).

    When K = D (variance = 1 on full-rank data, ε = 0) this is the density of the patch x itself
    in R^D. When K < D it is not: it is a density on the K-dimensional affine subspace m + span(U_K)
    (equivalently, of the projection of x on it), with respect to K-dimensional volume; the D − K
    discarded directions carry no density, and numbers from models that keep different K are not
    comparable. A density on R^D needs a model of the discarded residual too (e.g. an isotropic
    Gaussian with the discarded variance, as in probabilistic PCA), which this class does not add.
    """
    return float(-0.5 * np.sum(np.log(self.eigenvalues + self.epsilon)))

  def check_input(self, x: Any, what: str = "check_input") -> np.ndarray:
    """x as a (B, D) array, or a ValueError if it does not match the fitted whitening.

    Accepted: (B, D) flat vectors, or (B, *patch_shape) patches of the shape fitted on. Nothing
    is computed before the check.

    Raises:
      ValueError: x has another number of inputs, another patch shape (even with D elements), no
        batch axis, or is not real.
    """
    x = np.asarray(x)
    fitted = ("the whitening was fitted on " + (
        f"patches of shape {self.patch_shape} ({self.input_dim} inputs): expected "
        f"(B, {', '.join(map(str, self.patch_shape))}) or flattened (B, {self.input_dim})"
        if self.patch_shape is not None else
        f"vectors of {self.input_dim} inputs: expected (B, {self.input_dim})"))
    flat = x.ndim == 2 and x.shape[1] == self.input_dim
    patches = self.patch_shape is not None and x.shape[1:] == self.patch_shape and x.ndim >= 2
    if not (flat or patches):
      raise ValueError(f"{what} got an array of shape {x.shape}, but {fitted}")
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
      raise ValueError(f"{what} needs real numbers, got dtype {x.dtype}")
    return x.reshape(x.shape[0], self.input_dim)

  def _check_whitened(self, z: Any, what: str) -> np.ndarray:
    z = np.asarray(z)
    if z.ndim != 2 or z.shape[1] != self.num_components:
      raise ValueError(f"{what} got an array of shape {z.shape}, but the whitening has K = "
                       f"{self.num_components} components: expected (B, {self.num_components})")
    if not np.issubdtype(z.dtype, np.number) or np.issubdtype(z.dtype, np.complexfloating):
      raise ValueError(f"{what} needs real numbers, got dtype {z.dtype}")
    return z

  # --------------------------------------------------------------------------- the maps

  def transform(self, x: Any) -> np.ndarray:
    """z = diag(λ + ε)^(−1/2) U_Kᵀ (x − m) for each example: (B, D) or (B, *patch_shape) → (B, K).

    Computed in float64; returned as float64 for float64 input, float32 otherwise.
    """
    x = self.check_input(x, "transform")
    z = ((x.astype(np.float64) - self.mean) @ self.components) / self.scales
    return z.astype(_out_dtype(x))

  def inverse(self, z: Any) -> np.ndarray:
    """x̂ = U_K diag(λ + ε)^(1/2) z + m: (B, K) → (B, *patch_shape), or (B, D) if fitted on vectors.

    The pixels whose whitening is z and that lie in the kept subspace (plus m); for z = transform(x)
    the projection m + U_K U_Kᵀ (x − m). float64 for float64 input, float32 otherwise.
    """
    z = self._check_whitened(z, "inverse")
    x = (z.astype(np.float64) * self.scales) @ self.components.T + self.mean
    if self.patch_shape is not None:
      x = x.reshape(z.shape[0], *self.patch_shape)
    return x.astype(_out_dtype(z))

  def filters_to_pixels(self, filters: Any, kind: str = "weights") -> np.ndarray:
    r"""Filters that live in whitened space, (K, n) columns, as (D, n) pixel-space columns.

    A filter f ∈ R^K of a model of whitened data (a column of C or W of a gated MRF, of W of an
    RBM) responds to a patch with fᵀz = fᵀ diag(λ + ε)^(−1/2) U_Kᵀ (x − m) = wᵀ(x − m), so two
    pixel-space pictures of it are meaningful:

    * kind="weights" (default): w = U_K diag(λ + ε)^(−1/2) f, the linear weights the filter applies
      to the (mean-removed) pixels, i.e. its receptive field: fᵀ transform(x) = wᵀ (x − m) exactly,
      for every x. This is the map for filters that are *applied* to data (C, and W as a detector).
      Whitening amplifies small-variance directions, so these look sharp, high-frequency, localised.
    * kind="patterns": a = U_K diag(λ + ε)^(1/2) f = inverse(f) − m, the pixel pattern whose
      whitening is f, transform(m + a) = f. This is the map for filters that *generate* data: the
      change of the mean of p(x | h) that a mean unit of W adds (the "de-whitening" of filters, as
      the mcRBM demo draws them, and what `weight_filter_grid(to_pixels=whitening)` shows, since it
      uses `inverse`). These look smoother.

    Both are linear (no mean m), one column per filter; reshape a column to `patch_shape` to draw it.

    Args:
      filters: (K, n) array, one filter per column.
      kind: "weights" or "patterns" (see above).

    Returns:
      (D, n) float64 array.

    Raises:
      ValueError: an unknown kind, or filters not of shape (K, n).
    """
    if kind not in FILTER_KINDS:
      raise ValueError(f"unknown kind {kind!r}; valid choices: {', '.join(FILTER_KINDS)}")
    filters = np.asarray(filters)
    if filters.ndim != 2 or filters.shape[0] != self.num_components:
      raise ValueError(f"filters_to_pixels got filters of shape {filters.shape}, but the whitening "
                       f"has K = {self.num_components} components: expected (K, n) = "
                       f"({self.num_components}, n), one filter per column")
    gain = 1.0 / self.scales if kind == "weights" else self.scales
    return self.components @ (gain[:, None] * filters.astype(np.float64))

  # --------------------------------------------------------------------------- saving

  def to_dict(self) -> dict[str, Any]:
    """The whitening as JSON-friendly lists and numbers (exact through JSON: floats as repr)."""
    return {"mean": self.mean.tolist(), "components": self.components.tolist(),
            "eigenvalues": self.eigenvalues.tolist(), "epsilon": self.epsilon,
            "variance_kept": self.variance_kept,
            "patch_shape": None if self.patch_shape is None else list(self.patch_shape)}

  @classmethod
  def from_dict(cls, d: Mapping[str, Any]) -> PCAWhitening:
    """The inverse of `to_dict`."""
    missing = set(_DICT_KEYS) - set(d)
    if missing:
      raise ValueError(f"a PCAWhitening dict needs keys {list(_DICT_KEYS)}; missing {sorted(missing)}")
    return cls(**{key: d[key] for key in _DICT_KEYS})
