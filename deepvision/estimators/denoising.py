r"""Denoising as a measure of an image prior: MAP estimates under white Gaussian noise, scored by PSNR.

The classic use of a learned whole-image prior p(x) ∝ exp(−F(x)) (Roth & Black, "Fields of Experts: a
framework for learning image priors", CVPR 2005, §5, and IJCV 2009, §5.1): a photograph x is observed as
y = x + n with white Gaussian noise n ~ N(0, σ² I) (σ = 25/255 for images in [0, 1] in their table), and
the prior's estimate is the MAP image, one image y at a time,

  x̂ = argmin_x  E(x),     E(x) = λ F(x) + ‖x − y‖² / (2σ²),

with λ ≥ 0 the weight of the prior (Roth & Black tune it on held-out images; λ = 1 is the exact posterior
mode). E is minimised by L-BFGS (Nocedal, "Updating quasi-Newton matrices with limited storage", Math.
Comp. 1980; optax's `lbfgs` with its zoom line search, Nocedal & Wright, "Numerical Optimization", 2006,
Alg. 3.5-3.6) started at y, for a fixed number of steps (`map_denoise`). The energies of a batch are per
image, so minimising their sum over the batch minimises each one. The score is the peak signal-to-noise
ratio 10 log₁₀(peak² / MSE) of each image, averaged over the images (`psnr`), as in the FoE papers.

For a stationary (periodic) Gaussian prior with power spectrum S (`deepvision.models.stationary_gaussian`:
covariance C = U^H diag(S) U, U the unitary 2-D DFT, constant mean μ), the posterior is Gaussian and its
mean (= its mode) is the Wiener filter (Wiener, "Extrapolation, interpolation, and smoothing of stationary
time series", 1949; e.g. Gonzalez & Woods, "Digital Image Processing", §5.8), diagonal in the DFT basis:

  x̂ = (C⁻¹ + I/σ²)⁻¹ (C⁻¹ μ1 + y/σ²),     X̂_k = M_k + S_k / (S_k + σ²) · (Y_k − M_k),

with X_k = Σ_n x_n e^(−2πi k·n) (`jnp.fft.fft2`) and M_k that of the constant image μ (`wiener_denoise`):
the closed form against which the L-BFGS estimate of a Gaussian prior is checked, and the baseline every
learned prior must beat.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from deepvision.models.tiling import positive_int

Array = jax.Array


def _is_concrete(a: Any) -> bool:
  return not isinstance(a, jax.core.Tracer)


def _number(name: str, value: Any, *, positive: bool) -> float:
  """`value` (a real number or a concrete 0-d array) as a float, or a ValueError naming it."""
  if (isinstance(value, (np.ndarray, jax.Array)) and _is_concrete(value) and np.ndim(value) == 0
      and (np.issubdtype(value.dtype, np.floating) or np.issubdtype(value.dtype, np.integer))):
    value = np.asarray(value).item()
  bound = "> 0" if positive else ">= 0"
  if (isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value)
      or (value <= 0 if positive else value < 0)):
    raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
  return float(value)


def _float_images(name: str, images: Any, *, min_rank: int = 3, max_rank: int = 3) -> Array:
  """`images` as a floating JAX array of rank in [min_rank, max_rank], or a ValueError naming it."""
  shape, dtype = np.shape(images), getattr(images, "dtype", None)
  if dtype is None:
    dtype = np.asarray(images).dtype
  expected = "(B, H, W)" if min_rank == max_rank == 3 else f"rank {min_rank} to {max_rank}"
  if not min_rank <= len(shape) <= max_rank or 0 in shape:
    raise ValueError(f"{name} must be a non-empty {expected} array of images, got shape {tuple(shape)}")
  if not jnp.issubdtype(dtype, jnp.floating):
    raise ValueError(f"{name} must be real floating point (float32 or float64), got dtype {dtype}")
  if _is_concrete(images) and not np.all(np.isfinite(np.asarray(images))):
    raise ValueError(f"{name} has {int(np.sum(~np.isfinite(np.asarray(images))))} non-finite values (NaN or "
                     "inf); every pixel must be finite")
  return jnp.asarray(images)


def add_noise(key: jax.Array, images: Any, sigma: float) -> jax.Array:
  """y = x + σ n with n ~ N(0, I): white Gaussian noise of deviation σ added to every pixel.

  Args:
    key: a JAX PRNG key; the same key gives the same noise.
    images: a floating array of any shape (typically (B, H, W) in [0, 1]).
    sigma: σ > 0, e.g. 25/255 (Roth & Black's setting for images in [0, 1]).

  Returns:
    y, of the shape and dtype of `images`.

  Raises:
    ValueError: σ not a finite number > 0, or images that are empty, not floating point or not finite.
  """
  sigma = _number("add_noise: sigma", sigma, positive=True)
  x = _float_images("add_noise: images", images, min_rank=0, max_rank=np.inf)
  return _add_noise(key, x, jnp.asarray(sigma, x.dtype))


@jax.jit
def _add_noise(key: Array, images: Array, sigma: Array) -> Array:
  return images + sigma * jax.random.normal(key, images.shape, images.dtype)


def psnr(clean: Any, estimate: Any, peak: float = 1.0) -> float:
  """The mean over images of 10 log₁₀(peak² / MSE_b), MSE_b the mean squared error of image b.

  Per-image PSNR averaged over the images (the convention of Roth & Black's tables), not the PSNR of the
  pooled MSE. Computed in float64; an image estimated exactly has PSNR +inf (and so has the mean).

  Args:
    clean, estimate: (B, H, W) (or (B, ...) with any trailing axes: each leading index is an image), the
      same shape.
    peak: the largest pixel value, > 0 (1 for images in [0, 1], 255 for 8-bit).

  Returns:
    The mean PSNR in dB, a Python float.

  Raises:
    ValueError: peak not > 0, arrays of rank < 2 or of different shapes.
  """
  peak = _number("psnr: peak", peak, positive=True)
  clean, estimate = np.asarray(clean), np.asarray(estimate)
  if clean.ndim < 2 or 0 in clean.shape:
    raise ValueError(f"psnr: clean must be a non-empty (B, H, W) stack of images, got shape {clean.shape}")
  if estimate.shape != clean.shape:
    raise ValueError(f"psnr: estimate has shape {estimate.shape}, clean has shape {clean.shape}; they must "
                     "be the same")
  error = clean.astype(np.float64) - estimate.astype(np.float64)
  mse = np.mean(error.reshape(len(error), -1) ** 2, axis=1)
  with np.errstate(divide="ignore"):
    return float(np.mean(10.0 * np.log10(peak ** 2 / mse)))


def wiener_denoise(spectrum: Any, mean: Any, noisy: Any, sigma: float) -> jax.Array:
  r"""The posterior mean (= MAP) of each image under a stationary Gaussian prior: the Wiener filter.

  X̂_k = M_k + S_k / (S_k + σ²) · (Y_k − M_k) (module docstring), i.e. x̂ = μ + F⁻¹[g · F(y − μ)] with the
  gain g_k = S_k / (S_k + σ²), by FFT in O(N log N). S is that of
  `StationaryGaussian.spectrum()` (symmetric, S_k = S_−k, so that C is real); the real part of the inverse
  transform is returned.

  Args:
    spectrum: S, (H, W), in `jnp.fft.fft2`'s frequency order, ≥ 0 (S_k = 0 sets frequency k to the mean's).
    mean: μ, a scalar: the constant mean pixel of the prior.
    noisy: y, (B, H, W) floating.
    sigma: σ > 0, the deviation of the white noise.

  Returns:
    x̂, (B, H, W) in the dtype of `noisy`.

  Raises:
    ValueError: σ not > 0; noisy not (B, H, W) floating and finite; spectrum not of shape (H, W), or (when concrete)
      negative or non-finite; mean not a scalar.
  """
  sigma = _number("wiener_denoise: sigma", sigma, positive=True)
  y = _float_images("wiener_denoise: noisy", noisy)
  spectrum_shape = np.shape(spectrum)
  if spectrum_shape != y.shape[1:]:
    raise ValueError(f"wiener_denoise: spectrum has shape {spectrum_shape}; it must be the images' (H, W) = "
                     f"{y.shape[1:]}")
  if np.ndim(mean) != 0:
    raise ValueError(f"wiener_denoise: mean must be a scalar (the prior's constant mean pixel), got shape "
                     f"{np.shape(mean)}")
  if _is_concrete(spectrum):
    values = np.asarray(spectrum)
    if np.iscomplexobj(values) or not np.all(np.isfinite(values)) or np.any(values < 0):
      raise ValueError("wiener_denoise: spectrum must be real, finite and >= 0 everywhere, got min "
                       f"{np.min(np.real(values))!r} and {int(np.sum(~np.isfinite(values)))} non-finite values")
  return _wiener(jnp.asarray(spectrum, y.dtype), jnp.asarray(mean, y.dtype), y, jnp.asarray(sigma, y.dtype))


@jax.jit
def _wiener(spectrum: Array, mean: Array, noisy: Array, sigma: Array) -> Array:
  """μ + Re F⁻¹[S / (S + σ²) · F(y − μ)], in the dtype of y."""
  gain = spectrum / (spectrum + sigma ** 2)
  filtered = jnp.fft.ifft2(gain * jnp.fft.fft2(noisy - mean))
  return mean + jnp.real(filtered).astype(noisy.dtype)


def _objective(free_energy: Callable[[Array], Array], noisy: Array, sigma: Array,
               weight: Array) -> Callable[[Array], Array]:
  """E(x) = λ Σ_b F(x_b) + ‖x − y‖² / (2σ²) over the batch: a scalar."""
  def objective(x: Array) -> Array:
    return weight * jnp.sum(free_energy(x)) + jnp.sum((x - noisy) ** 2) / (2.0 * sigma ** 2)
  return objective


@functools.partial(jax.jit, static_argnames=("free_energy",))
def _minimise(free_energy: Callable[[Array], Array], noisy: Array, sigma: Array, weight: Array,
              num_steps: Array) -> tuple[Array, Array, Array, Array]:
  """(x̂, E(y), E(x̂), ‖∇E(x̂)‖): `num_steps` L-BFGS steps on E from y, in one compiled loop.

  A step whose new objective is non-finite or larger than the old one (a failed line search, or rounding
  once converged) is rejected: x stays and the L-BFGS memory restarts, so E never increases.
  """
  objective = _objective(free_energy, noisy, sigma, weight)
  solver = optax.lbfgs()
  value_and_grad = optax.value_and_grad_from_state(objective)

  def step(_, carry):
    x, state = carry
    value, grad = value_and_grad(x, state=state)
    updates, new_state = solver.update(grad, state, x, value=value, grad=grad, value_fn=objective)
    new_x = optax.apply_updates(x, updates)
    new_value = optax.tree.get(new_state, "value")
    accept = jnp.isfinite(new_value) & (new_value <= value) & jnp.all(jnp.isfinite(new_x))
    restart = solver.init(x)
    return jax.tree.map(lambda a, b: jnp.where(accept, a, b), (new_x, new_state), (x, restart))

  estimate, _ = jax.lax.fori_loop(0, num_steps, step, (noisy, solver.init(noisy)))
  value_end, grad_end = jax.value_and_grad(objective)(estimate)
  return estimate, objective(noisy), value_end, optax.tree.norm(grad_end)


def map_denoise(free_energy: Callable[[jax.Array], jax.Array], noisy: Any, sigma: float, *,
                num_steps: int = 200, weight: float = 1.0) -> tuple[jax.Array, dict[str, float]]:
  """MAP denoising of each image: x̂ = argmin_x λ F(x) + ‖x − y‖² / (2σ²), by L-BFGS from y.

  The objective and references are in the module docstring. The whole minimisation (optax's `lbfgs`, zoom
  line search, memory 10) runs as one jitted loop of `num_steps` steps; steps that would not decrease the
  objective are rejected and restart the L-BFGS memory. The compiled loop is reused by later calls with
  the same `free_energy` object and the same shapes and dtype (σ, λ and the number of steps are traced, not
  compiled in).

  Args:
    free_energy: F, (B, H, W) → (B,), differentiable: one energy per image (e.g. `lambda x:
      model.apply(variables, x, method="free_energy")`); it must be hashable (functions, lambdas and
      `functools.partial` objects are).
    noisy: y, (B, H, W) floating; the images are denoised independently (each of the B energies depends on
      its own image only).
    sigma: σ > 0, the deviation of the noise (25/255 for Roth & Black's setting), in the units of the
      images the prior models (for a prior of images standardised as (x − m)/s, denoise (y − m)/s with σ/s).
    num_steps: L-BFGS steps, ≥ 1.
    weight: λ ≥ 0, the weight of the prior (1: the posterior mode; 0 returns y).

  Returns:
    (x̂ (B, H, W) in the dtype of `noisy`, info) with info['objective_start'] = E(y),
    info['objective_end'] = E(x̂) (both summed over the batch) and info['gradient_norm_end'] = ‖∇E(x̂)‖,
    the Euclidean norm over all B·H·W pixels of the gradient of the summed objective; Python floats.

  Raises:
    ValueError: σ not > 0, num_steps < 1, λ < 0, noisy not a finite (B, H, W) floating array, free_energy not
      callable or not hashable, or returning something other than (B,) for (B, H, W) input.
  """
  sigma = _number("map_denoise: sigma", sigma, positive=True)
  num_steps = positive_int("map_denoise: num_steps", num_steps)
  weight = _number("map_denoise: weight", weight, positive=False)
  y = _float_images("map_denoise: noisy", noisy)
  if not callable(free_energy):  # A ValueError, as for every bad argument of the measures.
    raise ValueError(  # noqa: TRY004
        f"map_denoise: free_energy must be a callable (B, H, W) -> (B,), got {free_energy!r}")
  try:
    hash(free_energy)
  except TypeError as error:
    raise ValueError(f"map_denoise: free_energy must be hashable (a function, lambda or functools.partial), "
                     f"got {type(free_energy).__name__}") from error
  energies = jax.eval_shape(free_energy, jax.ShapeDtypeStruct(y.shape, y.dtype))
  if getattr(energies, "shape", None) != (y.shape[0],):
    raise ValueError(f"map_denoise: free_energy must return one energy per image, shape ({y.shape[0]},) for "
                     f"images of shape {y.shape}, got {getattr(energies, 'shape', energies)!r}")
  estimate, start, end, gradient_norm = _minimise(
      free_energy, y, jnp.asarray(sigma, y.dtype), jnp.asarray(weight, y.dtype), jnp.asarray(num_steps, jnp.int32))
  info = {"objective_start": float(start), "objective_end": float(end),
          "gradient_norm_end": float(gradient_norm)}
  return estimate.astype(y.dtype), info
