"""Pictures of a run: learning curves and filter grids (the talk: "visualise filters: good ones are
structured and uncorrelated; noisy, correlated or structureless filters mean trouble")."""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  pylint: disable=g-import-not-at-top
import numpy as np  # noqa: E402


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
  fig, ax = plt.subplots(figsize=(4, 4 * grid.shape[0] / grid.shape[1] + 0.4))
  ax.imshow(grid, cmap=None if grid.ndim == 3 else "gray", interpolation="nearest")
  ax.set_title(f"{title} ({cout}×{cin} of {h}×{w})")
  ax.axis("off")
  fig.savefig(path, dpi=120, bbox_inches="tight")
  plt.close(fig)


def save_curves(records: Sequence[dict], path: str, keys: Sequence[tuple[str, ...]] = (
    ("train/loss", "val/loss"), ("train/accuracy", "val/accuracy"))) -> None:
  """Plots metrics against step, one panel per group of keys (e.g. losses, accuracies)."""
  fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 3.5))
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
  plt.close(fig)
