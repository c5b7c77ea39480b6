"""The `autoencoder` task: a denoising autoencoder trained by SGD on the reconstruction of clean inputs.

The step corrupts each batch with masking noise drawn from `fold_in(key, step)` and descends the mean
cross-entropy of `models.autoencoder`; evaluations report the validation reconstruction loss, the end
also the test loss and the linear read-out of the features (`energy_metrics.linear_evaluation`).
"""

from __future__ import annotations

import dataclasses
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from deepvision import config_blocks, distributed, optim, schema, zoo
from deepvision.data import datasets, pipeline
from deepvision.data.energy import EnergyData, prepare_data
from deepvision.errors import ConfigError
from deepvision.estimators.energy_metrics import linear_evaluation
from deepvision.figures import energy_viz, viz
from deepvision.models.autoencoder import corrupt
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
  preprocess: str = spec("none", schema.one_of(("none", "binarize")), "inputs must lie in [0, 1]")
  patches: config_blocks.Patches = spec(config_blocks.Patches())
  corruption: float = spec(0.25, real(0.0, 1.0, high_open=True), "probability of zeroing an input")
  optimizer: config_blocks.Optimizer = spec(config_blocks.Optimizer(learning_rate=0.1, weight_decay=0.0))
  linear_eval: config_blocks.LinearEval = spec(config_blocks.LinearEval())


class AutoencoderTask(fit.Task):
  """Trains `model` on `data.splits['train']`; see the module docstring."""

  identity = ("trainer", "model", "model_kwargs", "dataset", "train_split", "preprocess", "batch_size", "seed",
              "num_epochs", "corruption")
  progress_keys = ("train/recon_loss",)

  def __init__(self, config: ml_collections.ConfigDict, run: AutoencoderConfig, model, data: EnergyData):
    self.config, self.run, self.model, self.data = config, run, model, data
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
    rate = self.run.corruption

    def step(state: TrainState, batch):
      key = jax.random.fold_in(state.key, state.step)
      if axis_name is not None:
        key = jax.random.fold_in(key, jax.lax.axis_index(axis_name))
      x = batch["image"]
      noisy = corrupt(key, x, rate)

      def loss_fn(params):
        return state.apply_fn({"params": params}, x, noisy, method="reconstruction_loss").mean()

      loss, grads = jax.value_and_grad(loss_fn)(state.params)
      if axis_name is not None:
        loss, grads = jax.lax.pmean((loss, grads), axis_name)
      state = state.apply_gradients(grads=grads)
      return state, {"train/recon_loss": loss, **finite_flags(loss, grads, state.params)}

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
    energy_viz.save_weight_filters(np.asarray(state.params["W"]), self.data.image_shape,
                                   os.path.join(workdir, "filters.png"))


def train_autoencoder(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Checks the config, reads the data and trains (`fit`); returns the final record."""
  run = schema.load(AutoencoderConfig, config)
  try:
    model = zoo.create(run.model, **resolve.model_kwargs(config))
  except (KeyError, ValueError, TypeError) as e:
    raise ConfigError(f"config.model / config.model_kwargs: {e}") from None
  return fit.fit(AutoencoderTask(config, run, model, prepare_data(config)), config, workdir)[0]
