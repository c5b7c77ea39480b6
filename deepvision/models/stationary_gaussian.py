r"""The stationary (circulant) Gaussian model of whole images: a power spectrum, fitted and sampled exactly.

The Gaussian baseline of the talk's comparison of image models: second-order statistics only, the 1/f^α
power spectrum of natural images (Field, "Relations between the statistics of natural images and the
response properties of cortical cells", JOSA A 1987; van der Schaaf & van Hateren, Vision Research 1996;
Simoncelli & Olshausen, Annu. Rev. Neurosci. 2001). On H × W images with periodic boundaries (N = H·W
pixels) the covariance C is circulant, diagonal in the 2-D DFT basis with eigenvalues S_k (the power
spectrum). With X_k = Σ_n x_n e^(−2πi k·n) the unnormalised DFT (`jnp.fft.fft2`) and M_k that of the
constant mean image μ (M_0 = Nμ, M_k = 0 otherwise):

  F(x) = ½ (x − μ)ᵀ C⁻¹ (x − μ) = ½ Σ_k |X_k − M_k|² / (N S_k),     C = U^H diag(S) U,  U = DFT / √N,
  log Z = (N/2) log 2π + ½ Σ_k log S_k,     log p(x) = −F(x) − log Z   (exact),

so S_k = E|X_k − M_k|²/N is the expected periodogram. The parameters are μ (`mean`) and log S
(`log_spectrum`, (H, W), in `jnp.fft.fft2`'s frequency order); S is symmetrised, S_k ← exp(½ (log S_k +
log S_−k)), so that C is real for any parameters (a real image has |X_k| = |X_−k|).

Fit (`StationaryGaussian.fit`): maximum likelihood with S constant on rings of frequency, ring(k) =
round(max(H, W) · |f_k|) with f_k in cycles per pixel (integer radii |k| for square images): μ is the mean
pixel and S on a ring the mean periodogram |X_k − M_k|²/N over the ring's frequencies and the images (the
radially averaged periodogram, which for natural images falls as A/|k|^α). Sampling is exact by FFT:
x = μ + U^H diag(√S) U z with z ~ N(0, I) white noise (`sample`).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from deepvision.models.grey_images import (
  GreyImageModel,
  image_shape_field,
  non_negative_number,
)
from deepvision.models.tiling import positive_int

Array = jax.Array
_LOG_2PI = math.log(2.0 * math.pi)


def frequency_rings(image_shape: tuple[int, int]) -> np.ndarray:
  """(H, W) int: the ring of every DFT frequency, round(max(H, W) · |f|), f in cycles per pixel.

  In `jnp.fft.fft2`'s order; ring 0 holds only the DC term; ring(k) = ring(−k).
  """
  height, width = image_shape
  fy, fx = np.meshgrid(np.fft.fftfreq(height), np.fft.fftfreq(width), indexing="ij")
  return np.rint(max(height, width) * np.sqrt(fy ** 2 + fx ** 2)).astype(np.int64)


def ring_average(values: Any, rings: np.ndarray) -> np.ndarray:
  """The mean of `values` (…, H, W) over each ring's frequencies, broadcast back to (…, H, W)."""
  values = np.asarray(values)
  flat = values.reshape(*values.shape[:-2], -1)
  index = rings.reshape(-1)
  counts = np.bincount(index)
  sums = np.stack([np.bincount(index, weights=row) for row in flat.reshape(-1, index.size)])
  means = (sums / counts).reshape(*values.shape[:-2], counts.size)
  return means[..., rings]


def mean_periodogram(images: Any, mean: float = 0.0) -> np.ndarray:
  """(1/B) Σ_b |DFT(x_b − mean)|² / N over a stack of images (B, H, W): (H, W) float64."""
  x = np.asarray(images, np.float64) - mean
  spectra = np.abs(np.fft.fft2(x)) ** 2 / (x.shape[-2] * x.shape[-1])
  return spectra.reshape(-1, *x.shape[-2:]).mean(axis=0)


def power_law_spectrum(image_shape: tuple[int, int], exponent: float) -> np.ndarray:
  """S_k = max(max(H, W) · |f_k|, 1)^(−α): a 1/|k|^α spectrum (|k| in cycles per image), DC set to 1."""
  height, width = image_shape
  fy, fx = np.meshgrid(np.fft.fftfreq(height), np.fft.fftfreq(width), indexing="ij")
  radius = np.maximum(max(height, width) * np.sqrt(fy ** 2 + fx ** 2), 1.0)
  return radius ** (-float(exponent))


def _flip_frequencies(values: Array) -> Array:
  """values[−k mod (H, W)] for (…, H, W) arrays in DFT order."""
  return jnp.roll(jnp.flip(values, axis=(-2, -1)), 1, axis=(-2, -1))


class StationaryGaussian(GreyImageModel):
  r"""A periodic stationary Gaussian over H × W grey images; energy and fit in the module docstring.

  Attributes:
    image_shape: (H, W).
    spectrum_exponent: α ≥ 0 of the initial spectrum S_k = max(|k|, 1)^(−α) (|k| in cycles per image
      along the longer side; `power_law_spectrum`); the initial mean is 0. `fit` replaces both.

  Methods take image batches (B, H, W), (B, H, W, 1) or flat (B, H·W) and are called through `apply`.
  """

  spectrum_exponent: float = 2.0

  def __post_init__(self):
    super().__post_init__()
    non_negative_number(f"{type(self).__name__}.spectrum_exponent", self.spectrum_exponent)

  def setup(self):
    initial = np.log(power_law_spectrum(self.image_shape, self.spectrum_exponent))
    self.mean = self.param("mean", lambda key, shape, dtype=jnp.float32: jnp.zeros(shape, dtype), ())
    self.log_spectrum = self.param(
        "log_spectrum", lambda key, shape, dtype=jnp.float32: jnp.asarray(initial, dtype), self.image_shape)

  def spectrum(self) -> Array:
    """S_k, (H, W), symmetrised: exp(½ (log S_k + log S_−k))."""
    return jnp.exp(0.5 * (self.log_spectrum + _flip_frequencies(self.log_spectrum)))

  def free_energy(self, x: Any) -> Array:
    """F(x) = ½ Σ_k |X_k − M_k|² / (N S_k), (B,)."""
    x = self.images(x)
    coefficients = jnp.fft.fft2(x - self.mean)
    power = jnp.real(coefficients) ** 2 + jnp.imag(coefficients) ** 2
    return 0.5 * jnp.sum(power / (self.n_visible * self.spectrum()), axis=(-2, -1))

  def log_partition(self) -> Array:
    """log Z = (N/2) log 2π + ½ Σ_k log S_k, a scalar."""
    return 0.5 * self.n_visible * _LOG_2PI + 0.5 * jnp.sum(jnp.log(self.spectrum()))

  def log_prob(self, x: Any) -> Array:
    """log p(x) = −F(x) − log Z per image, (B,): exact."""
    return -self.free_energy(x) - self.log_partition()

  def sample(self, key: Array, n: int) -> Array:
    """n exact draws x = μ + U^H diag(√S) U z, z ~ N(0, I): (n, H, W) in the parameters' dtype."""
    n = positive_int("n (the number of samples)", n)
    return self.colour(jax.random.normal(key, (n, *self.image_shape), jnp.asarray(self.log_spectrum).dtype))

  def whiten(self, x: Any) -> Array:
    """z = U^H diag(S^(−1/2)) U (x − μ), (B, H, W): under the model z ~ N(0, I) (image-level whitening).

    A convolution (periodic), so it keeps the images' shift structure, unlike PCA whitening of patches.
    """
    x = self.images(x)
    return jnp.real(jnp.fft.ifft2(jnp.fft.fft2(x - self.mean) / jnp.sqrt(self.spectrum()))).astype(x.dtype)

  def colour(self, z: Any) -> Array:
    """x = μ + U^H diag(√S) U z, (B, H, W): the inverse of `whiten` (N(0, I) noise becomes a sample)."""
    z = self.images(z)
    return self.mean + jnp.real(jnp.fft.ifft2(jnp.sqrt(self.spectrum()) * jnp.fft.fft2(z))).astype(z.dtype)

  def __call__(self, x: Any, train: bool = False) -> tuple[Array, dict[str, Array]]:
    """(F(x) (B,), {}): the model has no hidden units; its features are the image's DFT."""
    del train
    return self.free_energy(x), {}

  @classmethod
  def fit(cls, images: Any, **fields: Any) -> tuple[StationaryGaussian, dict[str, Any]]:
    """The maximum-likelihood model with a ring-wise constant spectrum (module docstring), in float64.

    Args:
      images: (B, H, W) grey images, B ≥ 1, real and finite.
      **fields: other fields of the model (spectrum_exponent only matters before fitting).

    Returns:
      (model, {'params': {'mean': μ, 'log_spectrum': log S}}) as NumPy float64 (cast as needed).

    Raises:
      ValueError: not a (B, H, W) stack of finite real numbers, or images whose power vanishes on some
        ring (constant images): the ring is named.
    """
    if "image_shape" in fields:
      raise ValueError(f"{cls.__name__}.fit takes the image shape from the images (B, H, W); got "
                       f"image_shape={fields['image_shape']!r} as well")
    x = np.asarray(images)
    if x.ndim != 3 or x.shape[0] < 1 or not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
      raise ValueError(f"StationaryGaussian.fit needs a (B, H, W) stack of real grey images, got shape "
                       f"{x.shape} and dtype {x.dtype}")
    x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
      raise ValueError(f"StationaryGaussian.fit got {int(np.sum(~np.isfinite(x)))} non-finite values")
    image_shape = image_shape_field("StationaryGaussian", x.shape[1:])
    model = cls(image_shape=image_shape, **fields)
    mean = float(x.mean())
    rings = frequency_rings(image_shape)
    spectrum = ring_average(mean_periodogram(x, mean), rings)
    # Rounding leaves ~1e-30 of relative power where there is none (the DC term of a single image).
    empty = np.unique(rings[~(spectrum > 1e-10 * np.max(spectrum))])
    if 0 in empty:
      raise ValueError(f"StationaryGaussian.fit: all {x.shape[0]} image(s) have the same mean pixel value, "
                       "so the DC variance S_0 is 0; fit on several images whose means differ")
    if empty.size:
      raise ValueError(f"StationaryGaussian.fit: the images have no power on frequency ring(s) "
                       f"{empty.tolist()} (constant or degenerate images); a Gaussian needs S > 0 everywhere")
    return model, {"params": {"mean": np.asarray(mean), "log_spectrum": np.log(spectrum)}}
