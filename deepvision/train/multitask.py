r"""Multi-task learning with an unsupervised task: few labels, many unlabelled images, one network.

A classifier with a reconstruction head (`models.multitask.ReconstructionNet`, e.g. the zoo's
`lcn_convnet_digits_recon`) trains on the first N examples of a seeded selection of the training split
(`select_labelled`: balanced per class by default) and on every training image without its label. Each step
sees a labelled mini-batch L (`batch_size` examples of the N) and an unlabelled mini-batch U
(`unlabelled_batch_size` images of the whole split) and minimises

  loss = mean_{x ∈ L} CE(f(x), y) + λ · mean_{x ∈ L ∪ U} ‖x̂(x) − x‖² / (H·W·C),

λ = `reconstruction_weight` (0: the classifier alone on its N labels, the ablation's "without"; the
unlabelled forward pass is then skipped). The reconstruction target is the image as the network sees it
(after `augment`). The labelled forward pass draws its augmentation and dropout exactly as the supervised
step does (`supervised.make_train_step`), so with λ = 0 the two steps update the classifier identically;
the unlabelled pass draws from `fold_in(step key, 0x0A1)`. An epoch is one pass over the unlabelled images
(`len(train) // unlabelled_batch_size` steps); the labelled batches cycle through the N examples, reshuffled
each of their own epochs. Validation and test are the supervised task's (`val/accuracy`, `test/accuracy`).

This is the supervised task with another data path and loss (`MultitaskTask` extends `SupervisedTask`): the
state, evaluation, figures and checkpoints are the supervised ones.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from deepvision import config_blocks, distributed, optim, schema
from deepvision.data import pipeline
from deepvision.models.multitask import reconstruction_error
from deepvision.schema import at_least, boolean, real, spec, text
from deepvision.train import activation_sparsity, fit, supervised
from deepvision.train.errors import ConfigError
from deepvision.train.runner import finite_flags
from deepvision.train.state import TrainState

Batch = dict[str, jax.Array]
Metrics = dict[str, jax.Array]
_UNLABELLED_DRAW = 0x0A1  # fold_in tag of the unlabelled pass's augmentation and dropout

# Fields that shape the state or the data order: a resumed run cannot change them.
IDENTITY = ("trainer", "model", "model_kwargs", "dataset", "train_split", "batch_size", "seed", "num_epochs",
            "ema_decay", "num_labelled", "balanced", "unlabelled_batch_size")


@dataclasses.dataclass(frozen=True)
class MultitaskConfig(config_blocks.Supervised):
  """A classifier with a reconstruction head on N labelled and all unlabelled training images."""

  trainer: str = spec("multitask", text)
  model: str = spec("lcn_convnet_digits_recon", text)
  num_labelled: int = spec(100, at_least(1), "N: labelled examples, the first N of a seeded selection")
  balanced: bool = spec(True, boolean, "N // K per class (the first N mod K classes one more)")
  unlabelled_batch_size: int = spec(32, at_least(1), "unlabelled images per step (all of train_split)")
  reconstruction_weight: float = spec(1.0, real(0.0), "λ; 0 = the classifier alone on its N labels")

  def __post_init__(self):
    if self.train_subset:
      raise ValueError(f"train_subset={self.train_subset} does not apply: num_labelled chooses the labelled "
                       "examples and every training image is used unlabelled")


def select_labelled(labels: np.ndarray, n: int, seed: int, balanced: bool = True,
                    num_classes: int | None = None) -> np.ndarray:
  """The indices of the N labelled examples: the first ones of a permutation drawn with `seed`.

  Balanced: walking the permutation, an example is taken while its class has fewer than N // K (the first
  N mod K classes: N // K + 1) of the K classes. The same labels, N and seed give the same indices.

  Raises:
    ValueError: N exceeds the examples, or (balanced) a class has too few examples.
  """
  labels = np.asarray(labels)
  if not 1 <= n <= len(labels):
    raise ValueError(f"num_labelled={n} must be in [1, {len(labels)}] (the training examples)")
  order = np.random.default_rng(seed).permutation(len(labels))
  if not balanced:
    return order[:n]
  k = int(num_classes or labels.max() + 1)
  quota = np.full(k, n // k) + (np.arange(k) < n % k)
  have = np.bincount(labels, minlength=k)
  short = [c for c in range(k) if have[c] < quota[c]]
  if short:
    raise ValueError(f"num_labelled={n} balanced needs {quota.max()} examples of each class; classes {short} "
                     f"have {[int(have[c]) for c in short]}")
  taken, chosen = np.zeros(k, int), []
  for i in order:
    if taken[labels[i]] < quota[labels[i]]:
      taken[labels[i]] += 1
      chosen.append(i)
      if len(chosen) == n:
        break
  return np.asarray(chosen)


class PairedBatches:
  """`{'image', 'label'}` from the labelled iterator and `'unlabelled'` images from the other, resumable."""

  def __init__(self, labelled: pipeline.BatchIterator, unlabelled: pipeline.BatchIterator | None):
    self.labelled, self.unlabelled = labelled, unlabelled

  def __iter__(self):
    return self

  def __next__(self) -> dict[str, np.ndarray]:
    batch = next(self.labelled)
    if self.unlabelled is not None:
      batch = {**batch, "unlabelled": next(self.unlabelled)["image"]}
    return batch

  def get_state(self) -> dict:
    return {"labelled": self.labelled.get_state(),
            "unlabelled": None if self.unlabelled is None else self.unlabelled.get_state()}

  def set_state(self, state: dict) -> None:
    self.labelled.set_state(state["labelled"])
    if self.unlabelled is not None:
      self.unlabelled.set_state(state["unlabelled"])


def make_train_step(preprocess: supervised.Preprocess, learning_rate_fn: Callable | None,
                    reconstruction_weight: float, ema_decay: float = 0.0, axis_name: str | None = None,
                    activation_penalty: activation_sparsity.Penalty | None = None,
                    ) -> Callable[[TrainState, Batch], tuple[TrainState, Metrics]]:
  """Builds `train_step(state, batch) -> (state, metrics)` of the multi-task loss (module docstring).

  `batch` holds 'image' and 'label' (labelled) and, when λ > 0, 'unlabelled' images. Metrics:
  `train/loss` (the whole loss), `train/cross_entropy`, `train/reconstruction` (the mean squared error, when
  λ > 0), `train/accuracy` (labelled), `learning_rate`, the `finite/*` flags and the penalty's metrics.
  """
  weight = float(reconstruction_weight)

  def train_step(state: TrainState, batch: Batch) -> tuple[TrainState, Metrics]:
    step_key, augment_key, dropout_key = supervised.step_keys(state, axis_name)
    images = preprocess(batch["image"], augment_key, train=True)
    labels = batch["label"]
    if weight:
      unlabelled_augment, unlabelled_dropout = jax.random.split(jax.random.fold_in(step_key, _UNLABELLED_DRAW))
      unlabelled = preprocess(batch["unlabelled"], unlabelled_augment, train=True)

    def loss_fn(params):
      logits, acts = state.apply_fn({"params": params}, images, train=True, rngs={"dropout": dropout_key})
      ce = supervised.cross_entropy(logits, labels).mean()
      loss, aux = ce, {"train/cross_entropy": ce}
      if weight:
        _, unlabelled_acts = state.apply_fn({"params": params}, unlabelled, train=True,
                                            rngs={"dropout": unlabelled_dropout})
        mse = reconstruction_error(
            jnp.concatenate([acts["reconstruction"], unlabelled_acts["reconstruction"]]),
            jnp.concatenate([images, unlabelled]))
        loss, aux["train/reconstruction"] = loss + weight * mse, mse
      if activation_penalty is not None:
        value, penalty_metrics = activation_penalty(acts)
        loss = loss + value
        aux.update(penalty_metrics)
      return loss, (logits, aux)

    (loss, (logits, aux)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    metrics = {"train/loss": loss, "train/accuracy": jnp.mean(jnp.argmax(logits, -1) == labels), **aux}
    if axis_name is not None:
      loss, grads, metrics = jax.lax.pmean((loss, grads, metrics), axis_name)
    if learning_rate_fn is not None:
      metrics["learning_rate"] = learning_rate_fn(state.step)
    state = state.apply_gradients(grads=grads)
    metrics.update(finite_flags(loss, grads, state.params))
    return supervised.update_moving_average(state, ema_decay), metrics

  return train_step


class MultitaskTask(supervised.SupervisedTask):
  """`SupervisedTask` on the labelled selection, with unlabelled batches and the multi-task loss."""

  progress_keys = ("train/loss", "train/accuracy", "train/reconstruction")

  def __init__(self, *, unlabelled_source, unlabelled_batch_size: int, reconstruction_weight: float, **kwargs):
    super().__init__(**kwargs)
    self.unlabelled_source, self.unlabelled_batch_size = unlabelled_source, unlabelled_batch_size
    self.reconstruction_weight = reconstruction_weight

  def train_batches(self):
    shard = (distributed.process_index(), distributed.process_count())
    labelled = pipeline.train_batches(self.train_source, self.batch_size, seed=self.seed, shard=shard)
    unlabelled = None
    if self.reconstruction_weight:
      unlabelled = pipeline.train_batches(self.unlabelled_source, self.unlabelled_batch_size,
                                          seed=self.seed + 1, shard=shard)
    return PairedBatches(labelled, unlabelled)

  def make_step(self, axis_name):
    return make_train_step(self.preprocess, self.lr_fn, self.reconstruction_weight, self.ema_decay,
                           axis_name=axis_name, activation_penalty=self.activation_penalty)


def make_task(config: ml_collections.ConfigDict, quiet: bool = False) -> MultitaskTask:
  """The multi-task `fit.Task` of `config`: the config checked and the data opened before any compute.

  Raises:
    ConfigError: a bad field (named), a model without a reconstruction head while λ > 0, too few
      examples for N or for a batch.
  """
  run = schema.load(MultitaskConfig, config)
  plan = supervised.plan_supervised(config)
  try:
    maps = activation_sparsity.intermediate_names(plan.model)  # shapes only: a bad stage fails here
  except ValueError as e:
    raise ConfigError(f"config.model_kwargs: {e}") from None
  if run.reconstruction_weight and "reconstruction" not in maps:
    raise ConfigError(f"config.model {run.model!r} has no reconstruction head (no 'reconstruction' map) but "
                      f"config.reconstruction_weight={run.reconstruction_weight}; use a '_recon' model of the zoo")
  unlabelled = plan.train_source
  labels = pipeline.read_batch(unlabelled, np.arange(len(unlabelled)))["label"]
  try:
    indices = select_labelled(labels, run.num_labelled, run.seed, run.balanced, plan.info.num_classes)
  except ValueError as e:
    raise ConfigError(f"config.num_labelled: {e}") from None
  if run.batch_size > run.num_labelled:
    raise ConfigError(f"config.batch_size={run.batch_size} (labelled examples per step) exceeds "
                      f"config.num_labelled={run.num_labelled}")
  if plan.replicas.parallel and run.unlabelled_batch_size % plan.replicas.num_devices:
    raise ConfigError(f"config.unlabelled_batch_size={run.unlabelled_batch_size} must be a multiple of the "
                      f"{plan.replicas.num_devices} devices")
  if run.unlabelled_batch_size > len(unlabelled):
    raise ConfigError(f"config.unlabelled_batch_size={run.unlabelled_batch_size} exceeds the {len(unlabelled)} "
                      "training images")
  steps_per_epoch = len(unlabelled) // run.unlabelled_batch_size
  total_steps = steps_per_epoch * run.num_epochs
  sources = {role: source for role, source in (("val", plan.eval_source), ("test", plan.test_source))
             if source is not None}
  return MultitaskTask(
      unlabelled_source=unlabelled, unlabelled_batch_size=run.unlabelled_batch_size,
      reconstruction_weight=run.reconstruction_weight,
      model=plan.model, input_shape=plan.info.image_shape,
      train_source=pipeline.Selection(unlabelled, indices),
      sources=sources, tx=optim.make_optimizer(config, total_steps),
      lr_fn=optim.learning_rate_schedule(config, total_steps), batch_size=run.batch_size,
      eval_batch_size=run.eval_batch_size, seed=run.seed,
      schedule=fit.default_schedule(config, total_steps, steps_per_epoch), replicas=plan.replicas,
      preprocess=plan.preprocess, ema_decay=run.ema_decay, identity=IDENTITY, figures=run.figures, quiet=quiet,
      activation_penalty=activation_sparsity.make_penalty(plan.sparsity),
      advice=f"lower the rate (learning rate {run.optimizer.learning_rate}) or the reconstruction_weight",
      describe=None if quiet else (
          f"{run.model}: {{params:,}} parameters; {run.dataset}: {run.num_labelled} labelled of "
          f"{len(unlabelled)} training images, λ = {run.reconstruction_weight:g}, {total_steps} steps of "
          f"{run.batch_size} labelled + {run.unlabelled_batch_size if run.reconstruction_weight else 0} unlabelled."))


def train_multitask(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains the classifier with its reconstruction task (module docstring); returns the final record."""
  return fit.fit(make_task(config), config, workdir)[0]
