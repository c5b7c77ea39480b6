"""Local contrast normalisation (LCN) and local response normalisation of NHWC feature maps.

LCN is the "N" of the [filter → rectify → normalise → pool] stage: with v = x − m, m the local mean of
the channel mean x̄ under a separable (Gaussian or box) window k̂ of unit mass, coef = k̂ ⋆ 1 its mass
inside the image and ⋆ a zero-padded 'SAME' correlation,

  m = (k̂ ⋆ x̄) / coef,   y = v / σ,   σ = sqrt(k̂ ⋆ mean_c v²) / coef               (mode 'torch7')
  y = v / max(c, σ),     σ = sqrt((k̂ ⋆ mean_c v²) / coef), c = mean_{i,j} σ      (mode 'jarrett')

('torch7': Torch7's `nn.SpatialContrastiveNormalization`; 'jarrett': Jarrett, Kavukcuoglu, Ranzato &
LeCun, "What is the best multi-stage architecture for object recognition?", ICCV 2009), with divisors
≤ `threshold` replaced by `thresval`. `LocalResponseNorm` is cuda-convnet's per-map ``rnorm``
(Krizhevsky's CIFAR-10 "layers-18pct" net): y = x / (k + α/n² Σ_{n×n window} x²)^β. bfloat16 / float16
maps get their local statistics in float32.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from deepvision.registry import check_choice

Array = jax.Array

MODES = ("torch7", "jarrett")
KERNELS = ("gaussian", "box")


def _check_kernel(kernel: str, kernel_size: int) -> None:
  check_choice("LCN kernel", kernel, list(KERNELS))
  if not isinstance(kernel_size, (int, np.integer)) or kernel_size < 1 or kernel_size % 2 == 0:
    raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size!r}")


def check_arguments(mode: str, kernel: str = "gaussian", kernel_size: int = 9) -> None:
  """Raises ValueError naming a bad LCN mode, window kind or window size and the valid ones."""
  check_choice("LCN mode", mode, list(MODES))
  _check_kernel(kernel, kernel_size)


def kernel_1d(kernel: str = "gaussian", size: int = 9, sigma: float | None = None) -> np.ndarray:
  """The 1-D window, normalised to sum 1 (float64 NumPy array of length `size`).

  'gaussian': g_i ∝ exp(−(i − r)² / 2σ²), r = size // 2, σ = size / 4 by default (Torch7's
  ``image.gaussian`` default of 0.25 of the width). 'box': all taps equal.
  """
  _check_kernel(kernel, size)
  if kernel == "box":
    taps = np.ones(size)
  else:
    sigma = size / 4 if sigma is None else float(sigma)
    if sigma <= 0:
      raise ValueError(f"sigma must be positive, got {sigma!r}")
    taps = np.exp(-0.5 * ((np.arange(size) - size // 2) / sigma) ** 2)
  return taps / taps.sum()


def kernel_2d(kernel: str = "gaussian", size: int = 9, sigma: float | None = None) -> np.ndarray:
  """The separable 2-D window k̂ = outer(k, k), summing to 1."""
  taps = kernel_1d(kernel, size, sigma)
  return np.outer(taps, taps)


@functools.lru_cache(maxsize=64)
def _band_matrix(taps: tuple[float, ...], n: int) -> np.ndarray:
  """M (n×n) with (M x)_i = Σ_q taps[q] · x[i + q − r], zero outside [0, n)."""
  r = len(taps) // 2
  band = np.zeros((n, n))
  for q, tap in enumerate(taps):
    band += tap * np.eye(n, k=q - r)
  return band


def _filter(x: Array, taps: np.ndarray) -> Array:
  """Zero-padded 'SAME' correlation of every map of x (N, H, W, C) with outer(taps, taps)."""
  key = tuple(float(t) for t in taps)
  rows = jnp.asarray(_band_matrix(key, x.shape[1]), x.dtype)
  cols = jnp.asarray(_band_matrix(key, x.shape[2]), x.dtype)
  return jnp.einsum("ij,njkc,lk->nilc", rows, x, cols)


def _border_mass(taps: np.ndarray, height: int, width: int) -> np.ndarray:
  """coef = k̂ ⋆ 1: the mass of the window inside the image, shape (1, H, W, 1)."""
  key = tuple(float(t) for t in taps)
  rows = _band_matrix(key, height).sum(axis=1)
  cols = _band_matrix(key, width).sum(axis=1)
  return np.outer(rows, cols)[None, :, :, None]


def _statistics_dtype(dtype: jnp.dtype) -> jnp.dtype:
  """The dtype local statistics are computed in: at least float32 (float64 stays float64)."""
  return jnp.promote_types(dtype, jnp.float32)


def _safe_sqrt(s: Array) -> Array:
  """sqrt(max(s, tiny)): equal to sqrt(s) for s ≥ tiny, with a finite gradient at 0."""
  return jnp.sqrt(jnp.maximum(s, jnp.finfo(s.dtype).tiny))


def local_contrast_norm(x: Array, *, mode: str = "torch7", kernel: str = "gaussian",
                        kernel_size: int = 9, sigma: float | None = None,
                        threshold: float = 1e-4, thresval: float = 1e-4) -> Array:
  """Local contrast normalisation of NHWC maps x (module docstring).

  Two reference semantics. ``mode='torch7'``: Torch7 ``nn.SpatialContrastiveNormalization`` (the
  implementation most LeCun-era code used) normalises its window to sum 1 over space *and* channels and
  sums the filtered maps over channels; that is filtering the channel mean x̄ = (1/C) Σ_c x_c with the
  spatial window k̂ normalised to Σ k̂ = 1:

      coef = k̂ ⋆ 1                       (the window's mass inside the image: border correction)
      m    = (k̂ ⋆ x̄) / coef              (shared by all channels)
      v    = x − m
      σ    = sqrt(k̂ ⋆ mean_c v²) / coef
      y    = v / σ   where σ > threshold,   v / thresval   elsewhere.

  As in Torch7, σ is divided by `coef` *outside* the square root, so at the border
  σ = sqrt(local mean of v²)/sqrt(coef). (Torch7's separable path normalises each 1-D factor by sum·C,
  which multiplies its interior σ by √C; here the window always has unit mass, so separable and 2-D
  Gaussians give the same output.) ``mode='jarrett'`` (Jarrett et al. 2009): the same subtractive step,
  then σ = sqrt((k̂ ⋆ mean_c v²) / coef) (the window renormalised to the pixels inside) and
  y = v / max(c, σ), c the mean of σ over the image (per example), with the same `threshold`/`thresval`
  guard so that a flat image maps to 0, not 0/0.

  Both are differentiable everywhere: the square root is taken of max(s, tiny), whose gradient is finite
  at s = 0. The window is separable, so each ⋆ is two 1-D filters, applied as products with banded
  (H×H and W×W) matrices, zero padding built into the band (faster on CPU than `lax.conv` with one input
  channel: BUILD.md, "Benchmarks"). Mixed precision: bfloat16 or float16 maps get their local statistics
  (means, variances, square roots, the division) in float32 and the result cast back to the input's
  dtype: in bfloat16 (8 significant bits) x − m cancels. float32 and float64 maps are computed in their
  own dtype.

  Args:
    x: (N, H, W, C) floating array.
    mode: 'torch7' or 'jarrett'.
    kernel: 'gaussian' or 'box' (separable window).
    kernel_size: odd window width (the Torch7 tutorials use a size-13 Gaussian, Jarrett 9).
    sigma: Gaussian width in pixels (default kernel_size / 4).
    threshold: divisors at or below it are replaced by `thresval`.
    thresval: the replacement divisor.

  Returns:
    An array of x's shape and dtype (computed in float32 for bfloat16 / float16 maps).
  """
  check_arguments(mode, kernel, kernel_size)
  if x.ndim != 4 or not jnp.issubdtype(x.dtype, jnp.floating):
    raise ValueError(f"local_contrast_norm expects float NHWC maps (N, H, W, C); got shape "
                     f"{tuple(x.shape)} dtype {x.dtype}")
  out_dtype = x.dtype
  x = x.astype(_statistics_dtype(x.dtype))  # A no-op for float32 and float64 maps.
  taps = kernel_1d(kernel, kernel_size, sigma)
  coef = jnp.asarray(_border_mass(taps, x.shape[1], x.shape[2]), x.dtype)
  mean = _filter(jnp.mean(x, axis=-1, keepdims=True), taps) / coef
  v = x - mean
  local_energy = _filter(jnp.mean(v * v, axis=-1, keepdims=True), taps)
  if mode == "torch7":
    divisor = _safe_sqrt(local_energy) / coef
  else:
    sigma_map = _safe_sqrt(local_energy / coef)
    divisor = jnp.maximum(jnp.mean(sigma_map, axis=(1, 2), keepdims=True), sigma_map)
  divisor = jnp.where(divisor > threshold, divisor, jnp.asarray(thresval, x.dtype))
  return (v / divisor).astype(out_dtype)


class LocalContrastNorm(nn.Module):
  """Local contrast normalisation layer (no parameters); see `local_contrast_norm`.

  Attributes:
    mode: 'torch7' (Torch7 SpatialContrastiveNormalization) or 'jarrett' (Jarrett et al. 2009).
    kernel: 'gaussian' or 'box' (Torch7's default window is a box of ones).
    kernel_size: odd window width.
    sigma: Gaussian width in pixels (default kernel_size / 4).
    threshold: divisors at or below it are replaced by `thresval`.
    thresval: the replacement divisor.
  """

  mode: str = "torch7"
  kernel: str = "gaussian"
  kernel_size: int = 9
  sigma: float | None = None
  threshold: float = 1e-4
  thresval: float = 1e-4

  def __post_init__(self):
    check_arguments(self.mode, self.kernel, self.kernel_size)
    super().__post_init__()

  def __call__(self, x: Array) -> Array:
    return local_contrast_norm(x, mode=self.mode, kernel=self.kernel,
                               kernel_size=self.kernel_size, sigma=self.sigma,
                               threshold=self.threshold, thresval=self.thresval)


def local_response_norm(x: Array, *, size: int = 3, alpha: float = 5e-5, beta: float = 0.75,
                        k: float = 1.0) -> Array:
  """cuda-convnet ``rnorm``: y = x / (k + α/n² Σ_{n×n window of the same map} x²)^β.

  The window is zero-padded at the border. The defaults (α = 5e-5, β = 0.75, n = 3) are those
  of cuda-convnet's layers-18pct CIFAR-10 net, tuned for mean-subtracted 0-255 pixels; with
  unit-scale inputs the layer is close to the identity unless α is raised. bfloat16 / float16
  maps are normalised in float32 (in bfloat16, 1 + α/n² Σ x² rounds to 1 for the default α) and the
  result cast back to their dtype.
  """
  _check_kernel("box", size)
  if x.ndim != 4 or not jnp.issubdtype(x.dtype, jnp.floating):
    raise ValueError(f"local_response_norm expects float NHWC maps (N, H, W, C); got shape "
                     f"{tuple(x.shape)} dtype {x.dtype}")
  out_dtype = x.dtype
  x = x.astype(_statistics_dtype(x.dtype))  # A no-op for float32 and float64 maps.
  window_sum = _filter(x * x, np.ones(size))
  return (x * (k + (alpha / size**2) * window_sum) ** (-beta)).astype(out_dtype)


class LocalResponseNorm(nn.Module):
  """Per-map local response normalisation layer (no parameters); see `local_response_norm`."""

  size: int = 3
  alpha: float = 5e-5
  beta: float = 0.75
  k: float = 1.0

  def __call__(self, x: Array) -> Array:
    return local_response_norm(x, size=self.size, alpha=self.alpha, beta=self.beta, k=self.k)
