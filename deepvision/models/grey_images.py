"""What the whole-image models share: an (H, W) field, image batches checked and shaped, the Student-t expert.

`GreyImageModel` is the base of the image priors the talk compares with the gated MRF (`stationary_gaussian`,
`wavelet_prior`, `pairwise_mrf`, `field_of_experts`): Linen modules over grey images x of shape (B, H, W)
whose `free_energy(x)` is one value per image. They take (B, H, W), (B, H, W, 1) or flat (B, H·W)
batches, so the HMC sampler and the contrastive trainer, which keep flat chains of `n_visible` values,
drive them as they drive the tiled gated MRF.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from deepvision.models.tiling import positive_int

Array = jax.Array


def image_shape_field(owner: str, value: Any) -> tuple[int, int]:
  """`value` as a pair (H, W) of positive ints, or a ValueError naming `owner`'s field."""
  if not isinstance(value, (tuple, list)) or len(value) != 2:
    raise ValueError(f"{owner}.image_shape must be a pair (H, W) of positive ints, got {value!r}")
  return (positive_int(f"{owner}.image_shape[0] (H)", value[0]),
          positive_int(f"{owner}.image_shape[1] (W)", value[1]))


def non_negative_number(name: str, value: Any) -> float:
  """`value` as a float, or a ValueError unless it is a finite real number ≥ 0."""
  if (isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value)
      or value < 0):
    raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
  return float(value)


def positive_number(name: str, value: Any) -> float:
  """`value` as a float, or a ValueError unless it is a finite real number > 0."""
  if (isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value)
      or value <= 0):
    raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
  return float(value)


def student_t_energy(responses: Array, alpha: Array) -> Array:
  """α log(1 + r²/2) elementwise: the Student-t expert of Roth & Black (2005), α broadcast over r."""
  return alpha * jnp.log1p(0.5 * responses * responses)


def student_t_posterior(responses: Array, alpha: Array) -> Array:
  """E[h | r] = α / (1 + r²/2): the posterior mean of the expert's Gamma scale variable.

  (1 + r²/2)^(−α) = Γ(α)⁻¹ ∫ h^(α−1) e^(−h) e^(−h r²/2) dh, so given r, h ~ Gamma(α, rate 1 + r²/2)
  (Welling, Hinton & Osindero, NIPS 2003): the Gaussian-scale-mixture view of the expert, as mPoT's.
  """
  return alpha / (1.0 + 0.5 * responses * responses)


def grey_batch(x: Any, image_shape: tuple[int, int], owner: str) -> Array:
  """x checked and shaped (B, H, W), float (non-float input becomes float32), for a model of H × W images.

  Accepts (B, H, W), (B, H, W, 1) (a data set's grey images) and (B, H·W) (flat chains, the trainer's
  batches); anything else is a ValueError naming `owner`, its image shape and the shape given.
  """
  x = jnp.asarray(x)
  height, width = image_shape
  if x.ndim == 4 and x.shape[-1] == 1:
    x = x[..., 0]
  elif x.ndim == 2 and x.shape[1] == height * width:
    x = x.reshape(x.shape[0], height, width)
  if x.ndim != 3 or x.shape[1:] != (height, width):
    raise ValueError(f"{owner} with image_shape {tuple(image_shape)} expects images of shape (batch, {height}, "
                     f"{width}), (batch, {height}, {width}, 1) or (batch, {height * width}), got {tuple(x.shape)}")
  if not jnp.issubdtype(x.dtype, jnp.floating):
    x = x.astype(jnp.float32)
  return x


class GreyImageModel(nn.Module):
  """Base of the whole-image models: an `image_shape` field and the input handling.

  Attributes:
    image_shape: (H, W) of the grey images modelled.
  """

  image_shape: tuple[int, int]

  visible_range = None
  visible_kind = "gaussian"

  def __post_init__(self):
    if isinstance(self.image_shape, list):  # config files hold lists; a tuple keeps the module hashable
      object.__setattr__(self, "image_shape", tuple(self.image_shape))
    image_shape_field(type(self).__name__, self.image_shape)
    super().__post_init__()

  @property
  def n_visible(self) -> int:
    """H·W, the number of pixels (the flat input size the trainer and the zoo use)."""
    return self.image_shape[0] * self.image_shape[1]

  def images(self, x: Any) -> Array:
    """x checked and shaped (B, H, W), float (non-float input becomes float32)."""
    return grey_batch(x, self.image_shape, type(self).__name__)

  def visible(self, x: Any) -> Array:
    """x checked and flattened to (B, H·W), as the other energy models' `visible`."""
    x = self.images(x)
    return x.reshape(x.shape[0], -1)
