r"""Sampling gated MRFs: the visibles given the hidden units, and images from a tiled mcRBM.

Gated MRFs (mcRBM, Ranzato & Hinton, CVPR 2010; mPoT, Ranzato, Mnih & Hinton, 2010; both in Ranzato,
Mnih, Susskind & Hinton, "Modeling natural images using gated MRFs", PAMI 2013). `sample_visible` draws
x ~ p(x | h_c, h_m): exactly where the energy is quadratic in x (paper-form mcRBM, mPoT),

  x ~ N(μ, Σ),  Σ⁻¹ = Λ = C diag(P h_c) Cᵀ + I,  μ = Σ(W h_m + b_v),

else by Hybrid Monte Carlo on E(x, h) with h fixed. `sample_tiled` draws images from a `TiledMCRBM` by
HMC on its free energy F with the closed-form ∂F/∂x.
"""

from __future__ import annotations

import functools
import math
import numbers
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from deepvision.models import deep_gated_mrf
from deepvision.models.deep_gated_mrf import Layer
from deepvision.models.tiled_gated_mrf import TiledMCRBM
from deepvision.samplers import adaptation
from deepvision.samplers import hmc as hmc_lib
from deepvision.samplers.base import gaussian_mean_and_draw, run_chain

Array = jax.Array

VISIBLE_MODES = ("auto", "gaussian", "hmc")
HMC_INITS = ("gaussian", "zeros")
_STEP_SIZE_BOUNDS = adaptation.STEP_SIZE_BOUNDS  # the adaptation's bounds (the original code's)


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


def check_visible_mode(model: nn.Module, visible: Any) -> str:
  """The resolved visible mode, 'gaussian' or 'hmc'."""
  if not isinstance(visible, str) or visible not in VISIBLE_MODES:
    raise ValueError(f"visible must be one of {', '.join(map(repr, VISIBLE_MODES))}, got {visible!r}")
  gaussian = deep_gated_mrf.has_gaussian_conditional(model)
  if visible == "gaussian" and not gaussian:
    raise ValueError(f"visible 'gaussian' needs a Gaussian p(x | h), but this {type(model).__name__} has "
                     f"input_norm {model.input_norm!r}; use visible 'hmc' (or 'auto')")
  if visible == "auto":
    return "gaussian" if gaussian else "hmc"
  return visible


def check_hmc_settings(settings: HMCSettings) -> HMCSettings:
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
# The visibles given the hidden units.


def _hmc_visible(key: Array, model: nn.Module, params: Any, h_c: Array, h_m: Array, start: Array,
                 settings: HMCSettings) -> tuple[Array, Array, Array]:
  """(last position, mean acceptance after burn-in, frozen step size) of HMC on E(x, h), h fixed.

  With a burn-in, one adapting sampler throughout (a single compiled loop) whose ε is frozen from
  transition `burn_in` on, when each transition is exactly the fixed-step kernel's; without one, the
  fixed-step kernel.
  """

  def energy_fn(x: Array) -> Array:
    return deep_gated_mrf.conditional_energy((model, params), x, h_c, h_m)

  def kernel(step_size: Any):
    return hmc_lib.hmc(energy_fn, num_leapfrog=settings.num_leapfrog, step_size=step_size)

  if settings.burn_in > 0:
    sampler = adaptation.adapt_step_size(kernel, initial_step_size=settings.step_size)
    transition = lambda step_key, state, kept: sampler.step(step_key, state, adapt=~kept)  # noqa: E731
    step_size_of = lambda state: state.step_size  # noqa: E731
  else:
    sampler = kernel(settings.step_size)
    transition = lambda step_key, state, kept: sampler.step(step_key, state)  # noqa: E731
    step_size_of = lambda state: jnp.asarray(settings.step_size, start.dtype)  # noqa: E731

  def step(step_key: Array, carry: tuple[Any, Array]) -> tuple[tuple[Any, Array], Array]:
    state, t = carry
    kept = t >= settings.burn_in
    new_state, info = transition(step_key, state, kept)
    return (new_state, t + 1), jnp.where(kept, info.acceptance_rate, jnp.zeros((), start.dtype))

  (state, _), accepted, _ = run_chain(key, step, (sampler.init(start), jnp.asarray(0)), settings.steps)
  return state.position, jnp.sum(accepted) / (settings.steps - settings.burn_in), step_size_of(state)


def visible_given_hiddens(key: Array, model: nn.Module, params: Any, h_c: Array, h_m: Array, mode: str,
                          settings: HMCSettings) -> tuple[Array, VisibleInfo]:
  """`sample_visible` without its checks, unjitted (for samplers that call it inside their own jit).

  `mode` is 'gaussian' or 'hmc' (resolved), `settings` checked `HMCSettings`.
  """
  gaussian_key, hmc_key = jax.random.split(key)
  natural, precision = deep_gated_mrf.conditional_natural((model, params), h_c, h_m)
  # x = μ + L⁻ᵀε ~ N(μ, Λ⁻¹), L Lᵀ = Λ, and μ itself, from one chain of LAPACK calls.
  noise = jax.random.normal(gaussian_key, natural.shape, natural.dtype)
  mean, draw = gaussian_mean_and_draw(natural, precision, noise)
  if mode == "gaussian":
    nan = jnp.full((), jnp.nan, mean.dtype)
    return draw, VisibleInfo(mean, nan, nan)
  start = draw if settings.init == "gaussian" else jnp.zeros_like(mean)
  x, acceptance, step_size = _hmc_visible(hmc_key, model, params, h_c, h_m, start, settings)
  return x, VisibleInfo(mean, acceptance, step_size)


_sample_visible_jit = jax.jit(visible_given_hiddens, static_argnums=(1, 5, 6))


def sample_visible(key: Array, gmrf_layer: Layer, h_c: Any, h_m: Any, *, visible: str = "auto",
                   hmc_steps: int = 100, hmc_burn_in: int = 50, hmc_leapfrog: int = 20,
                   hmc_step_size: float = 0.05, hmc_init: str = "gaussian") -> tuple[Array, VisibleInfo]:
  """x ~ p(x | h_c, h_m) of the gated MRF, one draw per row (jitted); N(μ, Σ) in the module docstring.

  * 'gaussian' (paper-form mcRBM, mPoT): the energy is quadratic in x, so exactly x ~ N(μ, Σ), drawn as
    x = μ + L⁻ᵀε, L Lᵀ = Λ, ε ~ N(0, I);
  * 'hmc' (any gated MRF; the only choice for the original-form mcRBM, whose covariance branch sees
    x̃ = x / sqrt(‖x‖²/D + ½) so that p(x | h) is not Gaussian): Hybrid Monte Carlo (`samplers.hmc`)
    on the energy E(x, h) with h fixed (`models.deep_gated_mrf.conditional_energy`), started from a
    draw of the Gaussian N(μ, Σ) computed as for the paper form (exact for the paper form and the
    mPoT; for the original form an approximation, exact where ‖x‖²/D = ½) or from x = 0. The step
    size adapts to a 0.1 rejection rate during `hmc_burn_in` transitions (`samplers.adaptation`, the
    original code's rule), then is frozen so that the kept transitions are an exact MCMC kernel;
  * 'auto': 'gaussian' where p(x | h) is Gaussian, else 'hmc'.

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
  deep_gated_mrf.check_stack(gmrf_layer, [])
  model, params = gmrf_layer
  mode = check_visible_mode(model, visible)
  settings = check_hmc_settings(HMCSettings(hmc_steps, hmc_burn_in, hmc_leapfrog, hmc_step_size, hmc_init))
  _check_hiddens(model, h_c, h_m)
  dtype = jnp.asarray(params["C"]).dtype
  return _sample_visible_jit(key, model, params, jnp.asarray(h_c, dtype), jnp.asarray(h_m, dtype), mode,
                             settings)


# ----------------------------------------------------------------------------------------------
# Images from a tiled mcRBM.


def _positive_int(name: str, value: Any) -> int:
  if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
    raise ValueError(f"{name} must be a positive int, got {value!r}")
  return int(value)


def _tiled_sampler(model: TiledMCRBM, variables: Any, num_leapfrog: int = 20, adapt: bool = True,
                   initial_step_size: float = adaptation.INITIAL_STEP_SIZE,
                   **adaptation_options: Any) -> Any:
  """HMC on the tiled model's F: the kernel in the adaptation wrapper, or the fixed-step kernel at
  `initial_step_size` when `adapt` is False."""
  energy = hmc_lib.model_energy(model, variables)

  def kernel(step_size: Any):
    return hmc_lib.hmc(energy.energy_fn, num_leapfrog=num_leapfrog, step_size=step_size,
                       energy_and_grad_fn=energy.energy_and_grad_fn)

  if not isinstance(adapt, bool):
    raise ValueError(f"adapt must be True or False, got {adapt!r}")
  if not adapt:
    adaptation.check_adaptation(initial_step_size, **adaptation_options, adapting=False)
    return kernel(initial_step_size)
  return adaptation.adapt_step_size(kernel, initial_step_size=initial_step_size, **adaptation_options)


@functools.partial(jax.jit, static_argnames=("model", "num_steps", "hmc_options"))
def _sample_tiled(model: TiledMCRBM, key: Array, variables: Any, start: Array, num_steps: int,
                  hmc_options: tuple[tuple[str, Any], ...]) -> tuple[Array, hmc_lib.HMCInfo]:
  sampler = _tiled_sampler(model, variables, **dict(hmc_options))
  state, infos, _ = run_chain(key, sampler.step, sampler.init(start), num_steps)
  return state.position, infos


def sample_tiled(model: TiledMCRBM, key: Array, variables: Any, num_images: int | None = None,
                 num_steps: int = 100, start: Any = None, **hmc_options: Any) -> tuple[Array, hmc_lib.HMCInfo]:
  """Images drawn by HMC on a `TiledMCRBM`'s F: `num_steps` trajectories from N(0, I) or from `start`.

  The gradient is the model's closed-form ∂F/∂x (`models.tiled_gated_mrf`).

  Args:
    model: the tiled model (its `image_shape` is the size of the images drawn).
    key: typed PRNG key; split into the start's key and the chain's.
    variables: {'params': ...} of the model.
    num_images: chains (images) to run; may be omitted when `start` is given.
    num_steps: HMC trajectories (transitions), int ≥ 0.
    start: optional starting images (B, H, W), (B, H, W, 1) or (B, H·W); default N(0, I).
    **hmc_options: `num_leapfrog` (20), `adapt` (True: the original code's adaptation,
      `samplers.adaptation`; False: the fixed-step kernel at `initial_step_size`),
      `initial_step_size` (0.01) and the other settings of `adaptation.adapt_step_size`.

  Returns:
    (images (num_images, H, W), the per-transition `HMCInfo`, stacked along a leading axis).

  Raises:
    ValueError: neither num_images nor start, a start of another size or count, bad num_steps,
      or an option the kernel or the adaptation rejects.
  """
  if isinstance(num_steps, bool) or not isinstance(num_steps, numbers.Integral) or num_steps < 0:
    raise ValueError(f"num_steps must be an int >= 0, got {num_steps!r}")
  start_key, chain_key = jax.random.split(key)
  if start is None:
    if num_images is None:
      raise ValueError("sample_tiled needs num_images (chains started from N(0, I)) or start images")
    num_images = _positive_int("num_images", num_images)
    start = jax.random.normal(start_key, (num_images, *model.image_shape), jnp.float32)
  else:
    start = model.images(start)
    if num_images is not None and start.shape[0] != num_images:
      raise ValueError(f"num_images={num_images!r} differs from the {start.shape[0]} start images")
  unknown = set(hmc_options) - {"num_leapfrog", "adapt", "initial_step_size", "target_rejection",
                                "step_size_bounds", "step_size_grow", "step_size_shrink", "rejection_decay"}
  if unknown:
    raise ValueError(f"sample_tiled: unknown HMC options {sorted(unknown)}; for clamp_mask or a custom "
                     "energy build deepvision.samplers.hmc.hmc on free_energy directly")
  options = tuple(sorted(hmc_options.items()))
  try:
    hash(options)
  except TypeError as error:
    raise ValueError(f"sample_tiled: hmc options must be hashable (numbers, bools, tuples), got "
                     f"{sorted(hmc_options)}") from error
  _tiled_sampler(model, variables, **hmc_options)  # checks the options before any compute
  return _sample_tiled(model, chain_key, variables, start, int(num_steps), options)
