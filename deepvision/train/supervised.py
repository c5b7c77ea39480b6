"""Pure train and eval steps for classifiers: softmax cross-entropy, augmentation inside the step.

`train_step(state, batch) -> (state, metrics)` has no side effects; `jax.jit` (or `jax.pmap`) is applied
by the caller. The augmentations of the talk (translation jitter, horizontal flips, additive Gaussian
noise) run inside the step on keys derived as `fold_in(state.key, state.step)`, so they cost no host
time and a resumed run draws the same numbers.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from deepvision import config_blocks, distributed, optim, parallel, schema, sdlm, zoo
from deepvision.data import augment, datasets, pipeline
from deepvision.figures import viz
from deepvision.registry import UnknownNameError
from deepvision.train import activation_sparsity, fit, resolve
from deepvision.train.errors import ConfigError
from deepvision.train.runner import finite_flags
from deepvision.train.state import TrainState, create_train_state
from deepvision.train.writers import closing_summary, read_metrics

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


_CURVATURE_DRAW = 0x5D1  # fold_in tag of the curvature estimate's draw (apart from the other draws)


def _loss_gradient_and_curvature(forward, params, labels: jax.Array, key: jax.Array, curvature: str):
  """Mean cross-entropy, its gradient and one Gauss–Newton estimate (`sdlm.CURVATURES`) from one forward pass.

  `forward(params) -> (logits, features)`; 'euclidean' takes its curvature at the features, 'fisher' at the
  logits (`deepvision.sdlm`).
  """
  (logits, features), output_vjp = jax.vjp(forward, params)
  loss = cross_entropy(logits, labels).mean()
  probs = jax.nn.softmax(logits)
  loss_cotangent = (probs - jax.nn.one_hot(labels, logits.shape[-1], dtype=probs.dtype)) / logits.shape[0]
  (grads,) = output_vjp((loss_cotangent, jnp.zeros_like(features)))
  if curvature == "euclidean":
    estimate = sdlm.euclidean_diagonal_sample(
        lambda v: output_vjp((jnp.zeros_like(logits), v)), features, key)
  else:
    estimate = sdlm.fisher_diagonal_sample(lambda v: output_vjp((v, jnp.zeros_like(features))), logits, key)
  return loss, logits, grads, estimate


def step_keys(state: TrainState, axis_name: str | None = None) -> tuple[jax.Array, jax.Array, jax.Array]:
  """(step key, augmentation key, dropout key) of the update at `state.step`: `fold_in(key, step)`, then the
  device's index when data-parallel, split in two (the same draws on every resume)."""
  step_key = jax.random.fold_in(state.key, state.step)
  if axis_name is not None:
    step_key = jax.random.fold_in(step_key, jax.lax.axis_index(axis_name))
  augment_key, dropout_key = jax.random.split(step_key)
  return step_key, augment_key, dropout_key


def make_train_step(preprocess: Preprocess = Preprocess(),
                    learning_rate_fn: Callable[[jax.Array], jax.Array] | None = None,
                    ema_decay: float = 0.0,
                    axis_name: str | None = None,
                    curvature: str | None = None,
                    activation_penalty: activation_sparsity.Penalty | None = None,
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
    curvature: None, or a name in `sdlm.CURVATURES`: also estimate the diagonal Gauss–Newton matrix
      ('euclidean': of ‖f − c‖² at the model's 'features', the paper's; 'fisher': of the cross-entropy at
      the logits), one more backward pass through the same forward, and hand it to the optimiser as
      `update(..., curvature=ĥ)`: for `optimizer.name = 'sdlm'`.
    activation_penalty: None, or `penalty(intermediates) -> (value, metrics)` added to the loss
      (`activation_sparsity.make_penalty`; not with `curvature`); `train/loss` is then the sum.

  Returns:
    A pure function; metrics are `train/loss`, `train/accuracy`, given the schedule `learning_rate`, the
    `finite/*` flags of `runner.guard_step`, and the penalty's metrics.
  """
  if curvature and activation_penalty is not None:
    raise ValueError("an activation penalty cannot be combined with a curvature estimate (SDLM)")

  def train_step(state: TrainState, batch: Batch) -> tuple[TrainState, Metrics]:
    step_key, augment_key, dropout_key = step_keys(state, axis_name)
    images = preprocess(batch["image"], augment_key, train=True)
    labels = batch["label"]

    def forward(params):
      return state.apply_fn({"params": params}, images, train=True, rngs={"dropout": dropout_key})

    def loss_fn(params):
      logits, _ = forward(params)
      return cross_entropy(logits, labels).mean(), logits

    def penalised_loss_fn(params):
      logits, acts = forward(params)
      value, penalty_metrics = activation_penalty(acts)
      return cross_entropy(logits, labels).mean() + value, (logits, penalty_metrics)

    penalty_metrics = {}
    if curvature:
      def logits_and_features(params):
        logits, acts = forward(params)
        return logits, acts["features"].reshape(logits.shape[0], -1)

      loss, logits, grads, estimate = _loss_gradient_and_curvature(
          logits_and_features, state.params, labels, jax.random.fold_in(step_key, _CURVATURE_DRAW), curvature)
    elif activation_penalty is not None:
      (loss, (logits, penalty_metrics)), grads = jax.value_and_grad(penalised_loss_fn, has_aux=True)(state.params)
    else:
      (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    metrics = {"train/loss": loss,
               "train/accuracy": jnp.mean(jnp.argmax(logits, -1) == labels), **penalty_metrics}
    if axis_name is not None:
      loss, grads, metrics = jax.lax.pmean((loss, grads, metrics), axis_name)
      if curvature:
        estimate = jax.lax.pmean(estimate, axis_name)
    if learning_rate_fn is not None:
      metrics["learning_rate"] = learning_rate_fn(state.step)
    if curvature:
      updates, opt_state = state.tx.update(grads, state.opt_state, state.params, curvature=estimate)
      state = state.replace(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                            opt_state=opt_state)
    else:
      state = state.apply_gradients(grads=grads)
    metrics.update(finite_flags(loss, grads, state.params))
    return update_moving_average(state, ema_decay), metrics

  return train_step


def update_moving_average(state: TrainState, ema_decay: float) -> TrainState:
  """θ̄ ← d·θ̄ + (1 − d)·θ after an update, when the state keeps a moving average (`ema_params`)."""
  if state.ema_params is None:
    return state
  return state.replace(ema_params=jax.tree.map(
      lambda avg, p: ema_decay * avg + (1.0 - ema_decay) * p, state.ema_params, state.params))


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


# ----------------------------------------------------------------------------- the task


@dataclasses.dataclass(frozen=True)
class Plan:
  """Everything checked and resolved from the config before compute."""

  model: Any
  info: datasets.DatasetInfo
  train_source: Any
  eval_source: Any | None
  test_source: Any | None
  steps_per_epoch: int
  total_steps: int
  preprocess: Preprocess
  replicas: parallel.Replicas
  sparsity: config_blocks.ActivationSparsity | None = None


def plan_supervised(config: ml_collections.ConfigDict) -> Plan:
  """Checks the config (`config_blocks.Supervised`) and opens the data; raises ConfigError /
  DatasetNotFoundError before compute."""
  run = schema.load(config_blocks.Supervised, config)
  try:
    model = zoo.create(run.model, **resolve.model_kwargs(config))
  except (UnknownNameError, ValueError, TypeError) as e:
    raise ConfigError(f"config.model / config.model_kwargs: {e}") from None
  try:
    info = datasets.dataset_info(run.dataset, data_dir=run.data_dir or None)
  except UnknownNameError as e:
    raise ConfigError(f"config.dataset: {e}") from None
  if tuple(model.input_shape) != tuple(info.image_shape or ()):
    raise ConfigError(
        f"config.model {run.model!r} expects images of shape {tuple(model.input_shape)} but "
        f"config.dataset {run.dataset!r} has {info.image_shape}")
  train_split, eval_split, test_split = run.train_split or None, run.eval_split or None, run.test_split or None
  if train_split is None:
    raise ConfigError("config.train_split must name a split")
  replicas = resolve.replicas_for(config, run.batch_size)
  preprocess = Preprocess(**dataclasses.asdict(run.augment))

  def open_split(field: str, name: str | None):
    """The source of split `name` (TFDS expressions like 'train+validation' allowed), or None."""
    if name is None:
      return None
    try:
      return datasets.get_source(run.dataset, name, data_dir=run.data_dir or None, in_memory=run.in_memory)
    except ValueError as e:  # the loader names the valid splits
      raise ConfigError(f"config.{field}: {e}") from None

  train_source = open_split("train_split", train_split)
  eval_source = None if eval_split == train_split else open_split("eval_split", eval_split)
  test_source = open_split("test_split", test_split)
  if run.train_subset:
    if run.train_subset > len(train_source):
      raise ConfigError(f"config.train_subset={run.train_subset} exceeds the {len(train_source)} examples of "
                        f"{run.dataset}/{train_split}")
    # The first n examples of a fixed permutation (the overfitting check's subset).
    permutation = np.random.default_rng(0).permutation(len(train_source))
    train_source = pipeline.Selection(train_source, permutation[:run.train_subset])
  if run.batch_size > len(train_source):
    raise ConfigError(f"config.batch_size={run.batch_size} exceeds the {len(train_source)} training examples")
  steps_per_epoch = len(train_source) // run.batch_size
  total_steps = steps_per_epoch * run.num_epochs
  try:
    optim.make_optimizer(config, total_steps)
  except (UnknownNameError, ValueError) as e:
    raise ConfigError(f"config.optimizer: {e}") from None
  if eval_split is not None and eval_split == train_split:
    eval_source = train_source  # the (subset of the) training data itself, e.g. for overfit checks
  sparsity = run.activation_sparsity
  if sparsity.weight and optim.curvature_of(config):
    raise ConfigError(f"config.activation_sparsity.weight={sparsity.weight} cannot be combined with "
                      f"config.optimizer.name={run.optimizer.name!r} (its curvature estimate); use sgd")
  activation_sparsity.check_stages(model, run.model, sparsity)
  return Plan(model, info, train_source, eval_source, test_source, steps_per_epoch, total_steps,
              preprocess, replicas, sparsity if sparsity.weight else None)


def evaluate_split(eval_step, state: TrainState, source, batch_size: int, prefix: str) -> dict[str, float]:
  """Mean loss and accuracy of `state` over a whole split, as `{prefix}/loss`, `{prefix}/accuracy`."""
  state = jax.device_put(state)  # host copies (from a data-parallel run) go to the device once, not per batch
  totals = None
  for batch in pipeline.eval_batches(source, batch_size):
    sums = eval_step(state, batch)
    totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
  totals = jax.device_get(totals)
  count = float(totals["count"])
  return {f"{prefix}/loss": float(totals["loss_sum"]) / count,
          f"{prefix}/accuracy": float(totals["correct_sum"]) / count}


def first_conv_kernel(params) -> np.ndarray | None:
  """The first 4-D kernel in parameter order (the first convolution), or None."""
  for path, leaf in jax.tree_util.tree_leaves_with_path(params):
    if leaf.ndim == 4 and "kernel" in jax.tree_util.keystr(path):
      return np.asarray(leaf)
  return None


class SupervisedTask(fit.Task):
  """A classifier trained with softmax cross-entropy on `train_source`, validated and tested on splits.

  Args:
    model: a Linen classifier taking `(x, train=...)` and returning `(logits, intermediates)`.
    input_shape: one example's shape.
    train_source: the training examples (`{"image", "label"}` records).
    sources: evaluation splits by role ('val', 'test'); either may be missing.
    tx, lr_fn: the optimiser and its schedule.
    batch_size, eval_batch_size, seed: as in the config.
    schedule: when to log, evaluate, save (evaluations every `schedule.eval_every` steps and at the end).
    replicas: the devices.
    preprocess: augmentation and normalisation inside the step.
    ema_decay: the parameters' moving average (0: none).
    init_params: `init_params(initial) -> params` to start from instead of the model's initialisation
      (e.g. a pretrained stack).
    identity: the config fields a resumed run cannot change.
    advice: appended to the divergence error.
    final_roles: the splits evaluated at the end ('test', or 'val' and 'test').
    curvature: the Gauss–Newton estimate the optimiser takes each step (`optim.curvature_of`), or None.
    activation_penalty: the hidden units' sparsity penalty (`activation_sparsity.make_penalty`), or None.
    describe: the opening line's text, `{params}` standing for the parameter count (None: neither an
      opening line nor a closing summary, as for a stage of a larger pipeline).
  """

  progress_keys = ("train/loss", "train/accuracy")

  def __init__(self, *, model, input_shape, train_source, sources, tx, lr_fn, batch_size: int,
               eval_batch_size: int, seed: int, schedule: fit.Schedule, replicas: parallel.Replicas,
               preprocess: Preprocess, ema_decay: float = 0.0, init_params=None,
               identity: tuple[str, ...] = (), advice: str = "", final_roles: tuple[str, ...] = ("test",),
               describe: str | None = None, quiet: bool = False, figures: bool = True,
               curvature: str | None = None, activation_penalty: activation_sparsity.Penalty | None = None):
    self.model, self.input_shape, self.train_source, self.sources = model, input_shape, train_source, sources
    self.tx, self.lr_fn, self.batch_size, self.seed = tx, lr_fn, batch_size, seed
    self.eval_batch_size = eval_batch_size or batch_size
    self.schedule, self.replicas, self.preprocess, self.ema_decay = schedule, replicas, preprocess, ema_decay
    self.init_params, self.identity, self.advice = init_params, identity, advice
    self.final_roles, self.describe, self.quiet, self.figures = final_roles, describe, quiet, figures
    self.curvature, self.activation_penalty = curvature, activation_penalty
    self._eval_step = jax.jit(make_eval_step(preprocess))

  def init_state(self) -> TrainState:
    create = lambda key: create_train_state(self.model, self.tx, key, self.input_shape,
                                            ema=self.ema_decay > 0)
    # Jitted: one compilation instead of one per initialiser op (eagerly, LeNet-5's five truncated-normal
    # draws alone compile for seconds); the same numbers, bit for bit.
    state = jax.jit(create)(jax.random.key(self.seed))
    if self.init_params is not None:
      params = self.init_params(state.params)
      state = state.replace(params=params, opt_state=jax.jit(self.tx.init)(params))
    return state

  def train_batches(self):
    return pipeline.train_batches(self.train_source, self.batch_size, seed=self.seed,
                                  shard=(distributed.process_index(), distributed.process_count()))

  def make_step(self, axis_name):
    return make_train_step(self.preprocess, self.lr_fn, self.ema_decay, axis_name=axis_name,
                           curvature=self.curvature, activation_penalty=self.activation_penalty)

  def began(self, workdir, state, start):
    if self.describe and not self.quiet and distributed.is_primary():
      print(self.describe.format(params=sum(np.size(x) for x in jax.tree.leaves(state.params))))

  def evaluate(self, state, step):
    if "val" not in self.sources:
      return None
    return evaluate_split(self._eval_step, state, self.sources["val"], self.eval_batch_size, "val")

  def final_evaluation(self, state):
    out = {}
    for role in self.final_roles:
      if role in self.sources:
        out.update(evaluate_split(self._eval_step, state, self.sources[role], self.eval_batch_size, role))
    return out

  def save_figures(self, state, workdir):
    if not self.figures:
      return
    viz.save_curves(read_metrics(workdir), os.path.join(workdir, "curves.png"))
    kernel = first_conv_kernel(state.params)
    if kernel is not None:
      viz.save_conv_filters(kernel, os.path.join(workdir, "filters.png"))

  def finished(self, workdir, record, state):
    if self.describe is None:
      return
    print(closing_summary(workdir, record))
