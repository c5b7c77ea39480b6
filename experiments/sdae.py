r"""The `sdae` pipeline (trainer 'sdae'): stacked denoising autoencoders, trained greedily, then fine-tuned.

Vincent, Larochelle, Lajoie, Bengio & Manzagol, "Stacked denoising autoencoders" (JMLR 2010), §3.5 and §7:
  1. the whole config is checked before any compute (every layer's autoencoder settings on the data it will
     see, the hidden sizes, the fine-tuning block, labels);
  2. layer l = 1 … L is a denoising autoencoder trained by `run_autoencoder` in `workdir/layer_{l}`: layer 1
     on the data (model and model_kwargs from the config, n_hidden = config.sdae.hidden[0]), layer l > 1
     (`config.sdae.upper_model`) on the *clean* codes h^{l−1} of the layer below, for every split
     (`models.dbn.feature_data`); each layer corrupts only its own input, as in the paper;
  3. `workdir/finetune` (and `workdir/scratch` with config.finetune.compare_scratch): the DBN pipeline's
     fine-tuning, unchanged (`experiments.dbn.finetune_stack`): a `DBNClassifier` whose sigmoid layers start
     at the encoders' W and b_h (`dbn.classifier_params_from_stack`: an autoencoder's encoder is an RBM's
     upward pass), a random softmax layer, SGD on the labelled training split; the baseline is the same
     net from random weights;
  4. `workdir/metrics.jsonl` gets one final record: `val/accuracy`, `test/accuracy` of the fine-tuned net,
     the same with `_scratch` for the baseline, and each layer's final metrics under `layer_{l}/`; figures
     `filters.png` (the first encoder) and `curves.png` (fine-tuned vs scratch).

Resuming is the DBN's: finished layers are skipped, an unfinished one resumes from its checkpoint.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax
import ml_collections
import numpy as np

from deepvision import distributed
from deepvision.data.energy import EnergyData, prepare_data
from deepvision.figures import energy_viz
from deepvision.models import dbn
from deepvision.train import autoencoder, loop
from deepvision.train import workdir as workdirs
from deepvision.train.writers import closing_summary
from experiments import dbn as dbn_pipeline

ConfigError = loop.ConfigError
# Fields of the whole run that no resume may change (each stage checks its own as well).
SDAE_IDENTITY = autoencoder.AutoencoderTask.identity + ("sdae",)


def layer_configs(config: ml_collections.ConfigDict) -> list[ml_collections.ConfigDict]:
  """The autoencoder config of each layer: the SDAE config's settings, sizes from `config.sdae`.

  Layer 1: `config.model` with `config.model_kwargs` and n_hidden = sdae.hidden[0]. Layer l > 1:
  `sdae.upper_model` of sdae.hidden[l−2] × sdae.hidden[l−1] on the codes below (no preprocessing, no
  linear read-out or figures of its own unless `sdae.evaluate_upper`). `sdae.num_epochs[l−1]` (when given)
  replaces `num_epochs`.
  """
  hidden = dbn_pipeline.int_tuple("sdae.hidden", config.sdae.get("hidden"), allow_empty=False)
  epochs = dbn_pipeline.int_tuple("sdae.num_epochs", config.sdae.get("num_epochs", ()), allow_empty=True)
  if epochs and len(epochs) != len(hidden):
    raise ConfigError(f"config.sdae.num_epochs must be empty (config.num_epochs for every layer) or give one "
                      f"value per layer ({len(hidden)} for hidden={hidden}), got {epochs!r}")
  def upper(layer: ml_collections.ConfigDict, l: int) -> None:
    del l
    layer.model = config.sdae.get("upper_model", "dae")
    layer.linear_eval.enabled = bool(config.sdae.get("evaluate_upper", False)) and layer.linear_eval.enabled

  return dbn_pipeline.stacked_layer_configs(config, "sdae", hidden, epochs, "autoencoder", upper)


@dataclasses.dataclass(frozen=True)
class SDAEPlan:
  """Everything checked and resolved from the config before compute."""

  layer_configs: list[ml_collections.ConfigDict]
  data: EnergyData  # the first layer's data (with the labels for fine-tuning)
  finetune_configs: dict[str, ml_collections.ConfigDict]  # 'stack' (and 'random') → fine-tuning config
  finetune_steps: int


def plan_sdae(config: ml_collections.ConfigDict) -> SDAEPlan:
  """Checks the whole config before compute; raises ConfigError naming the bad field."""
  if "sdae" not in config or "finetune" not in config:
    raise ConfigError("an sdae config needs the blocks config.sdae (hidden sizes) and config.finetune; see "
                      "experiments/configs/sdae_digits.py")
  configs = layer_configs(config)
  dbn_pipeline.check_finetune(config)
  data = prepare_data(configs[0])
  autoencoder.make_task(configs[0], data, quiet=True)
  finetune, steps = dbn_pipeline.plan_finetune(config, data, tuple(config.sdae.hidden))
  n_train = len(data.splits["train"])
  for l, layer in enumerate(configs[1:], start=2):  # models, sizes and settings, on placeholder codes
    shape = dbn.feature_shape(layer.model_kwargs.n_visible)
    placeholder = EnergyData({"train": np.zeros((n_train, *shape), np.float32)}, {}, shape)
    try:
      autoencoder.make_task(layer, placeholder, quiet=True)
    except ConfigError as e:
      raise ConfigError(f"SDAE layer {l}: {e}") from None
  return SDAEPlan(configs, data, finetune, steps)


def run_sdae(config: ml_collections.ConfigDict, workdir: str, quiet: bool = False
             ) -> tuple[dict, list[dbn.Layer]]:
  """Trains the stacked denoising autoencoder of `config` in `workdir` (module docstring); resumable.

  Returns:
    `(record, layers)`: the final record of `workdir/metrics.jsonl` and the stack `[(model, params), ...]`.
  """
  plan = plan_sdae(config)
  started = os.path.isdir(os.path.abspath(os.path.join(workdir, "layer_1", "checkpoints")))
  workdir = workdirs.prepare(config, workdir, SDAE_IDENTITY, resumable=started, write=distributed.is_primary())
  quiet = quiet or not distributed.is_primary()

  layers: list[dbn.Layer] = []
  summary: dict[str, Any] = {}
  data = plan.data
  for l, layer_config in enumerate(plan.layer_configs, start=1):
    if l > 1:
      data = dbn.feature_data(layers[-1], data)
    model = autoencoder.make_task(layer_config, data, quiet=True).model
    if not quiet:
      print(f"SDAE layer {l}/{len(plan.layer_configs)}: {layer_config.model} {model.n_visible} × "
            f"{model.n_hidden}, masking {layer_config.corruption}, Gaussian σ {layer_config.noise_std}")
    record, params = autoencoder.run_autoencoder(layer_config, os.path.join(workdir, f"layer_{l}"), data, quiet)
    layers.append((model, jax.device_get(params)))
    summary.update({f"layer_{l}/{k}": v for k, v in record.items() if k not in ("step", "final")})

  summary.update(dbn_pipeline.finetune_stack(plan.finetune_configs, workdir, plan.data, layers, quiet, "SDAE"))
  record, done = dbn_pipeline.write_final_record(workdir, plan.finetune_steps, summary, quiet)
  if done:
    return record, layers
  if config.get("figures", True) and distributed.is_primary():
    save_figures(plan, layers, workdir)
  if not quiet:
    shown = [k for k in ("test/accuracy", "test/accuracy_scratch", "val/accuracy", "val/accuracy_scratch")
             if k in record]
    print(closing_summary(workdir, record, shown))
  return record, layers


def save_figures(plan: SDAEPlan, layers: list[dbn.Layer], workdir: str) -> None:
  """filters.png (the first encoder's weights) and curves.png (fine-tuned vs scratch)."""
  energy_viz.save_weight_filters(np.asarray(layers[0][1]["W"]), plan.data.image_shape,
                                 os.path.join(workdir, "filters.png"), title="first-layer filters")
  dbn_pipeline.save_finetune_curves(workdir)


@loop.TRAINERS.register("sdae")
def train_sdae(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Stacks denoising autoencoders greedily, then fine-tunes them as a classifier; see the module docstring."""
  return run_sdae(config, workdir)[0]

