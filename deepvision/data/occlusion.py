r"""Occlusion masks: which pixels of an image are seen, for recognition and inpainting under occlusion.

The occlusion experiments of Ranzato, Mnih, Susskind & Hinton ("Modeling natural images using gated
MRFs", PAMI 2013; after Ranzato, Susskind, Mnih & Hinton, "On deep generative models with applications
to recognition", CVPR 2011) hide a region of every test face and recognise the expression from what is
left, filled in by conditional sampling. A mask is a bool array of the images' shape, True where the
pixel is **observed**; the `kind` names the occluded region (`occlusion_mask`):

  "left_half"      columns [0, ⌊W/2⌋) occluded            "right_half"   columns [W − ⌊W/2⌋, W)
  "top_half"       rows    [0, ⌊H/2⌋) occluded            "bottom_half"  rows    [H − ⌊H/2⌋, H)
  "random_square"  an s × s block at a uniformly drawn position wholly inside the image, per image
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

OCCLUSION_KINDS = ("left_half", "right_half", "top_half", "bottom_half", "random_square")


def _image_shape(image_shape: Any) -> tuple[int, ...]:
  if (not isinstance(image_shape, (tuple, list)) or len(image_shape) not in (2, 3)
      or any(isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1 for n in image_shape)):
    raise ValueError(f"image_shape must be (H, W) or (H, W, C) of positive ints, got {image_shape!r}")
  return tuple(int(n) for n in image_shape)


def _key(key_or_seed: Any) -> Array:
  """A typed PRNG key from a typed key or an int seed."""
  if isinstance(key_or_seed, numbers.Integral) and not isinstance(key_or_seed, bool):
    return jax.random.key(int(key_or_seed))
  if (isinstance(key_or_seed, jax.Array) and key_or_seed.shape == ()
      and jnp.issubdtype(key_or_seed.dtype, jax.dtypes.prng_key)):
    return key_or_seed
  raise ValueError(f"key_or_seed must be an int seed or a typed PRNG key (jax.random.key(seed)), got "
                   f"{key_or_seed!r}")


def square_side(square_size: Any, height: int, width: int) -> int:
  """The side in pixels of a `random_square` occluder.

  An int is a side in pixels, 1 ≤ s ≤ min(H, W); a float f in (0, 1] is a fraction of the shorter
  side, s = max(1, round(f · min(H, W))). The square may not cover the whole image (nothing would
  be left to observe).

  Raises:
    ValueError: any other value, or a square as large as the image.
  """
  shorter = min(height, width)
  if isinstance(square_size, bool) or not isinstance(square_size, numbers.Real):
    raise ValueError(f"square_size must be an int (pixels) or a float fraction of the shorter side, "
                     f"got {square_size!r}")
  if isinstance(square_size, numbers.Integral):
    side = int(square_size)
    if not 1 <= side <= shorter:
      raise ValueError(f"square_size of {side} pixels must lie in [1, {shorter}] for {height}×{width} "
                       "images")
  else:
    if not (math.isfinite(square_size) and 0 < square_size <= 1):
      raise ValueError(f"square_size as a fraction of the shorter side must lie in (0, 1], got "
                       f"{square_size!r}")
    side = max(1, round(float(square_size) * shorter))
  if side == height == width:
    raise ValueError(f"a {side}×{side} square occludes the whole {height}×{width} image, leaving "
                     "nothing observed; choose a smaller square_size")
  return side


def occlusion_mask(kind: str, image_shape: Any, key_or_seed: Any, batch: int, *,
                   square_size: Any = 0.5) -> Array:
  """Bool masks (True = observed) of `batch` images of shape `image_shape`, occluded as `kind` says.

  "random_square" draws its block's position uniformly among the (H − s + 1)(W − s + 1) positions where
  it lies wholly inside the image, independently for each image; for the halves, an odd side leaves the
  middle row or column observed. Every channel of a pixel is occluded together. Masks are built with JAX
  from a typed PRNG key (or an int seed, `jax.random.key(seed)`), so the same key gives the same masks,
  and they plug into `GaussianModel.inpaint` and `deepvision.samplers.conditional` as `observed_mask`.

  Example:
    >>> mask = occlusion_mask("random_square", (8, 8, 1), seed, batch=len(images), square_size=0.5)
    >>> seen = occlude(images, mask)                  # occluded pixels set to 0

  Args:
    kind: the occluded region, one of `OCCLUSION_KINDS` (see the module docstring).
    image_shape: (H, W) or (H, W, C) of one image.
    key_or_seed: a typed PRNG key or an int seed; used by "random_square" only (the halves are the
      same for every image), but checked for every kind.
    batch: the number of masks, an int ≥ 1.
    square_size: the side of the "random_square" occluder, int pixels or a float fraction of the
      shorter side (`square_side`); ignored by the other kinds.

  Returns:
    (batch, *image_shape) bool jax.Array.

  Raises:
    ValueError: an unknown kind (the message lists the choices), a bad shape, batch, key or size, or
      an image too small to have the requested half occluded.
  """
  if kind not in OCCLUSION_KINDS:
    raise ValueError(f"unknown occlusion kind {kind!r}; valid choices: {', '.join(OCCLUSION_KINDS)}")
  shape = _image_shape(image_shape)
  if isinstance(batch, bool) or not isinstance(batch, numbers.Integral) or batch < 1:
    raise ValueError(f"batch must be a positive int, got {batch!r}")
  key = _key(key_or_seed)
  height, width = shape[:2]
  rows = jnp.arange(height)[:, None]
  cols = jnp.arange(width)[None, :]
  if kind == "random_square":
    side = square_side(square_size, height, width)
    corners = jax.random.randint(key, (int(batch), 2), 0,
                                 jnp.array([height - side + 1, width - side + 1]))
    top, left = corners[:, 0, None, None], corners[:, 1, None, None]
    occluded = ((rows >= top) & (rows < top + side)) & ((cols >= left) & (cols < left + side))
  else:
    along_width = kind in ("left_half", "right_half")
    extent = width if along_width else height
    if extent < 2:
      raise ValueError(f"{kind!r} needs images at least 2 pixels {'wide' if along_width else 'high'}, "
                       f"got image_shape {shape}")
    half = extent // 2
    index = cols if along_width else rows
    occluded = index < half if kind in ("left_half", "top_half") else index >= extent - half
    occluded = jnp.broadcast_to(occluded, (int(batch), height, width))
  observed = ~occluded
  if len(shape) == 3:
    observed = jnp.broadcast_to(observed[..., None], observed.shape + (shape[2],))
  return observed


def occlude(images: Any, mask: Any, fill: float = 0.0) -> Array:
  """The images with every pixel where `mask` is False replaced by `fill`.

    out = where(mask, images, fill)

  Args:
    images: (B, ...) real array.
    mask: bool, True = observed: per image, of images' shape, or shared, of images.shape[1:].
    fill: the value of occluded pixels (a real number; NaN marks them as missing for
      `GaussianModel.inpaint`).

  Returns:
    An array of images' shape and (floating) dtype; integer images come back as float32.

  Raises:
    ValueError: a non-bool mask, a mask of another shape, non-real images or a non-number fill.
  """
  images = jnp.asarray(images)
  mask = jnp.asarray(mask)
  if not (jnp.issubdtype(images.dtype, jnp.integer) or jnp.issubdtype(images.dtype, jnp.floating)):
    raise ValueError(f"images must be real numbers, got dtype {images.dtype}")
  if mask.dtype != jnp.bool_:
    raise ValueError(f"mask must be a bool array (True = observed), got dtype {mask.dtype}")
  if mask.shape not in (images.shape, images.shape[1:]) or images.ndim < 2:
    raise ValueError(f"mask has shape {mask.shape}; for images of shape {images.shape} it must be per "
                     f"image, {images.shape}, or shared, {images.shape[1:]}")
  if isinstance(fill, bool) or not isinstance(fill, (numbers.Real, np.floating)):
    raise ValueError(f"fill must be a real number, got {fill!r}")
  if not jnp.issubdtype(images.dtype, jnp.floating):
    images = images.astype(jnp.float32)
  return jnp.where(mask, images, jnp.asarray(fill, images.dtype))
