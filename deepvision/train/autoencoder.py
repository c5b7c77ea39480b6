"""The `autoencoder` task: a tied-weight autoencoder trained by SGD on the reconstruction of clean inputs.

The step corrupts each batch (masking noise at `corruption`, then Gaussian noise of `noise_std`, drawn from
`fold_in(key, step)`) and descends the model's `objective`: the mean reconstruction loss of
`models.autoencoder` plus its penalty (sparse, contractive). Evaluations report the validation
reconstruction loss, the end also the test loss and the linear read-out of the features
(`energy_metrics.linear_evaluation`). `run_autoencoder` takes ready data, e.g. a lower layer's features
when stacking.
"""

from __future__ import annotations

import dataclasses
import math
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from deepvision import config_blocks, distributed, optim, schema, zoo
from deepvision.data import datasets, pipeline
from deepvision.data.energy import PREPROCESSING, EnergyData, prepare_data
from deepvision.data.patches import Standardizer
from deepvision.errors import ConfigError
from deepvision.estimators.energy_metrics import linear_evaluation
from deepvision.figures import energy_viz, viz
from deepvision.models import autoencoder as autoencoder_models
from deepvision.models.autoencoder import corrupt_input
from deepvision.schema import real, spec
from deepvision.train import fit, resolve
from deepvision.train.runner import finite_flags
from deepvision.train.state import TrainState, create_train_state
from deepvision.train.writers import read_metrics


@dataclasses.dataclass(frozen=True)
class AutoencoderConfig(config_blocks.Run):
  """The autoencoder trainer's config (experiments/configs/dae_digits.py)."""

  trainer: str = spec("autoencoder", schema.text)
  model: str = spec("dae", schema.text)
  preprocess: str = spec("none", schema.one_of(PREPROCESSING), "a sigmoid decoder needs inputs in [0, 1]")
  patches: config_blocks.Patches = spec(config_blocks.Patches())
  corruption: float = spec(0.25, real(0.0, 1.0, high_open=True), "probability of zeroing an input")
  noise_std: float = spec(0.0, real(0.0), "standard deviation of the additive Gaussian noise")
  optimizer: config_blocks.Optimizer = spec(config_blocks.Optimizer(learning_rate=0.1, weight_decay=0.0))
  linear_eval: config_blocks.LinearEval = spec(config_blocks.LinearEval())


class AutoencoderTask(fit.Task):
  """Trains `model` on `data.splits['train']`; see the module docstring."""

  identity = ("trainer", "model", "model_kwargs", "dataset", "train_split", "preprocess", "batch_size", "seed",
              "num_epochs", "corruption", "noise_std", "patches", "whiten")
  progress_keys = ("train/recon_loss",)

  def __init__(self, config: ml_collections.ConfigDict, run: AutoencoderConfig, model, data: EnergyData,
               quiet: bool = False):
    self.config, self.run, self.model, self.data, self.quiet = config, run, model, data, quiet
    self.replicas = resolve.replicas_for(config, run.batch_size)
    steps_per_epoch = len(data.splits["train"]) // run.batch_size
    self.schedule = fit.default_schedule(config, steps_per_epoch * run.num_epochs, steps_per_epoch)
    self.tx = optim.make_optimizer(config, self.schedule.total_steps)
    self.advice = f"lower the rate (learning rate {run.optimizer.learning_rate})"
    self._loss = jax.jit(lambda params, x: model.apply({"params": params}, x, x, method="reconstruction_loss"))

  def init_state(self) -> TrainState:
    return create_train_state(self.model, self.tx, jax.random.key(self.run.seed), self.data.image_shape)

  def train_batches(self):
    x = self.data.splits["train"]
    return pipeline.train_batches(datasets.ArraySource(x, np.zeros(len(x), np.int32)), self.run.batch_size,
                                  seed=self.run.seed, shard=(distributed.process_index(), distributed.process_count()))

  def make_step(self, axis_name):
    rate, std = self.run.corruption, self.run.noise_std
    penalised = type(self.model).penalty is not autoencoder_models.TiedAutoencoder.penalty

    def step(state: TrainState, batch):
      key = jax.random.fold_in(state.key, state.step)
      if axis_name is not None:
        key = jax.random.fold_in(key, jax.lax.axis_index(axis_name))
      x = batch["image"]
      noisy = corrupt_input(key, x, rate, std)

      def loss_fn(params):
        return state.apply_fn({"params": params}, x, noisy, method="objective")

      (loss, parts), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
      if axis_name is not None:
        loss, parts, grads = jax.lax.pmean((loss, parts, grads), axis_name)
      state = state.apply_gradients(grads=grads)
      metrics = {"train/recon_loss": parts["recon_loss"]}
      if penalised:
        metrics["train/penalty"] = parts["penalty"]
      return state, {**metrics, **finite_flags(loss, grads, state.params)}

    return step

  def _mean_loss(self, params, role: str) -> dict[str, float]:
    x = self.data.splits[role]
    return {f"{role}/recon_loss": float(jnp.mean(self._loss(params, jnp.asarray(x))))}

  def evaluate(self, state, step):
    return self._mean_loss(state.params, "val") if "val" in self.data.splits else None

  def final_evaluation(self, state):
    out = {}
    for role in ("val", "test"):
      if role in self.data.splits:
        out.update(self._mean_loss(state.params, role))
    if self.run.linear_eval.enabled:
      out.update(linear_evaluation(self.model, state.params, self.data, self.run.linear_eval.l2))
    return out

  def save_figures(self, state, workdir):
    viz.save_curves(read_metrics(workdir), os.path.join(workdir, "curves.png"),
                    keys=(("train/recon_loss", "val/recon_loss"),))
    shape = self.data.pixel_shape or self.data.image_shape
    if len(shape) < 2 or shape[1] == 1:  # not images (e.g. a lower layer's features): curves only
      return
    W, to_pixels = np.asarray(state.params["W"]), None
    if self.data.whitener is not None:  # receptive fields in pixel space
      W = self.data.whitener.filters_to_pixels(W, "weights")
    elif self.data.standardizer is not None:
      to_pixels = Standardizer.from_dict(self.data.standardizer)
    energy_viz.save_weight_filters(W, shape, os.path.join(workdir, "filters.png"), to_pixels=to_pixels)


def make_task(config: ml_collections.ConfigDict, data: EnergyData | None = None,
              quiet: bool = False) -> AutoencoderTask:
  """Checks the config and the data against each other (before any compute) and builds the task.

  `model_kwargs.n_visible` defaults to the size of one example (e.g. the number of whitening components).

  Raises:
    ConfigError: a bad field, an unknown model, or inputs outside [0, 1] for a sigmoid decoder.
  """
  run = schema.load(AutoencoderConfig, config)
  data = prepare_data(config) if data is None else data
  kwargs = resolve.model_kwargs(config)
  kwargs.setdefault("n_visible", math.prod(data.image_shape))
  try:
    model = zoo.create(run.model, **kwargs)
  except (KeyError, ValueError, TypeError) as e:
    raise ConfigError(f"config.model / config.model_kwargs: {e}") from None
  if not isinstance(model, autoencoder_models.TiedAutoencoder):
    valid = zoo.names_of(autoencoder_models.TiedAutoencoder)
    raise ConfigError(f"config.model {run.model!r} is not an autoencoder; the autoencoders: {', '.join(valid)}")
  if model.decoder not in autoencoder_models.DECODERS:
    raise ConfigError(f"config.model_kwargs.decoder must be one of {autoencoder_models.DECODERS}, "
                      f"got {model.decoder!r}")
  if math.prod(data.image_shape) != model.n_visible:
    raise ConfigError(f"config.model_kwargs.n_visible={model.n_visible} but one example has "
                      f"{math.prod(data.image_shape)} values (shape {data.image_shape})")
  x = data.splits["train"]
  if model.decoder == "sigmoid" and (x.min() < 0.0 or x.max() > 1.0):
    raise ConfigError(f"model {run.model!r} has a sigmoid decoder (cross-entropy), which needs inputs in "
                      f"[0, 1]; the data (preprocess {run.preprocess!r}) span [{x.min():.3g}, {x.max():.3g}]: "
                      "use a linear decoder (model_kwargs.decoder='linear', e.g. model 'ae_linear')")
  return AutoencoderTask(config, run, model, data, quiet)


def run_autoencoder(config: ml_collections.ConfigDict, workdir: str, data: EnergyData | None = None,
                    quiet: bool = False) -> tuple[dict, dict]:
  """Trains the autoencoder of `config` in `workdir` (resuming if it holds a checkpoint).

  Args:
    config: an autoencoder config (`AutoencoderConfig`'s fields).
    workdir: the run's directory.
    data: the examples to train on (default: `prepare_data(config)`), e.g. a lower layer's features.
    quiet: no progress line and no closing summary.

  Returns:
    `(record, params)`: the final metrics record and the trained parameters.
  """
  return fit.fit_params(make_task(config, data, quiet), config, workdir)


def train_autoencoder(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Checks the config, reads the data and trains (`fit`); returns the final record."""
  return run_autoencoder(config, workdir)[0]
