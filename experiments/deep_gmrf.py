r"""The `deep_gmrf` trainer: a deep gated MRF on natural-image patches, and a tiled mcRBM for large images.

Ranzato, Mnih, Susskind & Hinton, "Modeling natural images using gated MRFs" (PAMI 2013), §4-§5, and
Ranzato & Hinton (CVPR 2010), §4. After checking the whole config before any compute:
  1. `workdir/layer_1`: the gated MRF of the config on PCA-whitened patches, trained by `run_contrastive`
     as experiments/configs/mcrbm_patches.py;
  2. `workdir/layer_{l}`, l = 2 … L: binary RBMs of `deep.hidden[l − 2]` units (settings from `deep.rbm`)
     on the layer below: the layer-1 codes z = [E[h_c | x]/s, E[h_m | x]]
     (`deep_gated_mrf.layer_one_codes`), then the posterior means p(h = 1 | ·) of the RBM below;
  3. `workdir/tiled` (`tiled.enabled`): a `TiledMCRBM` over `tiled.crop_size`² crops of the same
     photographs, each crop's mean removed and the pixels scaled by ONE scalar to a standard deviation
     `tiled.pixel_std` (per-pixel scaling or whitening would break the shift structure the tiles share;
     `crop_data` says why the scale is below 1), trained by PCD with HMC negatives (tiling = 1);
  4. `metrics.jsonl`, one final record (each layer's metrics under `layer_{l}/`, the tiled model's under
     `tiled/`, the samplers' statistics under `samples/`), and the figures
     `samples_compared.png` (training patches | Gaussian (PCA) samples | the gated MRF's HMC samples,
     `deep.gmrf_trajectories` trajectories from the Gaussian's | the deep model's samples: Gibbs in the
     top RBM, a top-down pass to the codes, HMC on p(x | h); all mapped to pixels by the inverse
     whitening; the training patches are shown because the two held-out photographs are atypical, one
     much smoother and one much busier than the fourteen) and `large_sample.png` (real crops beside
     tiled-model samples at `tiled.sample_shape`: the filters do not depend on the image size).
Re-running skips finished layers, resumes an unfinished one, and leaves a finished run as it is.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from deepvision import distributed, schema, zoo
from deepvision.data import datasets
from deepvision.data.patches import extract_patches
from deepvision.diagnostics.image_stats import contrast_spread, neighbour_correlation
from deepvision.figures import gated_mrf_viz
from deepvision.models import deep_gated_mrf, tiled_gated_mrf
from deepvision.models.gaussian import GaussianModel
from deepvision.registry import UnknownNameError
from deepvision.samplers import deep_gated_mrf as deep_gmrf_sampling
from deepvision.samplers import gated_mrf as gated_mrf_sampling
from deepvision.samplers.base import run_chain
from deepvision.train import contrastive, loop, workdir as workdirs
from deepvision.train.contrastive_loop import RUN_IDENTITY, EnergyData, plan_contrastive, run_contrastive
from deepvision.models.dbn import feature_data, feature_shape
from deepvision.train.writers import MetricsWriter, closing_summary, read_metrics
from experiments import blocks

ConfigError = loop.ConfigError
Layer = deep_gated_mrf.Layer
_GATED_BLOCKS = ("deep", "tiled")
FIGURE_PIXELS = 512  # the larger side of the figures' image grids, before the title band


def _base(config: ml_collections.ConfigDict) -> dict:
  base = config.to_dict()
  for field in _GATED_BLOCKS:
    base.pop(field, None)
  base["trainer"] = "contrastive"
  return base


def layer_configs(config: ml_collections.ConfigDict, deep: blocks.Deep) -> list[ml_collections.ConfigDict]:
  """The contrastive config of each layer of the stack.

  Layer 1: the config itself (its model, data, recipe, optimiser) as a 'contrastive' run. Layer l ≥ 2: a
  binary 'rbm' of (units below) × deep.hidden[l − 2] on the features below: no preprocessing, no
  gated-MRF recipe, no figures of its own; `batch_size`, `contrastive`, `optimizer`, `log_likelihood`
  from `deep.rbm`, `num_epochs` from `deep.rbm.num_epochs` (one value, or one per RBM).
  """
  if config.get("preprocess") != "whiten":
    raise ConfigError(f"config.preprocess={config.get('preprocess')!r}: the deep gated MRF models "
                      "PCA-whitened patches (preprocess='whiten'), whose inverse maps its samples to pixels")
  first = ml_collections.ConfigDict(_base(config))
  first.figures = bool(config.get("figures", True)) and deep.layer_one_figures
  first.deep_input = "data"
  model = _gated_model(first)
  below = model.n_cov + model.n_mean
  configs = [first]
  epochs = deep.rbm.epochs(len(deep.hidden))
  for l, n_hidden in enumerate(deep.hidden, start=2):
    layer = ml_collections.ConfigDict(_base(config))
    layer.model = "rbm"
    layer.model_kwargs = ml_collections.ConfigDict({"n_visible": below, "n_hidden": n_hidden})
    layer.preprocess = "none"
    layer.figures = False  # features are not images
    if "gated_mrf" in layer:
      del layer["gated_mrf"]
    layer.batch_size = deep.rbm.batch_size
    layer.num_epochs = epochs[l - 2]
    for field in ("contrastive", "optimizer", "log_likelihood"):
      layer[field] = ml_collections.ConfigDict(config.deep.rbm[field].to_dict())
    layer.linear_eval.enabled = False
    layer.deep_input = "layer-1 codes" if l == 2 else f"layer_{l - 1} hidden probabilities"
    configs.append(layer)
    below = n_hidden
  return configs


def _gated_model(config: ml_collections.ConfigDict):
  try:
    model = zoo.create(config.model, **loop.model_kwargs(config))
  except (UnknownNameError, ValueError, TypeError) as e:
    raise ConfigError(f"config.model / config.model_kwargs: {e}") from None
  try:
    deep_gated_mrf.check_stack((model, {}), [])
  except ValueError as e:
    raise ConfigError(f"config.model {config.model!r}: layer 1 of a deep gated MRF must be a gated MRF "
                      f"(mcrbm, mpot): {e}") from None
  return model


def tiled_config(config: ml_collections.ConfigDict, tiled: blocks.Tiled | None = None
                 ) -> ml_collections.ConfigDict | None:
  """The contrastive config of the tiled model over crops (None when `tiled.enabled` is False).

  The base config's data and run fields, with `tiled.model` / `tiled.model_kwargs` (image_shape set to
  the crop), `patches` cut at `tiled.crop_size`, no preprocessing (the scalar standardisation is done by
  `crop_data`), no log-likelihood, and `tiled.batch_size`, `num_epochs`, `contrastive`, `optimizer`,
  `gated_mrf` (the recipe; P, C of one shared bank). `tiled`: the checked block (default: loaded here).
  """
  tiled = schema.load(blocks.Tiled, config.tiled, "config.tiled") if tiled is None else tiled
  if not tiled.enabled:
    return None
  crop = tiled.crop_size
  layer = ml_collections.ConfigDict(_base(config))
  layer.model = tiled.model
  layer.model_kwargs = ml_collections.ConfigDict({**tiled.model_kwargs, "image_shape": (crop, crop)})
  if int(layer.model_kwargs.get("tiling", 1)) != 1:
    raise ConfigError(f"config.tiled.model_kwargs.tiling={layer.model_kwargs.tiling}: the gated-MRF recipe "
                      "constrains one (D, F) C and one (F, N) P; train tiling = 1 (a shared bank)")
  layer.patches.size = crop
  layer.patches.num_train = tiled.num_crops
  layer.patches.num_eval = tiled.num_eval_crops
  layer.patches.remove_dc = tiled.remove_dc
  layer.tiled_pixel_std = float(tiled.pixel_std)
  layer.preprocess = "none"
  if "whiten" in layer:
    del layer["whiten"]
  layer.figures = False
  layer.batch_size = tiled.batch_size
  layer.num_epochs = tiled.num_epochs
  for field in ("contrastive", "optimizer"):
    layer[field] = ml_collections.ConfigDict(config.tiled[field].to_dict())
  if "gated_mrf" in config.tiled:
    layer.gated_mrf = ml_collections.ConfigDict(config.tiled.gated_mrf.to_dict())
  elif "gated_mrf" in layer:
    del layer["gated_mrf"]
  layer.log_likelihood.method = "none"
  layer.linear_eval.enabled = False
  return layer


@dataclasses.dataclass(frozen=True)
class DeepGMRFPlan:
  """Everything checked and resolved from the config before compute."""

  deep: blocks.Deep
  tiled: blocks.Tiled
  layer_configs: list[ml_collections.ConfigDict]
  data: EnergyData  # the whitened patches of layer 1
  tiled_config: ml_collections.ConfigDict | None
  tiled_data: EnergyData | None
  large_shape: tuple[int, int] | None


def _large_shape(tiled: blocks.Tiled) -> tuple[int, int]:
  kwargs = tiled.model_kwargs
  try:
    tiled_gated_mrf.tile_grid(tiled.sample_shape, kwargs.get("patch_size"), kwargs.get("stride"))
  except (ValueError, TypeError) as e:
    raise ConfigError(f"config.tiled.sample_shape={tiled.sample_shape!r}: {e}") from None
  return tiled.sample_shape


def plan_deep_gmrf(config: ml_collections.ConfigDict) -> DeepGMRFPlan:
  """Checks the whole config before compute (reading the data); ConfigError naming the bad field."""
  if "deep" not in config:
    raise ConfigError("a deep_gmrf config needs the block config.deep (the RBMs above the gated MRF and the "
                      "sampling); see experiments/configs/deep_gmrf_patches.py")
  deep = schema.load(blocks.Deep, config.deep, "config.deep")
  tiled = schema.load(blocks.Tiled, config.tiled, "config.tiled") if "tiled" in config else blocks.Tiled(
      enabled=False)
  configs = layer_configs(config, deep)
  tiled_layer = tiled_config(config, tiled)
  large = _large_shape(tiled) if tiled_layer is not None else None
  if tiled_layer is not None:  # model, geometry, sampler and recipe, before the crops are read
    try:
      plan_contrastive(tiled_layer, n_train=tiled.num_crops)
    except ConfigError as e:
      raise ConfigError(f"config.tiled: {e}") from None
  for l, layer in enumerate(configs[1:], start=2):  # the RBMs train on codes of every patch
    try:
      plan_contrastive(layer, n_train=config.patches.num_train)
    except ConfigError as e:
      raise ConfigError(f"deep gated MRF layer {l}: {e}") from None
  data = plan_contrastive(configs[0]).data
  tiled_data = crop_data(tiled_layer) if tiled_layer is not None else None
  if tiled_layer is not None:
    plan_contrastive(tiled_layer, tiled_data)
  return DeepGMRFPlan(deep, tiled, configs, data, tiled_layer, tiled_data, large)


# ----------------------------------------------------------------------------- data of the layers


def code_data(gmrf_layer: Layer, data: EnergyData, batch: int = 1024) -> EnergyData:
  """The layer-1 codes z = [E[h_c | x]/s, E[h_m | x]] ∈ [0, 1] of every split, shaped (N + M, 1, 1)."""
  model, params = gmrf_layer
  codes = jax.jit(lambda x: deep_gated_mrf.layer_one_codes((model, params), x))
  shape = feature_shape(model.n_cov + model.n_mean)
  splits = {}
  for role, x in data.splits.items():
    flat = x.reshape(len(x), -1)
    z = np.concatenate([np.asarray(codes(jnp.asarray(flat[i:i + batch]))) for i in range(0, len(x), batch)])
    splits[role] = np.clip(z, 0.0, 1.0).astype(np.float32).reshape(len(x), *shape)
  return EnergyData(splits, dict(data.labels), shape)


def _read_crops(config: ml_collections.ConfigDict, split: str, size: int, count: int, seed: int) -> np.ndarray:
  source = datasets.get_source(config.dataset, split, data_dir=config.get("data_dir") or None)
  return extract_patches([source[i]["image"] for i in range(len(source))], size, count, seed,
                         remove_dc=bool(config.patches.remove_dc))


def scalar_standardizer(train: np.ndarray, pixel_std: float = 1.0) -> dict[str, list[float]]:
  """{'mean': [μ], 'std': [σ/t]}: one mean μ and standard deviation σ over every pixel of the training
  crops, σ divided by the target pixel standard deviation t, so that x = (crop − μ)/(σ/t) has std t."""
  x = np.asarray(train, np.float64)
  return {"mean": [float(x.mean())], "std": [float(max(x.std(), 1e-8)) / pixel_std]}


def crop_data(config: ml_collections.ConfigDict) -> EnergyData:
  """Random `patches.size`² crops of every split (seeds as `energy_data.prepare_data`; each crop's mean
  removed when `patches.remove_dc`), x = (crop − μ)/(σ/t) with the scalar μ, σ of the training crops and
  t = `tiled_pixel_std` (`scalar_standardizer`), shaped (N, size, size, 1).

  Why t < 1: the gated MRF's precision is I + C diag(P h_c) Cᵀ ⪰ I, so its covariance units can only
  shrink variances below 1 (whitened patches have unit variance in every direction); unwhitened pixels
  have far larger variance along the smooth directions (the mean of an 8×8 tile of unit-variance pixels
  varies ~50 times more than its finest detail), so the pixels are scaled down.
  """
  size = config.patches.size
  roles = {"train": config.train_split, "val": config.get("eval_split"), "test": config.get("test_split")}
  splits = {}
  for offset, (role, split) in enumerate(roles.items()):
    if not split:
      continue
    count = config.patches.num_train if role == "train" else config.patches.num_eval
    try:
      splits[role] = _read_crops(config, split, size, count, config.patches.seed + offset)
    except ValueError as e:
      raise ConfigError(f"config.tiled ({role} split {split!r}, crops of {size}²): {e}") from None
  standardizer = scalar_standardizer(splits["train"], float(config.get("tiled_pixel_std", 1.0)))
  mean, std = standardizer["mean"][0], standardizer["std"][0]
  splits = {role: ((x - mean) / std).astype(np.float32).reshape(len(x), size, size, 1)
            for role, x in splits.items()}
  return EnergyData(splits, {}, (size, size, 1), standardizer=standardizer)


# ----------------------------------------------------------------------------- the trainer


def _summary(prefix: str, record: dict) -> dict[str, float]:
  return {f"{prefix}/{k}": v for k, v in record.items() if k not in ("step", "final")}


def _same(a: Any, b: Any) -> bool:
  """Equal, NaN equal to NaN (a log-likelihood that AIS could not estimate is recorded as NaN)."""
  return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


def train_layers(plan: DeepGMRFPlan, workdir: str, quiet: bool
                 ) -> tuple[list[Layer], tuple[Any, Any] | None, dict[str, float]]:
  """Trains (or finds finished) every layer and the tiled model; returns (stack, tiled, summary)."""
  layers: list[Layer] = []
  summary: dict[str, float] = {}
  data = plan.data
  for l, layer_config in enumerate(plan.layer_configs, start=1):
    if l == 2:
      data = code_data(layers[0], data)
    elif l > 2:
      data = feature_data(layers[-1], data)
    if not quiet:
      print(f"Deep gated MRF layer {l}/{len(plan.layer_configs)}: {layer_config.model} on "
            f"{layer_config.deep_input}")
    record, params = run_contrastive(layer_config, os.path.join(workdir, f"layer_{l}"), data=data, quiet=quiet)
    layers.append((zoo.create(layer_config.model, **loop.model_kwargs(layer_config)), jax.device_get(params)))
    summary.update(_summary(f"layer_{l}", record))
  tiled = None
  if plan.tiled_config is not None:
    if not quiet:
      print(f"Tiled model: {plan.tiled_config.model} on {plan.tiled_config.patches.size}² crops")
    record, params = run_contrastive(plan.tiled_config, os.path.join(workdir, "tiled"), data=plan.tiled_data,
                                     quiet=quiet)
    tiled = (zoo.create(plan.tiled_config.model, **loop.model_kwargs(plan.tiled_config)), jax.device_get(params))
    summary.update(_summary("tiled", record))
  return layers, tiled, summary


def run_deep_gmrf(config: ml_collections.ConfigDict, workdir: str, quiet: bool = False
                  ) -> tuple[dict, list[Layer], tuple[Any, Any] | None]:
  """Trains the deep gated MRF (and the tiled model) of `config` in `workdir`; resumable.

  Returns:
    `(record, layers, tiled)`: the final record of `workdir/metrics.jsonl`, the stack
    `[(gated MRF, params), (RBM, params), ...]` and `(TiledMCRBM, params)` (None without `tiled`).
  """
  plan = plan_deep_gmrf(config)
  started = os.path.isdir(os.path.abspath(os.path.join(workdir, "layer_1", "checkpoints")))
  workdir = workdirs.prepare(config, workdir, RUN_IDENTITY + _GATED_BLOCKS, resumable=started,
                             write=distributed.is_primary())
  quiet = quiet or not distributed.is_primary()
  layers, tiled, summary = train_layers(plan, workdir, quiet)
  previous = read_metrics(workdir)
  if previous and previous[-1].get("final") and all(_same(previous[-1].get(k), v) for k, v in summary.items()):
    if not quiet:
      print(f"{workdir} already holds the finished run; nothing to do.")
    return previous[-1], layers, tiled
  stats = {}
  if config.get("figures", True) and distributed.is_primary():
    stats = save_figures(config, plan, layers, tiled, workdir)
  total = sum(c.num_epochs for c in plan.layer_configs)
  writer = MetricsWriter(workdir, enabled=distributed.is_primary())
  record = writer.write(total, {**summary, **stats, "final": True})
  writer.close()
  if not quiet:
    print(closing_summary(workdir, record, [k for k in record if k.startswith("samples/")
                                            or k.endswith("log_likelihood")]))
  return record, layers, tiled


# ----------------------------------------------------------------------------- figures


def _pixel_range(images: np.ndarray) -> tuple[float, float] | None:
  low, high = (float(v) for v in np.percentile(images, (1, 99)))
  return (low, high) if high > low else None


def gated_mrf_samples(gmrf_layer: Layer, start: np.ndarray, trajectories: int, num_leapfrog: int,
                      key: jax.Array) -> tuple[np.ndarray, float]:
  """HMC chains on the gated MRF's F(x) from `start`, `trajectories` adapting trajectories; (x, acceptance
  rate of the last trajectory)."""
  model, params = gmrf_layer
  sampler = contrastive.hmc_chains(model, {"params": params}, num_leapfrog=num_leapfrog)
  chains, info, _ = jax.jit(lambda k, c: run_chain(k, sampler.step, c, trajectories))(
      key, sampler.init(jnp.asarray(start)))
  acceptance = np.asarray(getattr(info, "acceptance_rate", np.nan)).reshape(trajectories, -1)[-1]
  return np.asarray(chains.position), float(np.mean(acceptance))


def save_figures(config: ml_collections.ConfigDict, plan: DeepGMRFPlan, layers: list[Layer],
                 tiled: tuple[Any, Any] | None, workdir: str) -> dict[str, float]:
  """samples_compared.png and large_sample.png (module docstring); returns the samplers' statistics."""
  settings = plan.deep
  key = jax.random.fold_in(jax.random.key(config.seed), 11)
  gaussian_key, gmrf_key, deep_key, tiled_key = jax.random.split(key, 4)
  data = plan.data
  train = data.splits["train"]
  count = min(settings.num_samples, len(train))
  gaussian = GaussianModel.fit(np.asarray(train, np.float64).reshape(len(train), -1))
  gaussian_samples = gaussian.sample(np.random.default_rng(int(jax.random.randint(gaussian_key, (), 0, 2**31 - 1))),
                                     count).astype(np.float32)
  gmrf, acceptance = gated_mrf_samples(layers[0], gaussian_samples, settings.gmrf_trajectories,
                                       settings.hmc_leapfrog, gmrf_key)
  deep, info = deep_gmrf_sampling.sample(
      deep_key, layers[0], layers[1:], count, top_gibbs_steps=settings.top_gibbs_steps,
      mean_field=settings.mean_field, hmc_steps=settings.hmc_steps, hmc_burn_in=settings.hmc_burn_in,
      hmc_leapfrog=settings.hmc_leapfrog, hmc_step_size=settings.hmc_step_size)
  name = type(layers[0][0]).__name__
  depth = len(layers)
  shown = np.random.default_rng(config.seed).permutation(len(train))[:count]
  panels = {"data": train[shown].reshape(count, -1), "Gaussian (PCA)": gaussian_samples,
            f"{name} HMC×{settings.gmrf_trajectories}": gmrf,
            f"deep ({depth} layers)": np.asarray(deep)}
  whitener = data.whitener
  panels = {title: np.asarray(whitener.inverse(np.asarray(z, np.float64)), np.float64).reshape(count, -1)
            for title, z in panels.items()}
  gated_mrf_viz.save_sample_comparison(panels, data.pixel_shape, os.path.join(workdir, "samples_compared.png"),
                                    value_range=_pixel_range(panels["data"]), min_pixels=FIGURE_PIXELS)
  stats = {"samples/gmrf_hmc_acceptance": acceptance,
           "samples/deep_hmc_acceptance": float(info.visible.hmc_acceptance),
           "samples/deep_code_mean": float(jnp.mean(info.codes))}
  for short, title in zip(("data", "gaussian", "gmrf", "deep"), panels):
    stats[f"samples/pixel_std_{short}"] = float(np.std(panels[title]))
    stats[f"samples/contrast_spread_{short}"] = contrast_spread(panels[title])
  if tiled is not None:
    stats.update(save_large_sample(config, plan, tiled, workdir, tiled_key))
  return stats


def save_large_sample(config: ml_collections.ConfigDict, plan: DeepGMRFPlan, tiled: tuple[Any, Any],
                      workdir: str, key: jax.Array) -> dict[str, float]:
  """large_sample.png: real crops of the training photographs | HMC samples of the tiled model at that
  size (from N(0, I)); returns the samples' and the crops' mean, contrast and neighbour correlation."""
  model, params = tiled
  height, width = plan.large_shape
  large = model.clone(image_shape=(height, width))
  count, trajectories, leapfrog = plan.tiled.num_large, plan.tiled.sample_trajectories, plan.tiled.sample_leapfrog
  images, info = gated_mrf_sampling.sample_tiled(large, key, {"params": params}, count, trajectories,
                                                 num_leapfrog=leapfrog)
  images = np.asarray(images)
  real = _read_crops(plan.tiled_config, plan.tiled_config.train_split, max(height, width), count,
                     plan.tiled_config.patches.seed + 5)[:, :height, :width]
  std = plan.tiled_data.standardizer
  real = (real - std["mean"][0]) / std["std"][0]
  panels = {"real crops (training photographs)": real.reshape(count, -1),
            f"tiled mcRBM HMC×{trajectories}": images.reshape(count, -1)}
  gated_mrf_viz.save_sample_comparison(panels, (height, width, 1), os.path.join(workdir, "large_sample.png"),
                                    columns=min(count, 2), value_range=_pixel_range(np.concatenate(
                                        list(panels.values()))), min_pixels=FIGURE_PIXELS)
  acceptance = np.asarray(info.acceptance_rate).reshape(trajectories, -1) if trajectories else None
  return {"samples/tiled_hmc_acceptance": float(np.mean(acceptance[-1])) if acceptance is not None else math.nan,
          "samples/tiled_mean": float(np.mean(images)), "samples/tiled_real_mean": float(np.mean(real)),
          "samples/tiled_pixel_std": float(np.mean(np.std(images, axis=(1, 2)))),
          "samples/tiled_real_pixel_std": float(np.mean(np.std(real, axis=(1, 2)))),
          "samples/tiled_neighbour_corr": neighbour_correlation(images),
          "samples/tiled_real_neighbour_corr": neighbour_correlation(real)}


@loop.TRAINERS.register("deep_gmrf")
def train_deep_gmrf(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains a deep gated MRF (and a tiled mcRBM for large samples); see the module docstring."""
  return run_deep_gmrf(config, workdir)[0]
