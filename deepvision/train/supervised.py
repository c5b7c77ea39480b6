"""Pure train and eval steps for classifiers: softmax cross-entropy, augmentation inside the step.

`train_step(state, batch) -> (state, metrics)` has no side effects; `jax.jit` (or `jax.pmap`) is applied
by the caller. The augmentations of the talk (translation jitter, horizontal flips, additive Gaussian
noise) run inside the step on keys derived as `fold_in(state.key, state.step)`, so they cost no host
time and a resumed run draws the same numbers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from deepvision.data import augment
from deepvision.train.runner import finite_flags
from deepvision.train.state import TrainState

Batch = dict[str, jax.Array]
Metrics = dict[str, jax.Array]


@dataclasses.dataclass(frozen=True)
class Preprocess:
  """Input transformation: augmentations (training only), then per-image standardisation.

  Attributes:
    translate: maximum random shift in pixels (0: none).
    flip: random left-right flips.
    noise_std: standard deviation of additive Gaussian noise on [0, 1] pixels (0: none).
    standardize: subtract each image's mean and divide by its standard deviation.
  """

  translate: int = 0
  flip: bool = False
  noise_std: float = 0.0
  standardize: bool = True

  def __post_init__(self):
    if self.translate < 0:
      raise ValueError(f"augment.translate must be >= 0 pixels, got {self.translate!r}")
    if self.noise_std < 0:
      raise ValueError(f"augment.noise_std must be >= 0, got {self.noise_std!r}")

  def __call__(self, images: jax.Array, key: jax.Array | None = None, *, train: bool) -> jax.Array:
    if train:
      shift_key, flip_key, noise_key = jax.random.split(key, 3)
      if self.translate:
        images = augment.random_translate(shift_key, images, self.translate)
      if self.flip:
        images = augment.random_flip_left_right(flip_key, images)
      if self.noise_std:
        images = augment.gaussian_noise(noise_key, images, self.noise_std)
    if self.standardize:
      images = augment.standardize_per_image(images)
    return images


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Per-example −log softmax(logits)[label]."""
  return optax.softmax_cross_entropy_with_integer_labels(logits, labels)


def make_train_step(preprocess: Preprocess = Preprocess(),
                    learning_rate_fn: Callable[[jax.Array], jax.Array] | None = None,
                    ema_decay: float = 0.0,
                    axis_name: str | None = None
                    ) -> Callable[[TrainState, Batch], tuple[TrainState, Metrics]]:
  """Builds `train_step(state, batch) -> (state, metrics)`.

  The loss is the mean cross-entropy of the batch; weight decay lives in the optimiser.

  Args:
    preprocess: augmentation and normalisation applied inside the step.
    learning_rate_fn: the schedule, to report `learning_rate` (the rate used by this update).
    ema_decay: d of the parameters' moving average θ̄ ← d·θ̄ + (1 − d)·θ, updated when the state
      keeps one (`state.ema_params` not None).
    axis_name: for data parallelism (`deepvision.parallel`), the pmapped axis the batch is split over:
      gradients and metrics are averaged over it (`lax.pmean`) before the update, and each device draws
      from `fold_in(fold_in(state.key, state.step), axis_index)`. None: one device, unchanged.

  Returns:
    A pure function; metrics are `train/loss`, `train/accuracy`, given the schedule `learning_rate`, and the
    `finite/*` flags of `runner.guard_step`.
  """

  def train_step(state: TrainState, batch: Batch) -> tuple[TrainState, Metrics]:
    step_key = jax.random.fold_in(state.key, state.step)
    if axis_name is not None:
      step_key = jax.random.fold_in(step_key, jax.lax.axis_index(axis_name))
    augment_key, dropout_key = jax.random.split(step_key)
    images = preprocess(batch["image"], augment_key, train=True)
    labels = batch["label"]

    def loss_fn(params):
      logits, _ = state.apply_fn({"params": params}, images, train=True, rngs={"dropout": dropout_key})
      return cross_entropy(logits, labels).mean(), logits

    (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    metrics = {"train/loss": loss,
               "train/accuracy": jnp.mean(jnp.argmax(logits, -1) == labels)}
    if axis_name is not None:
      loss, grads, metrics = jax.lax.pmean((loss, grads, metrics), axis_name)
    if learning_rate_fn is not None:
      metrics["learning_rate"] = learning_rate_fn(state.step)
    state = state.apply_gradients(grads=grads)
    metrics.update(finite_flags(loss, grads, state.params))
    if state.ema_params is not None:
      state = state.replace(ema_params=jax.tree.map(
          lambda avg, p: ema_decay * avg + (1.0 - ema_decay) * p, state.ema_params, state.params))
    return state, metrics

  return train_step


def make_eval_step(preprocess: Preprocess = Preprocess()) -> Callable[[TrainState, Batch], Metrics]:
  """Builds `eval_step(state, batch) -> sums` for batches with an optional boolean `mask`.

  Returns sums (not means) of loss and correct predictions plus the example count, so padded
  final batches and several hosts aggregate exactly.
  """

  def eval_step(state: TrainState, batch: Batch) -> Metrics:
    images = preprocess(batch["image"], train=False)
    labels = batch["label"]
    mask = batch.get("mask", jnp.ones(labels.shape, bool)).astype(jnp.float32)
    logits, _ = state.apply_fn({"params": state.eval_params}, images, train=False)
    correct = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
    return {"loss_sum": jnp.sum(cross_entropy(logits, labels) * mask),
            "correct_sum": jnp.sum(correct * mask),
            "count": jnp.sum(mask)}

  return eval_step
