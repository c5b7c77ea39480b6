r"""Tiles of an image on a strided grid, and per-tile filter banks (tiled convolution).

Tiled convolution with untied filter sets: Ngiam, Chen, Chia, Koh, Le & Ng, "Tiled convolutional neural
networks", NIPS 2010; used by `deepvision.models.tiled_gated_mrf`.

An H × W grey image is covered exactly by p × p tiles on a grid of stride s ≤ p: tile t = (i, j) covers
rows s·i … s·i + p − 1 and columns s·j … s·j + p − 1, for i < T_h = (H − p)/s + 1, j < T_w = (W − p)/s + 1
(`tile_grid`, `extract_tiles`); with `tiling` = τ, tile (i, j) uses filter set τ·(i mod τ) + (j mod τ)
(`bank_index`).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


def positive_int(name: str, value: Any) -> int:
  if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
    raise ValueError(f"{name} must be a positive int, got {value!r}")
  return int(value)


def tile_grid(image_shape: Any, patch_size: Any, stride: Any) -> tuple[int, int]:
  """(T_h, T_w): the tiles per column and per row of an exactly covered image.

  Layout. An H × W grey image x is covered by p × p tiles (patches) whose top-left corners lie on a grid
  of stride s ≤ p, only where a tile fits fully ("valid"): tile t = (i, j) covers rows s·i … s·i + p − 1
  and columns s·j … s·j + p − 1, for i < T_h = (H − p)/s + 1 and j < T_w = (W − p)/s + 1. The image
  must be covered exactly, (H − p) and (W − p) multiples of s, so every pixel lies in some tile. With
  p = 8, s = 4 each interior pixel lies in (p/s)² = 4 tiles, at 4 different offsets within them; pixels
  near the border lie in fewer (an edge block in 2, a corner block in 1):

           0    4    8   12            H = W = 12, p = 8, s = 4: a 2 × 2 grid of tiles
         0 +----+----+----+              a = t(0, 0)   b = t(0, 1)
           | a  | ab | b  |              c = t(1, 0)   d = t(1, 1)
         4 +----+----+----+            each s × s block lists the tiles that cover it
           | ac |abcd| bd |
         8 +----+----+----+            tiling = 2: tile (i, j) uses filter set
           | c  | cd | d  |              2·(i mod 2) + (j mod 2): a → 0, b → 1, c → 2, d → 3
        12 +----+----+----+

  Raises:
    ValueError: image_shape not a pair of positive ints, patch_size or stride not positive ints,
      a stride larger than the patch, a patch larger than the image, or an image that the tiles do
      not cover exactly ((H − p) or (W − p) not a multiple of s); the message names the values and
      the nearest sizes that work.
  """
  if (not isinstance(image_shape, (tuple, list)) or len(image_shape) != 2):
    raise ValueError(f"image_shape must be a pair (H, W) of positive ints, got {image_shape!r}")
  height = positive_int("image_shape[0] (H)", image_shape[0])
  width = positive_int("image_shape[1] (W)", image_shape[1])
  patch = positive_int("patch_size", patch_size)
  if isinstance(stride, bool) or not isinstance(stride, numbers.Integral) or not 1 <= stride <= patch:
    raise ValueError(f"stride must be an int in [1, patch_size={patch}] (tiles must touch or "
                     f"overlap), got {stride!r}")
  stride = int(stride)
  if patch > min(height, width):
    raise ValueError(f"patch_size {patch} is larger than the image {height}×{width}: the patch "
                     f"must fit, patch_size <= {min(height, width)}")
  for name, size in (("H", height), ("W", width)):
    if (size - patch) % stride:
      below = patch + (size - patch) // stride * stride
      raise ValueError(f"image side {name}={size} is not covered exactly by {patch}×{patch} tiles "
                       f"of stride {stride}: {name} − patch_size must be a multiple of the stride; "
                       f"use {below} or {below + stride}")
  return (height - patch) // stride + 1, (width - patch) // stride + 1


def extract_tiles(images: Array, patch_size: int, stride: int) -> Array:
  """The p × p tiles of exactly covered images on a grid of stride s, (B, T_h, T_w, p²) row-major.

  Tile (i, j) holds `images[:, s·i : s·i + p, s·j : s·j + p]` flattened. The images are cut into
  g × g blocks (g = gcd(p, s)) and each tile gathered as (p/g)² strided slices of the block grid:
  reshapes and slices only, whose transpose (the fold back to pixels) XLA:CPU runs fast.

  Args:
    images: (B, H, W) with (H − p) and (W − p) multiples of s (`tile_grid` checks it).
    patch_size: p.
    stride: s, 1 ≤ s ≤ p.
  """
  batch, height, width = images.shape
  rows, cols = tile_grid((height, width), patch_size, stride)
  g = math.gcd(patch_size, stride)
  span, step = patch_size // g, stride // g  # a tile spans `span` blocks; tiles start `step` apart
  blocks = images.reshape(batch, height // g, g, width // g, g).transpose(0, 1, 3, 2, 4)
  tiles = jnp.stack([
      jnp.stack([blocks[:, a:a + step * (rows - 1) + 1:step, b:b + step * (cols - 1) + 1:step]
                 for b in range(span)], axis=3)
      for a in range(span)], axis=3)  # (B, T_h, T_w, span_a, span_b, g, g)
  tiles = tiles.transpose(0, 1, 2, 3, 5, 4, 6)  # (..., span_a, g_row, span_b, g_col)
  return tiles.reshape(batch, rows, cols, patch_size * patch_size)


def bank_index(rows: int, cols: int, tiling: int) -> np.ndarray:
  """(T_h, T_w) int: the filter set of every tile, τ·(i mod τ) + (j mod τ)."""
  i, j = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
  return tiling * (i % tiling) + (j % tiling)


def per_tile(value: Array, index: np.ndarray | None) -> Array:
  """The bank parameter as used by every tile: itself (shared), or value[index] (T_h, T_w, ...)."""
  return value if index is None else value[index]


def contract(x: Array, matrix: Array) -> Array:
  """x (B, T_h, T_w, a) times matrix (a, b), or tile by tile for a per-tile (T_h, T_w, a, b)."""
  if matrix.ndim == 2:
    return x @ matrix
  return jnp.einsum("bija,ijac->bijc", x, matrix)


def contract_transposed(y: Array, matrix: Array) -> Array:
  """y (B, T_h, T_w, b) times matrixᵀ, shared (a, b) or per tile (T_h, T_w, a, b)."""
  if matrix.ndim == 2:
    return y @ matrix.T
  return jnp.einsum("bijc,ijac->bija", y, matrix)
