r"""The orthogonal periodic discrete wavelet transform of images, in JAX.

Mallat's pyramid (Mallat, "A theory for multiresolution signal decomposition: the wavelet representation",
PAMI 1989) with an orthogonal wavelet's filters (Daubechies, "Ten lectures on wavelets", 1992), taken from
PyWavelets (`pywt.Wavelet(name).dec_lo`, `.dec_hi`). One level along an axis of even length N, with the
analysis filters h (lowpass) and g (highpass) of length L and periodic (circular) indexing:

  a_k = Σ_j h_j x_{(2k + L/2 − j) mod N},   d_k = Σ_j g_j x_{(2k + L/2 − j) mod N},   k < N/2,

PyWavelets' mode='periodization' exactly. In 2-D the level is applied along the rows' axis (−2) and then the
columns' (−1): cA = (a, a), cH = (d, a), cV = (a, d), cD = (d, d) (detail along the rows' axis for cH), and
`wavedec2` repeats it on cA, returning [cA_n, (cH_n, cV_n, cD_n), …, (cH_1, cV_1, cD_1)] as
`pywt.wavedec2(x, name, mode='periodization', level=n)` does. One level along an axis is an orthogonal
N × N matrix (`analysis_matrix`, built once per length in NumPy), so a 2-D level is two small matrix
products, the inverse `waverec2` applies the transposes, and ‖x‖² = Σ ‖coefficients‖².
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import pywt

Array = jax.Array
Coefficients = list  # [cA_n, (cH_n, cV_n, cD_n), ..., (cH_1, cV_1, cD_1)]
ORIENTATIONS = ("horizontal", "vertical", "diagonal")  # cH, cV, cD


def wavelet_filters(name: str) -> tuple[np.ndarray, np.ndarray]:
  """(dec_lo, dec_hi) of an orthogonal PyWavelets wavelet, float64.

  Raises:
    ValueError: a name PyWavelets does not know, or a wavelet that is not orthogonal (biorthogonal
      wavelets have no orthogonal transform); the message lists the orthogonal families.
  """
  families = ", ".join(f"{f}*" for f in ("db", "sym", "coif")) + ", haar"
  if not isinstance(name, str) or name not in pywt.wavelist(kind="discrete"):
    raise ValueError(f"wavelet must be the name of an orthogonal discrete wavelet of PyWavelets "
                     f"({families}, e.g. 'db2'), got {name!r}")
  wavelet = pywt.Wavelet(name)
  if not wavelet.orthogonal:
    raise ValueError(f"wavelet {name!r} is not orthogonal; use one of {families} (e.g. 'db2')")
  return np.asarray(wavelet.dec_lo, np.float64), np.asarray(wavelet.dec_hi, np.float64)


def check_levels(shape: Sequence[int], levels: int) -> None:
  """ValueError unless both sides of `shape` (H, W) are multiples of 2^levels (levels ≥ 1)."""
  if isinstance(levels, bool) or not isinstance(levels, int) or levels < 1:
    raise ValueError(f"levels must be a positive int, got {levels!r}")
  for name, side in zip(("H", "W"), shape):
    if side % (2 ** levels):
      raise ValueError(f"image side {name}={side} is not a multiple of 2^levels = {2 ** levels}: "
                       f"{levels} levels of the periodic DWT halve it {levels} times; use "
                       f"levels <= {int(np.log2(side & -side))} or a side that is a multiple of "
                       f"{2 ** levels}")


@functools.lru_cache(maxsize=64)
def analysis_matrix(size: int, wavelet: str) -> np.ndarray:
  """The (N, N) orthogonal matrix of one level along an axis of length N: rows k < N/2 give a_k, rows
  N/2 + k give d_k (module docstring), float64, read-only."""
  if size < 2 or size % 2:
    raise ValueError(f"one DWT level needs an even length >= 2, got {size}")
  lo, hi = wavelet_filters(wavelet)
  half = len(lo) // 2
  matrix = np.zeros((size, size))
  for k in range(size // 2):
    for j in range(len(lo)):
      matrix[k, (2 * k + half - j) % size] += lo[j]
      matrix[size // 2 + k, (2 * k + half - j) % size] += hi[j]
  matrix.setflags(write=False)
  return matrix


def dwt2(x: Array, wavelet: str) -> tuple[Array, tuple[Array, Array, Array]]:
  """One level over the last two axes: (cA, (cH, cV, cD)), each (…, H/2, W/2)."""
  height, width = x.shape[-2:]
  rows = jnp.asarray(analysis_matrix(height, wavelet), x.dtype)
  cols = jnp.asarray(analysis_matrix(width, wavelet), x.dtype)
  y = jnp.einsum("ij,...jk,lk->...il", rows, x, cols, precision=jax.lax.Precision.HIGHEST)
  h, w = height // 2, width // 2
  return y[..., :h, :w], (y[..., h:, :w], y[..., :h, w:], y[..., h:, w:])


def idwt2(approx: Array, details: tuple[Array, Array, Array], wavelet: str) -> Array:
  """The inverse of `dwt2` (its transpose): images (…, 2h, 2w)."""
  horizontal, vertical, diagonal = details
  y = jnp.concatenate([jnp.concatenate([approx, vertical], axis=-1),
                       jnp.concatenate([horizontal, diagonal], axis=-1)], axis=-2)
  height, width = y.shape[-2:]
  rows = jnp.asarray(analysis_matrix(height, wavelet), y.dtype)
  cols = jnp.asarray(analysis_matrix(width, wavelet), y.dtype)
  return jnp.einsum("ji,...jl,lk->...ik", rows, y, cols, precision=jax.lax.Precision.HIGHEST)


def wavedec2(x: Array, wavelet: str, levels: int) -> Coefficients:
  """`levels` levels of the periodic DWT of images x (…, H, W): PyWavelets' wavedec2 layout.

  Args:
    x: images, (…, H, W), H and W multiples of 2^levels.
    wavelet: an orthogonal PyWavelets wavelet name ('haar', 'db2', 'sym4', ...).
    levels: n ≥ 1.
  """
  check_levels(x.shape[-2:], levels)
  wavelet_filters(wavelet)
  details = []
  approx = x
  for _ in range(levels):
    approx, detail = dwt2(approx, wavelet)
    details.append(detail)
  return [approx, *details[::-1]]


def waverec2(coefficients: Coefficients, wavelet: str) -> Array:
  """The inverse of `wavedec2` (its transpose, the transform being orthogonal): images (…, H, W)."""
  wavelet_filters(wavelet)
  approx = coefficients[0]
  for details in coefficients[1:]:
    approx = idwt2(approx, tuple(details), wavelet)
  return approx


def subband_shapes(shape: Sequence[int], levels: int) -> list[tuple[int, int]]:
  """The (h, w) of the coefficients of each level, finest first: level ℓ (1-based) is (H/2^ℓ, W/2^ℓ)."""
  return [(shape[0] // 2 ** level, shape[1] // 2 ** level) for level in range(1, levels + 1)]
