r"""Image statistics for judging samples of image models against held-out photographs.

Natural images have a few well-known statistical signatures that a good generative model of images
must reproduce (Ranzato, Mnih, Susskind & Hinton, "Modeling natural images using gated MRFs", PAMI
2013, §6; Simoncelli & Olshausen, "Natural image statistics and neural representation", Annu. Rev.
Neurosci. 2001; Field, JOSA A 1987):

  * filter responses (derivatives [1, −1] and random zero-mean filters) are heavy-tailed: sharply
    peaked at 0 with long tails, kurtosis well above the Gaussian's 3; `response_histogram` bins
    them on edges fixed from the reference and `kl_divergence` compares a model's histogram with
    the reference's, KL(reference ‖ model) in nats;
  * the power spectrum falls as a power law, S(f) ∝ f^(−α) with α ≈ 2 (`radial_power_spectrum`,
    `spectrum_slope`);
  * neighbouring pixels are strongly correlated (`neighbour_correlation`);
  * contrast varies a lot from patch to patch: most patches are flat, a few hold edges, so the
    p90/p10 ratio of patch standard deviations is large (`contrast_spread`); a Gaussian model gives
    every patch about the same contrast (a spread near 1).

`image_statistics` gathers all of them for one set of images against a reference set and
`statistics_table` prints one markdown row per model; `image_statistics_curves` returns what
`deepvision.figures.image_stats_figure.save_image_statistics_figure` draws.

Images are grey, (N, H, W) or (N, H, W, 1), compared in the same pixel units as the reference (no
normalisation: a model whose samples are too faint or too bright shows it in the KL).

Example:
  >>> rows = {"reference": image_statistics(reference, reference),
  ...         "mcRBM": image_statistics(samples, reference)}
  >>> print(statistics_table(rows))
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence

import numpy as np

DEFAULT_BINS = 51  # histogram bins on the reference's robust range (odd: one bin centred on 0)
RANGE_QUANTILE = 0.999  # the histogram range is ± this quantile of the reference's |responses|
DEFAULT_BAND = (0.04, 0.4)  # cycles per pixel over which `spectrum_slope` fits the power law
KL_EPS = 1e-6  # probability added to every bin before the KL (see `kl_divergence`)

# (key of `image_statistics`, column header) of `statistics_table`, in order.
TABLE_COLUMNS = (
    ("kl_derivative", "KL deriv."),
    ("kl_random", "KL random"),
    ("kurtosis_derivative", "kurt. deriv."),
    ("kurtosis_random", "kurt. random"),
    ("spectrum_slope", "spectrum slope"),
    ("neighbour_correlation", "neighbour corr."),
    ("contrast_spread", "contrast p90/p10"),
)


# ----------------------------------------------------------------------------- inputs


def grey_images(images: object, name: str = "images", finite: bool = True) -> np.ndarray:
  """`images` as a float64 (N, H, W) array, checked.

  Raises:
    ValueError: not (N, H, W) or (N, H, W, 1), no images, or (with `finite`) NaN or inf values.
  """
  array = np.asarray(images, np.float64)
  if array.ndim == 4 and array.shape[-1] == 1:
    array = array[..., 0]
  if array.ndim != 3:
    raise ValueError(f"{name} must be grey images (N, H, W) or (N, H, W, 1), got shape {array.shape}")
  if 0 in array.shape:
    raise ValueError(f"{name} is empty (shape {array.shape}): need at least one image of at least 1×1 pixels")
  if finite and not np.all(np.isfinite(array)):
    raise ValueError(f"{name} holds non-finite values (NaN or inf)")
  return array


def _positive_int(name: str, value: object) -> int:
  if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
    raise ValueError(f"{name} must be a positive int, got {value!r}")
  return int(value)


# ----------------------------------------------------------------------------- filters


def derivative_filters() -> dict[str, np.ndarray]:
  """The derivative filters: {"horizontal": [[1, −1]] (1×2), "vertical": [[1], [−1]] (2×1)}.

  With `filter_responses` (a correlation), the horizontal response at (i, j) is x[i, j] − x[i, j+1]
  and the vertical one x[i, j] − x[i+1, j].
  """
  return {"horizontal": np.array([[1.0, -1.0]]), "vertical": np.array([[1.0], [-1.0]])}


def random_zero_mean_filters(seed: int | np.random.Generator, n: int, size: int) -> np.ndarray:
  """`n` random (size, size) filters with zero mean and unit Euclidean norm.

  Entries are drawn from N(0, 1) by `np.random.default_rng(seed)`, then each filter has its mean
  removed (so it ignores the local mean brightness, like a derivative) and is divided by its norm
  (so responses are on the scale of the pixels). The same seed gives the same filters.

  Args:
    seed: an int seed, or a numpy Generator (drawn from, so it advances).
    n: number of filters.
    size: side of each filter (at least 2: a 1×1 zero-mean filter is 0).

  Returns:
    (n, size, size) float64 filters.
  """
  if not isinstance(seed, np.random.Generator) and (
      isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0):
    raise ValueError(f"seed must be an int >= 0 or a numpy Generator, got {seed!r}")
  n = _positive_int("n", n)
  size = _positive_int("size", size)
  if size < 2:
    raise ValueError(f"size must be at least 2 (a 1×1 zero-mean filter is all zeros), got {size}")
  rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
  filters = rng.standard_normal((n, size, size))
  filters -= filters.mean(axis=(1, 2), keepdims=True)
  return filters / np.linalg.norm(filters, axis=(1, 2), keepdims=True)


def filter_responses(images: object, filters: object) -> np.ndarray:
  r"""'Valid' 2-D responses of grey images to filters (a correlation, as conv layers compute).

  r_k[n, i, j] = Σ_{a, b} f_k[a, b] · x[n, i + a, j + b],  0 ≤ i ≤ H − h, 0 ≤ j ≤ W − w.

  Args:
    images: (N, H, W) or (N, H, W, 1).
    filters: one (h, w) filter or a stack (K, h, w) of filters of one size.

  Returns:
    (N, H − h + 1, W − w + 1) for one filter, (N, K, H − h + 1, W − w + 1) for a stack.

  Raises:
    ValueError: bad image shape, a filter that is not 2-D or 3-D, or larger than the images.
  """
  x = grey_images(images)
  f = np.asarray(filters, np.float64)
  if f.ndim not in (2, 3) or 0 in f.shape:
    raise ValueError(f"filters must be one (h, w) filter or a (K, h, w) stack, got shape {f.shape}")
  stack = f if f.ndim == 3 else f[None]
  h, w = stack.shape[1:]
  height, width = x.shape[1:]
  if h > height or w > width:
    raise ValueError(f"filters of size {h}×{w} are larger than the {height}×{width} images")
  out = np.zeros((x.shape[0], stack.shape[0], height - h + 1, width - w + 1))
  for a in range(h):
    for b in range(w):
      window = x[:, a:a + height - h + 1, b:b + width - w + 1]
      out += stack[None, :, a, b, None, None] * window[:, None]
  return out if f.ndim == 3 else out[:, 0]


# ----------------------------------------------------------------------------- histograms


def histogram_edges(reference_responses: object, bins: int = DEFAULT_BINS,
                    quantile: float = RANGE_QUANTILE) -> np.ndarray:
  """`bins` + 1 equal bins on [−m, m], m the `quantile` of the reference's |responses|.

  A robust, symmetric range (responses of zero-mean filters are centred on 0) fixed from the
  reference, so that a model's responses and the reference's are binned the same way.
  """
  bins = _positive_int("bins", bins)
  if not 0.0 < quantile <= 1.0:
    raise ValueError(f"quantile must be in (0, 1], got {quantile!r}")
  values = np.abs(np.asarray(reference_responses, np.float64)).ravel()
  if values.size == 0:
    raise ValueError("no reference responses to fix the histogram range from")
  m = float(np.quantile(values, quantile))
  if not m > 0.0:
    m = float(values.max()) or 1.0  # a mostly flat reference: widen to its largest response (or ±1)
  return np.linspace(-m, m, bins + 1)


def response_histogram(responses: object, bins: object) -> np.ndarray:
  """The probability of each bin: counts of `responses` on the shared edges `bins`, summing to 1.

  Responses beyond the edges are counted in the first or last bin (clipped), so no mass is lost:
  the heavy tails a model gets wrong still weigh in the KL. Divide by `np.diff(bins)` for a density.

  Args:
    responses: any array of filter responses.
    bins: increasing bin edges (e.g. `histogram_edges` of the reference's responses).
  """
  edges = np.asarray(bins, np.float64)
  if edges.ndim != 1 or edges.size < 2 or not np.all(np.diff(edges) > 0):
    raise ValueError(f"bins must be at least 2 increasing edges, got {edges!r}")
  values = np.asarray(responses, np.float64).ravel()
  if values.size == 0:
    raise ValueError("no responses to histogram")
  counts, _ = np.histogram(np.clip(values, edges[0], edges[-1]), edges)
  return counts / values.size


def kl_divergence(p: object, q: object, eps: float = KL_EPS) -> float:
  r"""KL(p ‖ q) = Σ_i p_i log(p_i / q_i) in nats, after smoothing both histograms.

  Each of p and q has `eps` added to every bin and is renormalised to sum to 1, so a bin that is
  empty in q but not in p costs a large, finite amount instead of infinity.

  Raises:
    ValueError: shapes differ, negative entries, an all-zero histogram, or eps < 0.
  """
  p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
  if p.shape != q.shape or p.ndim != 1 or p.size == 0:
    raise ValueError(f"p and q must be 1-D histograms of one length, got shapes {p.shape} and {q.shape}")
  if not eps >= 0:
    raise ValueError(f"eps must be >= 0, got {eps!r}")
  for name, h in (("p", p), ("q", q)):
    if np.any(h < 0) or not np.all(np.isfinite(h)) or h.sum() <= 0:
      raise ValueError(f"{name} must be finite, non-negative and not all zero, got {h!r}")
  p = (p + eps) / (p + eps).sum()
  q = (q + eps) / (q + eps).sum()
  mass = p > 0
  return float(np.sum(p[mass] * np.log(p[mass] / q[mass])))


def kurtosis(x: object) -> float:
  r"""The (non-excess) kurtosis E[(x − μ)⁴] / σ⁴ of all values of `x`.

  A Gaussian gives 3, a Laplace 6, a uniform 1.8; filter responses of natural images give 10 or more.
  NaN for constant values (zero variance: a collapsed sampler's flat images).
  """
  x = np.asarray(x, np.float64).ravel()
  if x.size < 2:
    raise ValueError(f"kurtosis needs at least 2 values, got {x.size}")
  centred = x - x.mean()
  variance = np.mean(centred ** 2)
  if variance == 0:
    return float("nan")
  return float(np.mean(centred ** 4) / variance ** 2)


# ----------------------------------------------------------------------------- spectrum


def radial_power_spectrum(images: object, window: bool = False) -> tuple[np.ndarray, np.ndarray]:
  r"""The mean power |FFT|² per integer radius, images' means removed.

  For each image x (mean removed, multiplied by a separable Hann window if `window`), the power is
  S(k_y, k_x) = |Σ x e^{−2πi(k_y y / H + k_x x / W)}|² / (H W). A frequency (f_y, f_x) in cycles per
  pixel has radius r = round(L · √(f_y² + f_x²)), L = min(H, W); the spectrum is the mean of S over
  the frequencies of each radius r = 1 … L // 2 and over the images. Unwindowed (the default), the
  image is treated as periodic: the jumps at its borders add power along the axes; a window removes
  them at the cost of some resolution.

  Returns:
    (frequencies r / L in cycles per pixel, the mean power at each), both of length L // 2.
  """
  x = grey_images(images)
  height, width = x.shape[1:]
  side = min(height, width)
  if side < 4:
    raise ValueError(f"images of {height}×{width} pixels are too small for a spectrum (need at least 4×4)")
  x = x - x.mean(axis=(1, 2), keepdims=True)
  if window:
    x = x * np.outer(np.hanning(height), np.hanning(width))
  power = np.mean(np.abs(np.fft.fft2(x)) ** 2, axis=0) / (height * width)
  fy, fx = np.meshgrid(np.fft.fftfreq(height), np.fft.fftfreq(width), indexing="ij")
  radius = np.rint(side * np.hypot(fy, fx)).astype(int)
  radii = np.arange(1, side // 2 + 1)
  sums = np.bincount(radius.ravel(), power.ravel(), minlength=side // 2 + 1)
  counts = np.bincount(radius.ravel(), minlength=side // 2 + 1)
  return radii / side, sums[radii] / counts[radii]


def spectrum_slope(frequencies: object, power: object,
                   band: tuple[float, float] = DEFAULT_BAND) -> float:
  r"""The least-squares slope of log S against log f over the band low ≤ f ≤ high (cycles per pixel).

  A power law S ∝ f^(−α) gives −α: natural images about −2, white noise 0. Photographs that were
  blurred or compressed fall faster at high frequencies (scikit-image's camera, 64² crops: about −2.7
  over the default band; grass about −2.1).

  Raises:
    ValueError: fewer than 2 frequencies in the band, or a non-positive power in it.
  """
  f, s = np.asarray(frequencies, np.float64), np.asarray(power, np.float64)
  low, high = band
  if f.shape != s.shape or f.ndim != 1:
    raise ValueError(f"frequencies and power must be 1-D of one length, got {f.shape} and {s.shape}")
  if not 0 < low < high:
    raise ValueError(f"band must be (low, high) with 0 < low < high cycles per pixel, got {band!r}")
  inside = (f >= low) & (f <= high)
  if inside.sum() < 2:
    raise ValueError(f"fewer than 2 frequencies in the band {band} (frequencies {f.min():.3g} … {f.max():.3g}): "
                     "use larger images or a wider band")
  if np.any(s[inside] <= 0):
    raise ValueError("the power is zero in the band (constant images?): no slope")
  slope, _ = np.polyfit(np.log(f[inside]), np.log(s[inside]), 1)
  return float(slope)


# ----------------------------------------------------------------------------- pixels and patches


def neighbour_correlation(images: object) -> float:
  """The Pearson correlation of horizontally adjacent pixels, x[n, i, j] with x[n, i, j + 1], pooled
  over all images and positions.

  NaN when the pixels are constant (zero variance) or hold NaN (a diverged sampler's images are
  reported, not refused).
  """
  x = grey_images(images, finite=False)
  if x.shape[2] < 2:
    raise ValueError(f"images need at least 2 columns for a neighbour correlation, got shape {x.shape}")
  left, right = x[:, :, :-1].ravel(), x[:, :, 1:].ravel()
  left, right = left - left.mean(), right - right.mean()
  scale = np.sqrt(np.sum(left ** 2) * np.sum(right ** 2))
  return float(np.sum(left * right) / scale) if scale > 0 else float("nan")


def contrast_spread(patches: object, patch_size: int | None = None) -> float:
  """p90/p10 of the per-patch standard deviation (contrast).

  Natural patches are mostly flat with a few of high contrast (a wide spread); a Gaussian gives every
  patch about the same contrast (a spread near 1): the property a gated MRF is built to capture.
  Percentiles use numpy's linear interpolation; the p10 is floored at 1e-12; NaN pixels give NaN.

  Args:
    patches: (B, V) flattened patches, or grey images (N, H, W) / (N, H, W, 1): with `patch_size`,
      cut into non-overlapping patch_size × patch_size patches (a border that does not fill a patch
      is left out); without it, each image is one patch.
    patch_size: side of the patches cut from images.
  """
  array = np.asarray(patches, np.float64)
  if array.ndim == 2:
    if patch_size is not None:
      raise ValueError(f"patch_size={patch_size!r} applies to images (N, H, W), not to (B, V) patches")
    if 0 in array.shape:
      raise ValueError(f"patches is empty (shape {array.shape})")
    flat = array
  else:
    x = grey_images(array, "patches", finite=False)
    if patch_size is None:
      flat = x.reshape(len(x), -1)
    else:
      p = _positive_int("patch_size", patch_size)
      n, height, width = x.shape
      if p > height or p > width:
        raise ValueError(f"patch_size={p} is larger than the {height}×{width} images")
      rows, cols = height // p, width // p
      tiles = x[:, :rows * p, :cols * p].reshape(n, rows, p, cols, p).transpose(0, 1, 3, 2, 4)
      flat = tiles.reshape(-1, p * p)
  contrast = np.std(flat, axis=1)
  low, high = np.percentile(contrast, (10, 90))
  return float(high / max(low, 1e-12))


# ----------------------------------------------------------------------------- summaries


def _filter_groups(seed: int, num_random: int, filter_size: int) -> dict[str, list[np.ndarray]]:
  derivatives = derivative_filters()
  return {"derivative": [derivatives["horizontal"], derivatives["vertical"]],
          "random": list(random_zero_mean_filters(seed, num_random, filter_size))}


def image_statistics(images: object, reference: object, *, seed: int = 0, num_random: int = 4,
                     filter_size: int = 5, bins: int = DEFAULT_BINS, band: tuple[float, float] = DEFAULT_BAND,
                     patch_size: int = 8, window: bool = False) -> dict[str, float]:
  """Every statistic of this module for `images` against `reference` (held-out photographs).

  Per filter group ("derivative": horizontal and vertical [1, −1]; "random": `num_random` zero-mean
  filters of `filter_size`² from `seed`), each filter's responses are binned on edges fixed from
  the reference (`histogram_edges`) and compared by KL(reference ‖ images) (`kl_divergence`); the
  group's value is the mean over its filters; likewise the mean kurtosis of the responses.

  Returns:
    {"kl_derivative", "kl_random", "kurtosis_derivative", "kurtosis_random", "spectrum_slope",
    "neighbour_correlation", "contrast_spread"} for `images`, and the same statistics of the
    reference under "reference_kurtosis_derivative", …, "reference_contrast_spread" (its KL to
    itself is 0). `image_statistics(reference, reference)` is the reference's own table row.

  Raises:
    ValueError: bad images or reference (shape, empty, non-finite), filters larger than them, or bad
      settings; before any compute.
  """
  x = grey_images(images)
  ref = grey_images(reference, "reference")
  num_random = _positive_int("num_random", num_random)
  filter_size = _positive_int("filter_size", filter_size)
  patch_size = _positive_int("patch_size", patch_size)
  for name, array in (("images", x), ("reference", ref)):
    if min(array.shape[1:]) < max(filter_size, patch_size, 4):
      raise ValueError(f"{name} of {array.shape[1]}×{array.shape[2]} pixels are smaller than filter_size="
                       f"{filter_size}, patch_size={patch_size} or the spectrum's 4×4")
  stats: dict[str, float] = {}
  for group, filters in _filter_groups(seed, num_random, filter_size).items():
    kls, kurts, ref_kurts = [], [], []
    for f in filters:
      r_model, r_ref = filter_responses(x, f), filter_responses(ref, f)
      edges = histogram_edges(r_ref, bins)
      kls.append(kl_divergence(response_histogram(r_ref, edges), response_histogram(r_model, edges)))
      kurts.append(kurtosis(r_model))
      ref_kurts.append(kurtosis(r_ref))
    stats[f"kl_{group}"] = float(np.mean(kls))
    stats[f"kurtosis_{group}"] = float(np.mean(kurts))
    stats[f"reference_kurtosis_{group}"] = float(np.mean(ref_kurts))
  for prefix, array in (("", x), ("reference_", ref)):
    stats[f"{prefix}spectrum_slope"] = spectrum_slope(*radial_power_spectrum(array, window), band)
    stats[f"{prefix}neighbour_correlation"] = neighbour_correlation(array)
    stats[f"{prefix}contrast_spread"] = contrast_spread(array, patch_size)
  return stats


def statistics_table(rows: Mapping[str, Mapping[str, float]],
                     columns: Sequence[tuple[str, str]] = TABLE_COLUMNS) -> str:
  """A markdown table: one row per model (in the order given), one column per statistic.

  Args:
    rows: {model name: `image_statistics` of its samples}; add the reference's own row with
      `image_statistics(reference, reference)`.
    columns: (key, header) pairs (default `TABLE_COLUMNS`).

  Raises:
    ValueError: no rows, or a row without one of the columns' keys.
  """
  if not rows:
    raise ValueError("no rows: pass {model name: image_statistics(...)}")
  for name, row in rows.items():
    missing = [key for key, _ in columns if key not in row]
    if missing:
      raise ValueError(f"row {name!r} lacks {missing}; expected the keys of image_statistics: "
                       f"{[key for key, _ in columns]}")
  lines = ["| model | " + " | ".join(header for _, header in columns) + " |",
           "|---|" + "---:|" * len(columns)]
  for name, row in rows.items():
    lines.append(f"| {name} | " + " | ".join(f"{float(row[key]):.3g}" for key, _ in columns) + " |")
  return "\n".join(lines)


def image_statistics_curves(models: Mapping[str, object], reference: object, *,
                            reference_name: str = "reference", bins: int = DEFAULT_BINS,
                            window: bool = False) -> dict:
  """The curves `save_image_statistics_figure` draws: derivative histograms and radial spectra.

  Args:
    models: {name: images} of each model's samples.
    reference: the held-out photographs (drawn first, under `reference_name`).
    bins: histogram bins, on edges fixed from the reference's responses.
    window: Hann window before the FFT (`radial_power_spectrum`).

  Returns:
    {"edges": {"horizontal": e, "vertical": e}, "densities": {name: {"horizontal": d, "vertical": d}},
    "spectra": {name: (frequencies, power)}}, the reference first; d integrates to 1 over e.
  """
  if not models:
    raise ValueError("no models: pass {name: images}")
  if reference_name in models:
    raise ValueError(f"a model is called {reference_name!r}, the reference's name: rename it or pass "
                     "another reference_name")
  sets = {reference_name: grey_images(reference, "reference")}
  sets.update({name: grey_images(images, f"images of {name!r}") for name, images in models.items()})
  curves: dict = {"edges": {}, "densities": {name: {} for name in sets}, "spectra": {}}
  for direction, f in derivative_filters().items():
    edges = histogram_edges(filter_responses(sets[reference_name], f), bins)
    curves["edges"][direction] = edges
    for name, images in sets.items():
      curves["densities"][name][direction] = response_histogram(filter_responses(images, f), edges) / np.diff(edges)
  for name, images in sets.items():
    curves["spectra"][name] = radial_power_spectrum(images, window)
  return curves
