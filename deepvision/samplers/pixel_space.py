r"""Pixel-space energy of a model trained on PCA-whitened vectors, with a PCA residual.

A model trained on whitened patches z = T(x) (`deepvision.data.whiten`) has its free energy over z, but
missing *pixels* are not missing whitened coordinates: every z_k mixes all pixels. As probabilistic PCA
does (Tipping & Bishop 1999), the discarded directions get an isotropic Gaussian:

  −log p(x) = F(T(x)) + ‖(I − U Uᵀ)(x − m)‖² / (2σ_r²) + const,

with U = `whitening.components` (D × K) and σ_r² by default the mean discarded eigenvalue
(Σ_{k>K} λ_k)/(D − K) (probabilistic PCA's maximum-likelihood σ²); const = −log_det_jacobian +
½(D − K) log(2πσ_r²) + log Z does not depend on x, and with K = D the residual term vanishes. T is
affine, so a Gaussian p(x | h) stays Gaussian over pixels (`natural_to_pixels`), and the PCA-residual
covariance U diag(λ + ε) Uᵀ + σ_r²(I − U Uᵀ) (`pixel_covariance`) preconditions pixel-space HMC.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from deepvision.samplers.hmc import EnergyFunctions, model_energy

Array = jax.Array


class PixelSpace(NamedTuple):
  """The affine whitening T(x) = ((x − m) U) / s and the precision ρ = 1/σ_r² of the residual."""

  mean: Any  # (D,)
  components: Any  # (D, K)
  scales: Any  # (K,)
  residual_precision: Any  # scalar, 0 when K = D


# ------------------------------------------------------------------------------------------------
# Energies.


def _model_energy_and_grad(model: nn.Module, variables: Any, x: Array) -> tuple[Array, Array]:
  """(F(x), ∂F/∂x): the model's closed form when it has one, else autodiff of `free_energy`."""
  return model_energy(model, variables).energy_and_grad_fn(x)


def whiten(space: PixelSpace, x: Array) -> tuple[Array, Array, Array]:
  """(z = T(x) (B, K), y = Uᵀ(x − m) (B, K), residual (I − UUᵀ)(x − m) (B, D))."""
  centred = x - space.mean
  y = centred @ space.components
  return y / space.scales, y, centred - y @ space.components.T


def _pixel_energy_and_grad(model: nn.Module, variables: Any, space: PixelSpace,
                           x: Array) -> tuple[Array, Array]:
  """F(T(x)) + ½ρ‖r‖² and its gradient U diag(1/s) ∇_z F + ρ r, r = (I − UUᵀ)(x − m)."""
  z, _, residual = whiten(space, x)
  energy, grad_z = _model_energy_and_grad(model, variables, z)
  energy = energy + 0.5 * space.residual_precision * jnp.sum(residual * residual, axis=-1)
  grad = (grad_z / space.scales) @ space.components.T + space.residual_precision * residual
  return energy, grad


def cast(space: PixelSpace | None, dtype: Any) -> PixelSpace | None:
  """`space` with its arrays in `dtype` (None stays None)."""
  return None if space is None else PixelSpace(*(jnp.asarray(a, dtype) for a in space))


def energy_and_grad(model: nn.Module, variables: Any, space: PixelSpace | None, x: Array):
  """(E(x), ∂E/∂x): the model's own energy when `space` is None, else the pixel-space energy."""
  if space is None:
    return _model_energy_and_grad(model, variables, x)
  return _pixel_energy_and_grad(model, variables, cast(space, x.dtype), x)


def checked_pixel_space(model: nn.Module, whitening: Any, residual_variance: Any) -> PixelSpace:
  """The whitening's arrays and the residual precision, checked against the model (NumPy)."""
  for attribute in ("mean", "components", "scales", "eigenvalues", "variance_kept", "input_dim",
                    "num_components"):
    if not hasattr(whitening, attribute):
      raise ValueError(f"whitening must be a PCAWhitening (deepvision.data.whiten), got "
                       f"{type(whitening).__name__} without {attribute!r}")
  dim, kept = whitening.input_dim, whitening.num_components
  n_visible = getattr(model, "n_visible", None)
  if n_visible != kept:
    raise ValueError(f"the model has n_visible={n_visible} but the whitening keeps K={kept} "
                     "components: the model must be trained on this whitening's output")
  if residual_variance is not None:
    if (isinstance(residual_variance, bool) or not isinstance(residual_variance, numbers.Real)
        or not (math.isfinite(residual_variance) and residual_variance > 0)):
      raise ValueError(f"residual_variance must be a finite number > 0 or None, got {residual_variance!r}")
  if kept == dim:
    precision = 0.0  # nothing discarded: no residual term
  elif residual_variance is not None:
    precision = 1.0 / float(residual_variance)
  else:
    kept_variance = float(np.sum(whitening.eigenvalues))
    discarded = kept_variance / whitening.variance_kept - kept_variance
    if discarded <= 1e-12 * kept_variance / whitening.variance_kept:
      raise ValueError(f"the whitening discards {dim - kept} directions with no variance (to rounding), "
                       "so the PCA-residual variance would be 0; pass residual_variance > 0")
    precision = (dim - kept) / discarded
  return PixelSpace(np.asarray(whitening.mean, np.float64), np.asarray(whitening.components, np.float64),
                     np.asarray(whitening.scales, np.float64), np.float64(precision))


def pixel_covariance(space: PixelSpace) -> np.ndarray:
  """U diag(s²) Uᵀ + σ_r²(I − UUᵀ): the PCA-residual Gaussian's covariance (float64, D × D)."""
  u = space.components
  covariance = (u * space.scales ** 2) @ u.T
  if space.residual_precision > 0:
    covariance += (np.eye(u.shape[0]) - u @ u.T) / space.residual_precision
  return (covariance + covariance.T) / 2


def pixel_space_energy(model: nn.Module, variables: Any, whitening: Any,
                       residual_variance: float | None = None) -> EnergyFunctions:
  r"""The energy over pixel vectors of a model trained on whitened data, with a PCA residual.

    E(x) = F(T(x)) + ‖(I − U Uᵀ)(x − m)‖² / (2σ_r²),   T(x) = diag(λ + ε)^(−1/2) Uᵀ (x − m),
    ∂E/∂x = U diag(λ + ε)^(−1/2) ∂F/∂z + (I − U Uᵀ)(x − m) / σ_r²,

  so that p(x) ∝ exp(−E(x)) is a density on R^D: the model's density of the kept PCA coordinates
  times an isotropic Gaussian N(0, σ_r² I) of the D − K discarded ones (the residual model of
  probabilistic PCA). −log p(x) = E(x) − log_det_jacobian + ½(D − K) log(2πσ_r²) + log Z.

  Args:
    model: a model of whitened vectors with `free_energy` and `n_visible` = K.
    variables: its variables ({'params': ...}).
    whitening: the `PCAWhitening` the model's data went through, (D pixels → K components).
    residual_variance: σ_r² > 0; None: the mean discarded eigenvalue, (Σ_{k>K} λ_k) / (D − K),
      recovered from `variance_kept`. Ignored when K = D (no residual term).

  Returns:
    `EnergyFunctions` over flat pixel batches (B, D).

  Raises:
    ValueError: a whitening whose K is not the model's n_visible, a bad residual_variance, or a
      default σ_r² of 0 (the whitening dropped only zero-variance directions).
  """
  space = checked_pixel_space(model, whitening, residual_variance)

  def energy_fn(x: Array) -> Array:
    local = cast(space, x.dtype)
    z, _, residual = whiten(local, x)
    return (model.apply(variables, z, method="free_energy")
            + 0.5 * local.residual_precision * jnp.sum(residual * residual, axis=-1))

  return EnergyFunctions(energy_fn, lambda x: _pixel_energy_and_grad(model, variables,
                                                                     cast(space, x.dtype), x))


# ------------------------------------------------------------------------------------------------
# Gaussian conditionals.


def natural_to_pixels(space: PixelSpace, natural: Array, precision: Array) -> tuple[Array, Array]:
  """N(Λ_z⁻¹η_z, Λ_z⁻¹) over z = T(x) with the PCA residual, as N(Λ_x⁻¹η_x, Λ_x⁻¹) over pixels.

  With W = U diag(1/s): Λ_x = W Λ_z Wᵀ + ρ (I − UUᵀ) and μ_x = m + U diag(s) μ_z, so (Wᵀ U diag(s) = I)
  η_x = Λ_x μ_x = Λ_x m + W η_z: no solve needed.
  """
  u = space.components
  weights = u / space.scales  # (D, K)
  residual = space.residual_precision * (jnp.eye(u.shape[0], dtype=u.dtype) - u @ u.T)
  precision_x = jnp.einsum("dk,bkl,el->bde", weights, precision, weights) + residual
  return precision_x @ space.mean + natural @ weights.T, precision_x
