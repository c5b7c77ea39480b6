r"""The `dbn` pipeline (trainer 'dbn'): a deep belief net stacked greedily from RBMs, then fine-tuned as a classifier.

The classic pre-training experiment (Hinton, Osindero & Teh 2006; Hinton & Salakhutdinov 2006):
  1. the whole config is checked before any compute (every layer's contrastive settings, the hidden sizes,
     the fine-tuning block, labels for fine-tuning);
  2. layer l = 1 … L is an RBM trained by `run_contrastive` in `workdir/layer_{l}`: layer 1 on the data
     (model and model_kwargs from the config, n_hidden = config.dbn.hidden[0]), layer l > 1 a binary RBM on
     the posterior means p(h | ·) of the layer below, for every split (`dbn.feature_data`);
  3. `workdir/finetune`: a `DBNClassifier` whose sigmoid hidden layers start at the stack's W and b_h
     (`dbn.classifier_params_from_stack`) and whose softmax layer starts random, fine-tuned with SGD by
     back-propagation on the labelled training split, evaluated on the validation split every epoch and on
     the test split at the end;
  4. `workdir/scratch` (config.finetune.compare_scratch): the same classifier, same seed, same classifier
     layer, same data order, but random hidden layers: the baseline the pre-training is judged against;
  5. `workdir/metrics.jsonl` gets one final record: `val/accuracy`, `test/accuracy` (and `/loss`) of the
     fine-tuned net, the same with `_scratch` appended for the baseline, and each layer's final metrics
     under `layer_{l}/` (reconstruction error, pseudo-likelihood, log-likelihood...); `config.json`;
     figures: `samples.png` (DBN samples: Gibbs in the top RBM, then a top-down pass), `filters.png`
     (first-layer weights), `curves.png` (fine-tuned vs scratch).

Resuming: re-running the same command skips every finished layer (`run_contrastive` returns at once when its
workdir holds the finished run) and resumes an unfinished one from its checkpoint; fine-tuning and the
baseline resume from their own checkpoints (`finetune.checkpoint_every_steps`, by default only at the end,
in which case an interrupted fine-tuning run is redone: on the digits it takes seconds and, from the same
stack and seed, ends bitwise equal).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

import jax
import ml_collections
import numpy as np

from deepvision import distributed, optim, schema, zoo
from deepvision.data import datasets
from deepvision.figures import energy_viz, viz
from deepvision.models import dbn
from deepvision.registry import UnknownNameError
from deepvision.samplers import dbn as dbn_sampling
from deepvision.train import fit, loop, supervised
from deepvision.train import workdir as workdirs
from deepvision.train.contrastive_loop import RUN_IDENTITY, EnergyData, plan_contrastive, prepare_data, run_contrastive
from deepvision.train.writers import MetricsWriter, closing_summary, read_metrics
from experiments import blocks

ConfigError = loop.ConfigError
# A fine-tuning run resumes only with the same start, classifier, data order and length.
FINETUNE_IDENTITY = ("init", "model_kwargs", "dataset", "train_split", "preprocess", "batch_size", "seed",
                     "num_epochs")


def int_tuple(field: str, value: Any, allow_empty: bool) -> tuple[int, ...]:
  """`value` as a tuple of positive ints (one per layer), or ConfigError naming `config.<field>`."""
  values = tuple(value) if isinstance(value, (tuple, list)) else None
  if (values is None or (not values and not allow_empty)
      or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in values)):
    what = "a tuple of positive ints" + (" (or empty)" if allow_empty else ", one per layer")
    raise ConfigError(f"config.{field} must be {what}, got {value!r}")
  return values


def layer_configs(config: ml_collections.ConfigDict, dbn_block: blocks.Dbn) -> list[ml_collections.ConfigDict]:
  """The contrastive config of each layer: the DBN config's settings, sizes from `config.dbn`.

  Layer 1: `config.model` with `config.model_kwargs` and n_hidden = dbn.hidden[0]. Layer l > 1: a binary
  'rbm' of dbn.hidden[l−2] × dbn.hidden[l−1] on the features below (no preprocessing, no figures of its
  own). `dbn.num_epochs[l−1]` (when given) replaces `num_epochs`.
  """
  def upper(layer: ml_collections.ConfigDict, l: int) -> None:
    layer.model = "rbm"
    layer.dbn_input = f"layer_{l - 1} hidden probabilities"

  configs = stacked_layer_configs(config, "dbn", dbn_block.hidden, dbn_block.num_epochs, "contrastive", upper)
  configs[0].dbn_input = "data"
  return configs


def stacked_layer_configs(config: ml_collections.ConfigDict, block: str, hidden: tuple[int, ...],
                          epochs: tuple[int, ...], trainer: str,
                          upper: Callable[[ml_collections.ConfigDict, int], None]) -> list[ml_collections.ConfigDict]:
  """One config per layer of a greedily trained stack (DBN, SDAE): the stack's settings without its blocks
  `block` and `finetune`, run by `trainer`. Layer 1 is `config.model` with n_hidden = hidden[0]; layer l > 1
  is hidden[l−2] × hidden[l−1] on the features below (no preprocessing, no figures), finished by
  `upper(layer, l)`; `epochs[l−1]` (when given) replaces `num_epochs`."""
  kwargs = dict(config.get("model_kwargs", {}))
  if kwargs.get("n_hidden", hidden[0]) != hidden[0]:
    raise ConfigError(f"config.model_kwargs.n_hidden={kwargs['n_hidden']} contradicts config.{block}.hidden[0]="
                      f"{hidden[0]}: the first layer's size comes from config.{block}.hidden")
  base = config.to_dict()
  for field in (block, "finetune"):
    base.pop(field, None)
  base["trainer"] = trainer
  configs = []
  for l, n_hidden in enumerate(hidden, start=1):
    layer = ml_collections.ConfigDict(base)
    if l == 1:
      layer.model_kwargs = ml_collections.ConfigDict({**kwargs, "n_hidden": n_hidden})
    else:
      layer.model_kwargs = ml_collections.ConfigDict({"n_visible": hidden[l - 2], "n_hidden": n_hidden})
      layer.preprocess = "none"
      layer.figures = False  # features are not images; the pipeline draws its own figures
      upper(layer, l)
    if epochs:
      layer.num_epochs = epochs[l - 1]
    configs.append(layer)
  return configs


def finetune_config(config: ml_collections.ConfigDict, init: str, input_shape: tuple[int, ...],
                    num_classes: int, hidden: tuple[int, ...] | None = None) -> ml_collections.ConfigDict:
  """A supervised-style config of one fine-tuning run ('stack': from the stack; 'random': the baseline).

  `hidden` is the stack's layer sizes (default `config.dbn.hidden`).
  """
  ft = config.finetune
  out = ml_collections.ConfigDict()
  out.init = init
  out.model = "dbn_classifier"
  out.model_kwargs = ml_collections.ConfigDict({"input_shape": list(input_shape),
                                                "hidden": list(config.dbn.hidden if hidden is None else hidden),
                                                "num_classes": num_classes})
  for field in ("dataset", "data_dir", "train_split", "eval_split", "test_split", "preprocess", "seed",
                "keep_checkpoints"):
    out[field] = config.get(field)
  out.batch_size = ft.batch_size
  out.eval_batch_size = 512
  out.num_epochs = ft.num_epochs
  out.checkpoint_every_steps = ft.checkpoint_every_steps
  out.optimizer = ml_collections.ConfigDict(ft.optimizer.to_dict())
  return out


@dataclasses.dataclass(frozen=True)
class DBNPlan:
  """Everything checked and resolved from the config before compute."""

  dbn: blocks.Dbn
  layer_configs: list[ml_collections.ConfigDict]
  data: EnergyData  # the first layer's data (with the labels for fine-tuning)
  finetune_configs: dict[str, ml_collections.ConfigDict]  # 'stack' (and 'random') → fine-tuning config
  finetune_steps: int


def check_finetune(config: ml_collections.ConfigDict) -> blocks.Finetune:
  """`config.finetune` loaded by the schema; ConfigError unless `config` names labelled whole images."""
  ft = schema.load(blocks.Finetune, config.finetune, "config.finetune")
  if int(config.patches.get("size", 0)) > 0:
    raise ConfigError(f"config.patches.size={config.patches.size}: fine-tuning needs labelled whole images; "
                      "set config.patches.size=0")
  try:
    info = datasets.dataset_info(config.dataset, data_dir=config.get("data_dir") or None)
  except UnknownNameError as e:
    raise ConfigError(f"config.dataset: {e}") from None
  if not info.num_classes:
    raise ConfigError(f"config.dataset {config.dataset!r} has no labels: the fine-tuning stage needs a "
                      "labelled data set")
  return ft


def plan_finetune(config: ml_collections.ConfigDict, data: EnergyData, hidden: tuple[int, ...]
                  ) -> tuple[dict[str, ml_collections.ConfigDict], int]:
  """The fine-tuning configs ('stack', and 'random' for the baseline) of a stack of `hidden` sizes trained
  on `data`, and the fine-tuning steps; ConfigError for labels, batch size, devices or optimiser."""
  if "train" not in data.labels:
    raise ConfigError(f"the training split {config.train_split!r} has no labels for fine-tuning")
  ft = schema.load(blocks.Finetune, config.finetune, "config.finetune")
  info = datasets.dataset_info(config.dataset, data_dir=config.get("data_dir") or None)
  n_train = len(data.splits["train"])
  inits = ("stack", "random") if ft.compare_scratch else ("stack",)
  finetune = {init: finetune_config(config, init, data.image_shape, info.num_classes, hidden) for init in inits}
  if ft.batch_size > n_train:
    raise ConfigError(f"config.finetune.batch_size={ft.batch_size} exceeds the {n_train} training examples")
  loop.replicas_for(config, ft.batch_size, what="finetune.batch_size")
  steps = n_train // ft.batch_size * ft.num_epochs
  try:
    optim.make_optimizer(finetune["stack"], steps)
  except (UnknownNameError, ValueError, AttributeError) as e:
    raise ConfigError(f"config.finetune.optimizer: {e}") from None
  return finetune, steps


def plan_dbn(config: ml_collections.ConfigDict) -> DBNPlan:
  """Checks the whole config before compute; raises ConfigError naming the bad field."""
  if "dbn" not in config or "finetune" not in config:
    raise ConfigError("a dbn config needs the blocks config.dbn (hidden sizes) and config.finetune; see "
                      "experiments/configs/dbn_digits.py")
  dbn_block = schema.load(blocks.Dbn, config.dbn, "config.dbn")
  configs = layer_configs(config, dbn_block)
  check_finetune(config)
  data = prepare_data(configs[0])
  plan_contrastive(configs[0], data)
  finetune, steps = plan_finetune(config, data, dbn_block.hidden)
  n_train = len(data.splits["train"])
  for l, layer in enumerate(configs[1:], start=2):  # the upper layers train on features of every example
    try:
      plan_contrastive(layer, n_train=n_train)
    except ConfigError as e:
      raise ConfigError(f"DBN layer {l}: {e}") from None
  return DBNPlan(dbn_block, configs, data, finetune, steps)


# ----------------------------------------------------------------------------- stacking


# ----------------------------------------------------------------------------- fine-tuning


def run_finetune(config: ml_collections.ConfigDict, workdir: str, data: EnergyData,
                 layers: list[dbn.Layer] | None, quiet: bool = False) -> dict:
  """Fine-tunes a `DBNClassifier` (from `layers` when config.init is 'stack') in `workdir`, resumably.

  Training: softmax cross-entropy, the SGD optimiser of `config.optimizer`, the seeded batch order of
  `pipeline.train_batches`, no augmentation and no per-image standardisation (the stack was trained on
  the data as they are). Evaluation: the validation split every epoch, the test split at the end.

  Returns:
    The final record (with `test/accuracy` when there is a test split).
  """
  model = dbn.DBNClassifier(input_shape=tuple(config.model_kwargs.input_shape),
                            hidden=tuple(config.model_kwargs.hidden),
                            num_classes=config.model_kwargs.num_classes)
  train = datasets.ArraySource(data.splits["train"], data.labels["train"])
  sources = {role: datasets.ArraySource(data.splits[role], data.labels[role])
             for role in ("val", "test") if role in data.splits and role in data.labels}
  steps_per_epoch = len(train) // config.batch_size
  total_steps = steps_per_epoch * config.num_epochs
  task = supervised.SupervisedTask(
      model=model, input_shape=data.image_shape, train_source=train, sources=sources,
      tx=optim.make_optimizer(config, total_steps), lr_fn=optim.learning_rate_schedule(config, total_steps),
      batch_size=config.batch_size, eval_batch_size=config.eval_batch_size, seed=config.seed,
      schedule=fit.default_schedule(config, total_steps, steps_per_epoch, eval_every=steps_per_epoch,
                                    log_every=steps_per_epoch),
      replicas=loop.replicas_for(config, config.batch_size),
      preprocess=supervised.Preprocess(standardize=False),
      init_params=(lambda initial: dbn.classifier_params_from_stack(layers, initial))
      if config.init == "stack" else None,
      identity=FINETUNE_IDENTITY, final_roles=("val", "test"), quiet=quiet, figures=False,
      advice=(f"fine-tuning ({config.init} init): lower config.finetune.optimizer.learning_rate "
              f"(now {config.optimizer.learning_rate})"))
  return fit.fit(task, config, workdir)[0]


# ----------------------------------------------------------------------------- the trainer


def _layer_summary(l: int, record: dict) -> dict[str, float]:
  return {f"layer_{l}/{k}": v for k, v in record.items() if k not in ("step", "final")}


def _finetune_summary(record: dict, suffix: str) -> dict[str, float]:
  return {f"{k}{suffix}": v for k, v in record.items()
          if k.startswith(("val/", "test/")) and k not in ("step", "final")}


def finetune_stack(configs: dict[str, ml_collections.ConfigDict], workdir: str, data: EnergyData,
                   layers: list[dbn.Layer], quiet: bool, what: str) -> dict[str, float]:
  """Runs each fine-tuning of `configs` ('stack' in `workdir/finetune`, 'random' in `workdir/scratch`);
  returns their validation and test metrics, the baseline's with `_scratch` appended."""
  summary = {}
  for init, suffix, name in (("stack", "", "finetune"), ("random", "_scratch", "scratch")):
    if init not in configs:
      continue
    if not quiet:
      print(f"Fine-tuning the {what + '-initialised' if init == 'stack' else 'randomly initialised'} "
            f"classifier in {os.path.join(workdir, name)}.")
    record = run_finetune(configs[init], os.path.join(workdir, name), data, layers, quiet)
    summary.update(_finetune_summary(record, suffix))
  return summary


def write_final_record(workdir: str, step: int, summary: dict[str, Any], quiet: bool) -> tuple[dict, bool]:
  """Appends the pipeline's final record to `workdir/metrics.jsonl` unless it is there already.

  Returns:
    `(record, done)`: done when the work dir already held this finished run (its figures stand).
  """
  previous = read_metrics(workdir)
  record = {"step": step, **summary, "final": True}
  if previous and previous[-1] == record:
    if not quiet:
      print(f"{workdir} already holds the finished run; nothing to do.")
    return record, True
  writer = MetricsWriter(workdir, enabled=distributed.is_primary())
  record = writer.write(step, {**summary, "final": True})
  writer.close()
  return record, False


def run_dbn(config: ml_collections.ConfigDict, workdir: str, quiet: bool = False
            ) -> tuple[dict, list[dbn.Layer]]:
  """Trains the DBN of `config` in `workdir` (see the module docstring); resumable.

  Returns:
    `(record, layers)`: the final record of `workdir/metrics.jsonl` and the stack `[(model, params), ...]`.
  """
  plan = plan_dbn(config)
  # A DBN run is resumable once any of its layers has started.
  started = os.path.isdir(os.path.abspath(os.path.join(workdir, "layer_1", "checkpoints")))
  workdir = workdirs.prepare(config, workdir, RUN_IDENTITY + ("dbn",), resumable=started,
                             write=distributed.is_primary())
  quiet = quiet or not distributed.is_primary()

  layers: list[dbn.Layer] = []
  summary: dict[str, Any] = {}
  data = plan.data
  for l, layer_config in enumerate(plan.layer_configs, start=1):
    if l > 1:
      data = dbn.feature_data(layers[-1], data)
    if not quiet:
      kwargs = layer_config.model_kwargs
      print(f"DBN layer {l}/{len(plan.layer_configs)}: {layer_config.model} "
            f"{kwargs.get('n_visible', '?')} × {kwargs.n_hidden} on {layer_config.dbn_input}")
    layer_dir = os.path.join(workdir, f"layer_{l}")
    record, params = run_contrastive(layer_config, layer_dir, data=data, quiet=quiet)
    model = zoo.create(layer_config.model, **layer_config.model_kwargs)
    layers.append((model, jax.device_get(params)))
    summary.update(_layer_summary(l, record))

  summary.update(finetune_stack(plan.finetune_configs, workdir, plan.data, layers, quiet, "DBN"))
  record, done = write_final_record(workdir, plan.finetune_steps, summary, quiet)
  if done:
    return record, layers
  if config.get("figures", True) and distributed.is_primary():
    save_figures(config, plan, layers, workdir)
  if not quiet:
    shown = [k for k in ("test/accuracy", "test/accuracy_scratch", "val/accuracy", "val/accuracy_scratch")
             if k in record]
    print(closing_summary(workdir, record, shown))
  return record, layers


def save_figures(config: ml_collections.ConfigDict, plan: DBNPlan, layers: list[dbn.Layer],
                 workdir: str) -> None:
  """samples.png (DBN samples), filters.png (first-layer weights), curves.png (fine-tuned vs scratch), and
  layer_{l}/curves.png for the upper layers (which draw no figures of their own: features are not images)."""
  for l in range(2, len(layers) + 1):
    layer_dir = os.path.join(workdir, f"layer_{l}")
    viz.save_curves(read_metrics(layer_dir), os.path.join(layer_dir, "curves.png"), keys=(
        ("train/recon_error", "val/recon_error"), ("train/pseudo_likelihood", "val/pseudo_likelihood"),
        ("free_energy_gap",)))
  shape = plan.data.image_shape
  to_pixels, value_range = None, (0.0, 1.0)
  if plan.data.standardizer is not None:
    mean = np.asarray(plan.data.standardizer["mean"])
    std = np.asarray(plan.data.standardizer["std"])
    to_pixels = lambda x: np.asarray(x) * std + mean  # noqa: E731
    value_range = None
  steps, num = plan.dbn.sample_gibbs_steps, plan.dbn.num_samples
  samples = dbn_sampling.sample(layers, jax.random.fold_in(jax.random.key(config.seed), 7), num, steps)
  energy_viz.save_image_grid(np.asarray(samples), shape, os.path.join(workdir, "samples.png"),
                             f"DBN samples ({steps} Gibbs steps)",
                             value_range=value_range, to_pixels=to_pixels)
  energy_viz.save_weight_filters(np.asarray(layers[0][1]["W"]), shape, os.path.join(workdir, "filters.png"),
                                 title="first-layer filters")
  save_finetune_curves(workdir)


def save_finetune_curves(workdir: str) -> None:
  """curves.png: the fine-tuning from the stack (`workdir/finetune`) against the one from random weights
  (`workdir/scratch`), training loss and validation accuracy."""
  records = [dict(r) for r in read_metrics(os.path.join(workdir, "finetune"))]
  records += [{("step" if k == "step" else f"{k}_scratch"): v for k, v in r.items()}
              for r in read_metrics(os.path.join(workdir, "scratch"))]
  if records:
    viz.save_curves(records, os.path.join(workdir, "curves.png"), keys=(
        ("train/loss", "train/loss_scratch"), ("val/accuracy", "val/accuracy_scratch")))


@loop.TRAINERS.register("dbn")
def train_dbn(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Stacks RBMs greedily into a DBN, then fine-tunes it as a classifier; see the module docstring."""
  return run_dbn(config, workdir)[0]
