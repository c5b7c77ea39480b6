"""Pictures of a run: learning curves and filter grids (the talk: "visualise filters: good ones are
structured and uncorrelated; noisy, correlated or structureless filters mean trouble")."""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib
import matplotlib.image
import numpy as np
from matplotlib.figure import Figure

# Figures are drawn on `Figure` objects (Agg renders them on save), never through pyplot: importing the
# library leaves the user's backend alone, so notebooks keep showing their own plots inline.


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


def save_conv_filters(kernel: np.ndarray, path: str, title: str = "first-layer filters") -> None:
  """Saves an HWIO conv kernel as a picture: one tile per (input channel, output channel) pair,
  or one colour tile per output channel when the input has 3 channels."""
  kernel = np.asarray(kernel)
  if kernel.ndim != 4:
    raise ValueError(f"expected an HWIO conv kernel, got shape {kernel.shape}")
  h, w, cin, cout = kernel.shape
  if cin == 3:
    tiles = np.transpose(kernel, (3, 0, 1, 2))
  else:
    tiles = np.transpose(kernel, (3, 2, 0, 1)).reshape(cout * cin, h, w)
  grid = filter_grid(tiles)
  fig = Figure(figsize=(4, 4 * grid.shape[0] / grid.shape[1] + 0.4))
  ax = fig.subplots()
  ax.imshow(grid, cmap=None if grid.ndim == 3 else "gray", interpolation="nearest")
  ax.set_title(f"{title} ({cout}×{cin} of {h}×{w})")
  ax.axis("off")
  fig.savefig(path, dpi=120, bbox_inches="tight")


def save_curves(records: Sequence[dict], path: str, keys: Sequence[tuple[str, ...]] = (
    ("train/loss", "val/loss"), ("train/accuracy", "val/accuracy"))) -> None:
  """Plots metrics against step, one panel per group of keys (e.g. losses, accuracies)."""
  fig = Figure(figsize=(5 * len(keys), 3.5))
  axes = fig.subplots(1, len(keys))
  for ax, group in zip(np.atleast_1d(axes), keys):
    for key in group:
      points = [(r["step"], r[key]) for r in records if key in r]
      if points:
        steps, values = zip(*points)
        ax.plot(steps, values, label=key, marker="." if len(points) < 30 else None)
    ax.set_xlabel("step")
    ax.set_title(group[0].split("/")[-1])
    ax.grid(alpha=0.3)
    ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=120)


# ---------------------------------------------------------------------------------------------
# Pictures of hidden units (the talk: "good training: hidden units are sparse across samples and
# across features"; "bad training: many hidden units ignore the input and/or exhibit strong
# correlations"). Each entry of a matrix becomes a block of pixels, so small layers stay visible
# and the PNG's size is known: an axis of n entries is n·⌈min_pixels / n⌉ pixels (n when n is
# at least min_pixels).

MIN_PIXELS = 256


def enlarge(image: np.ndarray, min_pixels: int = MIN_PIXELS) -> np.ndarray:
  """Repeats each entry of an (r, c, ...) image ⌈min_pixels/r⌉ times down and ⌈min_pixels/c⌉
  times across (at least once)."""
  image = np.asarray(image)
  for axis in (0, 1):
    image = np.repeat(image, max(1, -(-min_pixels // image.shape[axis])), axis=axis)
  return image


def activation_image(units: np.ndarray, max_samples: int = 512,
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


def save_activation_image(units: np.ndarray, path: str, title: str = "samples × units",
                          max_samples: int = 512, min_pixels: int = MIN_PIXELS) -> None:
  """Writes `activation_image(units)` as a grey PNG (the value range goes in its metadata)."""
  image = activation_image(units, max_samples, min_pixels)
  units = np.asarray(units)[:max_samples]
  matplotlib.image.imsave(path, image, cmap="gray", vmin=0.0, vmax=1.0, format="png", metadata={
      "Title": title,
      "Description": (f"rows: {units.shape[0]} samples, columns: {units.shape[1]} units; "
                      f"black = {units.min():.4g}, white = {units.max():.4g}")})


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
  colormap = matplotlib.colormaps["RdBu_r"].with_extremes(bad=(0.5, 0.5, 0.5, 1.0))
  rgb = np.round(colormap((np.clip(correlation, -1.0, 1.0) + 1.0) / 2.0)[..., :3] * 255)
  return enlarge(rgb.astype(np.uint8), min_pixels)


def save_correlation_image(correlation: np.ndarray, path: str,
                           title: str = "correlation of units",
                           min_pixels: int = MIN_PIXELS) -> None:
  """Writes `correlation_image(correlation)` as a PNG."""
  matplotlib.image.imsave(path, correlation_image(correlation, min_pixels), format="png", metadata={
      "Title": title,
      "Description": (f"{len(correlation)} × {len(correlation)} Pearson correlations; blue −1, "
                      "white 0, red +1, grey undefined (a constant unit)")})
