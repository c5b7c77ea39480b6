r"""Conditional sampling: fill the missing values of x given the observed ones (inpainting).

With x ∈ R^D split into observed o (`observed_mask` True) and missing m, an energy-based model
p(x) ∝ exp(−F(x)) defines p(x_m | x_o) ∝ exp(−F(x_m, x_o)), sampled as in Ranzato, Mnih, Susskind &
Hinton ("Modeling natural images using gated MRFs", PAMI 2013; reference/gated-mrf.md) by

* `inpaint_hmc`: Hybrid Monte Carlo on F with x_o clamped, for any model with a `free_energy`;
* `inpaint_gibbs`: for models with a Gaussian p(x | h) = N(μ, Λ⁻¹) (the paper-form mcRBM, the mPoT),
  alternating h ~ p(h | x) and x_m | x_o, h ~ N(μ_m − Λ_mm⁻¹ Λ_mo (x_o − μ_o), Λ_mm⁻¹).

Both return the average over the transitions after `burn_in` (the posterior mean E[x_m | x_o], the
minimum-squared-error fill-in) or the last sample; observed values come back bit for bit. Masks may
differ between examples. With `whitening=`, a model of PCA-whitened vectors fills in missing *pixels*
(`pixel_space`).
"""

from __future__ import annotations

import functools
import math
import numbers
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from deepvision.samplers import adaptation, pixel_space
from deepvision.samplers.base import gaussian_mean_and_draw
from deepvision.samplers.hmc import hmc
from deepvision.samplers.pixel_space import PixelSpace

Array = jax.Array


class InpaintInfo(NamedTuple):
  """What an HMC inpainting run did: the mean acceptance rate of the transitions after burn-in and
  the step size they used (adapted during burn-in)."""

  acceptance_rate: Array
  step_size: Array


# ------------------------------------------------------------------------------------------------
# Argument checks (before any compute).


def _check_int(name: str, value: Any, minimum: int) -> int:
  if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
    raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
  return int(value)


def _check_steps(num_steps: Any, burn_in: Any) -> tuple[int, int]:
  num_steps = _check_int("num_steps", num_steps, 1)
  burn_in = _check_int("burn_in", burn_in, 0)
  if burn_in >= num_steps:
    raise ValueError(f"burn_in must be smaller than num_steps (the transitions in all, the first burn_in "
                     f"discarded), got burn_in={burn_in}, num_steps={num_steps}")
  return num_steps, burn_in


def _check_bool(name: str, value: Any) -> bool:
  if not isinstance(value, bool):
    raise ValueError(f"{name} must be True or False, got {value!r}")
  return value


def _checked_batch(x: Any, observed_mask: Any, init: Any, dim: int,
                   space_name: str) -> tuple[Array, Array, Array]:
  """(x (B, D), observed (B, D) bool, start (B, D)), checked; missing entries of x may be anything."""
  x = jnp.asarray(x)
  if not jnp.issubdtype(x.dtype, jnp.floating):
    raise ValueError(f"x must be floating point, got dtype {x.dtype}")
  if x.ndim < 2 or math.prod(x.shape[1:]) != dim:
    raise ValueError(f"x has shape {x.shape}, but the {space_name} has D = {dim} values per example: "
                     f"expected (B, {dim}) (or (B, ...) of {dim} elements)")
  if isinstance(observed_mask, jax.core.Tracer):
    raise ValueError("observed_mask must be a concrete array (its pattern is checked), not a traced value")
  mask = np.asarray(observed_mask)
  if mask.dtype != np.bool_:
    raise ValueError(f"observed_mask must be a bool array (True = observed), got dtype {mask.dtype}")
  batch = x.shape[0]
  if mask.shape in (x.shape[1:], (dim,)):
    mask = np.broadcast_to(mask.reshape(1, dim), (batch, dim))
  elif mask.shape in (x.shape, (batch, dim)):
    mask = mask.reshape(batch, dim)
  else:
    raise ValueError(f"observed_mask has shape {mask.shape}; for x of shape {x.shape} it must be shared, "
                     f"{x.shape[1:]} or ({dim},), or per example, {x.shape} or ({batch}, {dim})")
  for bad, what in ((~mask.any(axis=1), "nothing observed"), (mask.all(axis=1), "nothing missing")):
    if bad.any():
      raise ValueError(f"observed_mask has {what} for {int(bad.sum())} example(s), e.g. example "
                       f"{int(np.argmax(bad))}: each example needs at least one observed and one missing "
                       "value")
  flat = x.reshape(batch, dim)
  if not isinstance(flat, jax.core.Tracer) and not np.all(np.isfinite(np.asarray(flat)[mask])):
    raise ValueError("x has non-finite observed values (missing entries may hold anything, NaN included)")
  if init is None:
    start = jnp.where(mask, flat, jnp.zeros((), x.dtype))
  else:
    init = jnp.asarray(init)
    if init.shape != x.shape and init.shape != flat.shape:
      raise ValueError(f"init has shape {init.shape}; it must have x's shape {x.shape} or {flat.shape}")
    init = init.reshape(batch, dim).astype(x.dtype)
    if not isinstance(init, jax.core.Tracer) and not np.all(np.isfinite(np.asarray(init)[~mask])):
      raise ValueError("init has non-finite values at missing positions")
    start = jnp.where(mask, flat, init)
  return flat, jnp.asarray(mask), start


def _checked_covariance(covariance: Any, batch: int, dim: int) -> np.ndarray:
  covariance = np.asarray(covariance, np.float64)
  if covariance.shape not in ((dim, dim), (batch, dim, dim)):
    raise ValueError(f"covariance must be ({dim}, {dim}) or ({batch}, {dim}, {dim}), got "
                     f"{covariance.shape}")
  if not np.all(np.isfinite(covariance)):
    raise ValueError("covariance has non-finite values")
  if np.max(np.abs(covariance - np.swapaxes(covariance, -1, -2))) > 1e-8 * np.max(np.abs(covariance)):
    raise ValueError("covariance must be symmetric")
  try:
    np.linalg.cholesky(covariance)
  except np.linalg.LinAlgError:
    raise ValueError("covariance must be positive definite") from None
  return covariance


def _dimension(model: nn.Module, space: PixelSpace | None) -> tuple[int, str]:
  if space is not None:
    return space.mean.size, "whitening (pixel space)"
  n_visible = getattr(model, "n_visible", None)
  if not isinstance(n_visible, int):
    raise ValueError(f"model must have an int n_visible and a free_energy method, got "
                     f"{type(model).__name__}")
  return n_visible, "model"


# ------------------------------------------------------------------------------------------------
# HMC.


def _batched_matvec(matrix: Array, v: Array) -> Array:
  return jnp.einsum("bij,bj->bi", matrix, v)


def _masked_factor(covariance: Array, observed: Array) -> Array:
  """Cholesky factor (B, D, D) of M Σ M + (I − M): Σ_mm on the missing block, I on the observed."""
  missing = (~observed).astype(covariance.dtype)
  covariance = jnp.broadcast_to(covariance, observed.shape + observed.shape[-1:])
  masked = (covariance * missing[:, :, None] * missing[:, None, :]
            + jax.vmap(jnp.diag)(observed.astype(covariance.dtype)))
  return jnp.linalg.cholesky(masked)


@functools.partial(jax.jit, static_argnames=("model", "num_leapfrog"))
def _run_hmc(model, variables, space, x, observed, start, covariance, key, num_steps, burn_in,
             step_size, adapt_step_size, *, num_leapfrog):
  """(average of x after burn-in, last x, mean acceptance after burn-in, final step size).

  HMC moves a position u ∈ R^D per example and evaluates the energy at x(u) = where(observed, x_o,
  start + L u) (L = I without preconditioning): the observed coordinates of u get a zero gradient, so
  they drift with their momentum without touching the energy and the Metropolis test, and the moves of
  the missing coordinates are exactly an HMC chain of p(x_m | x_o), with a mask per example (the
  `clamp_mask` of `hmc` is one mask for the whole batch). Transition t (0-based) draws its numbers from
  `jax.random.fold_in(key, t)`. Only the model and L are static: other step counts, step sizes and flags
  reuse the compiled loop.
  """
  factor = None if covariance is None else _masked_factor(covariance.astype(x.dtype), observed)

  def to_x(u: Array) -> Array:
    return jnp.where(observed, x, start + (u if factor is None else _batched_matvec(factor, u)))

  def energy_and_grad(u: Array) -> tuple[Array, Array]:
    energy, grad = pixel_space.energy_and_grad(model, variables, space, to_x(u))
    grad = jnp.where(observed, jnp.zeros((), grad.dtype), grad)
    return energy, grad if factor is None else jnp.einsum("bij,bi->bj", factor, grad)  # Lᵀ∇F

  def energy_fn(u: Array) -> Array:
    return pixel_space.energy_and_grad(model, variables, space, to_x(u))[0]

  # One compiled loop: the adapting sampler, whose ε is frozen from burn-in on (or always, without
  # adaptation), when each transition is exactly the fixed-step kernel's.
  sampler = adaptation.adapt_step_size(
      lambda eps: hmc(energy_fn, num_leapfrog=num_leapfrog, step_size=eps, energy_and_grad_fn=energy_and_grad))

  def transition(t, carry):
    state, total, acceptance = carry
    kept = t >= burn_in
    new_state, info = sampler.step(jax.random.fold_in(key, t), state,
                                   adapt=jnp.logical_not(kept) & adapt_step_size)
    total = total + jnp.where(kept, to_x(new_state.position), jnp.zeros((), x.dtype))
    acceptance = acceptance + jnp.where(kept, info.acceptance_rate, jnp.zeros((), x.dtype))
    return new_state, total, acceptance

  carry = (sampler.init(jnp.zeros_like(x), step_size=step_size), jnp.zeros_like(x),
           jnp.zeros((), x.dtype))
  state, total, acceptance = jax.lax.fori_loop(0, num_steps, transition, carry)
  kept = num_steps - burn_in
  return (jnp.where(observed, x, total / kept), to_x(state.position), acceptance / kept,
          state.step_size)


def _checked_problem(model: nn.Module, x: Any, observed_mask: Any, init: Any, whitening: Any,
                     residual_variance: Any) -> tuple[PixelSpace | None, int, tuple[int, ...], tuple]:
  """What both samplers check first: the space they move in (pixels through `whitening`, or the model's
  own), its dimension, the input's shape, and `_checked_batch`'s (flat x, observed mask, start)."""
  space = (None if whitening is None
           else pixel_space.checked_pixel_space(model, whitening, residual_variance))
  if whitening is None and residual_variance is not None:
    raise ValueError("residual_variance needs a whitening (it is the PCA residual's variance)")
  dim, space_name = _dimension(model, space)
  return space, dim, jnp.shape(x), _checked_batch(x, observed_mask, init, dim, space_name)


def inpaint_hmc(model: nn.Module, variables: Any, x: Any, observed_mask: Any, key: Array, *,
                num_steps: int, burn_in: int, num_leapfrog: int = 20, step_size: float = 0.1,
                adapt_step_size: bool = True, average: bool = True, init: Any = None,
                whitening: Any = None, residual_variance: float | None = None,
                covariance: Any = None, return_info: bool = False) -> Array | tuple[Array, InpaintInfo]:
  r"""Fills the missing values of x by Hybrid Monte Carlo on F with the observed values clamped.

  Runs `num_steps` HMC transitions (`deepvision.samplers.hmc`, L leapfrog steps each) of one chain
  per example, targeting p(x_m | x_o) ∝ exp(−F(x_m, x_o)), started at x_m = init_m. During the
  first `burn_in` transitions the step size, one for the batch, adapts to a rejection rate of 0.1
  (as the original code does); it is then frozen, so the transitions that are kept are an exact
  MCMC kernel. With `covariance` Σ (or by default in pixel space) the missing coordinates move as
  x_m = start_m + (L u)_m, L Lᵀ = Σ_mm (a mass matrix Σ⁻¹ on x_m): HMC then sees a target of
  roughly unit scale when Σ is close to the conditional covariance. The same key gives the same result.

  Example:
    >>> mask = occlusion_mask("left_half", (8, 8, 1), seed, batch=len(patches))
    >>> mask = mask.reshape(len(patches), -1)
    >>> filled = inpaint_hmc(model, variables, pixels, mask, key, num_steps=500, burn_in=100,
    ...                      whitening=whitening, init=gaussian_fill)

  Args:
    model: a model with `free_energy` (and `n_visible`), e.g. `MCRBM` (either form), `MPoT`,
      `GaussianRBM`; the closed-form `free_energy_and_grad` is used when the model has it.
    variables: its variables ({'params': ...}).
    x: (B, D) (or (B, ...) of D values) in the model's input space, or pixels when `whitening` is
      given; values at missing positions are ignored (NaN allowed).
    observed_mask: bool, True = observed; shared ((D,) or x.shape[1:]) or per example ((B, D) or
      x.shape). Each example needs at least one observed and one missing value.
    key: typed PRNG key.
    num_steps: HMC transitions in all (≥ 1).
    burn_in: the first transitions, discarded (0 ≤ burn_in < num_steps).
    num_leapfrog: leapfrog steps per transition.
    step_size: the initial leapfrog step size (in [0.001, 0.25] when adapting).
    adapt_step_size: adapt the step size during burn-in (True) or keep it fixed.
    average: return the average of x over the kept transitions (the posterior-mean estimate of
      E[x_m | x_o]); False returns the last sample.
    init: x's shape; its missing entries start the chains (e.g. the Gaussian baseline's
      conditional mean). None starts them at 0.
    whitening: a `PCAWhitening`: x is in pixel space and the energy is `pixel_space_energy`.
    residual_variance: σ_r² of the PCA residual (see `pixel_space_energy`); whitening only.
    covariance: None, or an SPD (D, D) or (B, D, D) covariance preconditioning the moves (e.g. the
      Gaussian baseline's covariance, or its conditional covariance). None: no preconditioning in
      the model's space; in pixel space the PCA-residual covariance U diag(λ + ε) Uᵀ + σ_r²(I − UUᵀ).
    return_info: also return an `InpaintInfo` (acceptance rate after burn-in, step size).

  Returns:
    x's shape and (JAX) dtype: observed values bit for bit, missing ones estimated; with
    `return_info`, the pair (that array, `InpaintInfo`).

  Raises:
    ValueError: bad masks (shape, dtype, an example with nothing observed or nothing missing),
      shapes that do not match the model or whitening, bad step counts, covariance or sizes; all
      before any compute.
  """
  num_steps, burn_in = _check_steps(num_steps, burn_in)
  num_leapfrog = _check_int("num_leapfrog", num_leapfrog, 1)
  if (isinstance(step_size, bool) or not isinstance(step_size, numbers.Real)
      or not (math.isfinite(step_size) and step_size > 0)):
    raise ValueError(f"step_size must be a finite number > 0, got {step_size!r}")
  for name, value in (("adapt_step_size", adapt_step_size), ("average", average),
                      ("return_info", return_info)):
    _check_bool(name, value)
  if adapt_step_size and burn_in > 0 and not 0.001 <= step_size <= 0.25:
    raise ValueError(f"step_size must lie in [0.001, 0.25] (the adaptation's bounds) when adapting, got "
                     f"{step_size}")
  space, dim, shape, (flat, observed, start) = _checked_problem(model, x, observed_mask, init, whitening,
                                                                residual_variance)
  if covariance is not None:
    covariance = _checked_covariance(covariance, flat.shape[0], dim)
  elif space is not None:
    covariance = pixel_space.pixel_covariance(space)
  mean, last, acceptance, final_step_size = _run_hmc(
      model, variables, space, flat, observed, start, covariance, key, num_steps, burn_in,
      float(step_size), adapt_step_size, num_leapfrog=num_leapfrog)
  estimate = (mean if average else last).reshape(shape)
  return (estimate, InpaintInfo(acceptance, final_step_size)) if return_info else estimate


# ------------------------------------------------------------------------------------------------
# Gibbs.


def _conditional_given_hidden(key: Array, natural: Array, precision: Array, x: Array,
                              observed: Array) -> tuple[Array, Array]:
  """(E[x | x_o, h], a draw of x | x_o, h), both with x_o in place, for per-example masks.

  p(x | h) = N(Λ⁻¹η, Λ⁻¹) gives x_m | x_o ~ N(Λ_mm⁻¹(η_m − Λ_mo x_o), Λ_mm⁻¹): the system
  (M Λ M + I − M) y = r with r_o = x_o, r_m = η_m − Λ_mo x_o has y_o = x_o and y_m that mean, and with
  its Cholesky factor L, y + L⁻ᵀε has covariance Λ_mm⁻¹ on m (`gaussian_mean_and_draw`).
  """
  dtype = natural.dtype
  missing = (~observed).astype(dtype)
  known = jnp.where(observed, x, jnp.zeros((), dtype))
  rhs = jnp.where(observed, known, natural - _batched_matvec(precision, known))
  system = (precision * missing[:, :, None] * missing[:, None, :]
            + jax.vmap(jnp.diag)(observed.astype(dtype)))
  noise = jax.random.normal(key, natural.shape, dtype)
  conditional_mean, draw = gaussian_mean_and_draw(rhs, system, noise)
  return jnp.where(observed, x, conditional_mean), jnp.where(observed, x, draw)


@functools.partial(jax.jit, static_argnames=("model",))
def _run_gibbs(model, variables, space, x, observed, start, key, num_steps, burn_in, rao_blackwell):
  """(average after burn-in of the conditional means or samples, last sample)."""
  space = pixel_space.cast(space, x.dtype)

  def transition(t, carry):
    current, total = carry
    hidden_key, visible_key = jax.random.split(jax.random.fold_in(key, t))
    z = current if space is None else pixel_space.whiten(space, current)[0]
    h_c, h_m = model.apply(variables, hidden_key, z, method="sample_hidden")
    natural, precision = model.apply(variables, h_c, h_m, method="conditional_natural")
    if space is not None:
      natural, precision = pixel_space.natural_to_pixels(space, natural, precision)
    conditional_mean, sample = _conditional_given_hidden(visible_key, natural, precision, x, observed)
    kept = jnp.where(rao_blackwell, conditional_mean, sample)
    return sample, total + jnp.where(t >= burn_in, kept, jnp.zeros((), x.dtype))

  current, total = jax.lax.fori_loop(0, num_steps, transition, (start, jnp.zeros_like(x)))
  return jnp.where(observed, x, total / (num_steps - burn_in)), current


def inpaint_gibbs(model: nn.Module, variables: Any, x: Any, observed_mask: Any, key: Array, *,
                  num_steps: int, burn_in: int, rao_blackwell: bool = True, average: bool = True,
                  init: Any = None, whitening: Any = None,
                  residual_variance: float | None = None) -> Array:
  r"""Fills the missing values of x by Gibbs sampling h and x_m for a model with Gaussian p(x | h).

  Each transition draws h ~ p(h | x) (`sample_hidden`), takes p(x | h) = N(μ, Λ⁻¹)
  (`conditional_gaussian`) and draws

    x_m ~ N(μ_m − Λ_mm⁻¹ Λ_mo (x_o − μ_o), Λ_mm⁻¹),

  leaving x_o unchanged: a Gibbs chain of p(x_m, h | x_o) (reference/gated-mrf.md, "conditional
  sampling"). The estimate averages, over the transitions after burn-in, the conditional means
  E[x_m | x_o, h] (`rao_blackwell=True`: Rao-Blackwellisation, the same limit with a smaller variance)
  or the samples x_m. Transition t draws its numbers from `jax.random.fold_in(key, t)`.

  Example:
    >>> filled = inpaint_gibbs(model, variables, pixels, mask, key, num_steps=300, burn_in=50,
    ...                        whitening=whitening)

  Args:
    model: `MCRBM` with input_norm 'paper' or `MPoT` (any model with `sample_hidden(key, x)` and
      `conditional_natural(h_c, h_m) -> (η, Λ)`, p(x | h) = N(Λ⁻¹η, Λ⁻¹)).
    variables: its variables ({'params': ...}).
    x, observed_mask, key, init, whitening, residual_variance: as in `inpaint_hmc`; with
      `whitening`, p(x | h) is carried to pixel space through the affine whitening and the PCA
      residual (still Gaussian), so missing pixels are sampled exactly.
    num_steps: transitions in all (≥ 1); burn_in: the first ones, discarded (< num_steps).
    rao_blackwell: average conditional means (True) or samples (False).
    average: return the average (True) or the last sample of x (False).

  Returns:
    x's shape and (JAX) dtype: observed values bit for bit, missing ones estimated.

  Raises:
    ValueError: an original-form mcRBM (p(x | h) is not Gaussian: use `inpaint_hmc`), a model
      without the two methods, or bad arguments as in `inpaint_hmc`; all before any compute.
  """
  if getattr(model, "input_norm", None) == "original":
    raise ValueError("inpaint_gibbs needs a Gaussian p(x | h), but this MCRBM has input_norm 'original' "
                     "(the covariance branch sees a normalised x); use inpaint_hmc, or an MCRBM with "
                     "input_norm 'paper' or an MPoT")
  for method in ("sample_hidden", "conditional_natural"):
    if not hasattr(model, method):
      raise ValueError(f"inpaint_gibbs needs a model with sample_hidden and conditional_natural (a "
                       f"paper-form MCRBM or an MPoT); {type(model).__name__} has no {method}; use "
                       "inpaint_hmc")
  num_steps, burn_in = _check_steps(num_steps, burn_in)
  _check_bool("rao_blackwell", rao_blackwell)
  _check_bool("average", average)
  space, dim, shape, (flat, observed, start) = _checked_problem(model, x, observed_mask, init, whitening,
                                                                residual_variance)
  mean, last = _run_gibbs(model, variables, space, flat, observed, start, key, num_steps, burn_in,
                          rao_blackwell)
  return (mean if average else last).reshape(shape)
