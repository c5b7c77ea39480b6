r"""Deep gated MRFs: a gated MRF at the bottom, binary RBMs on its posterior means above.

Ranzato, Mnih, Susskind & Hinton, "Modeling natural images using gated MRFs" (PAMI 2013), §4 and
Ranzato & Hinton (CVPR 2010), §4: the first layer is a gated MRF (`MCRBM` or `MPoT`) over the
whitened data x; layers 2, 3, … are binary RBMs trained greedily, each on the posterior means of the
layer below (a DBN on top of the gated MRF; Hinton, Osindero & Teh 2006). The generative model is

  p(x, h¹, …, h^L) = p(h^{L−1}, h^L) · ∏_{l=2}^{L−1} p(h^{l−1} | h^l) · p(x | h¹),

with p(h^{L−1}, h^L) the top RBM, p(h^{l−1} | h^l) = ∏ Bernoulli σ(b_v + W h^l) (RBM l) and p(x | h¹)
the gated MRF's conditional given h¹ = [h_c, h_m]. RBM 2 sees the layer-1 codes
z = [E[h_c | x] / s, E[h_m | x]] ∈ [0, 1] (s = γ for the mPoT, 1 for the mcRBM; `layer_one_codes`).
This module holds what a sampler needs (codes, features, `conditional_energy`, `conditional_natural`);
sampling the stack is `deepvision.samplers.deep_gated_mrf.sample`. A layer is a `(model, params)` pair.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from deepvision.models import dbn
from deepvision.models.gated_mrf import MCRBM, MPoT

Array = jax.Array
Layer = tuple[nn.Module, Any]


# ----------------------------------------------------------------------------------------------
# Checks (all run before any compute).


def _is_int(value: Any, low: int) -> bool:
  return not isinstance(value, bool) and isinstance(value, numbers.Integral) and value >= low


def _check_pair(layer: Any, name: str) -> None:
  if not isinstance(layer, (tuple, list)) or len(layer) != 2:
    raise ValueError(f"{name} must be a (model, params) pair, got {type(layer).__name__}")


def check_stack(gmrf_layer: Layer, rbm_layers: Sequence[Layer]) -> None:
  """ValueError unless `gmrf_layer` is an (MCRBM | MPoT, params) pair and the RBMs chain up on it.

  A gated layer is `(model, params)` with `model` an `MCRBM` or `MPoT` and `params` its parameter
  dict (`variables['params']`); RBM layers are `(RBM, params)` pairs as in `deepvision.models.dbn`,
  bottom first, RBM 2's `n_visible` equal to the gated MRF's n_cov + n_mean.

  Layer 1 is the gated MRF, layer l ≥ 2 is `rbm_layers[l − 2]`, a binary `RBM`; layer 2's n_visible
  must be the gated MRF's n_cov + n_mean and layer l's n_visible layer l − 1's n_hidden.
  """
  _check_pair(gmrf_layer, "gmrf_layer")
  model = gmrf_layer[0]
  if not isinstance(model, (MCRBM, MPoT)):
    raise ValueError(f"layer 1 of a deep gated MRF must be an MCRBM or an MPoT, got {type(model).__name__}")
  if not isinstance(rbm_layers, Sequence):
    raise ValueError(f"rbm_layers must be a list of (model, params) pairs (possibly empty), got "
                     f"{type(rbm_layers).__name__}")
  below, below_size = "the gated MRF (layer 1)", model.n_cov + model.n_mean
  for l, layer in enumerate(rbm_layers, start=2):
    _check_pair(layer, f"layer {l}")
    rbm = layer[0]
    if getattr(rbm, "visible_kind", None) != "binary" or not hasattr(rbm, "n_hidden"):
      raise ValueError(f"layer {l} must be a binary RBM (visible_kind 'binary'), got "
                       f"{type(rbm).__name__}")
    if rbm.n_visible != below_size:
      what = "n_cov + n_mean" if l == 2 else "n_hidden"
      raise ValueError(f"layer {l} (an RBM) has n_visible={rbm.n_visible} but {below} has "
                       f"{what}={below_size}; they must be equal")
    below, below_size = f"layer {l}", rbm.n_hidden


# ----------------------------------------------------------------------------------------------
# Layer-1 codes and features.


def has_gaussian_conditional(model: nn.Module) -> bool:
  """Whether p(x | h) is Gaussian: the mPoT and the paper-form mcRBM (not the original form)."""
  return isinstance(model, MPoT) or getattr(model, "input_norm", None) == "paper"


def code_scale(model: nn.Module) -> float:
  """s in z_c = E[h_c | x]/s: γ for the mPoT (so z_c = 1/a ∈ (0, 1]), 1 for the mcRBM."""
  return float(model.gamma) if isinstance(model, MPoT) else 1.0


def _variables(params: Any) -> dict[str, Any]:
  return {"params": params}


def layer_one_codes(gmrf_layer: Layer, x: Any) -> Array:
  """z = [E[h_c | x]/s, E[h_m | x]] ∈ [0, 1], (B, N + M): what RBM 2 is trained on (see the module doc).

  For the mcRBM z is `hidden_probs` itself. For the mPoT, E[h_c | x] = γ/a with a = 1 + ½Pᵀ(Cᵀx)² ≥ 1
  lies in (0, γ], so z_c = 1/a ∈ (0, 1] (and z = `hidden_probs` for the default γ = 1): a binary RBM
  models the scaled posterior mean, and a code read back from the RBMs maps to the covariance hiddens
  h_c = s·z_c (`hiddens_from_codes`). A binary z_c = 1 is then h_c = γ (the posterior mean where no
  factor responds, a = 1: the unit keeps its constraint), z_c = 0 is h_c = 0 (the constraint dropped,
  an edge), as h_c ∈ {1, 0} does for the mcRBM.
  """
  check_stack(gmrf_layer, [])
  model, params = gmrf_layer
  probs = model.apply(_variables(params), x, method="hidden_probs")
  scale = code_scale(model)
  if scale == 1.0:
    return probs
  return jnp.concatenate([probs[:, :model.n_cov] / scale, probs[:, model.n_cov:]], axis=-1)


def features(gmrf_layer: Layer, rbm_layers: Sequence[Layer], x: Any, depth: int | None = None) -> Array:
  """The posterior means of layer `depth`, pushed up from x: the recognition features.

  Depth 1 returns the unscaled `hidden_probs`; deeper, the codes are pushed up through the RBMs
  above (sampling the stack: top-level Gibbs, a top-down pass, then the visibles, exactly from the
  Gaussian p(x | h) or by HMC, is `deepvision.samplers.deep_gated_mrf.sample`).

  Depth 0 is x flattened; depth 1 the gated MRF's `hidden_probs` ([σ_c, σ_m] for the mcRBM,
  [γ/a, σ_m] for the mPoT); depth l ≥ 2 is σ(b_h + h^{l−1}ᵀW) of RBM l applied to the layer below,
  starting from the layer-1 codes z (`layer_one_codes`, equal to `hidden_probs` except for an mPoT
  with γ ≠ 1, whose covariance part is divided by γ).

  Args:
    gmrf_layer: (MCRBM | MPoT, params).
    rbm_layers: the RBMs above it, bottom first (possibly empty).
    x: (B, D) or images (B, ...) of D = n_visible elements.
    depth: 0 … 1 + len(rbm_layers); default the top layer.

  Returns:
    (B, units of layer `depth`) float array.
  """
  check_stack(gmrf_layer, rbm_layers)
  top = 1 + len(rbm_layers)
  depth = top if depth is None else depth
  if not _is_int(depth, 0) or depth > top:
    raise ValueError(f"depth must be an int in [0, {top}] (1 gated MRF + {len(rbm_layers)} RBMs), "
                     f"got {depth!r}")
  model, params = gmrf_layer
  if depth == 0:
    return model.apply(_variables(params), x, method="visible")
  if depth == 1:
    return model.apply(_variables(params), x, method="hidden_probs")
  return dbn.features(list(rbm_layers), layer_one_codes(gmrf_layer, x), depth=depth - 1)


def hiddens_from_codes(model: nn.Module, codes: Array) -> tuple[Array, Array]:
  """(h_c, h_m) = (s·z_c, z_m) of layer-1 codes z (B, N + M), s = `code_scale(model)`."""
  return code_scale(model) * codes[:, :model.n_cov], codes[:, model.n_cov:]


# ----------------------------------------------------------------------------------------------
# The visibles given layer 1.


def _conditional_energy(module: nn.Module, x: Array, h_c: Array, h_m: Array) -> Array:
  """E(x, h) less its terms free of x (−b_cᵀh_c, (1 − γ)Σ log h_c), (B,).

    Σ_k h_c_k u_k(x̃) + ½xᵀx − b_vᵀx − h_mᵀ(Wᵀx + b_m),   u = ½Pᵀ(Cᵀx̃)²,

  with x̃ the model's covariance input. Called as a method of the bound gated MRF (`apply`).
  """
  pooled = module.pooled_responses(x)
  x = module.visible(x)
  return (jnp.sum(h_c * pooled, axis=-1) + 0.5 * jnp.sum(x * x, axis=-1) - x @ module.b_v
          - jnp.sum(h_m * module.mean_hidden_logits(x), axis=-1))


def conditional_energy(gmrf_layer: Layer, x: Any, h_c: Any, h_m: Any) -> Array:
  """−log p(x | h) + const for fixed h: the target of visible HMC (see `_conditional_energy`)."""
  check_stack(gmrf_layer, [])
  model, params = gmrf_layer
  return model.apply(_variables(params), x, h_c, h_m, method=_conditional_energy)


def conditional_natural(gmrf_layer: Layer, h_c: Array, h_m: Array) -> tuple[Array, Array]:
  """(η, Λ) of p(x | h) = N(Λ⁻¹η, Λ⁻¹), Λ = C diag(P h_c) Cᵀ + I, η = W h_m + b_v (the mPoT and the
  paper-form mcRBM); for an original-form mcRBM, whose p(x | h) is not Gaussian, those of the paper-form
  formula (its Gaussian approximation, exact where ‖x‖²/D = ½)."""
  model, params = gmrf_layer
  if not has_gaussian_conditional(model):
    model = model.clone(input_norm="paper")
  return model.apply(_variables(params), h_c, h_m, method="conditional_natural")
