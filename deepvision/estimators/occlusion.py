r"""Recognition under occlusion as a measure: a gated MRF's fill-in and features against pixel baselines.

The measure of Ranzato, Susskind, Mnih & Hinton ("On deep generative models with applications to
recognition", CVPR 2011) and Ranzato, Mnih, Susskind & Hinton ("Modeling natural images using gated MRFs",
PAMI 2013, §6.2; the talk's facial-expression experiment): linear classifiers fitted on clean images from
'pixels' x, 'latent' f(x) = [E[h_c | T(x)], p(h_m = 1 | T(x))] (the gated MRF's posterior means of the
PCA-whitened z = T(x)) and 'latent_pixels' [f(x), x], tested on occluded images whose missing pixels x_m
are filled as 'raw' (a constant), 'gaussian' (μ_m + Σ_mo Σ_oo⁻¹ (x_o − μ_o)) or 'gmrf' (E[x_m | x_o]
under the gated MRF, by MCMC); the 'raw'/'pixels' pair is the baseline (`evaluate_occlusion`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from deepvision.data.occlusion import OCCLUSION_KINDS, occlusion_mask
from deepvision.data.whiten import PCAWhitening
from deepvision.estimators.gaussian_baselines import full_gaussian
from deepvision.estimators.inpainting import mean_and_stderr, missing_mse
from deepvision.models.logistic import LogisticRegression, fit_logistic_regression
from deepvision.samplers.conditional import inpaint_gibbs, inpaint_hmc

MASKS = ("none",) + OCCLUSION_KINDS
BASELINE_FILLS = ("mean", "zero")
SAMPLERS = ("hmc", "gibbs")
FILLS = ("raw", "gaussian", "gmrf")
INPUTS = ("pixels", "latent", "latent_pixels")


@dataclasses.dataclass(frozen=True)
class OcclusionSettings:
  """How test images are occluded, filled and classified (a checked `config.occlusion` block)."""

  masks: tuple[str, ...]
  square_size: int | float
  baseline_fill: str
  sampler: str
  num_steps: int
  burn_in: int
  num_leapfrog: int
  step_size: float
  gaussian_ridge: float
  l2: tuple[float, ...]
  num_shown: int


@dataclasses.dataclass(frozen=True)
class OcclusionTask:
  """What an occlusion evaluation reads.

  Attributes:
    settings: the masks, fills, sampler and classifiers' L2 grid.
    pixels: role ('train', 'val', 'test') → (N, D) float32 images as flat pixel vectors, unwhitened.
    labels: role → (N,) int labels.
    pixel_shape: (H, W, C) of one image.
    whitener: the PCA whitening T the gated MRF models (fitted on the training images).
  """

  settings: OcclusionSettings
  pixels: dict[str, np.ndarray]
  labels: dict[str, np.ndarray]
  pixel_shape: tuple[int, ...]
  whitener: PCAWhitening


# ----------------------------------------------------------------------------- classifiers


def latent_features(model: Any, params: Any, whitener: Any) -> Callable[[np.ndarray], np.ndarray]:
  """x (N, D) pixels ↦ the gated MRF's posterior means f(x) = hidden_probs(T(x)), (N, n_cov + n_mean)."""
  probs = jax.jit(lambda z: model.apply({"params": params}, z, method="hidden_probs"))
  return lambda x: np.asarray(probs(jnp.asarray(whitener.transform(np.asarray(x, np.float64)), jnp.float32)))


def classifier_input(name: str, pixels: np.ndarray, features: Callable[[np.ndarray], np.ndarray]
                     ) -> np.ndarray:
  """The input `name` ('pixels', 'latent', 'latent_pixels') of a classifier for (N, D) pixels, padded
  with zero columns to the width of 'latent_pixels'.

  A zero column changes neither the L2-regularised optimum nor the L-BFGS iterates (its weights get a
  zero gradient and stay 0), and a common width lets the three classifiers share one compiled solver.
  """
  latent = features(pixels)
  if name == "pixels":
    return np.concatenate([np.zeros_like(latent), pixels], axis=1)
  if name == "latent":
    return np.concatenate([latent, np.zeros_like(pixels)], axis=1)
  return np.concatenate([latent, pixels], axis=1)


def fit_classifiers(task: OcclusionTask, features: Callable[[np.ndarray], np.ndarray]
                    ) -> tuple[dict[str, LogisticRegression], dict[str, float]]:
  """One logistic regression per input, fitted on the clean training images, its L2 weight the first of
  the best on the clean validation images. Returns ({input: classifier}, {'l2_<input>': weight})."""
  classifiers, chosen = {}, {}
  num_classes = int(max(task.labels[role].max() for role in ("train", "val", "test"))) + 1
  for name in INPUTS:
    train = classifier_input(name, task.pixels["train"], features)
    val = classifier_input(name, task.pixels["val"], features)
    fits = [fit_logistic_regression(train, task.labels["train"], l2=weight, num_classes=num_classes)
            for weight in task.settings.l2]
    scores = [fit.accuracy(val, task.labels["val"]) for fit in fits]
    best = int(np.argmax(scores))
    classifiers[name], chosen[f"l2_{name}"] = fits[best], task.settings.l2[best]
  return classifiers, chosen


# ----------------------------------------------------------------------------- fill-in


def observed_masks(task: OcclusionTask, kind: str, key: jax.Array) -> np.ndarray:
  """(N_test, D) bool, True = observed, for the occlusion `kind` (all True for 'none')."""
  count = len(task.pixels["test"])
  if kind == "none":
    return np.ones(task.pixels["test"].shape, bool)
  mask = occlusion_mask(kind, task.pixel_shape, key, count, square_size=task.settings.square_size)
  return np.asarray(mask).reshape(count, -1)



def baseline_fill_value(task: OcclusionTask) -> np.ndarray:
  """(D,): what a raw occluded pixel reads: the training mean of that pixel, or 0."""
  if task.settings.baseline_fill == "zero":
    return np.zeros(task.pixels["train"].shape[1], np.float32)
  return task.pixels["train"].mean(axis=0).astype(np.float32)


def fill_occluded(task: OcclusionTask, model: Any, params: Any, pixels: np.ndarray, observed: np.ndarray,
                  key: jax.Array) -> tuple[dict[str, np.ndarray], dict[str, float]]:
  """The occluded test images filled three ways, and the sampler's info.

  The fills of the missing pixels x_m:
    'raw'       the value `settings.baseline_fill` ('mean': the training mean of each pixel, what a
                classifier trained on clean images expects when it knows nothing; or 'zero'),
    'gaussian'  the conditional mean μ_m + Σ_mo Σ_oo⁻¹ (x_o − μ_o) of the Gaussian of the training
                pixels (`gaussian_baselines.full_gaussian`, covariance + `gaussian_ridge`·I),
    'gmrf'      E[x_m | x_o] under the gated MRF in pixel space (the whitened model with its PCA
                residual): the average of `inpaint_hmc` (or `inpaint_gibbs`) transitions after
                burn-in, the chains started at the Gaussian fill.

  Only `pixels[observed]` is read: every fill is a function of the observed values (and the key).
  Observed pixels are never altered by any fill, and no fill reads the occluded pixels' values (the
  samplers and the Gaussian ignore them): a test image is seen only through its observed pixels.
  """
  s = task.settings
  raw = np.where(observed, pixels, baseline_fill_value(task)).astype(np.float32)
  gaussian = full_gaussian(task.pixels["train"], s.gaussian_ridge)
  hidden = np.where(observed, pixels, np.nan)  # the samplers never see the occluded values
  gaussian_fill = gaussian.inpaint(hidden, observed).astype(np.float32)
  variables, whitener, info = {"params": params}, task.whitener, {}
  if s.sampler == "hmc":
    gmrf, hmc_info = inpaint_hmc(model, variables, hidden, observed, key, num_steps=s.num_steps,
                                 burn_in=s.burn_in, num_leapfrog=s.num_leapfrog, step_size=s.step_size,
                                 init=gaussian_fill, whitening=whitener, return_info=True)
    info = {"inpaint_acceptance": float(hmc_info.acceptance_rate),
            "inpaint_step_size": float(hmc_info.step_size)}
  else:
    gmrf = inpaint_gibbs(model, variables, hidden, observed, key, num_steps=s.num_steps, burn_in=s.burn_in,
                         init=gaussian_fill, whitening=whitener)
  return {"raw": raw, "gaussian": gaussian_fill, "gmrf": np.asarray(gmrf, np.float32)}, info


def evaluate_occlusion(task: OcclusionTask, model: Any, params: Any, key: jax.Array,
                       test_pixels: np.ndarray | None = None) -> tuple[dict[str, float], dict[str, dict]]:
  """The accuracy of every (mask, fill, input) on the test split.

  1. three linear classifiers (`fit_logistic_regression`, the L2 weight chosen on the clean validation
     split from `settings.l2`) are fitted on CLEAN training images, on three inputs:
       'pixels'         x itself,
       'latent'         the posterior means f(x) = [E[h_c | T(x)], p(h_m = 1 | T(x))] of the gated MRF
                        of the PCA-whitened images z = T(x) (mcRBM: [σ_c, σ_m]; mPoT: [γ/a, σ_m]),
       'latent_pixels'  [f(x), x];
  2. every test image is occluded (`settings.masks`: 'none' and the kinds of `deepvision.data.occlusion`;
     True = observed), its missing pixels are filled the three ways of `fill_occluded`, and each filled
     image is classified from each input; the 'raw'/'pixels' pair is the baseline.

  Args:
    task: the images, labels, whitening and settings.
    model, params: the trained gated MRF.
    key: masks come from `fold_in(key, 2i)`, the sampler's numbers from `fold_in(key, 2i + 1)` for the
      i-th mask of `settings.masks`.
    test_pixels: (N_test, D) test images to use instead of the task's (same labels).

  Returns:
    (record, examples): `test/accuracy_<mask>_<fill>_<input>` (for the mask 'none':
    `test/accuracy_none_<input>`), `test/fill_mse_<mask>_<fill>` (mean squared error of the filled
    pixels against the truth, over all occluded pixels) with `_stderr` (the standard error of the
    per-image errors), the same two for the fill `train_mean` (each occluded pixel its training mean:
    the floor a fill must beat, whatever `baseline_fill` is), the sampler's
    `test/inpaint_acceptance_<mask>` and `test/inpaint_step_size_<mask>` (HMC) and `l2_<input>`; and
    per occluded mask the arrays of a
    figure ('truth', 'observed' mask, and one per fill).
  """
  features = latent_features(model, params, task.whitener)
  classifiers, record = fit_classifiers(task, features)
  pixels = task.pixels["test"] if test_pixels is None else np.asarray(test_pixels, np.float32)
  labels = task.labels["test"]
  examples = {}
  for i, kind in enumerate(task.settings.masks):
    observed = observed_masks(task, kind, jax.random.fold_in(key, 2 * i))
    if kind == "none":
      for name, classifier in classifiers.items():
        record[f"test/accuracy_none_{name}"] = classifier.accuracy(classifier_input(name, pixels, features),
                                                                   labels)
      continue
    fills, info = fill_occluded(task, model, params, pixels, observed, jax.random.fold_in(key, 2 * i + 1))
    record.update({f"test/{k}_{kind}": v for k, v in info.items()})
    train_mean = np.where(observed, pixels, task.pixels["train"].mean(axis=0)).astype(np.float32)
    for fill, filled in {**fills, "train_mean": train_mean}.items():
      record[f"test/fill_mse_{kind}_{fill}"] = float(np.mean((filled - pixels)[~observed] ** 2))
      record[f"test/fill_mse_{kind}_{fill}_stderr"] = mean_and_stderr(missing_mse(filled, pixels, observed))[1]
    for fill, filled in fills.items():
      for name, classifier in classifiers.items():
        record[f"test/accuracy_{kind}_{fill}_{name}"] = classifier.accuracy(
            classifier_input(name, filled, features), labels)
    examples[kind] = {"truth": pixels, "observed": observed, **fills}
  return record, examples


def accuracy_table(record: dict, settings: OcclusionSettings, model_name: str) -> str:
  """The markdown table of `record`: one row per (mask, fill), one accuracy column per input, and each
  fill's squared error per occluded pixel (± its standard error over images). With `baseline_fill`
  'zero' a last row per mask gives the training-mean fill's error (it is not classified)."""
  fill_names = {"raw": f"none (occluded = {'training mean' if settings.baseline_fill == 'mean' else '0'})",
                "gaussian": "Gaussian conditional mean", "gmrf": f"{model_name} ({settings.sampler.upper()})",
                "train_mean": "training mean (fill error only)"}
  lines = ["| occlusion | fill-in | pixels | latent [h_c, h_m] | latent + pixels | fill MSE |",
           "|---|---|---|---|---|---|"]
  for kind in settings.masks:
    fills = FILLS + (("train_mean",) if settings.baseline_fill != "mean" else ())
    rows = [("—", "none")] if kind == "none" else [(fill_names[f], f"{kind}_{f}") for f in fills]
    for fill_name, stem in rows:
      cells = [f"{record[f'test/accuracy_{stem}_{name}']:.3f}" if f"test/accuracy_{stem}_{name}" in record
               else "—" for name in INPUTS]
      mse = record.get(f"test/fill_mse_{stem}")
      stderr = record.get(f"test/fill_mse_{stem}_stderr")
      error = "—" if mse is None else f"{mse:.4f}" + ("" if stderr is None else f" ± {stderr:.4f}")
      lines.append(f"| {kind} | {fill_name} | " + " | ".join(cells) + f" | {error} |")
  return "\n".join(lines) + "\n"
