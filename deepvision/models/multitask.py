r"""A classifier with a reconstruction head: multi-task learning with an unsupervised task.

The talk's generalisation slide lists "multi-task (unsupervised learning)": a network that must also
reconstruct its input from an intermediate stage learns features from unlabelled images as well (Ranzato &
Szummer, "Semi-supervised learning of compact document representations with deep networks", ICML 2008;
Weston, Ratle & Collobert, "Deep learning via semi-supervised embedding", ICML 2008).

`ReconstructionNet` wraps a zoo classifier (the `backbone`, any module returning `(logits, intermediates)`)
and decodes the intermediate map named `stage` back to an image of the input's shape:

  4-D map (B, h, w, c): resized to the input's H×W (nearest neighbour, when h×w differs) → 3×3 conv of
    `decoder_features` maps → ReLU → 3×3 conv of the input's C channels (linear);
  flat map (B, d): dense `decoder_features` → ReLU → dense H·W·C (linear), reshaped.

It returns the backbone's logits and intermediates plus 'reconstruction' (B, H, W, C), so it trains and
evaluates as the classifier it wraps; `train.multitask` adds λ·‖x̂ − x‖² / (H·W·C) on labelled and unlabelled
images. The backbone's parameters live under 'backbone', the decoder's under 'decoder1' and 'decoder2'.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from deepvision.nn import init as inits
from deepvision.nn.conv import Conv

Array = jax.Array


class ReconstructionNet(nn.Module):
  """A classifier (`backbone`) with a decoder from its intermediate map `stage` back to the input image.

  Attributes:
    backbone: a Linen classifier with `input_shape` whose `__call__(x, *, train)` returns
      `(logits, intermediates)` (the zoo's convnets).
    stage: the intermediate map the decoder reads (one of the backbone's, e.g. 'stage2/lcn').
    decoder_features: maps (or units, for a flat map) of the decoder's hidden layer.
  """

  backbone: nn.Module
  stage: str = "stage2/lcn"
  decoder_features: int = 32

  def __post_init__(self):
    if not isinstance(self.decoder_features, int) or self.decoder_features < 1:
      raise ValueError(f"decoder_features must be a positive integer, got {self.decoder_features!r}")
    if getattr(self.backbone, "input_shape", None) is None:
      raise ValueError(f"the backbone {type(self.backbone).__name__} has no input_shape")
    super().__post_init__()

  @property
  def input_shape(self) -> tuple[int, int, int]:
    return tuple(self.backbone.input_shape)

  @nn.compact
  def __call__(self, x: Array, *, train: bool = False) -> tuple[Array, dict[str, Array]]:
    logits, acts = self.backbone(x, train=train)
    if self.stage not in acts:
      raise ValueError(f"stage {self.stage!r} is not an intermediate map of {type(self.backbone).__name__}; "
                       f"its maps: {', '.join(acts)}")
    h = acts[self.stage].astype(jnp.float32)
    height, width, channels = self.input_shape
    relu_init, linear_init = inits.kernel_init("relu"), inits.kernel_init("linear")
    if h.ndim == 2:  # a flat map: a dense decoder
      h = nn.relu(nn.Dense(self.decoder_features, kernel_init=relu_init, name="decoder1")(h))
      out = nn.Dense(height * width * channels, kernel_init=linear_init, name="decoder2")(h)
      out = out.reshape(h.shape[0], height, width, channels)
    elif h.ndim == 4:
      if h.shape[1:3] != (height, width):
        h = jax.image.resize(h, (h.shape[0], height, width, h.shape[3]), "nearest")
      h = nn.relu(Conv(self.decoder_features, (3, 3), kernel_init=relu_init, name="decoder1")(h))
      out = Conv(channels, (3, 3), kernel_init=linear_init, name="decoder2")(h)
    else:
      raise ValueError(f"stage {self.stage!r} is a map of shape {tuple(h.shape)}: the decoder reads "
                       "(batch, H, W, C) maps or (batch, D) vectors")
    return logits, {**acts, "reconstruction": out}


def reconstruction_error(reconstruction: Array, images: Array) -> Array:
  """Mean squared error per pixel: mean over examples and pixels of (x̂ − x)²."""
  return jnp.mean(jnp.square(reconstruction - images))
