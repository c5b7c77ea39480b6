"""Image statistics against closed forms on synthetic images: derivatives by hand, KL of known
distributions, Gaussian and Laplace kurtosis, 1/f^α spectra, AR(1) and constant-plus-noise correlations,
patches of known contrast; the summary, its table and its figure."""

import numpy as np
import pytest
from PIL import Image

from deepvision.diagnostics import image_stats
from deepvision.figures import image_stats_figure, viz


def _power_law_noise(rng, n, side, alpha):
  """n side×side images with power spectrum ∝ f^(−α): white noise with each FFT coefficient scaled
  by f^(−α/2) (the DC coefficient set to 0)."""
  fy, fx = np.meshgrid(np.fft.fftfreq(side), np.fft.fftfreq(side), indexing="ij")
  f = np.hypot(fy, fx)
  gain = np.where(f > 0, f, 1.0) ** (-alpha / 2) * (f > 0)
  return np.real(np.fft.ifft2(np.fft.fft2(rng.standard_normal((n, side, side))) * gain))


def _ar1_rows(rng, n, height, width, rho):
  """Images whose rows are stationary AR(1) processes x_j = ρ x_{j−1} + √(1 − ρ²) ε_j, x_0 ~ N(0, 1):
  the correlation of horizontal neighbours is ρ."""
  x = np.empty((n, height, width))
  x[:, :, 0] = rng.standard_normal((n, height))
  for j in range(1, width):
    x[:, :, j] = rho * x[:, :, j - 1] + np.sqrt(1 - rho ** 2) * rng.standard_normal((n, height))
  return x


def test_derivative_responses_are_the_pixel_differences():
  x = (np.arange(20.0).reshape(1, 4, 5) ** 2) % 7  # any image
  filters = image_stats.derivative_filters()
  horizontal = image_stats.filter_responses(x, filters["horizontal"])
  vertical = image_stats.filter_responses(x[..., None], filters["vertical"])  # (N, H, W, 1) too
  np.testing.assert_array_equal(horizontal, x[:, :, :-1] - x[:, :, 1:])
  np.testing.assert_array_equal(vertical, x[:, :-1, :] - x[:, 1:, :])
  # a stack of filters gives one response map per filter, each a correlation with it
  stack = np.array([[[1.0, 2.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 3.0]]])
  both = image_stats.filter_responses(x, stack)
  assert both.shape == (1, 2, 3, 4)
  np.testing.assert_array_equal(both[:, 0], x[:, :-1, :-1] + 2 * x[:, :-1, 1:])
  np.testing.assert_array_equal(both[:, 1], 3 * x[:, 1:, 1:])


def test_random_filters_have_zero_mean_unit_norm_and_follow_the_seed():
  filters = image_stats.random_zero_mean_filters(3, 6, 5)
  assert filters.shape == (6, 5, 5)
  np.testing.assert_allclose(filters.mean(axis=(1, 2)), 0.0, atol=1e-15)
  np.testing.assert_allclose(np.linalg.norm(filters, axis=(1, 2)), 1.0)
  np.testing.assert_array_equal(filters, image_stats.random_zero_mean_filters(3, 6, 5))
  np.testing.assert_array_equal(filters, image_stats.random_zero_mean_filters(np.random.default_rng(3), 6, 5))
  assert not np.allclose(filters, image_stats.random_zero_mean_filters(4, 6, 5))
  # a zero-mean filter ignores the brightness: a constant image responds 0
  np.testing.assert_allclose(image_stats.filter_responses(np.full((1, 7, 7), 5.0), filters), 0.0, atol=1e-12)


def test_histogram_uses_the_shared_edges_and_keeps_the_tails_in_the_end_bins():
  edges = np.array([-1.0, 0.0, 1.0])
  np.testing.assert_array_equal(image_stats.response_histogram([-10.0, 0.1, 0.2, 10.0], edges), [0.25, 0.75])
  edges = image_stats.histogram_edges(np.concatenate([np.linspace(-2, 2, 999), [100.0]]), bins=4, quantile=0.999)
  assert edges[0] == -edges[-1] and len(edges) == 5 and 1.9 < edges[-1] < 2.1  # the outlier is left out


def test_kl_is_zero_for_equal_histograms_positive_otherwise_and_matches_the_closed_form():
  p, q = np.array([0.5, 0.5]), np.array([0.9, 0.1])
  exact = 0.5 * np.log(0.5 / 0.9) + 0.5 * np.log(0.5 / 0.1)
  assert image_stats.kl_divergence(p, q, eps=0.0) == pytest.approx(exact, rel=1e-12)
  assert image_stats.kl_divergence(p, q) == pytest.approx(exact, rel=1e-4)  # default smoothing barely moves it
  assert image_stats.kl_divergence(q, p, eps=0.0) == pytest.approx(0.9 * np.log(1.8) + 0.1 * np.log(0.2))
  assert image_stats.kl_divergence(p, p) == 0.0
  assert image_stats.kl_divergence([3, 1, 0], [1, 1, 1]) > 0.2  # counts are normalised
  # an empty bin of q costs a large but finite amount
  assert 5.0 < image_stats.kl_divergence([0.5, 0.5], [1.0, 0.0]) < 10.0


def test_kurtosis_of_gaussian_and_laplace_samples():
  rng = np.random.default_rng(0)
  # sample kurtosis has standard deviation √(24/n) ≈ 0.008 (Gaussian) and ≈ √(2484/n) ≈ 0.08 (Laplace)
  assert image_stats.kurtosis(rng.standard_normal(400_000)) == pytest.approx(3.0, abs=0.04)
  assert image_stats.kurtosis(rng.laplace(size=400_000)) == pytest.approx(6.0, abs=0.3)
  assert image_stats.kurtosis([-1.0, 1.0]) == pytest.approx(1.0)  # two points: E x⁴ / (E x²)² = 1
  assert np.isnan(image_stats.kurtosis(np.ones(5)))


@pytest.mark.parametrize("alpha", [1.0, 2.0, 3.0])
def test_power_law_noise_has_slope_minus_alpha(alpha):
  images = _power_law_noise(np.random.default_rng(1), 8, 64, alpha)
  frequencies, power = image_stats.radial_power_spectrum(images)
  np.testing.assert_allclose(frequencies, np.arange(1, 33) / 64)
  assert image_stats.spectrum_slope(frequencies, power) == pytest.approx(-alpha, abs=0.1)


def test_white_noise_has_a_flat_spectrum_at_the_pixel_variance():
  images = 2.0 * np.random.default_rng(2).standard_normal((16, 32, 32))
  frequencies, power = image_stats.radial_power_spectrum(images)
  assert image_stats.spectrum_slope(frequencies, power) == pytest.approx(0.0, abs=0.1)
  assert np.mean(power) == pytest.approx(4.0, rel=0.05)  # |FFT|² / (H W) of white noise is its variance
  _, windowed = image_stats.radial_power_spectrum(images, window=True)
  assert image_stats.spectrum_slope(frequencies, windowed) == pytest.approx(0.0, abs=0.15)


def test_neighbour_correlation_of_known_fields():
  rng = np.random.default_rng(3)
  assert image_stats.neighbour_correlation(_ar1_rows(rng, 100, 32, 32, 0.7)) == pytest.approx(0.7, abs=0.01)
  # per-image constants c ~ N(0, 4) plus white noise of variance 1: correlation 4 / (4 + 1)
  constants = 2.0 * rng.standard_normal((4000, 1, 1))
  images = constants + rng.standard_normal((4000, 8, 8))
  assert image_stats.neighbour_correlation(images) == pytest.approx(0.8, abs=0.02)
  assert image_stats.neighbour_correlation(rng.standard_normal((50, 16, 16))) == pytest.approx(0.0, abs=0.02)
  # reported, not refused, for a collapsed or diverged sampler (as the deep gated MRF run needs)
  assert np.isnan(image_stats.neighbour_correlation(np.ones((2, 4, 4))))
  assert np.isnan(image_stats.neighbour_correlation(np.full((2, 4, 4), np.nan)))


def test_contrast_spread_of_patches_and_of_image_tiles_with_known_contrast():
  contrasts = np.arange(1.0, 12.0)
  pattern = np.array([1.0, -1.0, -1.0, 1.0])  # a 2×2 checkerboard, standard deviation 1
  expected = np.percentile(contrasts, 90) / np.percentile(contrasts, 10)  # 10 / 2
  assert image_stats.contrast_spread(contrasts[:, None] * pattern) == pytest.approx(expected)
  # images of 2×2 tiles: each image one contrast (4 tiles), a 5th row and column of junk left out
  tiles = contrasts[:, None, None] * np.tile(pattern.reshape(2, 2), (2, 2))
  images = np.pad(tiles, ((0, 0), (0, 1), (0, 1)), constant_values=1e6)
  deciles = np.percentile(np.repeat(contrasts, 4), (10, 90))
  assert image_stats.contrast_spread(images, patch_size=2) == pytest.approx(deciles[1] / deciles[0])
  # without a patch size each image is one patch
  assert image_stats.contrast_spread(tiles) == pytest.approx(expected)


def _smooth_and_white(rng):
  smooth = _ar1_rows(rng, 12, 32, 32, 0.9)
  smooth = (smooth + np.roll(smooth, 1, axis=1)) / np.sqrt(2)  # correlated down the columns too
  white = rng.standard_normal(smooth.shape) * smooth.std()
  return smooth, white


def test_image_statistics_tell_the_smooth_reference_from_white_noise():
  smooth, white = _smooth_and_white(np.random.default_rng(4))
  own = image_stats.image_statistics(smooth, smooth)
  other = image_stats.image_statistics(white, smooth)
  assert own["kl_derivative"] == own["kl_random"] == 0.0
  assert other["kl_derivative"] > 0.1 and other["kl_random"] > 0.05
  assert own["neighbour_correlation"] > 0.8 and abs(other["neighbour_correlation"]) < 0.05
  assert own["spectrum_slope"] < -1.5 and abs(other["spectrum_slope"]) < 0.2
  assert own["contrast_spread"] > other["contrast_spread"]
  assert other["kurtosis_derivative"] == pytest.approx(3.0, abs=0.2)  # Gaussian pixels, Gaussian differences
  for key in ("kurtosis_derivative", "kurtosis_random", "spectrum_slope", "neighbour_correlation",
              "contrast_spread"):
    assert other[f"reference_{key}"] == own[key]
  table = image_stats.statistics_table({"reference": own, "white noise": other})
  lines = table.splitlines()
  assert len(lines) == 4  # header, rule, one row per model
  assert lines[0] == ("| model | KL deriv. | KL random | kurt. deriv. | kurt. random | spectrum slope | "
                      "neighbour corr. | contrast p90/p10 |")
  assert lines[2].startswith("| reference | 0 | 0 |") and lines[3].startswith("| white noise |")
  assert lines[3].count("|") == len(image_stats.TABLE_COLUMNS) + 2


def test_the_figure_is_a_png_of_the_panel_size(tmp_path):
  smooth, white = _smooth_and_white(np.random.default_rng(5))
  curves = image_stats.image_statistics_curves({"white noise": white}, smooth, bins=21)
  assert list(curves["densities"]) == ["reference", "white noise"]
  for direction, edges in curves["edges"].items():
    density = curves["densities"]["reference"][direction]
    assert np.sum(density * np.diff(edges)) == pytest.approx(1.0)
  path = tmp_path / "stats.png"
  image_stats_figure.save_image_statistics_figure(str(path), curves, title="smooth vs white")
  with Image.open(path) as png:
    assert png.size == (round(3 * viz.PANEL_INCHES[0] * viz.DPI), round((viz.PANEL_INCHES[1] + 0.5) * viz.DPI))
    assert png.size == (1260, 350)
    assert png.text["Title"] == "smooth vs white"
  with pytest.raises(ValueError, match="'white noise' has densities but no spectrum|no spectrum"):
    image_stats_figure.save_image_statistics_figure(str(path), {**curves, "spectra": {"reference": (1, 1)}})
  with pytest.raises(ValueError, match="at least 3 bins"):
    image_stats_figure.save_image_statistics_figure(
        str(path), image_stats.image_statistics_curves({"white noise": white}, smooth, bins=2))


@pytest.mark.parametrize("call, message", [
    (lambda: image_stats.filter_responses(np.zeros((2, 4, 4, 3)), np.ones((2, 2))), r"grey images .*\(2, 4, 4, 3\)"),
    (lambda: image_stats.filter_responses(np.zeros((4, 4)), np.ones((2, 2))), r"\(N, H, W\).*got shape \(4, 4\)"),
    (lambda: image_stats.filter_responses(np.zeros((0, 4, 4)), np.ones((2, 2))), "images is empty"),
    (lambda: image_stats.filter_responses(np.zeros((1, 4, 4)), np.ones((5, 2))), r"5×2 are larger than the 4×4"),
    (lambda: image_stats.filter_responses(np.zeros((1, 4, 4)), np.ones(3)), r"one \(h, w\) filter"),
    (lambda: image_stats.random_zero_mean_filters(0, 3, 1), "size must be at least 2"),
    (lambda: image_stats.random_zero_mean_filters(-1, 3, 3), "seed must be an int >= 0"),
    (lambda: image_stats.kl_divergence([1, 0], [1, 0, 0]), "one length"),
    (lambda: image_stats.kl_divergence([0, 0], [1, 0]), "p must be finite, non-negative and not all zero"),
    (lambda: image_stats.response_histogram([1.0], [1.0, 0.0]), "increasing edges"),
    (lambda: image_stats.spectrum_slope([0.1, 0.2], [1.0, 1.0], band=(0.3, 0.4)), "fewer than 2 frequencies"),
    (lambda: image_stats.contrast_spread(np.zeros((1, 4, 4)), patch_size=5), "patch_size=5 is larger"),
    (lambda: image_stats.image_statistics(np.zeros((3, 16, 16)), np.zeros((0, 16, 16))), "reference is empty"),
    (lambda: image_stats.image_statistics(np.zeros((3, 6, 6)), np.zeros((3, 16, 16))),
     r"images of 6×6 pixels are smaller than filter_size=5, patch_size=8"),
    (lambda: image_stats.image_statistics(np.full((3, 16, 16), np.nan), np.zeros((3, 16, 16))), "non-finite"),
    (lambda: image_stats.statistics_table({}), "no rows"),
    (lambda: image_stats.statistics_table({"m": {"kl_derivative": 0.0}}), r"row 'm' lacks \['kl_random'"),
    (lambda: image_stats.image_statistics_curves({"reference": np.zeros((1, 8, 8))}, np.zeros((1, 8, 8))),
     "the reference's name"),
])
def test_bad_inputs_are_named(call, message):
  with pytest.raises(ValueError, match=message):
    call()
