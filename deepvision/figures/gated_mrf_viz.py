"""Pictures of gated MRFs: the pooling matrix, the filters each unit pools, and models side by side.

For gated MRFs (Ranzato & Hinton 2010; Ranzato et al., PAMI 2013): the pooling matrix P as an image
(`pooling_grid`, units × factors), the filters each covariance unit pools (`pooled_filter_grid`: a
topographic P pools neighbouring factors, which should look alike, e.g. similar orientation at nearby
positions), and data beside samples of competing models on one grey scale (`comparison_grid`: data |
Gaussian (PCA) samples | HMC samples of the gated MRF; `image_rows_grid`: original | occluded | fills).
Grids are arrays in [0, 1] written by `energy_viz.save_grid` (`energy_viz.grid_png_shape` gives the PNG sizes).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from deepvision.figures.energy_viz import (
  MIN_PIXELS,
  check_max,
  checked_image_shape,
  image_grid,
  save_grid,
  tile_grid,
  tile_shape,
)


def _pooling_matrix(P: Any) -> np.ndarray:
  P = np.asarray(P, np.float64)
  if P.ndim != 2 or 0 in P.shape:
    raise ValueError(f"P must be a non-empty (n_factors, n_cov) matrix, got shape {P.shape}")
  return P


def pooling_grid(P: Any) -> np.ndarray:
  """P (F, N) as an (N, F) image in [0, 1], i.e. Pᵀ: row k is covariance unit k, column f factor f
  (units are fewer than factors, so the picture is wide), each entry divided by the largest |entry|
  and clipped below at 0 (P ≥ 0 after projection: black 0, white the largest weight; an all-zero P is
  black)."""
  P = _pooling_matrix(P)
  top = np.max(np.abs(P))
  return (np.clip(P / top, 0.0, 1.0) if top > 0 else np.zeros_like(P)).T


def pools_several(P: Any, relative: float = 1e-3) -> bool:
  """Whether some covariance unit pools two or more factors with weights above `relative` × the
  largest weight of P (a topographic or learned pooling, not the identity)."""
  P = np.abs(_pooling_matrix(P))
  return bool(np.any(np.sum(P > relative * P.max(), axis=0) >= 2)) if P.max() > 0 else False


def pooled_filter_grid(filters: Any, P: Any, image_shape: Sequence[int], max_units: int | None = 16,
                       max_per_unit: int | None = 9, relative: float = 1e-3, pad: int = 1) -> np.ndarray:
  """One row per covariance unit: the filters of the factors it pools, by decreasing weight P_fk.

  Row k (the first `max_units` units) shows the factors f with P_fk > relative·max P, sorted by
  P_fk (largest first, at most `max_per_unit`), each filter scaled to [0, 1] on its own as in
  `weight_filter_grid`; unused tiles stay white.

  Args:
    filters: (V, F) pixel-space factor filters (e.g. `whitening.filters_to_pixels(C)`), one per column.
    P: (F, N) pooling matrix.
    image_shape: (h, w), (h, w, 1) or (h, w, 3), V = prod(image_shape).
    max_units, max_per_unit: limits on rows and columns (None: all).
    relative: the threshold of a pooled factor, relative to the largest entry of P.
    pad: pixels between tiles.

  Returns:
    float64 array in [0, 1], (rows·(h+pad)+pad, columns·(w+pad)+pad[, 3]).
  """
  filters = np.asarray(filters, np.float64)
  P = np.abs(_pooling_matrix(P))
  image_shape = checked_image_shape(image_shape)
  check_max("max_units", max_units)
  check_max("max_per_unit", max_per_unit)
  if filters.ndim != 2 or filters.shape != (math.prod(image_shape), P.shape[0]):
    raise ValueError(f"filters must be (V, F) = ({math.prod(image_shape)}, {P.shape[0]}) for image_shape "
                     f"{image_shape} and P of shape {P.shape}, got {filters.shape}")
  threshold = relative * P.max()
  units = range(min(P.shape[1], max_units or P.shape[1]))
  rows = []
  for k in units:
    order = [f for f in np.argsort(-P[:, k], kind="stable") if P[f, k] > threshold]
    rows.append(order[:max_per_unit] if max_per_unit else order)
  columns = max(1, max(len(r) for r in rows))
  tile = tile_shape(image_shape)
  scaled = np.ones((len(rows), columns, *tile))
  for i, factors in enumerate(rows):
    for j, f in enumerate(factors):
      w = filters[:, f].reshape(tile)
      span = w.max() - w.min()
      scaled[i, j] = (w - w.min()) / span if span > 0 else 0.0
  return tile_grid(scaled, pad)


def comparison_grid(panels: Mapping[str, Any], image_shape: Sequence[int], columns: int | None = None,
                    value_range: tuple[float, float] | None = None, gap: int = 4,
                    pad: int = 1) -> np.ndarray:
  """Panels of images side by side (e.g. data | Gaussian samples | model samples), one grey scale.

  Each panel is `image_grid(images, image_shape, columns, value_range)` of its (n, V) images; panels
  are placed left to right in the mapping's order, separated by `gap` white columns, and padded at
  the bottom (white) to the tallest. With value_range None every panel uses the smallest and largest
  value over ALL panels, so contrasts compare.

  Returns:
    float64 array in [0, 1].
  """
  if not panels:
    raise ValueError("panels is empty: give at least one name → images entry")
  if isinstance(gap, bool) or not isinstance(gap, (int, np.integer)) or gap < 0:
    raise ValueError(f"gap must be an int >= 0, got {gap!r}")
  arrays = {name: np.asarray(images, np.float64) for name, images in panels.items()}
  if value_range is None:
    low = min(float(a.min()) for a in arrays.values())
    high = max(float(a.max()) for a in arrays.values())
    value_range = (low, high) if high > low else (low, low + 1.0)
  grids = [image_grid(a, image_shape, columns, value_range, pad=pad) for a in arrays.values()]
  height = max(g.shape[0] for g in grids)
  parts = []
  for i, g in enumerate(grids):
    if i:
      parts.append(np.ones((height, gap, *g.shape[2:])))
    parts.append(np.concatenate([g, np.ones((height - g.shape[0], *g.shape[1:]))]))
  return np.concatenate(parts, axis=1)


def save_pooling(P: Any, path: str, title: str = "pooling Pᵀ", min_pixels: int = MIN_PIXELS) -> None:
  """Writes `pooling_grid(P)` as a PNG (rows: covariance units, columns: factors)."""
  P = _pooling_matrix(P)
  save_grid(pooling_grid(P), path, f"{title} ({P.shape[1]} units × {P.shape[0]} factors)", min_pixels,
            "rows: covariance units; columns: factors; black 0, white the largest weight")


def save_pooled_filters(filters: Any, P: Any, image_shape: Sequence[int], path: str,
                        title: str = "pooled factors", max_units: int | None = 16,
                        max_per_unit: int | None = 9, min_pixels: int = MIN_PIXELS) -> None:
  """Writes `pooled_filter_grid(filters, P, image_shape, max_units, max_per_unit)` as a PNG."""
  grid = pooled_filter_grid(filters, P, image_shape, max_units, max_per_unit)
  save_grid(grid, path, f"{title} (rows: units)", min_pixels,
            "row k: the factors covariance unit k pools, largest pooling weight first")


def save_sample_comparison(panels: Mapping[str, Any], image_shape: Sequence[int], path: str,
                           columns: int | None = None, value_range: tuple[float, float] | None = None,
                           min_pixels: int = MIN_PIXELS) -> None:
  """Writes `comparison_grid(panels, ...)` as a PNG titled with the panel names, left to right."""
  grid = comparison_grid(panels, image_shape, columns, value_range)
  save_grid(grid, path, " | ".join(panels), min_pixels,
            "panels left to right: " + ", ".join(panels) + "; one grey scale")


def image_rows_grid(rows: Mapping[str, Any], image_shape: Sequence[int],
                    value_range: tuple[float, float] | None = (0.0, 1.0), gap: int = 2,
                    pad: int = 1) -> np.ndarray:
  """Rows of images stacked top to bottom (e.g. original | occluded | fills), one grey scale.

  Row r is `image_grid(rows[r], image_shape, columns=n_r, value_range)`: its n_r (n_r, V) images
  side by side; rows are separated by `gap` white rows and padded on the right (white) to the widest.

  Returns:
    float64 array in [0, 1].
  """
  if not rows:
    raise ValueError("rows is empty: give at least one name → images entry")
  if isinstance(gap, bool) or not isinstance(gap, (int, np.integer)) or gap < 0:
    raise ValueError(f"gap must be an int >= 0, got {gap!r}")
  grids = [image_grid(images, image_shape, len(np.asarray(images)), value_range, pad=pad)
           for images in rows.values()]
  width = max(g.shape[1] for g in grids)
  parts = []
  for i, g in enumerate(grids):
    if i:
      parts.append(np.ones((gap, width, *g.shape[2:])))
    parts.append(np.concatenate([g, np.ones((g.shape[0], width - g.shape[1], *g.shape[2:]))], axis=1))
  return np.concatenate(parts, axis=0)


def save_image_rows(rows: Mapping[str, Any], image_shape: Sequence[int], path: str, title: str = "",
                    value_range: tuple[float, float] | None = (0.0, 1.0),
                    min_pixels: int = MIN_PIXELS) -> None:
  """Writes `image_rows_grid(rows, ...)` as a PNG; the row names, top to bottom, go in its description
  and, without a `title`, in its title."""
  save_grid(image_rows_grid(rows, image_shape, value_range), path, title or " / ".join(rows), min_pixels,
            "rows top to bottom: " + ", ".join(rows) + "; one grey scale")
