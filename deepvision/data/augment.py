"""Data augmentation as pure JAX functions on a batch, with an explicit PRNG key.

All functions take images NHWC (B, H, W, C) and can run inside a jitted training step;
each example gets its own random draw from `key`, and the same key gives the same output.
Jitter and flips are the "distortions" the talk recommends for small data sets (Ranzato
2013; Simard, Steinkraus & Platt 2003); per-image standardisation is the global part of
contrast normalisation (zero mean, unit variance per image).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

_FILL_MODES = ("zero", "edge")


def _check_images(images: jax.Array) -> None:
  if images.ndim != 4:
    raise ValueError(f"images must be NHWC (B, H, W, C), got shape {images.shape}")


def translate(images: jax.Array, shifts: jax.Array, fill: str = "zero") -> jax.Array:
  """Shifts each image by an integer number of pixels.

  out[b, y, x] = images[b, y - dy_b, x - dx_b], where (dy_b, dx_b) = shifts[b]; positive
  dy moves the content down, positive dx to the right. Pixels that come from outside the
  image are 0 (`fill='zero'`) or copy the nearest border pixel (`fill='edge'`).

  Args:
    images: (B, H, W, C).
    shifts: integer (B, 2) array of (dy, dx).
    fill: 'zero' or 'edge'.
  """
  _check_images(images)
  if fill not in _FILL_MODES:
    raise ValueError(f"invalid fill {fill!r}; valid choices: {', '.join(_FILL_MODES)}")
  if shifts.shape != (images.shape[0], 2):
    raise ValueError(f"shifts must have shape ({images.shape[0]}, 2), got {shifts.shape}")
  _, height, width, _ = images.shape

  def shift_one(image, shift):
    rows = jnp.arange(height) - shift[0]
    cols = jnp.arange(width) - shift[1]
    out = image[jnp.clip(rows, 0, height - 1)][:, jnp.clip(cols, 0, width - 1)]
    if fill == "zero":
      inside = ((rows >= 0) & (rows < height))[:, None] & ((cols >= 0) & (cols < width))[None, :]
      out = jnp.where(inside[:, :, None], out, jnp.zeros_like(out))
    return out

  return jax.vmap(shift_one)(images, shifts.astype(jnp.int32))


def random_translate(key: jax.Array, images: jax.Array, max_shift: int, fill: str = "zero") -> jax.Array:
  """Jitters each image by integer shifts drawn uniformly from {-max_shift, ..., max_shift}².

  Args:
    key: a PRNG key.
    images: (B, H, W, C).
    max_shift: the largest shift in pixels, in each direction (0 returns the images); a
      Python int (static under `jax.jit`).
    fill: 'zero' (default: pixels shifted in are 0, the background of digits) or 'edge'.
  """
  _check_images(images)
  if not isinstance(max_shift, int) or max_shift < 0:
    raise ValueError(f"max_shift must be a non-negative int, got {max_shift!r}")
  shifts = jax.random.randint(key, (images.shape[0], 2), -max_shift, max_shift + 1)
  return translate(images, shifts, fill)


def random_flip_left_right(key: jax.Array, images: jax.Array) -> jax.Array:
  """Mirrors each image left-right with probability 1/2."""
  _check_images(images)
  flip = jax.random.bernoulli(key, 0.5, (images.shape[0],))
  return jnp.where(flip[:, None, None, None], images[:, :, ::-1, :], images)


def gaussian_noise(key: jax.Array, images: jax.Array, stddev: float) -> jax.Array:
  """Adds independent N(0, stddev²) noise to every pixel (no clipping)."""
  _check_images(images)
  if isinstance(stddev, (int, float)) and stddev < 0:
    raise ValueError(f"stddev must be non-negative, got {stddev!r}")
  return images + stddev * jax.random.normal(key, images.shape, images.dtype)


def standardize_per_image(images: jax.Array, eps: float = 1e-5) -> jax.Array:
  """(x - mean) / sqrt(var + eps), with mean and variance over each image's H, W, C.

  `eps` keeps constant images finite (they map to 0).
  """
  _check_images(images)
  mean = images.mean(axis=(1, 2, 3), keepdims=True)
  var = images.var(axis=(1, 2, 3), keepdims=True)
  return (images - mean) * jax.lax.rsqrt(var + eps)
