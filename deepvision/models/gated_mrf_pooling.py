"""Pooling of factors into covariance units in a gated MRF, and the training recipe's projections.

Ranzato & Hinton, CVPR 2010; Ranzato, Mnih, Susskind & Hinton, PAMI 2013. The pooling matrix P (F×N)
sums squared factor responses into covariance units. After every update the original recipe rescales the
columns of the factor filters C to a running common norm (`normalize_factor_columns`) and projects P onto
non-negative, column-L1-normalised matrices, times a topographic mask if any (`project_pooling`,
`topographic_mask`: each unit pools a window of neighbouring factors on a torus).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

POOLING_INITS = ("identity", "topographic")


def _grid_side(count: int, what: str) -> int:
  side = math.isqrt(count)
  if side * side != count:
    raise ValueError(f"a topographic pooling needs a square number of {what}, got {count}")
  return side


def topographic_mask(n_factors: int, n_cov: int, window: int = 3) -> np.ndarray:
  """The 0/1 (n_factors, n_cov) mask of a topographic pooling on a torus.

  Factors lie on a g_f × g_f grid (row-major, g_f² = n_factors) and covariance units on a
  g_n × g_n grid (g_n² = n_cov, g_n ≤ g_f). Unit (i, j) pools the window × window block of factors
  starting at (⌊i·g_f/g_n⌋, ⌊j·g_f/g_n⌋), wrapping around the grid's edges. When g_f = 2·g_n this is
  the original code's 3×3 windows with stride 2, e.g. 576 factors (24×24) → 144 units (12×12);
  other sizes space the windows evenly (256 factors → 144 units: stride 16/12).

  Raises:
    ValueError: n_factors or n_cov not a positive square, more units than factors, or windows
      too sparse to pool every factor (g_f > window·g_n).
  """
  for name, value in (("n_factors", n_factors), ("n_cov", n_cov), ("window", window)):
    if not isinstance(value, (int, np.integer)) or value < 1:
      raise ValueError(f"topographic_mask: {name} must be a positive int, got {value!r}")
  factor_side = _grid_side(n_factors, "factors")
  unit_side = _grid_side(n_cov, "covariance units")
  if unit_side > factor_side:
    raise ValueError(f"topographic_mask: {n_cov} covariance units on a {unit_side}×{unit_side} grid "
                     f"exceed the {factor_side}×{factor_side} grid of {n_factors} factors")
  starts = (np.arange(unit_side) * factor_side) // unit_side
  rows = (starts[:, None] + np.arange(window)[None]) % factor_side  # (g_n, window)
  mask = np.zeros((factor_side, factor_side, unit_side, unit_side), np.float32)
  for i in range(unit_side):
    for j in range(unit_side):
      mask[np.ix_(rows[i], rows[j], [i], [j])] = 1.0
  mask = mask.reshape(n_factors, n_cov)
  if not mask.any(axis=1).all():
    raise ValueError(f"topographic_mask: {window}×{window} windows at {unit_side}×{unit_side} "
                     f"positions leave factors of the {factor_side}×{factor_side} grid unpooled; "
                     f"use at least {-(-factor_side // window)}² covariance units")
  return mask


def is_concrete(a: Any) -> bool:
  return not isinstance(a, jax.core.Tracer)


def project_pooling(P: Array, mask: Any = None) -> Array:
  """P clipped to ≥ 0, times `mask` if given, each column rescaled to unit L1 norm.

  A column with no positive entry is left at zero (its unit then ignores the factors).

  Args:
    P: (F, N) pooling matrix.
    mask: None or a non-negative (F, N) array (e.g. `topographic_mask(F, N)`).

  Raises:
    ValueError: P not 2-D, a mask of another shape, or (when it is not traced) a negative mask.
  """
  P = jnp.asarray(P)
  if P.ndim != 2:
    raise ValueError(f"project_pooling: P must be a (n_factors, n_cov) matrix, got shape {P.shape}")
  P = jnp.maximum(P, 0)
  if mask is not None:
    if tuple(jnp.shape(mask)) != P.shape:
      raise ValueError(f"project_pooling: mask shape {tuple(jnp.shape(mask))} differs from P's "
                       f"shape {P.shape}")
    if is_concrete(mask) and np.any(np.asarray(mask) < 0):
      raise ValueError(f"project_pooling: mask must be non-negative, got minimum value "
                       f"{np.min(np.asarray(mask))}")
    P = P * jnp.asarray(mask, P.dtype)
  column_sums = jnp.sum(P, axis=0)
  return P / jnp.where(column_sums > 0, column_sums, 1)


def normalize_factor_columns(C: Array, running_norm: Any,
                             decay: float = 0.95) -> tuple[Array, Array]:
  """Rescales every column of C to a running common norm, as the original code does after updates.

    n ← decay·n + (1 − decay)·mean_f ‖C_f‖,   C_f ← C_f · n / ‖C_f‖

  (n starts at 1; all-zero columns stay zero).

  Args:
    C: (D, F) factor filters.
    running_norm: n, a scalar.
    decay: the running average's decay, in [0, 1].

  Returns:
    (C with columns of norm n_new, n_new).
  """
  C = jnp.asarray(C)
  if C.ndim != 2:
    raise ValueError(f"normalize_factor_columns: C must be a (n_visible, n_factors) matrix, got "
                     f"shape {C.shape}")
  if jnp.ndim(running_norm) != 0:
    raise ValueError(f"normalize_factor_columns: running_norm must be a scalar, got shape "
                     f"{jnp.shape(running_norm)}")
  if is_concrete(decay) and not 0.0 <= float(decay) <= 1.0:
    raise ValueError(f"normalize_factor_columns: decay must lie in [0, 1], got {decay}")
  norms = jnp.linalg.norm(C, axis=0)
  new_norm = decay * running_norm + (1 - decay) * jnp.mean(norms)
  scale = jnp.where(norms > 0, new_norm / jnp.where(norms > 0, norms, 1), 0)
  return C * scale, jnp.asarray(new_norm, C.dtype)


def pooling_initializer(pooling_init: str, n_factors: int, n_cov: int):
  """P's initialiser: the identity, or the projected (column-normalised) topographic mask."""

  def init(key: Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> Array:
    del key
    if pooling_init == "identity":
      return jnp.eye(*shape, dtype=dtype)
    return project_pooling(jnp.asarray(topographic_mask(n_factors, n_cov), dtype))

  return init
