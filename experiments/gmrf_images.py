r"""The `gmrf_images` trainer: whole-image models of the photographs, sampled large and compared.

The talk's "Sampling high-resolution images" (Ranzato, Mnih, Susskind & Hinton, "Modeling natural images
using gated MRFs", PAMI 2013, §6) compares samples of whole images from a Gaussian, a marginal-wavelet
model (Simoncelli 2005), a pair-wise MRF, a Field of Experts (Schmidt, Gao & Roth, CVPR 2010) and gated
MRFs. This pipeline fits each model of `config.images.models` to the same photographs of
`dv_natural_images` and judges them the same way:

  1. data: size² crops (`images.size`, 64) of the training photographs, scaled by one scalar mean and
     standard deviation (`deep_gmrf.scalar_standardizer`); the held-out photographs give the reference
     crops and the crops to denoise, in pixel units;
  2. models: `stationary_gaussian` and `wavelet_prior` by maximum likelihood in closed form (`Model.fit`)
     on size² crops, sampled exactly; `pairwise_mrf` and `field_of_experts` by PCD with HMC negatives
     (`train.contrastive_loop.run_contrastive`, in `workdir/<model>`) on crop_size² crops, then sampled at
     size² by `sample_trajectories` HMC trajectories from white noise (their parameters do not depend on
     the image size); `tiled_mcrbm` trained as `deep_gmrf`'s tiled model (`config.tiled`, in
     `workdir/tiled_mcrbm`, on its own DC-removed crops scaled to `tiled.pixel_std`) and sampled the same way;
  3. statistics (`diagnostics.image_stats.image_statistics`) of every model's samples against the
     held-out crops, in pixel units: one row per model under `stats/<model>/…` and the reference's under
     `stats/data/…`;
  4. denoising, a classical check of a prior (Roth & Black 2009): the held-out crops plus white noise of
     `denoise_sigma`, MAP-denoised under each prior (`estimators.denoising.map_denoise`), PSNR under
     `denoise/<model>/psnr` beside the noisy input's `denoise/noisy/psnr`;
  5. figures: `high_res_samples.png` (real crops | every model's samples, one grey scale) and
     `image_stats.png` (derivative histograms and radial spectra).

Re-running resumes an unfinished model and leaves a finished run as it is.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from deepvision import config_blocks, distributed, schema, zoo
from deepvision.data import datasets
from deepvision.data.patches import extract_patches
from deepvision.diagnostics import image_stats
from deepvision.estimators import denoising
from deepvision.figures import gated_mrf_viz
from deepvision.figures.image_stats_figure import save_image_statistics_figure
from deepvision.models.stationary_gaussian import StationaryGaussian
from deepvision.samplers import gated_mrf as gated_mrf_sampling
from deepvision.samplers.base import run_chain
from deepvision.samplers.hmc_chains import hmc_chains
from deepvision.train import loop
from deepvision.train import workdir as workdirs
from deepvision.train.contrastive_loop import (
  RUN_IDENTITY,
  EnergyData,
  plan_contrastive,
  run_contrastive,
)
from deepvision.train.writers import MetricsWriter, closing_summary, read_metrics
from experiments import blocks, deep_gmrf

ConfigError = loop.ConfigError
_BLOCKS = ("images", "tiled")
FIGURE_PIXELS = 768  # the larger side of high_res_samples.png's image grid, before the title band
SHOWN = 4  # samples of each model in high_res_samples.png


@dataclasses.dataclass(frozen=True)
class ImagesPlan:
  """Everything checked and read from the config before compute."""

  images: blocks.ImageModels
  standardizer: dict[str, list[float]]  # the scalar mean and std of the training crops (pixel units)
  fit_crops: np.ndarray  # (N, size, size), standardised
  reference: np.ndarray  # (M, size, size), held-out crops in pixel units
  learned: dict[str, ml_collections.ConfigDict]  # model name → its contrastive config
  learned_data: dict[str, EnergyData]
  tiled_pixel_std: float = 1.0  # t: the tiled model's input scale


def _crops(config: ml_collections.ConfigDict, split: str, size: int, count: int, seed: int) -> np.ndarray:
  source = datasets.get_source(config.dataset, split, data_dir=config.get("data_dir") or None)
  try:
    return extract_patches([source[i]["image"] for i in range(len(source))], size, count, seed)[..., 0]
  except ValueError as e:
    raise ConfigError(f"config.images ({split!r}, crops of {size}²): {e}") from None


def _without(config: ml_collections.ConfigDict, names: tuple[str, ...]) -> ml_collections.ConfigDict:
  """A copy of the config without the blocks `names` (a learned model's base config)."""
  return ml_collections.ConfigDict({k: v for k, v in config.to_dict().items() if k not in names})


def learned_config(config: ml_collections.ConfigDict, images: blocks.ImageModels, name: str
                   ) -> ml_collections.ConfigDict:
  """The contrastive config of `pairwise_mrf` / `field_of_experts`: PCD with HMC negatives (one trajectory
  per update, the step size adapted) on crop_size² crops scaled by one scalar (no DC removal), SGD with
  momentum 0.5 at `images.learning_rate` (the energies sum over the pixels, hence the small rate), no
  weight decay, no log-likelihood."""
  layer = _without(config, _BLOCKS)
  layer.trainer = "contrastive"
  layer.model = name
  layer.model_kwargs = ml_collections.ConfigDict({"image_shape": (images.crop_size, images.crop_size)})
  layer.patches.size = images.crop_size
  layer.patches.num_train = images.num_crops
  layer.patches.num_eval = max(2, images.num_crops // 10)
  layer.patches.remove_dc = False
  layer.tiled_pixel_std = 1.0
  layer.preprocess = "none"
  for block in ("whiten", "gated_mrf"):
    if block in layer:
      del layer[block]
  layer.figures = bool(config.get("figures", True))  # the training curves of the model
  layer.batch_size = images.batch_size
  layer.num_epochs = images.num_epochs
  options = {"num_leapfrog": images.sample_leapfrog, "initial_step_size": images.initial_step_size,
             "target_rejection": 0.1}
  layer.contrastive = schema.defaults(config_blocks.ContrastiveSettings, method="pcd", sampler="hmc",
                                      sampler_options=options)
  layer.optimizer = schema.defaults(config_blocks.Optimizer, learning_rate=images.learning_rate, momentum=0.5,
                                    weight_decay=0.0)
  layer.log_likelihood.method = "none"
  layer.linear_eval.enabled = False
  return layer


def plan_images(config: ml_collections.ConfigDict) -> ImagesPlan:
  """Checks the config (blocks, then every learned model's contrastive config) and reads the crops."""
  if "images" not in config:
    raise ConfigError("a gmrf_images config needs the block config.images (the models and their sampling); "
                      "see experiments/configs/gmrf_images.py")
  images = schema.load(blocks.ImageModels, config.images, "config.images")
  learned = {}
  for name in images.models:
    if name in blocks.CLOSED_FORM_IMAGE_MODELS:
      continue
    if name == "tiled_mcrbm":
      tiled = schema.load(blocks.Tiled, config.tiled, "config.tiled")
      layer = deep_gmrf.tiled_config(_without(config, ("images",)), dataclasses.replace(tiled, enabled=True))
    else:
      layer = learned_config(config, images, name)
    try:
      plan_contrastive(layer, n_train=layer.patches.num_train)
    except ConfigError as e:
      raise ConfigError(f"config.images ({name}): {e}") from None
    learned[name] = layer
  size = images.size
  fit = _crops(config, config.train_split, size, images.num_fit_crops, config.patches.seed + 21)
  standardizer = deep_gmrf.scalar_standardizer(fit)
  mean, std = standardizer["mean"][0], standardizer["std"][0]
  reference = _crops(config, config.test_split, size, images.num_reference + images.num_denoise,
                     config.patches.seed + 22)
  learned_data = {}
  tiled_pixel_std = float(config.tiled.pixel_std)
  for name, layer in learned.items():
    if name == "tiled_mcrbm" and images.tiled_whitening:
      layer.patches.remove_dc = False  # the whitening takes every frequency, DC included, to unit variance
      learned_data[name] = whitened_crops(config, layer, standardizer, tiled_pixel_std)
      continue
    data = deep_gmrf.crop_data(layer)
    if name != "tiled_mcrbm":  # the same scalar scaling as the closed-form models
      splits = {role: ((x[..., 0] * data.standardizer["std"][0] + data.standardizer["mean"][0] - mean) / std)
                .astype(np.float32)[..., None] for role, x in data.splits.items()}
      data = dataclasses.replace(data, splits=splits, standardizer=standardizer)
    learned_data[name] = data
  return ImagesPlan(images, standardizer, ((fit - mean) / std).astype(np.float32), reference, learned,
                    learned_data, tiled_pixel_std)


def whitened_crops(config: ml_collections.ConfigDict, layer: ml_collections.ConfigDict, standardizer: dict,
                   pixel_std: float) -> EnergyData:
  """The tiled model's crops (`layer.patches`: size, counts, seed; every split of `layer`) standardised by
  `standardizer`, whitened at the image level by the stationary Gaussian fitted to the training crops
  (`StationaryGaussian.whiten`: every frequency to unit variance) and scaled by `pixel_std`."""
  size, mean, std = layer.patches.size, standardizer["mean"][0], standardizer["std"][0]
  roles = {"train": layer.train_split, "val": layer.get("eval_split"), "test": layer.get("test_split")}
  crops = {}
  for offset, (role, split) in enumerate(roles.items()):
    if split:
      count = layer.patches.num_train if role == "train" else layer.patches.num_eval
      crops[role] = (_crops(config, split, size, count, layer.patches.seed + offset) - mean) / std
  gaussian, variables = StationaryGaussian.fit(crops["train"])
  whiten = jax.jit(lambda x: gaussian.apply(variables, x, method="whiten"))
  splits = {role: (pixel_std * np.asarray(whiten(x))).astype(np.float32)[..., None] for role, x in crops.items()}
  return EnergyData(splits, {}, (size, size, 1))


# ----------------------------------------------------------------------------- models and samples


@dataclasses.dataclass(frozen=True)
class Fitted:
  """One fitted model at size², and the maps between its input space and the standardised images.

  `to_model(x)` takes standardised images (B, H, W) to the model's input (the identity, or the tiled model's
  image-level whitening and scaling); `to_standard` is its inverse, applied to the model's samples.
  """

  name: str
  model: Any
  variables: Any
  to_model: Callable[[jax.Array], jax.Array]
  to_standard: Callable[[jax.Array], jax.Array]

  def energy(self, x: jax.Array) -> jax.Array:
    """The prior's energy of standardised images (up to a constant: the whitening is linear)."""
    return self.model.apply(self.variables, self.to_model(x), method="free_energy")


def _identity(x: jax.Array) -> jax.Array:
  return x


def fit_models(plan: ImagesPlan, workdir: str, quiet: bool) -> list[Fitted]:
  """Every model of the plan fitted (closed form) or trained (PCD + HMC, resumable), at size²."""
  size = plan.images.size
  out = []
  closed_form = {}
  for name in plan.images.models:
    if name in blocks.CLOSED_FORM_IMAGE_MODELS:
      closed_form[name] = _closed_form_fit(plan, name)
      out.append(Fitted(name, *closed_form[name], _identity, _identity))
      continue
    layer = plan.learned[name]
    if not quiet:
      print(f"{name}: PCD with HMC negatives on {layer.patches.size}² crops")
    _, params = run_contrastive(layer, os.path.join(workdir, name), data=plan.learned_data[name], quiet=quiet)
    model = zoo.create(layer.model, **loop.model_kwargs(layer)).clone(image_shape=(size, size))
    to_model, to_standard = _identity, _identity
    if name == "tiled_mcrbm":
      gaussian = closed_form.get("stationary_gaussian") or _closed_form_fit(plan, "stationary_gaussian")
      to_model, to_standard = _tiled_maps(plan, gaussian)
    out.append(Fitted(name, model, {"params": jax.device_get(params)}, to_model, to_standard))
  return out


def _closed_form_fit(plan: ImagesPlan, name: str) -> tuple[Any, Any]:
  """(model, float32 variables) of a closed-form model fitted to the plan's size² crops."""
  template = zoo.create(name)
  fields = {"wavelet": template.wavelet, "levels": template.levels} if name == "wavelet_prior" else {}
  model, variables = type(template).fit(plan.fit_crops, **fields)
  return model, jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), variables)


def _tiled_maps(plan: ImagesPlan, gaussian: tuple[Any, Any]) -> tuple[Callable, Callable]:
  """The tiled model's input space at size²: whitened by `gaussian`, the stationary Gaussian of the size²
  crops, and scaled by t = tiled.pixel_std (`images.tiled_whitening`), else the DC-free crops scaled as
  `deep_gmrf.crop_data`."""
  if not plan.images.tiled_whitening:  # DC-free crops scaled to t: x_model = x / scale, around the mean
    scale = plan.learned_data["tiled_mcrbm"].standardizer["std"][0] / plan.standardizer["std"][0]
    return (lambda x: (x - jnp.mean(x, axis=(-2, -1), keepdims=True)) / scale), (lambda z: z * scale)
  model, variables = gaussian
  t = plan.tiled_pixel_std
  whiten = lambda x: t * model.apply(variables, x, method="whiten")
  colour = lambda z: model.apply(variables, z / t, method="colour")
  return whiten, colour


def draw_samples(fitted: Fitted, images: blocks.ImageModels, key: jax.Array) -> tuple[np.ndarray, float]:
  """(num_samples, size, size) standardised samples and the last trajectory's acceptance (nan if exact)."""
  n, size = images.num_samples, images.size
  if fitted.name in blocks.CLOSED_FORM_IMAGE_MODELS:
    return np.asarray(fitted.model.apply(fitted.variables, key, n, method="sample")), math.nan
  start_key, chain_key = jax.random.split(key)
  if fitted.name == "tiled_mcrbm":
    x, info = gated_mrf_sampling.sample_tiled(fitted.model, chain_key, fitted.variables, n,
                                              images.sample_trajectories, num_leapfrog=images.sample_leapfrog)
  else:
    sampler = hmc_chains(fitted.model, fitted.variables, num_leapfrog=images.sample_leapfrog)
    start = jax.random.normal(start_key, (n, size * size))
    chains, info, _ = jax.jit(lambda k, c: run_chain(k, sampler.step, c, images.sample_trajectories))(
        chain_key, sampler.init(start))
    x = chains.position
  acceptance = np.asarray(info.acceptance_rate).reshape(images.sample_trajectories, -1)[-1] \
      if images.sample_trajectories else np.array([math.nan])
  x = fitted.to_standard(jnp.asarray(x).reshape(n, size, size))
  return np.asarray(x), float(np.mean(acceptance))


def denoise(fitted: Fitted, standardizer: dict, clean: np.ndarray, noisy: np.ndarray,
            images: blocks.ImageModels) -> float:
  """PSNR (dB, pixel units, peak 1) of the MAP estimate of `clean` from `noisy` under the model's prior."""
  mean, std = standardizer["mean"][0], standardizer["std"][0]
  if fitted.name == "wavelet_prior":  # |c| smoothed so that the objective has a gradient everywhere
    fitted = dataclasses.replace(fitted, model=fitted.model.clone(epsilon=1e-3))
  estimate, _ = denoising.map_denoise(fitted.energy, jnp.asarray((noisy - mean) / std, jnp.float32),
                                      images.denoise_sigma / std, num_steps=images.denoise_steps)
  return denoising.psnr(clean, np.asarray(estimate) * std + mean)


def evaluate(config: ml_collections.ConfigDict, plan: ImagesPlan, models: list[Fitted], workdir: str) -> dict[str, float]:
  """Samples, statistics, denoising and the two figures; the numbers of the final record."""
  images = plan.images
  key = jax.random.fold_in(jax.random.key(config.seed), 17)
  reference = plan.reference[:images.num_reference]
  clean = plan.reference[images.num_reference:]
  noise_key, key = jax.random.split(key)
  noisy = np.asarray(denoising.add_noise(noise_key, jnp.asarray(clean, jnp.float32), images.denoise_sigma))
  stats = {f"stats/data/{k}": v for k, v in image_stats.image_statistics(reference, reference).items()
           if not k.startswith("reference_")}
  stats["denoise/noisy/psnr"] = denoising.psnr(clean, noisy)
  samples = {}
  mean, std = plan.standardizer["mean"][0], plan.standardizer["std"][0]
  for i, fitted in enumerate(models):
    name = fitted.name
    x, acceptance = draw_samples(fitted, images, jax.random.fold_in(key, i))
    samples[name] = x * std + mean
    row = image_stats.image_statistics(samples[name], reference)
    stats.update({f"stats/{name}/{k}": v for k, v in row.items() if not k.startswith("reference_")})
    if not math.isnan(acceptance):  # exact samplers have no chain to accept or reject
      stats[f"samples/{name}/hmc_acceptance"] = acceptance
    stats[f"denoise/{name}/psnr"] = denoise(fitted, plan.standardizer, clean, noisy, images)
  panels = {"held-out crops": reference[:SHOWN].reshape(SHOWN, -1)}
  panels.update({name: x[:SHOWN].reshape(SHOWN, -1) for name, x in samples.items()})
  low, high = (float(v) for v in np.percentile(reference, (1, 99)))
  gated_mrf_viz.save_sample_comparison(panels, (images.size, images.size, 1),
                                       os.path.join(workdir, "high_res_samples.png"), columns=1,
                                       value_range=(low, high), min_pixels=FIGURE_PIXELS)
  curves = image_stats.image_statistics_curves(samples, reference, reference_name="held-out crops")
  save_image_statistics_figure(os.path.join(workdir, "image_stats.png"), curves,
                               title=f"{images.size}×{images.size} samples against held-out photographs")
  return stats


def run_gmrf_images(config: ml_collections.ConfigDict, workdir: str, quiet: bool = False) -> dict:
  """Fits, samples and compares the whole-image models of `config` in `workdir`; resumable."""
  plan = plan_images(config)
  started = any(os.path.isdir(os.path.join(os.path.abspath(workdir), name, "checkpoints")) for name in plan.learned)
  workdir = workdirs.prepare(config, workdir, RUN_IDENTITY + _BLOCKS, resumable=started,
                             write=distributed.is_primary())
  quiet = quiet or not distributed.is_primary()
  models = fit_models(plan, workdir, quiet)
  previous = read_metrics(workdir)
  if previous and previous[-1].get("final"):
    if not quiet:
      print(f"{workdir} already holds the finished run; nothing to do.")
    return previous[-1]
  stats = evaluate(config, plan, models, workdir) if distributed.is_primary() else {}
  writer = MetricsWriter(workdir, enabled=distributed.is_primary())
  record = writer.write(sum(layer.num_epochs for layer in plan.learned.values()), {**stats, "final": True})
  writer.close()
  if not quiet:
    print(closing_summary(workdir, record, [k for k in record if k.endswith(("/psnr", "/kl_derivative"))]))
  return record


@loop.TRAINERS.register("gmrf_images")
def train_gmrf_images(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Fits and compares whole-image models of the photographs; see the module docstring."""
  return run_gmrf_images(config, workdir)
