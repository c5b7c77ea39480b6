r"""The `occlusion` trainer: recognition under occlusion with a gated MRF's fill-in and features.

The experiment of Ranzato, Susskind, Mnih & Hinton ("On deep generative models with applications to
recognition", CVPR 2011) and of Ranzato, Mnih, Susskind & Hinton ("Modeling natural images using gated
MRFs", PAMI 2013, §6.2; the talk's facial-expression experiment), on labelled whole images:
  1. the whole config is checked before any compute (the gated MRF's contrastive settings, the
     `occlusion` block, a labelled data set with training, validation and test splits);
  2. `workdir/model`: a gated MRF (mcRBM or mPoT) trained by `run_contrastive` on the PCA-whitened
     training images z = T(x); resumed or skipped when already there;
  3. the measure (`deepvision.estimators.occlusion`): linear classifiers on pixels x, on the posterior
     means f(x) = [E[h_c | T(x)], p(h_m = 1 | T(x))] and on [f(x), x], trained on clean images, classify
     occluded test images filled with a constant, the Gaussian conditional mean, or E[x_m | x_o] under
     the gated MRF;
  4. `metrics.jsonl` gets one final record (`test/accuracy_<mask>_<fill>_<input>`,
     `test/fill_mse_<mask>_<fill>` with `_stderr`, also for the fill `train_mean`, the sampler's
     statistics, `l2_<input>`, the model's final metrics under `model/`), `occlusion_table.md` (the
     accuracy table, with each fill's error) and `occlusion.png` (test digits,
     occluded, Gaussian fill, gated-MRF fill, per mask).
Re-running the command skips the finished model and redoes the (deterministic) evaluation.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax
import ml_collections
import numpy as np

from deepvision import distributed, schema, zoo
from deepvision.data import datasets
from deepvision.data.occlusion import square_side
from deepvision.estimators.occlusion import (
    OcclusionSettings, OcclusionTask, accuracy_table, evaluate_occlusion)
from deepvision.figures import energy_viz, gated_mrf_viz
from deepvision.registry import UnknownNameError
from deepvision.train import loop, workdir as workdirs
from deepvision.train.contrastive_loop import RUN_IDENTITY, plan_contrastive, run_contrastive
from deepvision.data.energy import EnergyData, prepare_data
from deepvision.train.errors import ConfigError
from deepvision.train.writers import MetricsWriter, read_metrics
from experiments import blocks

TABLE_FILE = "occlusion_table.md"
FIGURE_FILE = "occlusion.png"
FIGURE_PIXELS = 768  # the longer side of occlusion.png
MODEL_DIR = "model"  # the gated MRF's own run, inside the work dir
SPLIT_FIELDS = {"train": "train_split", "val": "eval_split", "test": "test_split"}


def occlusion_settings(config: ml_collections.ConfigDict) -> tuple[blocks.Occlusion, OcclusionSettings]:
  """The `config.occlusion` block (`blocks.Occlusion`), checked, and the settings the evaluation reads."""
  if "occlusion" not in config:
    raise ConfigError("an occlusion config needs the block config.occlusion; see "
                      "experiments/configs/gmrf_digits.py")
  block = schema.load(blocks.Occlusion, config.occlusion, "config.occlusion")
  fields = {f.name: getattr(block, f.name) for f in dataclasses.fields(OcclusionSettings)}
  return block, OcclusionSettings(**fields)


def model_config(config: ml_collections.ConfigDict, block: blocks.Occlusion) -> ml_collections.ConfigDict:
  """The contrastive config of the gated MRF: the occlusion config without its `occlusion` block, its own
  linear probe off (the classifiers here replace it), its figures (filters, samples in `workdir/model`)
  drawn when `figures` and `occlusion.model_figures` (default True) are both on."""
  base = config.to_dict()
  base.pop("occlusion", None)
  base["trainer"] = "contrastive"
  out = ml_collections.ConfigDict(base)
  out.linear_eval.enabled = False
  out.figures = bool(config.get("figures", True)) and block.model_figures
  return out


@dataclasses.dataclass(frozen=True)
class OcclusionPlan:
  """Everything checked and resolved from the config before compute.

  Attributes:
    model_config: the gated MRF's contrastive config (`model_config`).
    data: the whitened splits the gated MRF trains on (`prepare_data`).
    task: what the evaluation reads: the checked `config.occlusion`, the unwhitened images as flat
      pixel vectors and their labels, by role, and the whitening.
  """

  model_config: ml_collections.ConfigDict
  data: EnergyData
  task: OcclusionTask


def plan_occlusion(config: ml_collections.ConfigDict) -> OcclusionPlan:
  """Checks the whole config (and reads the data) before compute; ConfigError naming the bad field."""
  block, settings = occlusion_settings(config)
  mc = model_config(config, block)
  try:
    model = zoo.create(mc.model, **loop.model_kwargs(mc))
  except (UnknownNameError, ValueError, TypeError) as e:
    raise ConfigError(f"config.model / config.model_kwargs: {e}") from None
  if not all(hasattr(model, field) for field in ("n_factors", "n_cov", "n_mean")):
    raise ConfigError(f"config.model {mc.model!r} is not a gated MRF; the occlusion trainer fills and "
                      "describes images with an mcRBM or mPoT (config.model='mcrbm' or 'mpot')")
  if settings.sampler == "gibbs" and (getattr(model, "input_norm", None) == "original"
                                      or not hasattr(model, "conditional_gaussian")):
    raise ConfigError("config.occlusion.sampler='gibbs' needs a Gaussian p(x | h) (an mPoT, or an mcRBM "
                      "with model_kwargs.input_norm='paper'); this model has none: use sampler='hmc'")
  if mc.preprocess != "whiten":
    raise ConfigError(f"config.preprocess must be 'whiten' (gated MRFs model PCA-whitened images and the "
                      f"fill-in runs through the whitening), got {mc.preprocess!r}")
  if int(mc.patches.get("size", 0)) > 0:
    raise ConfigError(f"config.patches.size={mc.patches.size}: recognition needs labelled whole images; set "
                      "config.patches.size=0")
  for role, field in SPLIT_FIELDS.items():
    if not mc.get(field):
      raise ConfigError(f"config.{field} must name a split: the experiment needs the {role} split")
  try:
    info = datasets.dataset_info(mc.dataset, data_dir=mc.get("data_dir") or None)
  except UnknownNameError as e:
    raise ConfigError(f"config.dataset: {e}") from None
  if not info.num_classes:
    raise ConfigError(f"config.dataset {mc.dataset!r} has no labels: recognition needs a labelled data set")
  data = prepare_data(mc)
  plan_contrastive(mc, data)
  pixel_shape = tuple(data.pixel_shape)
  try:
    square_side(settings.square_size, *pixel_shape[:2])
  except ValueError as e:
    raise ConfigError(f"config.occlusion.square_size: {e}") from None
  pixels = {role: _flat_pixels(mc, mc[field]) for role, field in SPLIT_FIELDS.items()}
  return OcclusionPlan(mc, data, OcclusionTask(settings, pixels, dict(data.labels), pixel_shape, data.whitener))


def _flat_pixels(config: ml_collections.ConfigDict, split: str) -> np.ndarray:
  images, _ = datasets.load_arrays(config.dataset, split, data_dir=config.get("data_dir") or None)
  return np.asarray(images, np.float32).reshape(len(images), -1)


# ----------------------------------------------------------------------------- outputs


def save_figure(examples: dict[str, dict], pixel_shape: tuple[int, ...], path: str, num_shown: int,
                model_name: str) -> None:
  """occlusion.png: per occluded mask (blocks top to bottom, in the config's order) the test digits |
  occluded (grey: the baseline's fill) | the Gaussian fill | the gated-MRF fill, on one grey scale."""
  if not examples:
    return
  blocks = []
  for kind, arrays in examples.items():
    count = min(num_shown, len(arrays["truth"]))
    panels = {"truth": arrays["truth"][:count], "occluded": arrays["raw"][:count],
              "Gaussian": arrays["gaussian"][:count], model_name: arrays["gmrf"][:count]}
    blocks.append(gated_mrf_viz.comparison_grid(panels, pixel_shape, columns=count, value_range=(
        float(arrays["truth"].min()), float(arrays["truth"].max()))))
  width = max(b.shape[1] for b in blocks)
  rows = []
  for i, block in enumerate(blocks):
    if i:
      rows.append(np.ones((4, width, *block.shape[2:])))
    rows.append(np.concatenate([block, np.ones((block.shape[0], width - block.shape[1], *block.shape[2:]))],
                               axis=1))
  energy_viz.save_grid(np.concatenate(rows), path, f"truth | occluded | Gaussian | {model_name} fill",
                       min_pixels=FIGURE_PIXELS,
                       description=f"row blocks top to bottom: {', '.join(examples)}; panels: test images, "
                                   "occluded (the baseline's view), Gaussian fill, gated-MRF fill")


def run_occlusion(config: ml_collections.ConfigDict, workdir: str, quiet: bool = False
                  ) -> tuple[dict, Any]:
  """Runs the experiment of `config` in `workdir` (module docstring); resumable.

  Returns:
    (record, params): the final record of `workdir/metrics.jsonl` and the gated MRF's parameters.
  """
  plan = plan_occlusion(config)
  task = plan.task
  started = os.path.isdir(os.path.abspath(os.path.join(workdir, MODEL_DIR, "checkpoints")))
  workdir = workdirs.prepare(config, workdir, RUN_IDENTITY + ("occlusion",), resumable=started,
                             write=distributed.is_primary())
  quiet = quiet or not distributed.is_primary()
  model_record, params = run_contrastive(plan.model_config, os.path.join(workdir, MODEL_DIR), data=plan.data,
                                         quiet=quiet)
  params = jax.device_get(params)
  model = zoo.create(plan.model_config.model, **loop.model_kwargs(plan.model_config))
  if not quiet:
    print(f"Occlusion: classifiers on clean training images, then {', '.join(task.settings.masks)} on "
          f"{len(task.pixels['test'])} test images.")
  key = jax.random.fold_in(jax.random.key(config.seed), 17)
  record, examples = evaluate_occlusion(task, model, params, key)
  record.update({f"model/{k}": v for k, v in model_record.items() if k not in ("step", "final")})
  step = int(model_record.get("step", 0))
  previous = read_metrics(workdir)
  if previous and previous[-1] == {"step": step, **record, "final": True}:
    return previous[-1], params
  if distributed.is_primary():
    writer = MetricsWriter(workdir)
    record = writer.write(step, {**record, "final": True})
    writer.close()
    name = type(model).__name__
    with open(os.path.join(workdir, TABLE_FILE), "w") as f:
      f.write(f"Test accuracy ({len(task.pixels['test'])} images) of logistic regression trained on clean "
              f"images, by occlusion, fill-in and classifier input.\n\n")
      f.write(accuracy_table(record, task.settings, name))
    if config.get("figures", True):
      save_figure(examples, task.pixel_shape, os.path.join(workdir, FIGURE_FILE), task.settings.num_shown, name)
  if not quiet:
    print(accuracy_table(record, task.settings, type(model).__name__)
          + f"  metrics {os.path.join(workdir, 'metrics.jsonl')}")
  return record, params


@loop.TRAINERS.register("occlusion")
def train_occlusion(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Recognition under occlusion with a gated MRF's fill-in and features; see the module docstring."""
  return run_occlusion(config, workdir)[0]


train_occlusion.model_subdir = MODEL_DIR  # where `pretrained.runs.run_directory` finds the model's checkpoints
