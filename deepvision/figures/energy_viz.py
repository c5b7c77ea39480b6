"""Pictures of an energy-based model in training: filters, sample chains, histograms.

Hinton's "A practical guide to training restricted Boltzmann machines" (2010, §15) and the talk
("visualise filters: good ones are structured and uncorrelated") both ask for these pictures: the
weights of each hidden unit as an image (`save_weight_filters`), Gibbs (or HMC) sample chains and
samples beside data (`save_sample_chains`, `save_image_grid`), histograms of weights, biases and hidden
probabilities (`save_histograms`); for gated MRFs, `gated_mrf_viz`. The grids are built by pure
functions returning arrays in [0, 1] and written by one PNG writer of known size (`save_grid`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from deepvision.figures import viz

TITLE_PIXELS = 28  # the band above a grid holding its title (two lines when it is long)
MAX_GRID_PIXELS = 2048  # a longer grid is shrunk by an integer factor (`grid_zoom`)
DPI = 128  # A power of two: figure sizes in inches × DPI are exact pixel counts.
MIN_PIXELS = 256
HISTOGRAM_PANEL_PIXELS = (256, 320)  # (height, width) of one histogram panel.
HISTOGRAM_COLUMNS = 3

# An affine map from model space to pixel space (e.g. `Standardizer.inverse`), or an object
# with such a map as its `inverse` method (e.g. a `Standardizer`).
ToPixels = Callable[[np.ndarray], np.ndarray] | Any


def checked_image_shape(image_shape: Sequence[int]) -> tuple[int, ...]:
  """(h, w), (h, w, 1) or (h, w, 3) of positive ints, checked."""
  shape = tuple(image_shape) if isinstance(image_shape, Sequence) else None
  if (shape is None or len(shape) not in (2, 3)
      or not all(isinstance(s, (int, np.integer)) and s > 0 for s in shape)
      or (len(shape) == 3 and shape[2] not in (1, 3))):
    raise ValueError(f"image_shape must be (h, w), (h, w, 1) or (h, w, 3) with positive sizes, "
                     f"got {image_shape!r}")
  return tuple(int(s) for s in shape)


def tile_shape(image_shape: tuple[int, ...]) -> tuple[int, ...]:
  """(h, w) for grey shapes, (h, w, 3) for colour ones."""
  return image_shape[:2] if len(image_shape) == 2 or image_shape[2] == 1 else image_shape


def _as_map(to_pixels: ToPixels | None) -> Callable[[np.ndarray], np.ndarray] | None:
  if to_pixels is None or callable(to_pixels):
    return to_pixels
  inverse = getattr(to_pixels, "inverse", None)
  if not callable(inverse):
    raise ValueError(f"to_pixels must be a function or have an `inverse` method (such as a "
                     f"Standardizer), got {type(to_pixels).__name__}")
  return inverse


def check_max(name: str, value: int | None) -> None:
  """Raises ValueError unless `value` (a limit called `name`) is a positive int or None."""
  if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer))
                            or value < 1):
    raise ValueError(f"{name} must be a positive integer or None, got {value!r}")


def weight_filter_grid(W: Any, image_shape: Sequence[int], max_filters: int | None = None,
                       to_pixels: ToPixels | None = None, columns: int | None = None,
                       pad: int = 1) -> np.ndarray:
  """The columns of a (V, H) weight matrix as one tiled image, each filter scaled on its own.

  Filter k is column k, W[:, k].reshape(image_shape) in C order (the order in which the RBMs
  flatten their visible vectors). It is scaled to [0, 1] on its own, (w − min w)/(max w − min w)
  (a constant filter becomes 0), so its pattern is visible whatever its norm. Tile k sits at
  row k // columns, column k % columns (`viz.filter_grid`): rows·(h+pad)+pad by
  columns·(w+pad)+pad pixels, the border white (1).

  With `to_pixels`, an affine map g from model space to pixel space (the inverse of the
  preprocessing: `Standardizer.inverse`, a de-whitening), each filter is first mapped by its
  linear part, w ↦ g(w) − g(0): a filter is a direction in model space, not an image, so the
  offset (e.g. the mean image) does not belong to it. For a Standardizer this is w · s: the
  change of pixels that hidden unit k adds to the mean of p(v | h) in a Gaussian RBM.

  Args:
    W: (V, H) weights, V = prod(image_shape).
    image_shape: (h, w), (h, w, 1) or (h, w, 3).
    max_filters: draw only the first max_filters columns (all if None).
    to_pixels: optional affine map to pixel space, or an object with an `inverse` method.
    columns: tiles per row (default ⌈√n⌉ for n filters).
    pad: pixels between tiles.

  Returns:
    float64 array in [0, 1], (rows·(h+pad)+pad, columns·(w+pad)+pad[, 3]).
  """
  W = np.asarray(W)
  image_shape = checked_image_shape(image_shape)
  check_max("max_filters", max_filters)
  if W.ndim != 2 or 0 in W.shape:
    raise ValueError(f"W must be a non-empty (V, H) weight matrix, got shape {W.shape}")
  if W.shape[0] != math.prod(image_shape):
    raise ValueError(f"W has V = {W.shape[0]} rows (shape {W.shape}) but image_shape "
                     f"{image_shape} has {math.prod(image_shape)} pixels; V must equal "
                     "prod(image_shape)")
  to_pixels = _as_map(to_pixels)
  filters = W[:, :max_filters].T.astype(np.float64)  # (n, V)
  if to_pixels is not None:
    filters = (np.asarray(to_pixels(filters), np.float64)
               - np.asarray(to_pixels(np.zeros_like(filters)), np.float64))
  return viz.filter_grid(filters.reshape(-1, *tile_shape(image_shape)), pad=pad, columns=columns)


def _scaled(images: np.ndarray, value_range: tuple[float, float] | None) -> np.ndarray:
  """Images mapped to [0, 1]: value_range (low, high) linearly with clipping, or None for the
  array's own min and max (a constant array becomes 0)."""
  if value_range is None:
    low, span = images.min(), images.max() - images.min()
    return (images - low) / span if span > 0 else np.zeros_like(images)
  if len(value_range) != 2 or not value_range[1] > value_range[0]:
    raise ValueError(f"value_range must be (low, high) with low < high, got {value_range!r}")
  return np.clip((images - value_range[0]) / (value_range[1] - value_range[0]), 0.0, 1.0)


def image_tile_grid(images: Any, image_shape: Sequence[int],
                    value_range: tuple[float, float] | None = (0.0, 1.0),
                    pad: int = 1) -> np.ndarray:
  """Images laid out as given on a (rows, columns) grid, on one common grey scale.

  Args:
    images: (rows, columns, V) flat images, V = prod(image_shape), or
      (rows, columns, *image_shape).
    image_shape: (h, w), (h, w, 1) or (h, w, 3).
    value_range: (low, high) mapped to black and white, values outside clipped; None: the
      smallest and largest values shown (a constant array is drawn 0).
    pad: pixels between tiles (white).

  Returns:
    float64 array in [0, 1], (rows·(h+pad)+pad, columns·(w+pad)+pad[, 3]); image (i, j) at
    [pad + i·(h+pad) : …+h, pad + j·(w+pad) : …+w].
  """
  images = np.asarray(images, np.float64)
  image_shape = checked_image_shape(image_shape)
  tile = tile_shape(image_shape)
  size = math.prod(image_shape)
  if images.ndim < 3 or 0 in images.shape[:2] or (
      images.shape[2:] != image_shape and images.shape[2:] != (size,)):
    raise ValueError(f"images must be (rows, columns, {size}) or (rows, columns, "
                     f"{', '.join(map(str, image_shape))}) for image_shape {image_shape}, "
                     f"got shape {images.shape}")
  rows, cols = images.shape[:2]
  scaled = _scaled(images.reshape(rows, cols, *tile), value_range)
  return tile_grid(scaled, pad)


def tile_grid(scaled: np.ndarray, pad: int) -> np.ndarray:
  """(rows, cols, h, w[, 3]) values in [0, 1] → one grid with white borders of `pad` pixels."""
  rows, cols, h, w = scaled.shape[:4]
  grid = np.ones((rows * (h + pad) + pad, cols * (w + pad) + pad, *scaled.shape[4:]))
  for i in range(rows):
    for j in range(cols):
      grid[pad + i * (h + pad):pad + i * (h + pad) + h,
           pad + j * (w + pad):pad + j * (w + pad) + w] = scaled[i, j]
  return grid


def _to_pixels_images(images: np.ndarray, to_pixels: ToPixels | None) -> np.ndarray:
  to_pixels = _as_map(to_pixels)
  return images if to_pixels is None else np.asarray(to_pixels(images), np.float64)


def sample_chain_grid(chains: Any, image_shape: Sequence[int],
                      value_range: tuple[float, float] | None = (0.0, 1.0),
                      to_pixels: ToPixels | None = None, pad: int = 1) -> np.ndarray:
  """Sample chains as a grid: row c is chain c, column t its state after step t.

  Args:
    chains: (steps, num_chains, V), e.g. the traced positions of `samplers.run_chain` with
      `block_gibbs` (state.position at each step).
    image_shape, value_range, pad: as in `image_tile_grid`.
    to_pixels: optional map of the states to pixel space (e.g. `Standardizer.inverse`),
      applied in full (these are images, not directions).

  Returns:
    `image_tile_grid` of the (num_chains, steps) array.
  """
  chains = np.asarray(chains, np.float64)
  if chains.ndim != 3:
    raise ValueError(f"chains must be (steps, num_chains, V), got shape {chains.shape}")
  chains = _to_pixels_images(chains, to_pixels)
  return image_tile_grid(np.swapaxes(chains, 0, 1), image_shape, value_range, pad)


def image_grid(images: Any, image_shape: Sequence[int], columns: int | None = None,
               value_range: tuple[float, float] | None = (0.0, 1.0),
               to_pixels: ToPixels | None = None, pad: int = 1) -> np.ndarray:
  """N images in rows of `columns` (default ⌈√N⌉): image k at row k // columns, column
  k % columns, on one grey scale; unused tiles of the last row stay white.

  Args:
    images: (N, V) flat or (N, *image_shape) images.
    columns: tiles per row.
    image_shape, value_range, to_pixels, pad: as in `sample_chain_grid`.
  """
  images = np.asarray(images, np.float64)
  image_shape = checked_image_shape(image_shape)
  check_max("columns", columns)
  size = math.prod(image_shape)
  if images.ndim < 2 or images.shape[0] == 0 or (
      images.shape[1:] != image_shape and images.shape[1:] != (size,)):
    raise ValueError(f"images must be a non-empty (N, {size}) or (N, "
                     f"{', '.join(map(str, image_shape))}) array for image_shape {image_shape}, "
                     f"got shape {images.shape}")
  images = _to_pixels_images(images, to_pixels)
  tile = tile_shape(image_shape)
  n = images.shape[0]
  columns = columns or math.ceil(math.sqrt(n))
  rows = math.ceil(n / columns)
  scaled = _scaled(images.reshape(n, *tile), value_range)
  scaled = np.concatenate([scaled, np.ones((rows * columns - n, *tile))])
  return tile_grid(scaled.reshape(rows, columns, *tile), pad)


def grid_zoom(grid_shape: Sequence[int], min_pixels: int = MIN_PIXELS) -> int:
  """How `save_grid` scales a grid of this shape: z > 0 enlarges each grid pixel into a z × z block,
  z = max(1, ⌈min_pixels / max(rows, columns)⌉); z < 0 shrinks a grid longer than `MAX_GRID_PIXELS`
  on a side by averaging |z| × |z| blocks, |z| = ⌈max(rows, columns) / MAX_GRID_PIXELS⌉."""
  longest = max(grid_shape[:2])
  if longest > MAX_GRID_PIXELS:
    return -math.ceil(longest / MAX_GRID_PIXELS)
  return max(1, math.ceil(min_pixels / longest))


def grid_png_shape(grid_shape: Sequence[int], min_pixels: int = MIN_PIXELS) -> tuple[int, int]:
  """(height, width) in pixels of the PNG that `save_grid` writes for a grid of this shape.

  A title band of `TITLE_PIXELS` rows above the grid scaled by `grid_zoom` z: enlarged z times
  (each grid pixel a z × z block; more tiles give a larger grid), or, for a grid longer than
  `MAX_GRID_PIXELS` on a side, shrunk |z| times (⌈rows/|z|⌉ × ⌈columns/|z|⌉ block averages).
  """
  rows, cols = grid_shape[:2]
  zoom = grid_zoom(grid_shape, min_pixels)
  if zoom < 0:
    return TITLE_PIXELS + math.ceil(rows / -zoom), math.ceil(cols / -zoom)
  return TITLE_PIXELS + zoom * rows, zoom * cols


def shrink(grid: np.ndarray, factor: int) -> np.ndarray:
  """Averages factor × factor blocks of an (r, c[, 3]) grid (the last partial blocks padded white)."""
  rows, cols = grid.shape[:2]
  r, c = math.ceil(rows / factor), math.ceil(cols / factor)
  padded = np.ones((r * factor, c * factor, *grid.shape[2:]))
  padded[:rows, :cols] = grid
  return padded.reshape(r, factor, c, factor, *grid.shape[2:]).mean(axis=(1, 3))


def title_band(fig: Figure, title: str, width: int, height: int) -> None:
  """Draws `title` centred in the band on top of a `width` × `height` pixel figure: one line at
  8 or 7 pt when it fits the width, else two lines at 7 pt down to 4 pt."""
  renderer = FigureCanvasAgg(fig).get_renderer()
  words = title.split(" ")
  cut = min(range(1, len(words)), key=lambda k: abs(len(" ".join(words[:k])) - len(title) / 2),
            default=len(words))
  wrapped = "\n".join(filter(None, (" ".join(words[:cut]), " ".join(words[cut:]))))
  for size, text in ((8, title), (7, title), (7, wrapped), (6, wrapped), (5, wrapped), (4, wrapped)):
    drawn = fig.text(0.5, 1.0 - 2 / height, text, ha="center", va="top", fontsize=size,
                     linespacing=1.0)
    if drawn.get_window_extent(renderer).width <= width - 4 or size == 4:
      return
    drawn.remove()


def save_grid(grid: np.ndarray, path: str, title: str, min_pixels: int = MIN_PIXELS,
              description: str = "") -> None:
  """Writes a [0, 1] grey (r, c) or colour (r, c, 3) grid as a PNG of `grid_png_shape` pixels:
  the title in a band on top (also the PNG's "Title"), the grid below enlarged by the integer zoom,
  unresampled (or, longer than `MAX_GRID_PIXELS`, block-averaged, the title ending
  "(shown at 1/k scale)"). The description (what black and white mean) goes in the PNG's
  "Description".

  The grid builders of this module (`weight_filter_grid`, `image_tile_grid`, `sample_chain_grid`,
  `image_grid`) take numpy (or jax) arrays; nothing here depends on jax. Figures are drawn on
  `matplotlib.figure.Figure` objects with the Agg renderer, never through pyplot's global state.
  """
  grid = np.clip(np.asarray(grid, np.float64), 0.0, 1.0)
  height, width = grid_png_shape(grid.shape, min_pixels)
  zoom = grid_zoom(grid.shape, min_pixels)
  if zoom < 0:
    enlarged = shrink(grid, -zoom)
    title = f"{title} (shown at 1/{-zoom} scale)"
  else:
    enlarged = np.repeat(np.repeat(grid, zoom, axis=0), zoom, axis=1)
  if enlarged.ndim == 2:
    enlarged = np.repeat(enlarged[..., None], 3, axis=-1)
  fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
  fig.patch.set_facecolor("white")
  fig.figimage(enlarged, xo=0, yo=0, origin="upper")
  title_band(fig, title, width, height)
  viz.save_figure(fig, path, title, description, dpi=DPI)


def save_weight_filters(W: Any, image_shape: Sequence[int], path: str,
                        title: str = "filters", max_filters: int | None = 256,
                        to_pixels: ToPixels | None = None, columns: int | None = None,
                        min_pixels: int = MIN_PIXELS) -> None:
  """Writes `weight_filter_grid(W, image_shape, max_filters, to_pixels, columns)` as a PNG.

  The title gets "(n of H filters, h×w)" appended; the size is `grid_png_shape`'s. Good filters are
  smooth, localised and varied; noise or many identical filters mean trouble (§15 of Hinton's guide).
  """
  grid = weight_filter_grid(W, image_shape, max_filters, to_pixels, columns)
  n, total = min(max_filters or np.shape(W)[1], np.shape(W)[1]), np.shape(W)[1]
  h, w = checked_image_shape(image_shape)[:2]
  save_grid(grid, path, f"{title} ({n} of {total} filters, {h}×{w})", min_pixels,
            "each filter scaled to [0, 1] on its own: black its smallest weight, white its largest")


def save_sample_chains(chains: Any, image_shape: Sequence[int], path: str,
                       title: str = "sample chains",
                       value_range: tuple[float, float] | None = (0.0, 1.0),
                       to_pixels: ToPixels | None = None,
                       min_pixels: int = MIN_PIXELS) -> None:
  """Writes `sample_chain_grid(chains, ...)` as a PNG: rows are chains, columns steps.

  Samples should look like data and chains should move.
  """
  grid = sample_chain_grid(chains, image_shape, value_range, to_pixels)
  steps, num_chains = np.shape(chains)[:2]
  save_grid(grid, path, f"{title} ({num_chains} chains × {steps} steps)", min_pixels,
            "rows: chains; columns: steps, left to right")


def save_image_grid(images: Any, image_shape: Sequence[int], path: str, title: str,
                    columns: int | None = None,
                    value_range: tuple[float, float] | None = (0.0, 1.0),
                    to_pixels: ToPixels | None = None, min_pixels: int = MIN_PIXELS) -> None:
  """Writes `image_grid(images, ...)` as a PNG (e.g. data beside samples, one file each)."""
  save_grid(image_grid(images, image_shape, columns, value_range, to_pixels), path, title,
            min_pixels)


def histogram_title(name: str, values: Any) -> str:
  """'name' over 'mean=… std=… n=…' for the finite values, plus how many are not finite."""
  values = np.asarray(values, np.float64).ravel()
  finite = values[np.isfinite(values)]
  stats = (f"mean={finite.mean():.4g} std={finite.std():.4g} n={finite.size}"
           if finite.size else "no finite values")
  bad = values.size - finite.size
  return f"{name}\n{stats}" + (f" ({bad} non-finite)" if bad else "")


def histogram_png_shape(num_panels: int) -> tuple[int, int]:
  """(height, width) in pixels of `save_histograms`'s PNG: panels in rows of up to
  `HISTOGRAM_COLUMNS`, each `HISTOGRAM_PANEL_PIXELS`, plus the title band."""
  columns = min(num_panels, HISTOGRAM_COLUMNS)
  rows = math.ceil(num_panels / HISTOGRAM_COLUMNS)
  return TITLE_PIXELS + rows * HISTOGRAM_PANEL_PIXELS[0], columns * HISTOGRAM_PANEL_PIXELS[1]


def save_histograms(arrays: Mapping[str, Any], path: str, title: str = "histograms",
                    bins: int = 50) -> None:
  """One histogram panel per entry (e.g. {'hidden probabilities': ..., 'W': ..., 'b_h': ...}).

  Each panel's title is `histogram_title(name, values)` (mean and std of the finite values);
  non-finite values are counted there and left out of the histogram. The PNG is
  `histogram_png_shape(len(arrays))` pixels. Hinton's guide (§15) suggests weight updates about 1e-3
  of the weights and hidden probabilities that are neither all near 0.5 (the hiddens ignore the input)
  nor all at 0 or 1.

  Raises:
    ValueError: no entries, an empty array, or bins < 1 (checked before drawing).
  """
  if not arrays:
    raise ValueError("arrays is empty: give at least one name → array entry")
  if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
    raise ValueError(f"bins must be a positive integer, got {bins!r}")
  values = {name: np.asarray(v, np.float64).ravel() for name, v in arrays.items()}
  empty = [name for name, v in values.items() if v.size == 0]
  if empty:
    raise ValueError(f"empty array(s) for {empty}: every entry needs at least one value")
  height, width = histogram_png_shape(len(values))
  columns = min(len(values), HISTOGRAM_COLUMNS)
  fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
  fig.patch.set_facecolor("white")
  panel_h, panel_w = HISTOGRAM_PANEL_PIXELS
  left, right, top, bottom = 52, 14, 44, 36  # Margins in pixels inside each panel.
  for k, (name, v) in enumerate(values.items()):
    row, col = divmod(k, columns)
    x0 = col * panel_w + left
    y0 = height - TITLE_PIXELS - (row + 1) * panel_h + bottom
    ax = fig.add_axes((x0 / width, y0 / height, (panel_w - left - right) / width,
                       (panel_h - top - bottom) / height))
    finite = v[np.isfinite(v)]
    if finite.size:
      ax.hist(finite, bins=bins, color="tab:blue")
    ax.set_title(histogram_title(name, v), fontsize=7)
    ax.set_xlabel("value", fontsize=6, labelpad=1)
    ax.set_ylabel("count", fontsize=6, labelpad=1)
    ax.tick_params(labelsize=6)
  title_band(fig, title, width, height)
  viz.save_figure(fig, path, title, "one histogram per entry: " + ", ".join(values), dpi=DPI)
