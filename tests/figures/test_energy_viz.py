"""Figures of energy-based models: exact tile layouts and scalings, PNG sizes, named errors."""

import matplotlib.image
import numpy as np
import pytest
from PIL import Image

from deepvision.data.patches import Standardizer
from deepvision.figures import energy_viz as ev

W_SMALL = np.array([
    # f0  f1   f2  f3   (columns are filters of 2 × 2 pixels, C order)
    [0., 10., -5., 7.],
    [1., 10., 5., 7.],
    [2., 10., -5., 7.],
    [3., 30., 5., 7.],
])
# Each filter scaled to [0, 1] on its own: f0 → [0, 1/3, 2/3, 1], f1 → [0, 0, 0, 1],
# f2 → [0, 1, 0, 1], f3 constant → 0. Tile k at row k // 2, column k % 2 (⌈√4⌉ = 2 columns),
# a white border of 1 pixel.
T = 1 / 3
GRID_SMALL = np.array([
    [1, 1, 1, 1, 1, 1, 1],
    [1, 0, T, 1, 0, 0, 1],
    [1, 2 * T, 1, 1, 0, 1, 1],
    [1, 1, 1, 1, 1, 1, 1],
    [1, 0, 1, 1, 0, 0, 1],
    [1, 0, 1, 1, 0, 0, 1],
    [1, 1, 1, 1, 1, 1, 1],
])


def test_filter_grid_places_each_filter_at_its_tile_with_its_own_scale():
  np.testing.assert_allclose(ev.weight_filter_grid(W_SMALL, (2, 2)), GRID_SMALL, atol=1e-15)
  np.testing.assert_allclose(ev.weight_filter_grid(W_SMALL, (2, 2, 1)), GRID_SMALL, atol=1e-15)
  # Scaling a filter does not change its picture; the first max_filters fill one row.
  np.testing.assert_allclose(ev.weight_filter_grid(W_SMALL * [1, 100, 0.01, 3], (2, 2)),
                             GRID_SMALL, atol=1e-12)
  np.testing.assert_allclose(ev.weight_filter_grid(W_SMALL, (2, 2), max_filters=2),
                             GRID_SMALL[:4], atol=1e-15)
  assert ev.weight_filter_grid(W_SMALL, (2, 2), columns=4).shape == (4, 13)


def test_filters_go_to_pixels_through_the_linear_part_of_the_inverse():
  # In pixel space the filter [1, 1, 1, 1] becomes w·s = [1, 2, 1, 2]; the mean (which alone
  # would make pixel 2 the brightest) is an offset, not part of a direction.
  scaler = Standardizer(mean=[0.0, 0.0, 50.0, 0.0], std=[1.0, 2.0, 1.0, 2.0])
  W = np.ones((4, 1))
  expected = np.array([[1, 1, 1, 1], [1, 0, 1, 1], [1, 0, 1, 1], [1, 1, 1, 1]], float)
  for to_pixels in (scaler, scaler.inverse, lambda z: z * scaler.std + scaler.mean):
    np.testing.assert_allclose(ev.weight_filter_grid(W, (2, 2), to_pixels=to_pixels), expected,
                               atol=1e-12)
  np.testing.assert_allclose(ev.weight_filter_grid(W, (2, 2)),  # without it: constant → 0
                             [[1, 1, 1, 1], [1, 0, 0, 1], [1, 0, 0, 1], [1, 1, 1, 1]])


def test_colour_filters_are_scaled_across_their_channels():
  W = np.arange(12.0)[:, None]  # one (2, 2, 3) filter
  grid = ev.weight_filter_grid(W, (2, 2, 3))
  assert grid.shape == (4, 4, 3)
  np.testing.assert_allclose(grid[1:3, 1:3], np.arange(12.0).reshape(2, 2, 3) / 11)


@pytest.mark.parametrize("W, shape, message", [
    (np.zeros((5, 3)), (2, 2), r"W has V = 5 rows \(shape \(5, 3\)\) but image_shape \(2, 2\) has 4 "
                               r"pixels"),
    (np.zeros(4), (2, 2), r"W must be a non-empty \(V, H\) weight matrix, got shape \(4,\)"),
    (np.zeros((8, 3)), (2, 2, 2), r"image_shape must be \(h, w\), \(h, w, 1\) or \(h, w, 3\).*"
                                  r"got \(2, 2, 2\)"),
    (np.zeros((4, 3)), (2, 0), r"got \(2, 0\)"),
])
def test_filter_shape_errors_name_the_values(W, shape, message):
  with pytest.raises(ValueError, match=message):
    ev.weight_filter_grid(W, shape)


def test_sample_chain_grid_rows_are_chains_columns_are_steps():
  steps, chains = 3, 2
  values = (np.arange(chains)[None, :] * 3 + np.arange(steps)[:, None]) / 10  # (steps, chains)
  grid = ev.sample_chain_grid(np.repeat(values[..., None], 4, axis=-1), (2, 2))
  assert grid.shape == (chains * 3 + 1, steps * 3 + 1)
  for c in range(chains):
    for t in range(steps):
      np.testing.assert_array_equal(grid[1 + 3 * c:3 + 3 * c, 1 + 3 * t:3 + 3 * t],
                                    (c * 3 + t) / 10)  # one common scale: value_range (0, 1)
  # value_range=None stretches the shown values to [0, 1]; values outside a range are clipped.
  stretched = ev.sample_chain_grid(np.repeat(values[..., None], 4, axis=-1), (2, 2), None)
  assert stretched[1, 1] == 0.0 and stretched[4, 7] == 1.0
  np.testing.assert_array_equal(ev.sample_chain_grid(np.full((1, 1, 4), 7.0), (2, 2))[1:3, 1:3], 1.0)
  with pytest.raises(ValueError, match=r"chains must be \(steps, num_chains, V\), got shape \(3, 4\)"):
    ev.sample_chain_grid(np.zeros((3, 4)), (2, 2))
  with pytest.raises(ValueError, match=r"images must be \(rows, columns, 4\).*got shape \(2, 3, 5\)"):
    ev.sample_chain_grid(np.zeros((3, 2, 5)), (2, 2))


def test_image_grid_fills_rows_and_leaves_unused_tiles_white():
  images = np.arange(5, dtype=float)[:, None] * np.ones((1, 4)) / 4  # image k constant k/4
  grid = ev.image_grid(images, (2, 2))  # ⌈√5⌉ = 3 columns, 2 rows
  assert grid.shape == (7, 10)
  for k in range(5):
    r, c = divmod(k, 3)
    np.testing.assert_array_equal(grid[1 + 3 * r:3 + 3 * r, 1 + 3 * c:3 + 3 * c], k / 4)
  np.testing.assert_array_equal(grid[4:6, 7:9], 1.0)  # the sixth tile is unused
  # An inverse standardisation is applied in full to images (offset included).
  scaler = Standardizer(mean=[0.5] * 4, std=[0.25] * 4)
  np.testing.assert_allclose(ev.image_grid(np.zeros((1, 4)), (2, 2), to_pixels=scaler)[1:3, 1:3], 0.5)
  with pytest.raises(ValueError, match=r"images must be a non-empty \(N, 4\).*got shape \(3, 5\)"):
    ev.image_grid(np.zeros((3, 5)), (2, 2))


def _read_png(path):
  image = matplotlib.image.imread(path)
  assert image.ndim == 3 and image.shape[-1] in (3, 4)
  return image


def test_filter_png_has_the_documented_size_and_shows_the_grid_unresampled(tmp_path):
  rng = np.random.default_rng(0)
  sizes = {}
  for n in (16, 256):
    W = rng.normal(size=(64, n))
    path = tmp_path / f"filters_{n}.png"
    ev.save_weight_filters(W, (8, 8, 1), str(path), title="grbm filters")
    assert path.stat().st_size > 0
    png = _read_png(path)
    grid = ev.weight_filter_grid(W, (8, 8))
    assert png.shape[:2] == ev.grid_png_shape(grid.shape)
    sizes[n] = png.shape[:2]
    zoom = png.shape[1] // grid.shape[1]
    expected = np.repeat(np.repeat(grid, zoom, 0), zoom, 1)
    for channel in range(3):  # grey: every channel equals the grid, to one 8-bit level
      np.testing.assert_allclose(png[ev.TITLE_PIXELS:, :, channel], expected, atol=1 / 255 + 1e-6)
    assert Image.open(path).text["Title"] == f"grbm filters ({n} of {n} filters, 8×8)"
  # 4 × 4 tiles of 8 (37 px, zoom 7) vs 16 × 16 (145 px, zoom 2): more filters, larger PNG.
  assert sizes[16] == (ev.TITLE_PIXELS + 259, 259) and sizes[256] == (ev.TITLE_PIXELS + 290, 290)
  ev.save_weight_filters(rng.normal(size=(64, 300)), (8, 8), str(tmp_path / "many.png"))
  assert _read_png(tmp_path / "many.png").shape[:2] == sizes[256]  # max_filters=256 by default


def test_chain_and_image_pngs_have_the_documented_size(tmp_path):
  rng = np.random.default_rng(0)
  chains = rng.random((10, 2, 64))  # 10 steps of 2 chains: a wide picture
  ev.save_sample_chains(chains, (8, 8), str(tmp_path / "chains.png"))
  grid = ev.sample_chain_grid(chains, (8, 8))
  png = _read_png(tmp_path / "chains.png")
  assert grid.shape == (19, 91) and png.shape[:2] == ev.grid_png_shape(grid.shape) == (
      ev.TITLE_PIXELS + 3 * 19, 3 * 91)
  np.testing.assert_allclose(png[ev.TITLE_PIXELS:, :, 0],
                             np.repeat(np.repeat(grid, 3, 0), 3, 1), atol=1 / 255 + 1e-6)
  ev.save_image_grid(rng.random((7, 8, 8, 1)), (8, 8, 1), str(tmp_path / "data.png"), "data")
  assert _read_png(tmp_path / "data.png").shape[:2] == ev.grid_png_shape((28, 28))  # 3 × 3 tiles


def test_histogram_titles_give_mean_and_std_of_the_finite_values():
  assert ev.histogram_title("W", [1.0, 2.0, 3.0]) == "W\nmean=2 std=0.8165 n=3"
  assert ev.histogram_title("b", [1.0, np.nan, 3.0, np.inf]) == "b\nmean=2 std=1 n=2 (2 non-finite)"
  assert ev.histogram_title("dead", [np.nan]) == "dead\nno finite values (1 non-finite)"


def test_histogram_png_has_one_panel_per_entry(tmp_path):
  rng = np.random.default_rng(0)
  entries = {"hidden probabilities": rng.random((20, 8)), "W": rng.normal(size=(6, 8)),
             "b_h": np.zeros(8), "b_v": [0.1, np.nan]}
  shapes = {}
  for n in (1, 3, 4):
    path = tmp_path / f"hist_{n}.png"
    ev.save_histograms(dict(list(entries.items())[:n]), str(path), title="rbm")
    shapes[n] = _read_png(path).shape[:2]
    assert shapes[n] == ev.histogram_png_shape(n)
  panel_h, panel_w = ev.HISTOGRAM_PANEL_PIXELS
  assert shapes[1] == (ev.TITLE_PIXELS + panel_h, panel_w)
  assert shapes[3] == (ev.TITLE_PIXELS + panel_h, 3 * panel_w)
  assert shapes[4] == (ev.TITLE_PIXELS + 2 * panel_h, 3 * panel_w)  # a second row
  with pytest.raises(ValueError, match="arrays is empty"):
    ev.save_histograms({}, str(tmp_path / "x.png"))
  with pytest.raises(ValueError, match=r"empty array\(s\) for \['b_h'\]"):
    ev.save_histograms({"W": [1.0], "b_h": []}, str(tmp_path / "x.png"))
  with pytest.raises(ValueError, match="bins must be a positive integer, got 0"):
    ev.save_histograms({"W": [1.0]}, str(tmp_path / "x.png"), bins=0)
  assert not (tmp_path / "x.png").exists()
