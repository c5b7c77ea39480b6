r"""Deep belief nets: greedily stacked RBMs, their features, a classifier initialised from them.

A DBN of L layers (Hinton, Osindero & Teh 2006) is a stack of RBMs trained one at a time, bottom first,
RBM l on the posterior means of the layer below (h⁰ = v; `feature_data`):

  h^l = p(h^l = 1 | h^{l−1}) = σ(b_h^l + (h^{l−1})ᵀ W^l),     l = 1 … L,
  p(v, h¹, …, h^L) = p(h^{L−1}, h^L) · ∏_{l=1}^{L−1} p(h^{l−1} | h^l),

an RBM at the top and directed sigmoid layers below, p(h^{l−1} | h^l) the visible conditional of RBM l
(sampled by `deepvision.samplers.dbn`). The upward pass initialises an MLP fine-tuned by back-propagation
(`DBNClassifier`; Hinton & Salakhutdinov 2006). A stack is a list `[(model, params), ...]`, bottom first
(`check_stack`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from deepvision.data.energy import EnergyData

Array = jax.Array
Layer = tuple[nn.Module, Any]


def check_stack(layers: Sequence[Layer]) -> None:
  """ValueError unless `layers` is a non-empty list of (model, params) whose sizes chain up.

  A stack is a list `[(model, params), ...]`, bottom layer first: `model` an RBM-like module with
  `hidden_probs`, `visible_mean`, `sample_visible` and `sample_hidden` (`RBM`; a `GaussianRBM` at the bottom
  for real-valued data) and `params` its parameter dict (`variables['params']`, as the contrastive trainer
  returns it). Layer l's `n_visible` must equal layer l−1's `n_hidden`.
  """
  if not isinstance(layers, Sequence) or len(layers) == 0:
    raise ValueError(f"a DBN needs a non-empty list of (model, params) layers, got {layers!r}")
  for l, layer in enumerate(layers, start=1):
    if not isinstance(layer, (tuple, list)) or len(layer) != 2:
      raise ValueError(f"DBN layer {l} must be a (model, params) pair, got {type(layer).__name__}")
    if l > 1 and layer[0].n_visible != layers[l - 2][0].n_hidden:
      raise ValueError(f"DBN layer {l} has n_visible={layer[0].n_visible} but layer {l - 1} has "
                       f"n_hidden={layers[l - 2][0].n_hidden}; they must be equal")


def _variables(params: Any) -> dict[str, Any]:
  return {"params": params}


def features(layers: Sequence[Layer], x: Any, depth: int | None = None) -> Array:
  """The posterior means of layer `depth`, pushed up from the data x through the layers below it.

  h⁰ = x (flattened), h^l = `hidden_probs` of RBM l at h^{l−1}, i.e. σ(b_h^l + (h^{l−1})ᵀW^l) for
  binary RBMs; returns h^depth.

  Args:
    layers: the stack, bottom first.
    x: data (B, V) or images (B, ...) of V = layers[0].n_visible elements.
    depth: how many layers to push through, 0 … L (0: the flattened data; default L, the top layer).

  Returns:
    (B, n_hidden of layer `depth`) float array.
  """
  check_stack(layers)
  depth = len(layers) if depth is None else depth
  if isinstance(depth, bool) or not isinstance(depth, int) or not 0 <= depth <= len(layers):
    raise ValueError(f"depth must be an int in [0, {len(layers)}] (the number of layers), got {depth!r}")
  model, params = layers[0]
  h = model.apply(_variables(params), x, method="visible")
  for model, params in layers[:depth]:
    h = model.apply(_variables(params), h, method="hidden_probs")
  return h


class DBNClassifier(nn.Module):
  """The recognition network of a DBN: sigmoid hidden layers, then a linear (softmax) classifier.

  For recognition, the DBN's upward pass of posterior means is a deterministic sigmoid network: W^l and
  b_h^l initialise the hidden layers of this MLP, a softmax output layer is added and the whole net is
  fine-tuned with back-propagation (Hinton & Salakhutdinov 2006, "Reducing the dimensionality of data with
  neural networks": pre-training, then fine-tuning).

  h⁰ = x flattened, h^l = σ(kernel_lᵀ h^{l−1} + bias_l) for the Dense layers named 'layer_1' … 'layer_L'
  (`hidden` sizes), logits = Dense 'classifier'(h^L). Initialised from random weights (Glorot & Bengio
  2010's uniform scaling, the usual choice for sigmoid nets) or, with `classifier_params_from_stack`, from
  a trained stack, whose upward pass of posterior means it then computes exactly.

  Attributes:
    input_shape: shape of one example, e.g. (8, 8, 1); inputs of that many elements are flattened.
    hidden: hidden-layer sizes, bottom first (the stack's n_hidden per layer); () is logistic regression.
    num_classes: number of classes.
  """

  input_shape: tuple[int, ...] = (8, 8, 1)
  hidden: Sequence[int] = (256, 256)
  num_classes: int = 10

  @nn.compact
  def __call__(self, x: Any, train: bool = False) -> tuple[Array, dict[str, Array]]:
    """Returns `(logits (B, num_classes), {'layer_l': h^l …, 'features': h^L})`."""
    del train  # no dropout or batch statistics
    for field, values in (("hidden", tuple(self.hidden)), ("input_shape", tuple(self.input_shape))):
      if any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in values):
        raise ValueError(f"DBNClassifier.{field} must hold positive ints, got {values!r}")
    if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int) or self.num_classes < 2:
      raise ValueError(f"DBNClassifier.num_classes must be an int >= 2, got {self.num_classes!r}")
    size = math.prod(self.input_shape)
    x = jnp.asarray(x)
    if x.ndim < 2 or math.prod(x.shape[1:]) != size or not jnp.issubdtype(x.dtype, jnp.floating):
      raise ValueError(f"DBNClassifier expects float inputs (batch, {size}) or (batch, "
                       f"{', '.join(map(str, self.input_shape))}), got {x.dtype} {tuple(x.shape)}")
    h = x.reshape(x.shape[0], size)
    intermediates = {}
    init = nn.initializers.xavier_uniform()
    for l, width in enumerate(self.hidden, start=1):
      h = nn.sigmoid(nn.Dense(width, kernel_init=init, name=f"layer_{l}")(h))
      intermediates[f"layer_{l}"] = h
    intermediates["features"] = h
    logits = nn.Dense(self.num_classes, kernel_init=init, name="classifier")(h)
    return logits, intermediates


def classifier_params_from_stack(layers: Sequence[Layer], classifier_params: Any) -> dict[str, Any]:
  """`classifier_params` with hidden layer l set to RBM l's recognition weights; 'classifier' kept.

  'layer_l' gets kernel = W^l and bias = b_h^l (for a Gaussian RBM with learned σ, kernel = W^l / σ, since
  its hidden input is (v/σ)ᵀW + b_h), so the classifier's hidden activations equal `features(layers, x,
  depth=l)` exactly. The output layer 'classifier' keeps its (random) initial values.

  Args:
    layers: the stack, bottom first.
    classifier_params: parameters of a `DBNClassifier` with `hidden` equal to the stack's n_hidden sizes
      (`variables['params']`).

  Returns:
    A new parameter dict (the inputs are not modified).
  """
  check_stack(layers)
  params = dict(classifier_params)
  names = sorted((k for k in params if k.startswith("layer_")), key=lambda k: int(k.split("_")[1]))
  if len(names) != len(layers) or "classifier" not in params:
    raise ValueError(f"the classifier has hidden layers {names} but the stack has {len(layers)} layers; "
                     f"build DBNClassifier(hidden={tuple(m.n_hidden for m, _ in layers)})")
  for l, (model, rbm_params) in enumerate(layers, start=1):
    kernel = rbm_params["W"]
    if getattr(model, "learn_sigma", False):
      kernel = kernel / jnp.exp(rbm_params["log_sigma"])[:, None]
    target = params[f"layer_{l}"]
    if tuple(target["kernel"].shape) != tuple(kernel.shape):
      raise ValueError(f"classifier layer_{l} has a kernel of shape {tuple(target['kernel'].shape)} but "
                       f"RBM {l} has W of shape {tuple(kernel.shape)}")
    params[f"layer_{l}"] = {"kernel": jnp.asarray(kernel, target["kernel"].dtype),
                            "bias": jnp.asarray(rbm_params["b_h"], target["bias"].dtype)}
  return params


# ----------------------------------------------------------------------------- layer features


def feature_shape(n_hidden: int) -> tuple[int, int, int]:
  """The example shape under which layer features reach the contrastive trainer: (n_hidden, 1, 1).

  The training pipeline reads (N, H, W, C) arrays, so the features of a layer travel as H × 1 × 1
  "images"; the RBMs flatten them back to n_hidden-vectors.
  """
  return (n_hidden, 1, 1)


def feature_data(layer: Layer, data: EnergyData, batch: int = 1024) -> EnergyData:
  """The posterior means p(h = 1 | x) of `layer` for every split of `data` (labels kept).

  These are the data the next RBM of the stack trains on (greedy layer-wise training: with the new layer
  initialised as the transpose of the one below, each added layer can only raise a variational lower bound
  on log p(v); Hinton, Osindero & Teh 2006, §4).

  Examples have shape `feature_shape(n_hidden)`; values are float32 in [0, 1].
  """
  model, params = layer
  probs = jax.jit(lambda x: model.apply({"params": params}, x, method="hidden_probs"))
  shape = feature_shape(model.n_hidden)
  splits = {}
  for role, x in data.splits.items():
    flat = x.reshape(len(x), -1)
    h = np.concatenate([np.asarray(probs(jnp.asarray(flat[i:i + batch]))) for i in range(0, len(x), batch)])
    splits[role] = h.astype(np.float32).reshape(len(x), *shape)
  return EnergyData(splits, dict(data.labels), shape)
