r"""The marginal wavelet model: independent generalised-Gaussian coefficients of an orthogonal wavelet pyramid.

Simoncelli, "Statistical modeling of photographic images", Handbook of Image and Video Processing, 2005 (and
Mallat, PAMI 1989; Simoncelli & Adelson 1996): the coefficients of a wavelet transform of natural images
have sharply peaked, heavy-tailed marginals, well fitted by a generalised Gaussian per subband. Here the
transform W is the orthogonal periodic DWT of `deepvision.nn.wavelets` (n levels of an orthogonal
PyWavelets wavelet); subband b (level ℓ, orientation H, V or D) has n_b coefficients c, each with density
GG(c; s_b, β_b) = β_b / (2 s_b Γ(1/β_b)) · exp(−|c/s_b|^β_b), and the n_a lowpass coefficients a are
N(m, σ²). W being orthogonal (|det W| = 1), the log-likelihood is exact:

  F(x) = Σ_b Σ_{c ∈ b} |c/s_b|^β_b + Σ_a (a − m)² / (2σ²),        (c, a) = W x,
  log Z = Σ_b n_b log(2 s_b Γ(1/β_b) / β_b) + n_a (½ log 2π + log σ),     log p(x) = −F(x) − log Z.

For HMC with β < 1 the energy's gradient is unbounded near c = 0; `epsilon` > 0 replaces |c| by
sqrt(c² + ε²) (a smooth energy; `log_partition` stays that of ε = 0, an approximation then).

Fit (`WaveletPrior.fit`): per subband the maximum-likelihood (s, β) (`fit_generalized_gaussian`: for a given
β the ML scale is s^β = (β/n) Σ|c|^β; the profile likelihood is maximised over β by a bounded 1-D search),
the lowpass band's mean and standard deviation. Sampling is exact (`sample`): |c| = s·G^(1/β) with
G ~ Gamma(1/β, 1) and a random sign, a ~ N(m, σ²), then x = Wᵀ(c, a).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import scipy.special

from deepvision.models.grey_images import (
  GreyImageModel,
  image_shape_field,
  non_negative_number,
  positive_number,
)
from deepvision.models.tiling import positive_int
from deepvision.nn import wavelets

Array = jax.Array
_LOG_2PI = math.log(2.0 * math.pi)
SHAPE_BOUNDS = (0.1, 10.0)  # the β range `fit_generalized_gaussian` searches


def generalized_gaussian_log_norm(scale: Any, shape: Any) -> Any:
  """log(2 s Γ(1/β) / β): the log normaliser of GG(c; s, β), elementwise."""
  return math.log(2.0) + jnp.log(scale) + jax.scipy.special.gammaln(1.0 / shape) - jnp.log(shape)


def fit_generalized_gaussian(coefficients: Any) -> tuple[float, float]:
  """The maximum-likelihood (s, β) of zero-mean generalised-Gaussian data, float64.

  For a given β the ML scale is s(β) = ((β/n) Σ|c|^β)^(1/β), and then Σ|c/s|^β = n/β, so the profile
  log-likelihood per coefficient is log β − log 2 − log s(β) − log Γ(1/β) − 1/β; it is maximised over
  log β in `SHAPE_BOUNDS` by golden-section search (`golden_section_minimum`).

  Raises:
    ValueError: fewer than 2 values, non-finite values, or all zero.
  """
  c = np.abs(np.asarray(coefficients, np.float64).reshape(-1))
  if c.size < 2 or not np.all(np.isfinite(c)) or not np.any(c > 0):
    raise ValueError(f"fit_generalized_gaussian needs at least 2 finite values, not all zero; got "
                     f"{c.size} value(s) with {int(np.sum(~np.isfinite(c)))} non-finite and max |c| = "
                     f"{float(np.max(c)) if c.size else 'n/a'}")
  log_c = np.log(c[c > 0])  # exact zeros add nothing to Σ|c|^β but count in n

  def scale(beta: float) -> float:
    # log s = (1/β) log((β/n) Σ|c|^β), with the sum in log space (|c|^β spans many decades for large β).
    log_sum = scipy.special.logsumexp(beta * log_c)
    return math.exp((math.log(beta / c.size) + log_sum) / beta)

  def negative_profile(log_beta: float) -> float:
    beta = math.exp(log_beta)
    return -(math.log(beta) - math.log(2.0) - math.log(scale(beta)) - scipy.special.gammaln(1.0 / beta)
             - 1.0 / beta)

  beta = math.exp(golden_section_minimum(negative_profile, *np.log(SHAPE_BOUNDS)))
  return scale(beta), beta


def golden_section_minimum(f: Any, low: float, high: float, tolerance: float = 1e-10) -> float:
  """The minimiser of a unimodal f on [low, high], to `tolerance`, by golden-section search (Kiefer 1953).

  Each step keeps the sub-interval that holds the smaller of two interior values, shrinking the bracket by
  1/φ ≈ 0.618 for one new evaluation (about 50 evaluations from a bracket of width 4.6 to 1e-10). Written
  here rather than taken from `scipy.optimize`, whose import would add a third of a second to every start
  of the launcher (the zoo imports this module).
  """
  shrink = (math.sqrt(5.0) - 1.0) / 2.0
  a, b = float(low), float(high)
  c, d = b - shrink * (b - a), a + shrink * (b - a)
  fc, fd = f(c), f(d)
  while b - a > tolerance:
    if fc < fd:  # the minimum lies in [a, d]
      b, d, fd = d, c, fc
      c = b - shrink * (b - a)
      fc = f(c)
    else:  # in [c, b]
      a, c, fc = c, d, fd
      d = a + shrink * (b - a)
      fd = f(d)
  return 0.5 * (a + b)


class WaveletPrior(GreyImageModel):
  r"""Independent generalised-Gaussian wavelet coefficients of H × W grey images (module docstring).

  Parameters: `log_scale` and `log_shape`, (levels, 3): log s and log β of subband (level ℓ, orientation),
  level 1 (the finest) first, orientations (H, V, D) as `pywt.wavedec2`'s (cH, cV, cD); `low_mean` m and
  `low_log_std` log σ of the lowpass band.

  Attributes:
    image_shape: (H, W), both multiples of 2^levels.
    wavelet: an orthogonal PyWavelets wavelet ('haar', 'db2', 'sym4', 'coif1', ...).
    levels: n ≥ 1, the pyramid's levels.
    epsilon: ε ≥ 0; > 0 smooths |c| as sqrt(c² + ε²) (module docstring). 0 (default): the exact model.
    scale_init, shape_init: the initial s and β of every subband (before `fit`); the lowpass band starts
      at m = 0, σ = 2^levels (the gain of the lowpass pyramid on white noise is 1; on images of unit
      variance per pixel with a smooth mean the lowpass coefficients reach ±2^levels).
  """

  wavelet: str = "db2"
  levels: int = 3
  epsilon: float = 0.0
  scale_init: float = 1.0
  shape_init: float = 1.0

  def __post_init__(self):
    super().__post_init__()
    name = type(self).__name__
    wavelets.wavelet_filters(self.wavelet)
    positive_int(f"{name}.levels", self.levels)
    wavelets.check_levels(self.image_shape, self.levels)
    non_negative_number(f"{name}.epsilon", self.epsilon)
    positive_number(f"{name}.scale_init", self.scale_init)
    positive_number(f"{name}.shape_init", self.shape_init)

  def setup(self):
    def constant(value):
      return lambda key, shape, dtype=jnp.float32: jnp.full(shape, value, dtype)

    bands = (self.levels, len(wavelets.ORIENTATIONS))
    self.log_scale = self.param("log_scale", constant(math.log(self.scale_init)), bands)
    self.log_shape = self.param("log_shape", constant(math.log(self.shape_init)), bands)
    self.low_mean = self.param("low_mean", constant(0.0), ())
    self.low_log_std = self.param("low_log_std", constant(self.levels * math.log(2.0)), ())

  # Transform ----------------------------------------------------------------------------------

  def coefficients(self, x: Any) -> list:
    """W x as `pywt.wavedec2` lays it out: [cA_n, (cH_n, cV_n, cD_n), …, (cH_1, cV_1, cD_1)]."""
    return wavelets.wavedec2(self.images(x), self.wavelet, self.levels)

  def band_counts(self) -> tuple[np.ndarray, int]:
    """(n_b per (level, orientation) (levels, 3), n_a): the coefficients per image of every band."""
    sizes = [h * w for h, w in wavelets.subband_shapes(self.image_shape, self.levels)]
    counts = np.repeat(np.asarray(sizes)[:, None], len(wavelets.ORIENTATIONS), axis=1)
    return counts, sizes[-1]

  # Energies -----------------------------------------------------------------------------------

  def _magnitude_power(self, c: Array, beta: Array) -> Array:
    """|c|^β, or (c² + ε²)^(β/2) with ε > 0."""
    if self.epsilon > 0:
      return (c * c + self.epsilon ** 2) ** (0.5 * beta)
    return jnp.abs(c) ** beta

  def subband_energies(self, x: Any) -> Array:
    """Σ_{c ∈ b} |c/s_b|^β_b per image and subband, (B, levels, 3), level 1 first."""
    coefficients = self.coefficients(x)
    scale, shape = jnp.exp(self.log_scale), jnp.exp(self.log_shape)
    rows = []
    for level in range(1, self.levels + 1):
      details = coefficients[self.levels + 1 - level]  # the list holds the coarsest level first
      rows.append(jnp.stack([
          jnp.sum(self._magnitude_power(band, shape[level - 1, o]), axis=(-2, -1))
          / scale[level - 1, o] ** shape[level - 1, o]
          for o, band in enumerate(details)], axis=-1))
    return jnp.stack(rows, axis=-2)

  def lowpass_energy(self, x: Any) -> Array:
    """Σ_a (a − m)²/(2σ²) per image, (B,)."""
    low = (self.coefficients(x)[0] - self.low_mean) / jnp.exp(self.low_log_std)
    return 0.5 * jnp.sum(low * low, axis=(-2, -1))

  def free_energy(self, x: Any) -> Array:
    """F(x) = Σ_b Σ_c |c/s_b|^β_b + Σ_a (a − m)²/(2σ²), (B,)."""
    return jnp.sum(self.subband_energies(x), axis=(-2, -1)) + self.lowpass_energy(x)

  def log_partition(self) -> Array:
    """log Z = Σ_b n_b log(2 s_b Γ(1/β_b)/β_b) + n_a (½ log 2π + log σ) (exact for ε = 0)."""
    counts, low_count = self.band_counts()
    norms = generalized_gaussian_log_norm(jnp.exp(self.log_scale), jnp.exp(self.log_shape))
    return jnp.sum(counts * norms) + low_count * (0.5 * _LOG_2PI + self.low_log_std)

  def log_prob(self, x: Any) -> Array:
    """log p(x) = −F(x) − log Z per image, (B,) (exact for ε = 0)."""
    return -self.free_energy(x) - self.log_partition()

  def sample(self, key: Array, n: int) -> Array:
    """n exact draws (ε = 0): GG coefficients and a Gaussian lowpass band, inverted. (n, H, W)."""
    n = positive_int("n (the number of samples)", n)
    dtype = jnp.asarray(self.log_scale).dtype  # canonical: float32 unless x64 is on
    counts, _ = self.band_counts()
    # Every detail coefficient of an image, level 1 first, subbands in (H, V, D) order, in one draw:
    # G ~ Gamma(1/β_b, 1), |c| = s_b G^(1/β_b), a random sign.
    beta = jnp.repeat(jnp.exp(self.log_shape).reshape(-1), counts.reshape(-1), total_repeat_length=counts.sum())
    scale = jnp.repeat(jnp.exp(self.log_scale).reshape(-1), counts.reshape(-1), total_repeat_length=counts.sum())
    gamma_key, sign_key, low_key = jax.random.split(key, 3)
    gamma = jax.random.gamma(gamma_key, 1.0 / beta, (n, beta.size), dtype)
    flat = jax.random.rademacher(sign_key, (n, beta.size), dtype) * scale * gamma ** (1.0 / beta)
    sizes = wavelets.subband_shapes(self.image_shape, self.levels)
    bands = jnp.split(flat, np.cumsum(counts.reshape(-1))[:-1], axis=1)
    details = [tuple(bands[3 * (level - 1) + o].reshape(n, *sizes[level - 1])
                     for o in range(len(wavelets.ORIENTATIONS)))
               for level in range(1, self.levels + 1)]
    low = self.low_mean + jnp.exp(self.low_log_std) * jax.random.normal(low_key, (n, *sizes[-1]), dtype)
    return wavelets.waverec2([low, *details[::-1]], self.wavelet)

  def __call__(self, x: Any, train: bool = False) -> tuple[Array, dict[str, Array]]:
    """(F(x) (B,), {'subbands': Σ|c/s|^β per subband (B, levels, 3)})."""
    del train
    return self.free_energy(x), {"subbands": self.subband_energies(x)}

  @classmethod
  def fit(cls, images: Any, **fields: Any) -> tuple[WaveletPrior, dict[str, Any]]:
    """Maximum-likelihood GG parameters per subband and the lowpass Gaussian's, from (B, H, W) images.

    Args:
      images: (B, H, W) real finite grey images, H and W multiples of 2^levels.
      **fields: wavelet, levels, epsilon (the fit is that of ε = 0).

    Returns:
      (model, {'params': ...}) as NumPy float64.

    Raises:
      ValueError: a bad stack of images or fields, or a band with fewer than 2 values (the lowpass band
        needs B·n_a ≥ 2).
    """
    if "image_shape" in fields:
      raise ValueError(f"{cls.__name__}.fit takes the image shape from the images (B, H, W); got "
                       f"image_shape={fields['image_shape']!r} as well")
    x = np.asarray(images)
    if x.ndim != 3 or not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
      raise ValueError(f"WaveletPrior.fit needs a (B, H, W) stack of real grey images, got shape "
                       f"{x.shape} and dtype {x.dtype}")
    if not np.all(np.isfinite(x)):
      raise ValueError(f"WaveletPrior.fit got {int(np.sum(~np.isfinite(x)))} non-finite values")
    model = cls(image_shape=image_shape_field(cls.__name__, x.shape[1:]), **fields)
    with jax.enable_x64():
      coefficients = jax.tree.map(np.asarray, wavelets.wavedec2(jnp.asarray(x, jnp.float64), model.wavelet,
                                                                model.levels))
    scale = np.zeros((model.levels, len(wavelets.ORIENTATIONS)))
    shape = np.zeros_like(scale)
    for level in range(1, model.levels + 1):
      for o, band in enumerate(coefficients[model.levels + 1 - level]):
        scale[level - 1, o], shape[level - 1, o] = fit_generalized_gaussian(band)
    low = coefficients[0].reshape(-1)
    if low.size < 2 or not np.std(low) > 0:
      raise ValueError(f"WaveletPrior.fit: the lowpass band has {low.size} value(s) with standard deviation "
                       f"{float(np.std(low)) if low.size else 'n/a'}; fit on more (or less uniform) images")
    params = {"log_scale": np.log(scale), "log_shape": np.log(shape), "low_mean": np.asarray(low.mean()),
              "low_log_std": np.asarray(np.log(low.std()))}
    return model, {"params": params}
