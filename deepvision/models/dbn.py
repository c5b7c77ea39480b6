r"""Deep belief nets: greedily stacked RBMs, their features, a classifier initialised from them, samples.

A DBN of L layers (Hinton, Osindero & Teh 2006) is a stack of RBMs trained one at a time, bottom first:
RBM 1 on the data h⁰ = v, then RBM l on the posterior means of the layer below,

  h^l = p(h^l = 1 | h^{l−1}) = σ(b_h^l + (h^{l−1})ᵀ W^l),     l = 1 … L,

(greedy layer-wise training: with the new layer initialised as the transpose of the one below, each added
layer can only raise a variational lower bound on log p(v); Hinton et al. 2006, §4). The model they define
is an undirected RBM over (h^{L−1}, h^L) at the top and directed sigmoid connections downwards,

  p(v, h¹, …, h^L) = p(h^{L−1}, h^L) · ∏_{l=1}^{L−1} p(h^{l−1} | h^l),

where p(h^{l−1} | h^l) is the visible conditional p(v | h) of RBM l. A sample is drawn by running block
Gibbs in the top RBM for a long time, then one top-down pass (`sample`).

For recognition, the upward pass of posterior means is a deterministic sigmoid network: W^l and b_h^l
initialise the hidden layers of an MLP (`DBNClassifier`), a softmax output layer is added and the whole net
is fine-tuned with back-propagation (Hinton & Salakhutdinov 2006, "Reducing the dimensionality of data with
neural networks": pre-training, then fine-tuning).

A stack is a list `[(model, params), ...]`, bottom layer first: `model` an RBM-like module with
`hidden_probs`, `visible_mean`, `sample_visible` and `sample_hidden` (`RBM`; a `GaussianRBM` at the bottom
for real-valued data) and `params` its parameter dict (`variables['params']`, as `run_contrastive` returns
it). Layer l's `n_visible` must equal layer l−1's `n_hidden`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from deepvision.samplers import gibbs
from deepvision.samplers.base import run_chain

Array = jax.Array
Layer = tuple[nn.Module, Any]


def check_stack(layers: Sequence[Layer]) -> None:
  """ValueError unless `layers` is a non-empty list of (model, params) whose sizes chain up."""
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


def _check_counts(num_samples: int, gibbs_steps: int) -> None:
  for name, value, low in (("num_samples", num_samples, 1), ("gibbs_steps", gibbs_steps, 0)):
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
      raise ValueError(f"{name} must be an int >= {low}, got {value!r}")


def _check_start(layers: Sequence[Layer], start: Any | None, num_samples: int) -> None:
  if start is not None and tuple(jnp.shape(start)) != (num_samples, layers[-1][0].n_visible):
    raise ValueError(f"start must hold (num_samples, n_visible of the top RBM) = "
                     f"{(num_samples, layers[-1][0].n_visible)} states, got shape {tuple(jnp.shape(start))}")


def _run_top_chain(model: nn.Module, params: Any, key: Array, start: Array | None, num_samples: int,
                   gibbs_steps: int) -> gibbs.GibbsState:
  init_key, chain_key = jax.random.split(key)
  if start is None:
    shape = (num_samples, model.n_visible)
    if getattr(model, "visible_kind", "binary") == "gaussian":
      start = jax.random.normal(init_key, shape)
    else:
      start = jax.random.bernoulli(init_key, 0.5, shape).astype(jnp.float32)
  sampler = gibbs.block_gibbs(model, _variables(params))
  state, _, _ = run_chain(chain_key, sampler.step, sampler.init(start), gibbs_steps)
  return state


# One compiled program per model, sample count and chain length (modules hash by their fields).
_run_top_chain_jit = jax.jit(_run_top_chain, static_argnums=(0, 4, 5))


def sample_top(layers: Sequence[Layer], key: Array, num_samples: int, gibbs_steps: int,
               start: Any | None = None) -> gibbs.GibbsState:
  """Runs `num_samples` block Gibbs chains for `gibbs_steps` transitions in the top RBM (jitted).

  Args:
    layers: the stack, bottom first (only the top layer is used).
    key: split into an `init` key (the random start) and a `chain` key (`run_chain`).
    num_samples: number of independent chains.
    gibbs_steps: transitions per chain (0: the start itself).
    start: (num_samples, n_visible of the top RBM) starting states, e.g. the features of data; default
      uniformly random binary states (standard normal ones for a Gaussian top RBM).

  Returns:
    The final `GibbsState`: `position`, samples of the top RBM's visible layer h^{L−1}, and `hidden`, the
    h^L drawn to reach them.
  """
  check_stack(layers)
  _check_counts(num_samples, gibbs_steps)
  _check_start(layers, start, num_samples)
  model, params = layers[-1]
  return _run_top_chain_jit(model, params, key, None if start is None else jnp.asarray(start, jnp.float32),
                            num_samples, gibbs_steps)


def top_down(layers: Sequence[Layer], key: Array, h: Any, mean_field: bool = False,
             mean_visible: bool = True) -> Array:
  """One directed top-down pass: h^{l−1} from p(h^{l−1} | h^l) of RBM l, for l = L … 1.

  Args:
    layers: the RBMs to pass down through, bottom first (for a DBN sample: every layer but the top).
    key: layer l samples with `fold_in(key, l)`.
    h: (B, n_hidden of the last layer) states of the top of `layers`.
    mean_field: use the conditional means E[h^{l−1} | h^l] at every layer instead of binary samples.
    mean_visible: at the bottom (the data), return the mean E[v | h¹] instead of a sample (the usual way
      to show samples: Hinton et al. 2006, Fig. 8).

  Returns:
    (B, n_visible of layers[0]) visible states; `h` itself when `layers` is empty.
  """
  for l in range(len(layers), 0, -1):
    model, params = layers[l - 1]
    if (mean_visible if l == 1 else mean_field):
      h = model.apply(_variables(params), h, method="visible_mean")
    else:
      h = model.apply(_variables(params), jax.random.fold_in(key, l), h, method="sample_visible")
  return jnp.asarray(h)


def _sample(models: tuple[nn.Module, ...], params: list[Any], key: Array, start: Array | None,
            num_samples: int, gibbs_steps: int, mean_field: bool, mean_visible: bool) -> Array:
  layers = list(zip(models, params))
  chain_key, down_key = jax.random.split(key)
  state = _run_top_chain(models[-1], params[-1], chain_key, start, num_samples, gibbs_steps)
  use_mean = mean_visible if len(layers) == 1 else mean_field
  top = (models[-1].apply(_variables(params[-1]), state.hidden, method="visible_mean") if use_mean
         else state.position)
  return top_down(layers[:-1], down_key, top, mean_field, mean_visible)


_sample_jit = jax.jit(_sample, static_argnums=(0, 4, 5, 6, 7))


def sample(layers: Sequence[Layer], key: Array, num_samples: int, gibbs_steps: int = 1000, *,
           start: Any | None = None, mean_field: bool = False, mean_visible: bool = True) -> Array:
  """Samples from the DBN: Gibbs in the top RBM, then a top-down pass through the layers below (jitted).

  With `chain_key, down_key = jax.random.split(key)`:
    1. `state = sample_top(layers, chain_key, num_samples, gibbs_steps, start)`: block Gibbs on the top RBM
       over (h^{L−1}, h^L), the DBN's associative memory;
    2. the top RBM's visible states h^{L−1}: `state.position` (binary samples), or with `mean_field` the
       conditional means E[h^{L−1} | h^L = state.hidden];
    3. `top_down(layers[:-1], down_key, h^{L−1}, mean_field, mean_visible)`: binary samples (or, with
       `mean_field`, means) of each lower hidden layer, and at the bottom the mean E[v | h¹] (default) or
       a sample of v.
  For a one-layer DBN (a single RBM) the bottom is the top RBM's visible layer: E[v | h = state.hidden],
  or `state.position` when `mean_visible` is False.

  Args:
    layers: the stack, bottom first.
    key: typed PRNG key.
    num_samples: number of samples (independent chains).
    gibbs_steps: Gibbs transitions in the top RBM (Hinton et al. 2006 ran 1,000).
    start: optional starting states of the top chains (see `sample_top`).
    mean_field: propagate conditional means instead of binary samples below the top RBM.
    mean_visible: return E[v | h¹] instead of a sample of v.

  Returns:
    (num_samples, n_visible of the bottom RBM) visible samples (flat; reshape to the image shape).
  """
  check_stack(layers)
  _check_counts(num_samples, gibbs_steps)
  _check_start(layers, start, num_samples)
  models = tuple(model for model, _ in layers)
  params = [p for _, p in layers]
  return _sample_jit(models, params, key, None if start is None else jnp.asarray(start, jnp.float32),
                     num_samples, gibbs_steps, bool(mean_field), bool(mean_visible))
