"""Pictures of a run: learning curves and filter grids (the talk: "visualise filters: good ones are
structured and uncorrelated; noisy, correlated or structureless filters mean trouble")."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib
import matplotlib.cm
import matplotlib.colors
import matplotlib.ticker
import numpy as np
from matplotlib.figure import Figure

# Figures are drawn on `Figure` objects (Agg renders them on save), never through pyplot: importing the
# library leaves the user's backend alone, so notebooks keep showing their own plots inline.
#
# Readability rules shared by every figure the library writes: a title drawn on the figure and stored
# in the PNG metadata ("Title"); axes labels or a colour bar saying what the values are; at most
# MAX_TILES filter tiles and MAX_UNITS units of a matrix, the first ones, the title saying
# "first 256 of 2,048 ..."; curve panels wrapped at CURVE_COLUMNS per row; every PNG well under
# MAX_PNG_PIXELS on each side and under 2 MB.

DPI = 100
MAX_TILES = 256  # filter tiles drawn per picture (the first ones)
MAX_UNITS = 256  # units drawn in an activation or correlation picture (the first ones)
MAX_SAMPLES = 512  # samples (rows) drawn in an activation picture (the first ones)
MAX_AXES_PIXELS = 1600  # the longest side of a picture's image area
MAX_PNG_PIXELS = 2400  # no PNG of the library is larger on either side
CURVE_COLUMNS = 3  # curve panels per row
PANEL_INCHES = (4.2, 3.0)  # (width, height) of one curve panel
FILTER_PIXELS = 768  # the longer side a filter grid is zoomed to (by an integer factor up to 16)
MIN_PIXELS = 256  # the shortest side of a small matrix or filter picture (entries become blocks)


def filter_grid(filters: np.ndarray, pad: int = 1, columns: int | None = None) -> np.ndarray:
  """Tiles filters into one image, each filter scaled to [0, 1] on its own.

  Args:
    filters: (n, h, w) grey filters or (n, h, w, 3) colour filters.
    pad: pixels of border between tiles (drawn at 1, white).
    columns: tiles per row (default ≈ √n).

  Returns:
    An (rows·(h+pad)+pad, columns·(w+pad)+pad[, 3]) array in [0, 1].
  """
  filters = np.asarray(filters, np.float64)
  if filters.ndim not in (3, 4) or (filters.ndim == 4 and filters.shape[-1] != 3):
    raise ValueError(f"filters must be (n, h, w) or (n, h, w, 3), got shape {filters.shape}")
  n, h, w = filters.shape[:3]
  columns = columns or math.ceil(math.sqrt(n))
  rows = math.ceil(n / columns)
  axes = tuple(range(1, filters.ndim))
  low = filters.min(axis=axes, keepdims=True)
  span = filters.max(axis=axes, keepdims=True) - low
  scaled = (filters - low) / np.where(span > 0, span, 1.0)
  grid = np.ones((rows * (h + pad) + pad, columns * (w + pad) + pad, *filters.shape[3:]))
  for i in range(n):
    r, c = divmod(i, columns)
    grid[pad + r * (h + pad):pad + r * (h + pad) + h, pad + c * (w + pad):pad + c * (w + pad) + w] = scaled[i]
  return grid


def save_figure(fig: Figure, path: str, title: str, description: str = "", dpi: int = DPI) -> None:
  """Writes `fig` as a PNG at `dpi` with its title (and description) in the PNG metadata too.

  Every figure of the library goes through here, so a reader of the file, by eye or with PIL
  (`Image.open(path).text["Title"]`), finds what it shows. The PNG is drawn into a temporary file
  beside `path` and renamed onto it: a figure that fails to draw leaves an older `path` as it was.
  """
  partial = f"{path}.partial-{os.getpid()}"
  try:
    fig.savefig(partial, dpi=dpi, format="png", metadata={"Title": title, "Description": description})
    os.replace(partial, path)
  finally:
    if os.path.exists(partial):
      os.remove(partial)


def shown_of(shown: int, total: int, noun: str) -> str:
  """'2,048 kernels' when all are shown, else 'first 256 of 2,048 kernels'."""
  return f"{total:,} {noun}" if shown >= total else f"first {shown:,} of {total:,} {noun}"


def check_cap(name: str, value: int) -> None:
  """Raises ValueError unless `value` (a cap called `name`) is a positive int."""
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
    raise ValueError(f"{name} must be a positive integer, got {value!r}")


def conv_filter_tiles(kernel: np.ndarray, max_tiles: int = MAX_TILES
                      ) -> tuple[np.ndarray, int, int]:
  """The tiles of an HWIO conv kernel that `save_conv_filters` draws, and their layout.

  A kernel with 3 input channels gives one colour tile per output channel; otherwise one grey tile
  per (output channel, input channel) pair, output-major (tile k is output k // cin, input k % cin).
  Only the first `max_tiles` tiles are kept. With 2 to 32 input channels the grid has one row per
  output channel and one column per input channel (so the rows kept are the first
  max(1, max_tiles // cin) output channels); otherwise ⌈√n⌉ columns.

  Returns:
    (tiles (n, h, w[, 3]), columns, total number of tiles of the kernel).
  """
  kernel = np.asarray(kernel)
  if kernel.ndim != 4 or 0 in kernel.shape:
    raise ValueError(f"expected a non-empty HWIO conv kernel (height, width, in, out), got shape "
                     f"{kernel.shape}")
  check_cap("max_tiles", max_tiles)
  h, w, cin, cout = kernel.shape
  if cin == 3:
    tiles = np.transpose(kernel, (3, 0, 1, 2))
  else:
    tiles = np.transpose(kernel, (3, 2, 0, 1)).reshape(cout * cin, h, w)
  total = len(tiles)
  if 2 <= cin <= 32 and cin != 3 and cin <= max_tiles:
    tiles = tiles[:min(cout, max_tiles // cin) * cin]
    return tiles, cin, total
  tiles = tiles[:max_tiles]
  return tiles, math.ceil(math.sqrt(len(tiles))), total


def save_conv_filters(kernel: np.ndarray, path: str, title: str = "first-layer filters",
                      max_tiles: int = MAX_TILES) -> None:
  """Saves an HWIO conv kernel as a picture: one tile per (input channel, output channel) pair,
  or one colour tile per output channel when the input has 3 channels.

  At most `max_tiles` tiles are drawn (`conv_filter_tiles`: the first ones, output-major); the
  title says how many, e.g. "conv2: first 256 of 2,048 kernels". Each tile is scaled to [0, 1] on its
  own (black its smallest weight, white its largest), which the caption under the grid says.
  """
  tiles, columns, total = conv_filter_tiles(kernel, max_tiles)
  h, w, cin, cout = np.shape(kernel)
  grid = filter_grid(tiles, columns=columns)
  by_channel = columns == cin and cin != 3
  heading = (f"{title}: {shown_of(len(tiles), total, 'kernels')} "
             f"({h}×{w}; {cin} in × {cout} out channels)")
  gh, gw = grid.shape[:2]
  # An integer zoom (tiles drawn unresampled) bringing the longer side near FILTER_PIXELS.
  zoom = max(1, min(16, round(FILTER_PIXELS / max(gh, gw)), MAX_AXES_PIXELS // max(gh, gw)))
  scale = min(1.0, MAX_AXES_PIXELS / max(gh * zoom, gw * zoom))  # huge tiles: shrunk, smoothed
  ax_w, ax_h = round(gw * zoom * scale), round(gh * zoom * scale)
  left, right, top, bottom = 60, 20, 60, 70
  width, height = max(ax_w + left + right, 420), ax_h + top + bottom
  fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
  ax = fig.add_axes(((width - ax_w) / 2 / width, bottom / height, ax_w / width, ax_h / height))
  ax.imshow(grid, cmap=None if grid.ndim == 3 else "gray", vmin=0.0, vmax=1.0,
            interpolation="nearest" if scale == 1.0 else "antialiased", aspect="auto",
            extent=(0, gw, gh, 0))
  if by_channel:
    rows = len(tiles) // cin
    ax.set_xticks([1 + (w + 1) * c + w / 2 for c in range(cin)][::max(1, cin // 8)],
                  [str(c) for c in range(cin)][::max(1, cin // 8)], fontsize=7)
    ax.set_yticks([1 + (h + 1) * r + h / 2 for r in range(rows)][::max(1, rows // 8)],
                  [str(r) for r in range(rows)][::max(1, rows // 8)], fontsize=7)
    ax.set_xlabel("input channel", fontsize=8)
    ax.set_ylabel("output channel", fontsize=8)
  else:
    ax.set_xticks([])
    ax.set_yticks([])
    order = "output channel" if cin in (1, 3) else "(output, input) channel pair, output-major"
    ax.set_xlabel(f"one tile per {order}, left to right", fontsize=8)
  key = "each tile scaled on its own: black its smallest weight, white its largest"
  fig.text(0.5, 8 / height, key, ha="center", va="bottom", fontsize=7, wrap=True)
  fig.suptitle(heading, fontsize=9, wrap=True)
  save_figure(fig, path, heading, key)


def panel_layout(num_panels: int, columns: int = CURVE_COLUMNS) -> tuple[int, int]:
  """(rows, columns) of `num_panels` panels wrapped at `columns` per row."""
  check_cap("columns", columns)
  if num_panels < 1:
    raise ValueError(f"need at least one panel, got {num_panels}")
  return math.ceil(num_panels / columns), min(num_panels, columns)


def panel_figure(num_panels: int, columns: int = CURVE_COLUMNS) -> tuple[Figure, list]:
  """A figure of `num_panels` curve panels, `panel_layout` rows and columns of `PANEL_INCHES` each
  (plus a band for the title); unused cells of the last row are removed."""
  rows, cols = panel_layout(num_panels, columns)
  fig = Figure(figsize=(PANEL_INCHES[0] * cols, PANEL_INCHES[1] * rows + 0.5), dpi=DPI,
               layout="constrained")
  axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
  for ax in axes[num_panels:]:
    ax.remove()
  return fig, list(axes[:num_panels])


def draw_curves_panel(ax: Any, lines: Mapping[str, Sequence[tuple[float, float]]], title: str, ylabel: str,
                      missing_note: str) -> None:
  """One panel of curves against step: a line per label with points (marked when fewer than 30 are finite),
  a legend, and the labels without any point named after `missing_note` at the panel's foot."""
  missing = [label for label, points in lines.items() if not points]
  for label, points in lines.items():
    if points:
      steps, values = zip(*points)
      finite = sum(math.isfinite(v) for v in values)
      ax.plot(steps, values, label=label, marker="." if finite < 30 else None)
  ax.set_title(title)
  ax.set_xlabel("step")
  ax.set_ylabel(ylabel)
  ax.grid(alpha=0.3)
  if len(missing) < len(lines):
    ax.legend(fontsize=8)
  if missing:
    ax.text(0.5, 0.02, f"{missing_note} " + ", ".join(missing), transform=ax.transAxes, ha="center",
            va="bottom", fontsize=7, color="0.4", wrap=True)


def save_curves(records: Sequence[dict], path: str, keys: Sequence[tuple[str, ...]] = (
    ("train/loss", "val/loss"), ("train/accuracy", "val/accuracy")), title: str | None = None,
    columns: int = CURVE_COLUMNS) -> None:
  """Plots metrics against step, one panel per group of keys (e.g. losses, accuracies).

  Panels wrap at `columns` per row (3: five panels make two rows, not one wide strip); each has x
  "step" and y the group's metric name, one line per key. A key no record has is named in its panel
  as not logged.

  Args:
    records: metric records, each with "step" (e.g. `train.writers.read_metrics(workdir)`).
    path: the PNG to write.
    keys: groups of keys, one panel each.
    title: the figure's title (default "curves: " and the panels' names).
    columns: panels per row.
  """
  keys = [tuple(group) for group in keys]
  if not keys or not all(keys):
    raise ValueError(f"keys must be a non-empty sequence of non-empty groups of metric keys, got {keys!r}")
  fig, axes = panel_figure(len(keys), columns)
  names = [group[0].split("/")[-1] for group in keys]
  title = title or "curves: " + ", ".join(dict.fromkeys(names))
  for ax, group, name in zip(axes, keys, names):
    lines = {key: [(r["step"], r[key]) for r in records if key in r and "step" in r] for key in group}
    draw_curves_panel(ax, lines, name, name, "not logged:")
  fig.suptitle(title, fontsize=13)
  save_figure(fig, path, title, "panels: " + "; ".join(", ".join(g) for g in keys) + "; x: step")


# ---------------------------------------------------------------------------------------------
# Pictures of hidden units (the talk: "good training: hidden units are sparse across samples and
# across features"; "bad training: many hidden units ignore the input and/or exhibit strong
# correlations"). Each entry of a matrix becomes a block of pixels, so small layers stay visible
# and the picture's size is known: an axis of n entries is n·⌈min_pixels / n⌉ pixels (n when n is
# at least min_pixels). The PNG is that picture, unresampled, inside a frame of MATRIX_MARGINS
# pixels holding the title, the axes (unit, sample) and the colour bar (`matrix_png_shape`).

MATRIX_MARGINS = (64, 120, 56, 72)  # (top, right, bottom, left) pixels around the matrix picture


def enlarge(image: np.ndarray, min_pixels: int = MIN_PIXELS) -> np.ndarray:
  """Repeats each entry of an (r, c, ...) image ⌈min_pixels/r⌉ times down and ⌈min_pixels/c⌉
  times across (at least once)."""
  image = np.asarray(image)
  for axis in (0, 1):
    image = np.repeat(image, max(1, -(-min_pixels // image.shape[axis])), axis=axis)
  return image


def activation_image(units: np.ndarray, max_samples: int = MAX_SAMPLES,
                     min_pixels: int = MIN_PIXELS) -> np.ndarray:
  """The samples × units picture: rows are samples, columns units, grey levels activations.

  One linear scale for the whole layer maps its smallest activation to 0 (black) and its
  largest to 1 (white); a layer with a single value is all 0. With one scale a unit that
  ignores the input is a flat column, a dead ReLU unit a black one, and an input that every
  unit ignores a flat row; a good layer looks like sparse, unstructured speckle.

  Args:
    units: (N, U) unit activations.
    max_samples: only the first max_samples rows are drawn.
    min_pixels: see `enlarge`.

  Returns:
    A float array in [0, 1] of shape (n·⌈min_pixels/n⌉, U·⌈min_pixels/U⌉) with
    n = min(N, max_samples).
  """
  units = np.asarray(units, np.float64)
  if units.ndim != 2 or 0 in units.shape:
    raise ValueError(f"units must be a non-empty (samples, units) array, got shape {units.shape}")
  units = units[:max_samples]
  low, span = units.min(), units.max() - units.min()
  scaled = (units - low) / span if span > 0 else np.zeros_like(units)
  return enlarge(scaled, min_pixels)


def matrix_png_shape(image_shape: Sequence[int]) -> tuple[int, int]:
  """(height, width) in pixels of the PNG that `save_activation_image` or `save_correlation_image`
  writes around a picture (`activation_image`, `correlation_image`) of this shape: the picture plus
  `MATRIX_MARGINS`; the picture's top-left pixel is at (top, left)."""
  top, right, bottom, left = MATRIX_MARGINS
  return top + image_shape[0] + bottom, left + image_shape[1] + right


def _save_matrix(image: np.ndarray, entries: tuple[int, int], path: str, title: str,
                 labels: tuple[str, str], colorbar: tuple[Any, Any, str], description: str,
                 note: str = "") -> None:
  """Writes a matrix picture unresampled in its frame: title on top, axes labelled in entries
  (`labels` = (x, y)), a colour bar (cmap, norm, label) on the right, an optional note below."""
  _, _, bottom, left = MATRIX_MARGINS
  ih, iw = image.shape[:2]
  height, width = matrix_png_shape(image.shape)
  fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
  fig.patch.set_facecolor("white")
  fig.figimage(image, xo=left, yo=bottom, origin="upper", cmap="gray" if image.ndim == 2 else None,
               vmin=0.0, vmax=1.0)
  ax = fig.add_axes((left / width, bottom / height, iw / width, ih / height))
  ax.patch.set_alpha(0.0)
  rows, columns = entries
  ax.set_xlim(-0.5, columns - 0.5)
  ax.set_ylim(rows - 0.5, -0.5)
  for axis in (ax.xaxis, ax.yaxis):
    axis.set_major_locator(matplotlib.ticker.MaxNLocator(nbins=6, integer=True))
  ax.tick_params(labelsize=7)
  ax.set_xlabel(labels[0], fontsize=8, labelpad=1)
  ax.set_ylabel(labels[1], fontsize=8, labelpad=1)
  cax = fig.add_axes(((left + iw + 14) / width, bottom / height, 12 / width, ih / height))
  cmap, norm, label = colorbar
  fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), cax=cax).set_label(label, fontsize=8)
  cax.tick_params(labelsize=7)
  fig.suptitle(title, fontsize=9, wrap=True, y=1.0 - 6 / height, va="top")
  if note:
    fig.text(left / width, 4 / height, note, fontsize=7, ha="left", va="bottom", color="0.3")
  save_figure(fig, path, title, description)


def save_activation_image(units: np.ndarray, path: str, title: str = "samples × units",
                          max_samples: int = MAX_SAMPLES, min_pixels: int = MIN_PIXELS,
                          max_units: int = MAX_UNITS) -> None:
  """Writes `activation_image` of the first `max_samples` samples and `max_units` units as a PNG.

  The picture is drawn unresampled (`matrix_png_shape` gives the PNG's size) with x "unit", y
  "sample", and a grey colour bar "activation" giving the values of black and white. When units or
  samples are left out the title says so, e.g. "(first 256 of 2,048 units, 40 samples)".
  """
  check_cap("max_samples", max_samples)
  check_cap("max_units", max_units)
  units = np.asarray(units, np.float64)
  if units.ndim != 2 or 0 in units.shape:
    raise ValueError(f"units must be a non-empty (samples, units) array, got shape {units.shape}")
  shown = units[:max_samples, :max_units]
  image = activation_image(shown, max_samples, min_pixels)
  low, high = float(shown.min()), float(shown.max())
  heading = (f"{title} ({shown_of(shown.shape[1], units.shape[1], 'units')}, "
             f"{shown_of(shown.shape[0], units.shape[0], 'samples')})")
  _save_matrix(image, shown.shape, path, heading, ("unit", "sample"),
               ("gray", matplotlib.colors.Normalize(low, high if high > low else low + 1.0), "activation"),
               f"rows: {shown.shape[0]} samples, columns: {shown.shape[1]} units; "
               f"black = {low:.4g}, white = {high:.4g}")


CORRELATION_COLORMAP = matplotlib.colormaps["RdBu_r"].with_extremes(bad=(0.5, 0.5, 0.5, 1.0))


def correlation_image(correlation: np.ndarray, min_pixels: int = MIN_PIXELS) -> np.ndarray:
  """Colours of a correlation matrix: blue −1, white 0, red +1 (RdBu), grey where NaN.

  Returns:
    A uint8 RGB array of shape (U·⌈min_pixels/U⌉, U·⌈min_pixels/U⌉, 3).
  """
  correlation = np.asarray(correlation, np.float64)
  if correlation.ndim != 2 or correlation.shape[0] != correlation.shape[1] \
      or correlation.shape[0] == 0:
    raise ValueError(f"correlation must be a non-empty square matrix, got shape "
                     f"{correlation.shape}")
  rgb = np.round(CORRELATION_COLORMAP((np.clip(correlation, -1.0, 1.0) + 1.0) / 2.0)[..., :3] * 255)
  return enlarge(rgb.astype(np.uint8), min_pixels)


def save_correlation_image(correlation: np.ndarray, path: str,
                           title: str = "correlation of units",
                           min_pixels: int = MIN_PIXELS, max_units: int = MAX_UNITS) -> None:
  """Writes `correlation_image` of the first `max_units` units as a PNG, with a colour bar
  "Pearson ρ" fixed at −1 … 1 and both axes "unit".

  A matrix over more units is summarised as its first `max_units` rows and columns (a 2,048-unit
  layer would otherwise be a 2048 × 2048 picture of 8 MB); the title says so, e.g.
  "(first 256 of 2,048 units)". Grey marks an undefined correlation (a constant unit), noted
  under the picture when there is one.
  """
  check_cap("max_units", max_units)
  correlation = np.asarray(correlation, np.float64)
  image = correlation_image(correlation[:max_units, :max_units], min_pixels)
  total, shown = len(correlation), min(len(correlation), max_units)
  undefined = bool(np.isnan(correlation[:shown, :shown]).any())
  heading = f"{title} ({shown_of(shown, total, 'units')})"
  _save_matrix(image, (shown, shown), path, heading, ("unit", "unit"),
               (CORRELATION_COLORMAP, matplotlib.colors.Normalize(-1.0, 1.0), "Pearson ρ"),
               f"{shown} × {shown} Pearson correlations of the {shown_of(shown, total, 'units')}; "
               "blue −1, white 0, red +1, grey undefined (a constant unit)",
               "grey: undefined (a constant unit)" if undefined else "")
