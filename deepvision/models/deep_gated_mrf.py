r"""Deep gated MRFs: a gated MRF at the bottom, binary RBMs on its posterior means above, and sampling.

Ranzato, Mnih, Susskind & Hinton, "Modeling natural images using gated MRFs" (PAMI 2013), §4 and
Ranzato & Hinton (CVPR 2010), §4: the first layer is a gated MRF (`MCRBM` or `MPoT`) over the
whitened data x; layers 2, 3, … are binary RBMs trained greedily, each on the posterior means of the
layer below (a DBN on top of the gated MRF; Hinton, Osindero & Teh 2006). The generative model is

  p(x, h¹, …, h^L) = p(h^{L−1}, h^L) · ∏_{l=2}^{L−1} p(h^{l−1} | h^l) · p(x | h¹),

with p(h^{L−1}, h^L) the top RBM, p(h^{l−1} | h^l) the visible conditional of RBM l (a product of
Bernoullis σ(b_v + W h^l)) and p(x | h¹) the gated MRF's conditional given h¹ = [h_c, h_m].

Layer-1 codes. RBM 2 sees the layer-1 features as units in [0, 1], the *codes*

  z = [E[h_c | x] / s, E[h_m | x]],   s = γ for the mPoT, s = 1 for the mcRBM

(`layer_one_codes`). For the mcRBM z is `hidden_probs` itself. For the mPoT, E[h_c | x] = γ/a with
a = 1 + ½Pᵀ(Cᵀx)² ≥ 1 lies in (0, γ], so z_c = 1/a ∈ (0, 1] (and z = `hidden_probs` for the default
γ = 1): a binary RBM models the scaled posterior mean, and a code read back from the RBMs maps to the
covariance hiddens h_c = s·z_c. A binary z_c = 1 is then h_c = γ (the posterior mean where no factor
responds, a = 1: the unit keeps its constraint), z_c = 0 is h_c = 0 (the constraint dropped, an edge),
as h_c ∈ {1, 0} does for the mcRBM. `features` returns the unscaled `hidden_probs` at depth 1 and
pushes the codes up through the RBMs above.

Sampling (`sample`), with `chain_key, down_key, visible_key = jax.random.split(key, 3)`:
  1. block Gibbs for `top_gibbs_steps` transitions in the top RBM (`dbn.sample_top`, `chain_key`),
     from uniformly random binary states or from `start`;
  2. a top-down pass (`dbn.top_down`, `down_key`) to the layer-1 codes. Default (`mean_field=False`):
     binary samples of every layer, h^{l−1} ~ p(h^{l−1} | h^l), i.e. ancestral sampling of the model
     above, down to binary codes z ~ p(z | h²) — the exact generative model of the stack. With
     `mean_field=True` every layer below the top hidden layer, the codes included, is its conditional
     mean E[h^{l−1} | h^l] instead (p(x | h) below is still defined for fractional h);
  3. the visibles given h_c = s·z_c, h_m = z_m (`sample_visible`, `visible_key`):
     * 'gaussian' (paper-form mcRBM, mPoT): the energy is quadratic in x, so exactly
         x ~ N(μ, Σ),  Σ⁻¹ = Λ = C diag(P h_c) Cᵀ + I,  μ = Σ(W h_m + b_v),
       drawn as x = μ + L⁻ᵀε, L Lᵀ = Λ, ε ~ N(0, I);
     * 'hmc' (any gated MRF; the only choice for the original-form mcRBM, whose covariance branch
       sees x̃ = x / sqrt(‖x‖²/D + ½) so that p(x | h) is not Gaussian): Hybrid Monte Carlo on the
       joint energy with h fixed, p(x | h) ∝ exp(−E(x, h)), started from a draw of the Gaussian
       N(μ, Σ) above computed as for the paper form (exact for the paper form and the mPoT; for the
       original form an approximation, exact where ‖x‖²/D = ½) or from x = 0. The step size adapts
       to a 0.1 rejection rate during `hmc_burn_in` transitions, as the original code does, then is
       frozen so that the kept transitions are an exact MCMC kernel;
     * 'auto': 'gaussian' where p(x | h) is Gaussian, else 'hmc'.
With no RBMs the stack is the gated MRF alone: `start` then gives the layer-1 codes and step 3
samples x given them.

A gated layer is `(model, params)` with `model` an `MCRBM` or `MPoT` and `params` its parameter
dict (`variables['params']`); RBM layers are `(RBM, params)` pairs as in `deepvision.models.dbn`,
bottom first, RBM 2's `n_visible` equal to the gated MRF's n_cov + n_mean.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from deepvision.models import dbn
from deepvision.models.gated_mrf import MCRBM, MPoT
from deepvision.samplers import gibbs, hmc
from deepvision.samplers.base import gaussian_mean_and_draw, run_chain

Array = jax.Array
Layer = tuple[nn.Module, Any]

VISIBLE_MODES = ("auto", "gaussian", "hmc")
HMC_INITS = ("gaussian", "zeros")
# The adaptation's step-size bounds in `deepvision.samplers.hmc` (the original code's).
_STEP_SIZE_BOUNDS = (0.001, 0.25)


class VisibleInfo(NamedTuple):
  """How the visibles were drawn.

  Attributes:
    gaussian_mean: μ = Σ(W h_m + b_v), (B, D): the mean of p(x | h) for the paper form and the mPoT,
      of its Gaussian approximation (the paper-form formula) for the original-form mcRBM.
    hmc_acceptance: the HMC acceptance rate averaged over the transitions after burn-in (NaN when
      x was drawn from the Gaussian).
    hmc_step_size: the frozen HMC step size (NaN when x was drawn from the Gaussian).
  """

  gaussian_mean: Array
  hmc_acceptance: Array
  hmc_step_size: Array


class DeepSampleInfo(NamedTuple):
  """What `sample` drew on the way down.

  Attributes:
    top: the top RBM's final `GibbsState` (`position` h^{L−1}, `hidden` h^L); None without RBMs.
    codes: the layer-1 codes z = [h_c / s, h_m] the visibles were drawn from, (B, N + M).
    h_c: the covariance hiddens s·z_c, (B, N).
    h_m: the mean hiddens, (B, M).
    visible: a `VisibleInfo`.
  """

  top: gibbs.GibbsState | None
  codes: Array
  h_c: Array
  h_m: Array
  visible: VisibleInfo


class HMCSettings(NamedTuple):
  """Visible HMC: `steps` transitions of `num_leapfrog` leapfrog steps, the first `burn_in` adapting ε.

  `step_size` is the initial ε; `init` is 'gaussian' (start from a draw of N(μ, Σ)) or 'zeros'.
  """

  steps: int = 100
  burn_in: int = 50
  num_leapfrog: int = 20
  step_size: float = 0.05
  init: str = "gaussian"


# ----------------------------------------------------------------------------------------------
# Checks (all run before any compute).


def _is_int(value: Any, low: int) -> bool:
  return not isinstance(value, bool) and isinstance(value, numbers.Integral) and value >= low


def _check_pair(layer: Any, name: str) -> None:
  if not isinstance(layer, (tuple, list)) or len(layer) != 2:
    raise ValueError(f"{name} must be a (model, params) pair, got {type(layer).__name__}")


def check_stack(gmrf_layer: Layer, rbm_layers: Sequence[Layer]) -> None:
  """ValueError unless `gmrf_layer` is an (MCRBM | MPoT, params) pair and the RBMs chain up on it.

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


def _check_visible(model: nn.Module, visible: Any) -> str:
  """The resolved visible mode, 'gaussian' or 'hmc'."""
  if not isinstance(visible, str) or visible not in VISIBLE_MODES:
    raise ValueError(f"visible must be one of {', '.join(map(repr, VISIBLE_MODES))}, got {visible!r}")
  gaussian = has_gaussian_conditional(model)
  if visible == "gaussian" and not gaussian:
    raise ValueError(f"visible 'gaussian' needs a Gaussian p(x | h), but this {type(model).__name__} has "
                     f"input_norm {model.input_norm!r}; use visible 'hmc' (or 'auto')")
  if visible == "auto":
    return "gaussian" if gaussian else "hmc"
  return visible


def _check_hmc(settings: HMCSettings) -> HMCSettings:
  steps, burn_in, num_leapfrog, step_size, init = settings
  if not _is_int(steps, 1):
    raise ValueError(f"hmc_steps must be an int >= 1, got {steps!r}")
  if not _is_int(burn_in, 0) or burn_in >= steps:
    raise ValueError(f"hmc_burn_in must be an int in [0, hmc_steps={steps}), got {burn_in!r}")
  if not _is_int(num_leapfrog, 1):
    raise ValueError(f"hmc_leapfrog must be an int >= 1, got {num_leapfrog!r}")
  if (isinstance(step_size, bool) or not isinstance(step_size, numbers.Real)
      or not (math.isfinite(step_size) and step_size > 0)):
    raise ValueError(f"hmc_step_size must be a finite number > 0, got {step_size!r}")
  low, high = _STEP_SIZE_BOUNDS
  if burn_in > 0 and not low <= step_size <= high:
    raise ValueError(f"hmc_step_size must lie in [{low}, {high}] (the adaptation's bounds) when "
                     f"hmc_burn_in > 0, got {step_size!r}")
  if init not in HMC_INITS:
    raise ValueError(f"hmc_init must be one of {', '.join(map(repr, HMC_INITS))}, got {init!r}")
  return HMCSettings(int(steps), int(burn_in), int(num_leapfrog), float(step_size), init)


def _check_hiddens(model: nn.Module, h_c: Any, h_m: Any) -> None:
  n, m = model.n_cov, model.n_mean
  shape_c, shape_m = tuple(jnp.shape(h_c)), tuple(jnp.shape(h_m))
  if len(shape_c) != 2 or len(shape_m) != 2 or shape_c[1] != n or shape_m[1] != m or (
      shape_c[0] != shape_m[0]):
    raise ValueError(f"h_c and h_m must be (batch, n_cov={n}) and (batch, n_mean={m}) with one batch "
                     f"size, got {shape_c} and {shape_m}")


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
  """z = [E[h_c | x]/s, E[h_m | x]] ∈ [0, 1], (B, N + M): what RBM 2 is trained on (see the module doc)."""
  check_stack(gmrf_layer, [])
  model, params = gmrf_layer
  probs = model.apply(_variables(params), x, method="hidden_probs")
  scale = code_scale(model)
  if scale == 1.0:
    return probs
  return jnp.concatenate([probs[:, :model.n_cov] / scale, probs[:, model.n_cov:]], axis=-1)


def features(gmrf_layer: Layer, rbm_layers: Sequence[Layer], x: Any, depth: int | None = None) -> Array:
  """The posterior means of layer `depth`, pushed up from x: the recognition features.

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


def _hiddens_from_codes(model: nn.Module, codes: Array) -> tuple[Array, Array]:
  """(h_c, h_m) = (s·z_c, z_m)."""
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


def _natural(model: nn.Module, params: Any, h_c: Array, h_m: Array) -> tuple[Array, Array]:
  """(η, Λ) of p(x | h) = N(Λ⁻¹η, Λ⁻¹), or of the paper-form formula for an original-form mcRBM."""
  if not has_gaussian_conditional(model):
    model = model.clone(input_norm="paper")
  return model.apply(_variables(params), h_c, h_m, method="conditional_natural")


def _hmc_visible(key: Array, model: nn.Module, params: Any, h_c: Array, h_m: Array, start: Array,
                 settings: HMCSettings) -> tuple[Array, Array, Array]:
  """(last position, mean acceptance after burn-in, frozen step size) of HMC on E(x, h), h fixed.

  One adapting kernel throughout (a single compiled loop); from transition `burn_in` on, each
  transition's change of the step size is undone, which is exactly the fixed-step kernel.
  """

  def energy_fn(x: Array) -> Array:
    return model.apply(_variables(params), x, h_c, h_m, method=_conditional_energy)

  sampler = hmc.hmc(energy_fn, num_leapfrog=settings.num_leapfrog, initial_step_size=settings.step_size,
                    adapt=settings.burn_in > 0)

  def step(step_key: Array, carry: tuple[hmc.HMCState, Array]) -> tuple[tuple[hmc.HMCState, Array], Array]:
    state, t = carry
    new_state, info = sampler.step(step_key, state)
    kept = t >= settings.burn_in
    new_state = new_state._replace(step_size=jnp.where(kept, state.step_size, new_state.step_size))
    return (new_state, t + 1), jnp.where(kept, info.acceptance_rate, jnp.zeros((), start.dtype))

  (state, _), accepted, _ = run_chain(key, step, (sampler.init(start), jnp.asarray(0)), settings.steps)
  return state.position, jnp.sum(accepted) / (settings.steps - settings.burn_in), state.step_size


def _sample_visible(key: Array, model: nn.Module, params: Any, h_c: Array, h_m: Array, mode: str,
                    settings: HMCSettings) -> tuple[Array, VisibleInfo]:
  gaussian_key, hmc_key = jax.random.split(key)
  natural, precision = _natural(model, params, h_c, h_m)
  # x = μ + L⁻ᵀε ~ N(μ, Λ⁻¹), L Lᵀ = Λ, and μ itself, from one chain of LAPACK calls.
  noise = jax.random.normal(gaussian_key, natural.shape, natural.dtype)
  mean, draw = gaussian_mean_and_draw(natural, precision, noise)
  if mode == "gaussian":
    nan = jnp.full((), jnp.nan, mean.dtype)
    return draw, VisibleInfo(mean, nan, nan)
  start = draw if settings.init == "gaussian" else jnp.zeros_like(mean)
  x, acceptance, step_size = _hmc_visible(hmc_key, model, params, h_c, h_m, start, settings)
  return x, VisibleInfo(mean, acceptance, step_size)


_sample_visible_jit = jax.jit(_sample_visible, static_argnums=(1, 5, 6))


def sample_visible(key: Array, gmrf_layer: Layer, h_c: Any, h_m: Any, *, visible: str = "auto",
                   hmc_steps: int = 100, hmc_burn_in: int = 50, hmc_leapfrog: int = 20,
                   hmc_step_size: float = 0.05, hmc_init: str = "gaussian") -> tuple[Array, VisibleInfo]:
  """x ~ p(x | h_c, h_m) of the gated MRF, one draw per row (jitted); see the module docstring, step 3.

  `key` is split into a Gaussian key (the draw of N(μ, Σ), or HMC's start) and an HMC key (burn-in
  and kept transitions use its two halves, step t `fold_in(., t)`).

  Args:
    key: typed PRNG key.
    gmrf_layer: (MCRBM | MPoT, params).
    h_c: (B, N) covariance hiddens (binary or in [0, 1] for the mcRBM, ≥ 0 for the mPoT).
    h_m: (B, M) mean hiddens.
    visible: 'auto', 'gaussian' (exact N(μ, Σ); paper-form mcRBM and mPoT only) or 'hmc'.
    hmc_steps: HMC transitions in all; the last one's positions are returned.
    hmc_burn_in: the first transitions, whose step size adapts (in [0, hmc_steps)).
    hmc_leapfrog: leapfrog steps per transition.
    hmc_step_size: the initial step size (in [0.001, 0.25] when hmc_burn_in > 0). The default 0.05
      is above HMC training's 0.01: the adaptation moves ε by at most 1.01× per transition, so 50
      burn-in transitions could only grow 0.01 to 0.016.
    hmc_init: 'gaussian' (a draw of N(μ, Σ)) or 'zeros'.

  Returns:
    (x (B, D), `VisibleInfo`).
  """
  check_stack(gmrf_layer, [])
  model, params = gmrf_layer
  mode = _check_visible(model, visible)
  settings = _check_hmc(HMCSettings(hmc_steps, hmc_burn_in, hmc_leapfrog, hmc_step_size, hmc_init))
  _check_hiddens(model, h_c, h_m)
  dtype = jnp.asarray(params["C"]).dtype
  return _sample_visible_jit(key, model, params, jnp.asarray(h_c, dtype), jnp.asarray(h_m, dtype), mode,
                             settings)


# ----------------------------------------------------------------------------------------------
# Sampling the deep model.


def _sample(models: tuple[nn.Module, ...], params: list[Any], key: Array, start: Array | None,
            num_samples: int, top_gibbs_steps: int, mean_field: bool, mode: str,
            settings: HMCSettings) -> tuple[Array, DeepSampleInfo]:
  chain_key, down_key, visible_key = jax.random.split(key, 3)
  model, gmrf_params = models[0], params[0]
  rbm_layers = list(zip(models[1:], params[1:]))
  if rbm_layers:
    top = dbn.sample_top(rbm_layers, chain_key, num_samples, top_gibbs_steps, start)
    top_model, top_params = rbm_layers[-1]
    below_top = (top_model.apply(_variables(top_params), top.hidden, method="visible_mean") if mean_field
                 else top.position)
    codes = dbn.top_down(rbm_layers[:-1], down_key, below_top, mean_field=mean_field,
                         mean_visible=mean_field)
  else:
    top, codes = None, start
  codes = codes.astype(jnp.asarray(gmrf_params["C"]).dtype)
  h_c, h_m = _hiddens_from_codes(model, codes)
  x, info = _sample_visible(visible_key, model, gmrf_params, h_c, h_m, mode, settings)
  return x, DeepSampleInfo(top, codes, h_c, h_m, info)


_sample_jit = jax.jit(_sample, static_argnums=(0, 4, 5, 6, 7, 8))


def _check_start(gmrf_layer: Layer, rbm_layers: Sequence[Layer], start: Any, num_samples: int) -> None:
  if rbm_layers:
    size, what = rbm_layers[-1][0].n_visible, "n_visible of the top RBM"
  else:
    model = gmrf_layer[0]
    size, what = model.n_cov + model.n_mean, "the layer-1 codes, n_cov + n_mean"
    if start is None:
      raise ValueError("a stack without RBMs has no prior over the layer-1 hiddens: give their codes "
                       f"as start, shape (num_samples, {size})")
  if start is None:
    return
  if tuple(jnp.shape(start)) != (num_samples, size):
    raise ValueError(f"start must hold (num_samples, {what}) = {(num_samples, size)} states, got shape "
                     f"{tuple(jnp.shape(start))}")
  if not rbm_layers and not isinstance(start, jax.core.Tracer) and np.any(np.asarray(start) < 0):
    raise ValueError(f"start codes must be >= 0 (h_c = s·z_c gates a precision), got minimum "
                     f"{np.min(np.asarray(start))}")


def sample(key: Array, gmrf_layer: Layer, rbm_layers: Sequence[Layer], num_samples: int, *,
           top_gibbs_steps: int, start: Any | None = None, mean_field: bool = False,
           visible: str = "auto", hmc_steps: int = 100, hmc_burn_in: int = 50, hmc_leapfrog: int = 20,
           hmc_step_size: float = 0.05, hmc_init: str = "gaussian") -> tuple[Array, DeepSampleInfo]:
  """Samples x from the deep gated MRF (jitted): top-level Gibbs, top-down pass, visibles.

  The three steps and their keys are in the module docstring.

  Args:
    key: typed PRNG key.
    gmrf_layer: (MCRBM | MPoT, params), layer 1.
    rbm_layers: the binary RBMs above, bottom first; empty for the gated MRF alone.
    num_samples: number of samples (independent chains).
    top_gibbs_steps: block Gibbs transitions in the top RBM (≥ 0; must be 0 without RBMs).
    start: (num_samples, n_visible of the top RBM) starting states of the top chains (default uniformly
      random binary states); without RBMs, required: the layer-1 codes z (h_c = s·z_c, h_m = z_m).
    mean_field: pass conditional means instead of binary samples down from the top RBM, the
      layer-1 codes included.
    visible, hmc_steps, hmc_burn_in, hmc_leapfrog, hmc_step_size, hmc_init: as in `sample_visible`.

  Returns:
    (x (num_samples, D), `DeepSampleInfo`).

  Raises:
    ValueError: layers that do not chain, an unknown or impossible visible mode, bad counts, HMC
      settings or start states; all before any compute.
  """
  check_stack(gmrf_layer, rbm_layers)
  model = gmrf_layer[0]
  mode = _check_visible(model, visible)
  settings = _check_hmc(HMCSettings(hmc_steps, hmc_burn_in, hmc_leapfrog, hmc_step_size, hmc_init))
  if not _is_int(num_samples, 1):
    raise ValueError(f"num_samples must be an int >= 1, got {num_samples!r}")
  if not _is_int(top_gibbs_steps, 0):
    raise ValueError(f"top_gibbs_steps must be an int >= 0, got {top_gibbs_steps!r}")
  if not rbm_layers and top_gibbs_steps != 0:
    raise ValueError(f"a stack without RBMs has no top-level chain: top_gibbs_steps must be 0, got "
                     f"{top_gibbs_steps}")
  if not isinstance(mean_field, bool):
    raise ValueError(f"mean_field must be True or False, got {mean_field!r}")
  _check_start(gmrf_layer, rbm_layers, start, num_samples)
  models = (model,) + tuple(m for m, _ in rbm_layers)
  params = [gmrf_layer[1]] + [p for _, p in rbm_layers]
  if start is not None:
    start = jnp.asarray(start, jnp.float32 if rbm_layers else jnp.asarray(params[0]["C"]).dtype)
  return _sample_jit(models, params, key, start, int(num_samples), int(top_gibbs_steps), mean_field, mode,
                     settings)
