r"""Inpainting as a measure: how well a gated MRF fills occluded pixels, against Gaussian baselines.

Ranzato, Mnih, Susskind & Hinton ("Modeling natural images using gated MRFs", PAMI 2013) fill in
occluded images by sampling the missing pixels x_m from the model's conditional p(x_m | x_o). Here the
gated MRF's fill is the posterior mean E[x_m | x_o] (`fill_with_model`), the baselines' the conditional
means of `gaussian_baselines`, and the floor every fill must beat the training mean of each missing pixel
(a fill that reads no observed pixel). The measure per image is the squared error per missing pixel,
Σ_m (x̂ − x)² / |m|, with the paired gain MSE(best Gaussian) − MSE(gated MRF) (`evaluate_inpainting`).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from deepvision.data.face_data import INPAINT_METHODS, MASK_KINDS, InpaintSettings  # noqa: F401
from deepvision.data.occlusion import occlusion_mask
from deepvision.data.whiten import PCAWhitening
from deepvision.estimators.gaussian_baselines import GAUSSIANS, gaussian_baselines
from deepvision.samplers import conditional

def central_square_mask(image_shape: tuple[int, ...], side: int, batch: int) -> np.ndarray:
  """(batch, *image_shape) bool, False on the side×side square in the middle (rounded up-left)."""
  height, width = image_shape[:2]
  top, left = (height - side) // 2, (width - side) // 2
  observed = np.ones(image_shape, bool)
  observed[top:top + side, left:left + side] = False
  return np.broadcast_to(observed, (batch, *image_shape)).copy()


def make_masks(kind: str, image_shape: tuple[int, ...], key: jax.Array, batch: int,
               square_size: int) -> np.ndarray:
  """(batch, D) bool observed masks of `kind` (MASK_KINDS) for flat images of `image_shape`."""
  if kind == "central_square":
    mask = central_square_mask(image_shape, square_size, batch)
  else:
    mask = np.asarray(occlusion_mask(kind, image_shape, key, batch, square_size=square_size))
  return mask.reshape(batch, -1)


def missing_mse(filled: np.ndarray, truth: np.ndarray, observed: np.ndarray) -> np.ndarray:
  """Per example, the mean squared error over its missing pixels: Σ_m (x̂ − x)² / |m|, (B,) float64."""
  error = (np.asarray(filled, np.float64) - np.asarray(truth, np.float64)) ** 2
  missing = ~observed
  return np.sum(error * missing, axis=1) / np.sum(missing, axis=1)


def mean_and_stderr(values: np.ndarray) -> tuple[float, float]:
  """(mean, standard error s/√n with the n − 1 sample deviation; 0 for one value)."""
  values = np.asarray(values, np.float64)
  spread = float(np.std(values, ddof=1)) / math.sqrt(len(values)) if len(values) > 1 else 0.0
  return float(np.mean(values)), spread


def fill_with_model(model: Any, params: Any, whitener: PCAWhitening, pixels: np.ndarray,
                    observed: np.ndarray, start: np.ndarray, key: jax.Array,
                    settings: InpaintSettings) -> tuple[np.ndarray, float]:
  """(E[x_m | x_o] estimated by the gated MRF in pixel space (B, D) float32, HMC acceptance or NaN).

  The pixel-space density is `samplers.pixel_space.pixel_space_energy`: the model's density of the kept
  PCA coordinates times the PCA residual N(0, σ_r² I). The posterior mean is estimated by HMC ('hmc', any
  gated MRF) or Gibbs sampling of h and x_m ('gibbs', paper-form mcRBM or mPoT), the chains started at
  `start` (the PCA Gaussian's fill).
  """
  x = jnp.asarray(np.where(observed, pixels, np.nan), jnp.float32)
  common = dict(num_steps=settings.num_steps, burn_in=settings.burn_in, init=jnp.asarray(start, jnp.float32),
                whitening=whitener)
  if settings.method == "gibbs":
    filled = conditional.inpaint_gibbs(model, {"params": params}, x, observed, key, **common)
    return np.asarray(filled), float("nan")
  filled, info = conditional.inpaint_hmc(model, {"params": params}, x, observed, key,
                                         num_leapfrog=settings.num_leapfrog, step_size=settings.step_size,
                                         return_info=True, **common)
  return np.asarray(filled), float(info.acceptance_rate)


def evaluate_inpainting(model: Any, params: Any, whitener: PCAWhitening, train: np.ndarray,
                        test: np.ndarray, settings: InpaintSettings, key: jax.Array
                        ) -> tuple[dict[str, float], dict[str, dict[str, np.ndarray]]]:
  """Every mask of `settings` on every held-out image: the records and the fills.

  * masks: each image is occluded by a kind of `MASK_KINDS` ('central_square' of side `square_size` in
    the middle, or a kind of `deepvision.data.occlusion`: halves, 'random_square'); True = observed;
  * the gated MRF's fill: `fill_with_model`, the chains started at the PCA Gaussian's fill;
  * the baselines' fills: the conditional means of `gaussian_baselines` (the minimum-squared-error fill
    under their own model); the gated MRF is compared against the better one; and 'train_mean', each
    missing pixel filled with its mean over `train` (the fill that uses no observed pixel: a model's
    fill that does not beat it has learned nothing usable about the missing pixels);
  * the measure: per image the squared error per missing pixel, Σ_m (x̂ − x)² / |m|, its mean over
    images with the standard error, and the paired gain MSE(best Gaussian) − MSE(gated MRF).

  Masks of the i-th kind come from `fold_in(key, i)`, the chains' numbers from
  `fold_in(fold_in(key, i), 1)`, so an evaluation is reproducible.

  Args:
    model, params: the trained gated MRF of the whitened images.
    whitener: the PCA whitening it was trained through (fitted on `train`).
    train: (N, H, W, C) training pixels the Gaussians are fitted on; test: (B, H, W, C) held-out pixels.
    settings: the masks, the sampler and the Gaussians' ridge.
    key: the evaluation's key.

  Returns:
    (metrics, fills): per mask `test/mse_{gmrf,gaussian,gaussian_full,train_mean}_<mask>` (each with
    `_stderr`), `test/mse_gain_<mask>` (with `_stderr`) and, for HMC, `inpaint/acceptance_<mask>`;
    fills[mask] = {'observed': (B, D) bool, 'gaussian': ..., 'gaussian_full': ..., 'train_mean': ...,
    'gmrf': ..., 'best_gaussian': name}
    with (B, D) float32 fills whose observed pixels are the input's, bit for bit.
  """
  pixels = test.reshape(len(test), -1).astype(np.float32)
  baselines = gaussian_baselines(train, whitener, settings.gaussian_ridge)
  train_mean = np.mean(train.reshape(len(train), -1), axis=0, dtype=np.float64).astype(np.float32)
  metrics, fills = {}, {}
  for i, kind in enumerate(settings.masks):
    mask_key = jax.random.fold_in(key, i)
    observed = make_masks(kind, test.shape[1:], mask_key, len(test), settings.square_size)
    occluded = np.where(observed, pixels, np.nan).astype(np.float32)
    fills[kind] = {"observed": observed}
    errors = {}
    for name, gaussian in baselines.items():
      fills[kind][name] = gaussian.inpaint(occluded, observed).astype(np.float32)
      errors[name] = missing_mse(fills[kind][name], pixels, observed)
    fills[kind]["train_mean"] = np.where(observed, pixels, train_mean).astype(np.float32)
    errors["train_mean"] = missing_mse(fills[kind]["train_mean"], pixels, observed)
    best = min(GAUSSIANS, key=lambda name: float(np.mean(errors[name])))
    fills[kind]["best_gaussian"] = best
    fills[kind]["gmrf"], acceptance = fill_with_model(model, params, whitener, pixels, observed,
                                                      fills[kind]["gaussian"],
                                                      jax.random.fold_in(mask_key, 1), settings)
    errors["gmrf"] = missing_mse(fills[kind]["gmrf"], pixels, observed)
    for name in ("gmrf",) + GAUSSIANS + ("train_mean",):
      metrics[f"test/mse_{name}_{kind}"], metrics[f"test/mse_{name}_{kind}_stderr"] = mean_and_stderr(errors[name])
    metrics[f"test/mse_gain_{kind}"], metrics[f"test/mse_gain_{kind}_stderr"] = mean_and_stderr(
        errors[best] - errors["gmrf"])
    if settings.method == "hmc":
      metrics[f"inpaint/acceptance_{kind}"] = acceptance
  return metrics, fills
