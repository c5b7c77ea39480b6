r"""The Gaussian baselines a gated MRF's fill-in is measured against, fitted on the same training pixels.

A gated MRF (mcRBM, mPoT) earns its keep only where it beats the Gaussian of the same data (Ranzato,
Mnih, Susskind & Hinton, "Modeling natural images using gated MRFs", PAMI 2013, §6): both fill occluded
pixels with their conditional mean μ_m + Σ_mo Σ_oo⁻¹ (x_o − μ_o) (`GaussianModel.inpaint`).

  'gaussian':      N(m, U diag(λ + ε) Uᵀ + σ_r² (I − U Uᵀ)), the PCA whitening's own Gaussian: the
                   gated MRF's pixel-space density with its free energy F(z) replaced by ½‖z‖²
                   (probabilistic PCA, Tipping & Bishop 1999): the same whitening, the same residual;
  'gaussian_full': N(m̂, Σ̂ + ridge · I), the sample mean and covariance, every direction kept.
"""

from __future__ import annotations

import numpy as np

from deepvision.data.whiten import PCAWhitening
from deepvision.models.gaussian import GaussianModel

GAUSSIANS = ("gaussian", "gaussian_full")


def residual_variance(whitener: PCAWhitening) -> float:
  """σ_r² = (Σ_{k>K} λ_k) / (D − K): the mean discarded eigenvalue (probabilistic PCA's ML estimate).

  `samplers.pixel_space.pixel_space_energy`'s default, recomputed here for the Gaussian; 0 when K = D.
  """
  kept = float(np.sum(whitener.eigenvalues))
  dropped = whitener.input_dim - whitener.num_components
  return 0.0 if dropped == 0 else max(kept / whitener.variance_kept - kept, 0.0) / dropped


def pca_gaussian(whitener: PCAWhitening) -> GaussianModel:
  """'gaussian': N(m, U diag(λ + ε) Uᵀ + σ_r² (I − U Uᵀ)) of a fitted PCA whitening."""
  u = whitener.components
  covariance = (u * (whitener.eigenvalues + whitener.epsilon)) @ u.T
  variance = residual_variance(whitener)
  if variance > 0:
    covariance += variance * (np.eye(len(u)) - u @ u.T)
  return GaussianModel(np.asarray(whitener.mean, np.float64), (covariance + covariance.T) / 2)


def full_gaussian(x: np.ndarray, ridge: float) -> GaussianModel:
  """'gaussian_full': the sample mean and covariance of (N, ...) examples, plus ridge · I."""
  return GaussianModel.fit(np.asarray(x).reshape(len(x), -1), ridge=ridge)


def gaussian_baselines(train: np.ndarray, whitener: PCAWhitening, ridge: float) -> dict[str, GaussianModel]:
  """Both baselines of the module docstring, by name (`GAUSSIANS`), fitted on the training pixels."""
  return {"gaussian": pca_gaussian(whitener), "gaussian_full": full_gaussian(train, ridge)}
