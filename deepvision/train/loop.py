"""`train_and_evaluate(config, workdir)`: the one library call behind the launcher and the notebooks.

The trainer named by `config.trainer` runs the experiment. The supervised trainer:
  1. checks the whole config (names, fields, values, data on disk) before any compute;
  2. builds the model from the zoo, the optimiser, the input pipeline and the train state;
  3. resumes from the newest checkpoint in `workdir/checkpoints` if there is one (parameters, optimiser,
     step and the data iterator's position, so the run ends bitwise equal to an uninterrupted one);
  4. trains with a jitted pure step, logging to `metrics.jsonl` and TensorBoard, evaluating on the
     validation split, checkpointing (keep N, the final step always), with a progress line;
  5. evaluates on the test split (the last record carries `test/accuracy`) and draws the figures.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Mapping
from typing import Any

import jax
import ml_collections
import numpy as np

from deepvision import optim, parallel, zoo
from deepvision.checkpoint import read_state
from deepvision.data import datasets, pipeline
from deepvision.registry import Registry, UnknownNameError
from deepvision.train import fit, supervised, workdir as workdirs
from deepvision.train.errors import ConfigError, TrainingDivergedError, TrainingPreempted  # noqa: F401

TRAINERS: Registry[Callable[[ml_collections.ConfigDict, str], dict]] = Registry("trainer")

COMPUTE_DTYPES = ("float32", "bfloat16")
MATMUL_PRECISIONS = ("default", "high", "highest", "bfloat16", "tensorfloat32", "float32")


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Runs the experiment described by `config` in `workdir` and returns its final metrics record.

  The whole run is traced under `jax.default_matmul_precision(config.matmul_precision)` unless it is
  "default" (then XLA's platform default: exact fp32 on CPU, possibly TF32 on GPUs, bf16 passes on TPUs).
  """
  # The other trainers live in their own modules and register themselves in TRAINERS on import.
  from deepvision.train import (  # noqa: F401  pylint: disable=g-import-not-at-top
      contrastive_loop, dbn_loop)
  try:
    trainer = TRAINERS.get(config.trainer)
  except UnknownNameError as e:
    raise ConfigError(f"config.trainer: {e}") from None
  precision = config.get("matmul_precision", "default")
  if precision not in MATMUL_PRECISIONS:
    raise ConfigError(f"config.matmul_precision must be one of {', '.join(MATMUL_PRECISIONS)}, got {precision!r}")
  if precision == "default":
    return trainer(config, workdir)
  with jax.default_matmul_precision(precision):
    return trainer(config, workdir)


def run_directory(config: ml_collections.ConfigDict, workdir: str) -> str:
  """Where the run of `config` keeps its model's checkpoints (and `preprocessing.json`): `workdir`, or
  `workdir/<model_subdir>` for a trainer that trains its model in a sub-directory and then uses it (it
  names the sub-directory in its attribute `model_subdir`)."""
  subdir = getattr(TRAINERS.get(config.trainer), "model_subdir", None) if config.trainer in TRAINERS else None
  return os.path.join(workdir, subdir) if subdir else workdir


def trained_model(config: ml_collections.ConfigDict, workdir: str) -> tuple[Any, dict[str, Any]]:
  """`(module, variables)` of the run of `config` in `workdir`, from its newest verified checkpoint.

  The module is the zoo model of the config; the parameters are those the run evaluates with (the
  moving average when `ema_decay` > 0). Works for every trainer, finished or not (a trainer may keep its
  model's run in a sub-directory: `run_directory`).

  Raises:
    FileNotFoundError: no checkpoint yet. checkpoint.CheckpointCorruptedError: none verifies.
  """
  state, _ = read_state(os.path.join(run_directory(config, workdir), "checkpoints"))
  return zoo.create(config.model, **model_kwargs(config)), {"params": evaluated_params(state)}


def evaluated_params(state: Mapping[str, Any]) -> Any:
  """The parameters a run evaluates with, from its state as `read_state` returns it: the moving average
  when the run keeps one (`TrainState.eval_params`), else the parameters."""
  ema = state.get("ema_params")
  return ema if isinstance(ema, dict) and ema else state["params"]


def replicas_for(config: ml_collections.ConfigDict, global_batch: int, what: str = "batch_size"
                 ) -> parallel.Replicas:
  """The devices of `config.num_devices`, checked to split `global_batch` (`config.<what>`) evenly.

  Raises:
    ConfigError: a bad device count, or a global batch the replicas do not divide.
  """
  try:
    replicas = parallel.Replicas.from_config(config.get("num_devices", 0))
  except ValueError as e:
    raise ConfigError(f"config.num_devices: {e}") from None
  if global_batch % replicas.num_devices:
    raise ConfigError(
        f"config.{what}={global_batch} must be a multiple of the {replicas.num_devices} devices "
        f"({replicas.num_local_devices} per process × {parallel.process_count()} processes): each device "
        f"takes an equal share; set config.{what} to a multiple, or config.num_devices")
  return replicas


def model_kwargs(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """`config.model_kwargs` plus `dtype` when `config.compute_dtype` is not float32 (checked here)."""
  kwargs = dict(config.get("model_kwargs", {}))
  dtype = config.get("compute_dtype", "float32")
  if dtype not in COMPUTE_DTYPES:
    raise ConfigError(f"config.compute_dtype must be one of {', '.join(COMPUTE_DTYPES)}, got {dtype!r}")
  if dtype != "float32":
    try:
      model_fields = zoo.fields(config.model)
    except UnknownNameError as e:
      raise ConfigError(f"config.model: {e}") from None
    if model_fields is not None and "dtype" not in model_fields:
      raise ConfigError(f"config.compute_dtype={dtype!r}: model {config.model!r} has no compute dtype (only "
                        "the convnets do); use float32")
    kwargs["dtype"] = dtype
  return kwargs


# ----------------------------------------------------------------------------- supervised


def override_config(config: ml_collections.ConfigDict, overrides: Mapping[str, Any]
                    ) -> ml_collections.ConfigDict:
  """A copy of `config` with dotted fields set; unknown fields (outside model_kwargs) are an error."""
  config = ml_collections.ConfigDict(config.to_dict())
  for dotted, value in overrides.items():
    *path, leaf = dotted.split(".")
    target = config
    for part in path:
      if part not in target:
        raise ValueError(f"unknown config field {dotted!r}")
      target = target[part]
    if leaf not in target and path != ["model_kwargs"]:
      raise ValueError(f"unknown config field {dotted!r}")
    target[leaf] = value
  return config


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
  preprocess: supervised.Preprocess
  replicas: parallel.Replicas


class _Subset:
  """The first `n` examples of a fixed permutation of `source` (for overfitting checks)."""

  def __init__(self, source, n: int, seed: int = 0):
    self._source = source
    self._indices = np.random.default_rng(seed).permutation(len(source))[:n]

  def __len__(self) -> int:
    return len(self._indices)

  def __getitem__(self, i):
    return self._source[int(self._indices[i])]

  def read_batch(self, indices: np.ndarray) -> dict[str, np.ndarray]:
    return pipeline.read_batch(self._source, self._indices[indices])


def _positive_int(config, field: str, allow_zero: bool = False) -> int:
  value = config.get(field)
  low = 0 if allow_zero else 1
  if not isinstance(value, int) or isinstance(value, bool) or value < low:
    raise ConfigError(f"config.{field} must be an integer >= {low}, got {value!r}")
  return value


def plan_supervised(config: ml_collections.ConfigDict) -> Plan:
  """Checks the config and opens the data; raises ConfigError / DatasetNotFoundError before compute."""
  try:
    model = zoo.create(config.model, **model_kwargs(config))
  except (UnknownNameError, ValueError, TypeError) as e:
    raise ConfigError(f"config.model / config.model_kwargs: {e}") from None
  try:
    info = datasets.dataset_info(config.dataset, data_dir=config.get("data_dir") or None)
  except UnknownNameError as e:
    raise ConfigError(f"config.dataset: {e}") from None
  if tuple(model.input_shape) != tuple(info.image_shape or ()):
    raise ConfigError(
        f"config.model {config.model!r} expects images of shape {tuple(model.input_shape)} but "
        f"config.dataset {config.dataset!r} has {info.image_shape}")

  train_split, eval_split, test_split = (config.get(f) or None for f in
                                         ("train_split", "eval_split", "test_split"))
  if train_split is None:
    raise ConfigError("config.train_split must name a split")
  batch_size = _positive_int(config, "batch_size")
  replicas = replicas_for(config, batch_size)
  num_epochs = _positive_int(config, "num_epochs")
  subset = _positive_int(config, "train_subset", allow_zero=True)
  for field in ("log_every_steps", "eval_every_steps", "checkpoint_every_steps"):
    _positive_int(config, field, allow_zero=True)
  _positive_int(config, "keep_checkpoints")
  _positive_int(config, "seed", allow_zero=True)
  _positive_int(config, "eval_batch_size", allow_zero=True)
  if config.optimizer.get("lr_search", False):
    if config.optimizer.get("lr_search_steps", 300) < 10:
      raise ConfigError(f"config.optimizer.lr_search_steps must be >= 10, got "
                        f"{config.optimizer.lr_search_steps!r}")
    if config.optimizer.get("lr_search_subset", 512) < 0:
      raise ConfigError(f"config.optimizer.lr_search_subset must be >= 0 (0: all), got "
                        f"{config.optimizer.lr_search_subset!r}")
  if not 0.0 <= config.get("ema_decay", 0.0) < 1.0:
    raise ConfigError(
        f"config.ema_decay must be in [0, 1) (0: no moving average), got {config.ema_decay!r}")
  try:
    preprocess = supervised.Preprocess(**config.augment.to_dict())
  except (TypeError, ValueError) as e:
    raise ConfigError(f"config.augment: {e}") from None

  data_dir = config.get("data_dir") or None
  in_memory = bool(config.get("in_memory", True))

  def open_split(field: str, name: str | None):
    """The source of split `name` (TFDS expressions like 'train+validation' allowed), or None."""
    if name is None:
      return None
    try:
      return datasets.get_source(config.dataset, name, data_dir=data_dir, in_memory=in_memory)
    except ValueError as e:  # the loader names the valid splits
      raise ConfigError(f"config.{field}: {e}") from None

  train_source = open_split("train_split", train_split)
  eval_source = None if eval_split == train_split else open_split("eval_split", eval_split)
  test_source = open_split("test_split", test_split)
  if subset:
    if subset > len(train_source):
      raise ConfigError(f"config.train_subset={subset} exceeds the {len(train_source)} examples of "
                        f"{config.dataset}/{train_split}")
    train_source = _Subset(train_source, subset)
  if batch_size > len(train_source):
    raise ConfigError(f"config.batch_size={batch_size} exceeds the {len(train_source)} training examples")

  steps_per_epoch = len(train_source) // batch_size
  total_steps = steps_per_epoch * num_epochs
  try:
    optim.make_optimizer(config, total_steps)
  except (UnknownNameError, ValueError) as e:
    raise ConfigError(f"config.optimizer: {e}") from None
  if eval_split is not None and eval_split == train_split:
    eval_source = train_source  # the (subset of the) training data itself, e.g. for overfit checks
  return Plan(model, info, train_source, eval_source, test_source, steps_per_epoch, total_steps,
              preprocess, replicas)


# Fields that shape the train state or the data order: a resumed run can never change them.
RUN_IDENTITY = ("trainer", "model", "model_kwargs", "dataset", "train_split", "train_subset", "batch_size",
                "seed", "num_epochs", "ema_decay")


def _searched_learning_rate(config: ml_collections.ConfigDict, workdir: str) -> ml_collections.ConfigDict:
  """`config` with the rate found by the talk's halving search from `optimizer.learning_rate`.

  The result is kept in `workdir/lr_search.json`, so a resumed run reuses it instead of searching again.
  """
  from deepvision.diagnostics.lr_search import search_learning_rate  # pylint: disable=g-import-not-at-top
  path = os.path.join(workdir, "lr_search.json")
  start = config.optimizer.learning_rate
  saved = None
  if os.path.exists(path):
    with open(path) as f:
      saved = json.load(f)
  if saved is not None and saved.get("start") == start:
    rate = saved["learning_rate"]
  else:
    result = search_learning_rate(config, start=config.optimizer.learning_rate,
                                  steps=config.optimizer.get("lr_search_steps", 300),
                                  subset=config.optimizer.get("lr_search_subset", 512))
    print(result.format())
    if result.learning_rate is None:
      raise ConfigError(f"learning-rate search from {config.optimizer.learning_rate} found no rate that "
                        "converges:\n" + result.format())
    rate = result.learning_rate
    if parallel.is_primary():
      with open(path + ".tmp", "w") as f:
        json.dump({"start": start, "learning_rate": rate,
                   "trail": [dataclasses.asdict(t) for t in result.trail]}, f, indent=2)
      os.replace(path + ".tmp", path)
  return override_config(config, {"optimizer.learning_rate": rate})


@TRAINERS.register("supervised")
def train_supervised(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains a zoo classifier on a data set with SGD; see the module docstring for the steps."""
  plan = plan_supervised(config)
  if config.optimizer.get("lr_search", False):
    # The work dir is checked before the search writes lr_search.json into it.
    prepared = workdirs.prepare(config, workdir, RUN_IDENTITY, write=parallel.is_primary())
    config = _searched_learning_rate(config, prepared)
  replicas = plan.replicas
  sources = {role: source for role, source in (("val", plan.eval_source), ("test", plan.test_source))
             if source is not None}
  task = supervised.SupervisedTask(
      model=plan.model, input_shape=plan.info.image_shape, train_source=plan.train_source, sources=sources,
      tx=optim.make_optimizer(config, plan.total_steps),
      lr_fn=optim.learning_rate_schedule(config, plan.total_steps),
      batch_size=config.batch_size, eval_batch_size=config.get("eval_batch_size"), seed=config.seed,
      schedule=fit.default_schedule(config, plan.total_steps, plan.steps_per_epoch),
      replicas=replicas, preprocess=plan.preprocess, ema_decay=float(config.get("ema_decay", 0.0)),
      identity=RUN_IDENTITY, figures=config.get("figures", True),
      advice=(f"lower the rate (learning rate {config.optimizer.learning_rate}), or find one with "
              "--config.optimizer.lr_search=True"),
      describe=(f"{config.model}: {{params:,}} parameters; {config.dataset}: {len(plan.train_source)} "
                f"training examples, {plan.total_steps} steps of {config.batch_size}"
                + (f" over {replicas.num_devices} devices." if replicas.parallel else ".")))
  return fit.fit(task, config, workdir)[0]


evaluate = supervised.evaluate_split  # the classification evaluation, under its historical name
