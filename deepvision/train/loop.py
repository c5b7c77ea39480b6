"""`train_and_evaluate(config, workdir)`: the one library call behind the launcher and the notebooks.

The trainer named by `config.trainer` (`TRAINERS`) runs the experiment; the supervised trainer is here.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable

import jax
import ml_collections

from deepvision import config_blocks, distributed, optim, schema
from deepvision.registry import Registry, UnknownNameError
from deepvision.schema import override_config
from deepvision.train import (
  activation_sparsity,
  autoencoder,
  contrastive_loop,
  fit,
  kmeans,
  multitask,
  sparse_coding,
  supervised,
)
from deepvision.train import workdir as workdirs
from deepvision.train.errors import (  # noqa: F401
  ConfigError,
  TrainingDivergedError,
  TrainingPreempted,
)
from deepvision.train.lr_search import search_learning_rate
from deepvision.train.resolve import model_kwargs, replicas_for  # noqa: F401
from deepvision.train.supervised import Plan, plan_supervised

TRAINERS: Registry[Callable[[ml_collections.ConfigDict, str], dict]] = Registry("trainer")


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Runs the experiment described by `config` in `workdir` and returns its final metrics record.

  The whole run is traced under `jax.default_matmul_precision(config.matmul_precision)` unless it is
  "default" (then XLA's platform default: exact fp32 on CPU, possibly TF32 on GPUs, bf16 passes on TPUs).
  """
  try:
    trainer = TRAINERS.get(config.trainer)
  except UnknownNameError as e:
    raise ConfigError(f"config.trainer: {e}") from None
  precision = schema.load(config_blocks.Run, config).matmul_precision  # the fields every trainer has
  if precision == "default":
    return trainer(config, workdir)
  with jax.default_matmul_precision(precision):
    return trainer(config, workdir)


# ----------------------------------------------------------------------------- supervised


# Fields that shape the train state or the data order: a resumed run can never change them.
RUN_IDENTITY = ("trainer", "model", "model_kwargs", "dataset", "train_split", "train_subset", "batch_size",
                "seed", "num_epochs", "ema_decay")


def _searched_learning_rate(config: ml_collections.ConfigDict, workdir: str) -> ml_collections.ConfigDict:
  """`config` with the rate found by the talk's halving search from `optimizer.learning_rate`.

  The result is kept in `workdir/lr_search.json`, so a resumed run reuses it instead of searching again.
  """
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
    if distributed.is_primary():
      with open(path + ".tmp", "w") as f:
        json.dump({"start": start, "learning_rate": rate,
                   "trail": [dataclasses.asdict(t) for t in result.trail]}, f, indent=2)
      os.replace(path + ".tmp", path)
  return override_config(config, {"optimizer.learning_rate": rate})


def supervised_task(config: ml_collections.ConfigDict, trained: ml_collections.ConfigDict | None = None,
                    quiet: bool = False, plan: Plan | None = None) -> supervised.SupervisedTask:
  """The supervised `fit.Task` of `config` (data opened, config checked, unless `plan` is given); `trained`
  is the config whose optimiser trains it (default `config`; the rate search may change the rate)."""
  plan = plan or plan_supervised(config)
  trained = trained or config
  replicas = plan.replicas
  sources = {role: source for role, source in (("val", plan.eval_source), ("test", plan.test_source))
             if source is not None}
  return supervised.SupervisedTask(
      model=plan.model, input_shape=plan.info.image_shape, train_source=plan.train_source, sources=sources,
      tx=optim.make_optimizer(trained, plan.total_steps),
      lr_fn=optim.learning_rate_schedule(trained, plan.total_steps),
      batch_size=config.batch_size, eval_batch_size=config.get("eval_batch_size"), seed=config.seed,
      schedule=fit.default_schedule(config, plan.total_steps, plan.steps_per_epoch),
      replicas=replicas, preprocess=plan.preprocess, ema_decay=float(config.get("ema_decay", 0.0)),
      identity=RUN_IDENTITY, figures=config.get("figures", True), quiet=quiet,
      curvature=optim.curvature_of(trained),
      activation_penalty=activation_sparsity.make_penalty(plan.sparsity),
      advice=(f"lower the rate (learning rate {trained.optimizer.learning_rate}), or find one with "
              "--config.optimizer.lr_search=True"),
      describe=None if quiet else (
          f"{config.model}: {{params:,}} parameters; {config.dataset}: {len(plan.train_source)} "
          f"training examples, {plan.total_steps} steps of {config.batch_size}"
          + (f" over {replicas.num_devices} devices." if replicas.parallel else ".")))


@TRAINERS.register("supervised")
def train_supervised(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains a zoo classifier on a data set with SGD: checks the config and opens the data before any
  compute, finds the rate by the talk's halving search when `optimizer.lr_search`, then `fit`s."""
  plan = plan_supervised(config)  # the config and the data are checked before the search writes anything
  trained = config  # the config as requested is the run's (config.json); the optimiser may use a searched rate
  if config.optimizer.get("lr_search", False):
    prepared = workdirs.prepare(config, workdir, RUN_IDENTITY, write=distributed.is_primary())
    trained = _searched_learning_rate(config, prepared)
  return fit.fit(supervised_task(config, trained, plan=plan), config, workdir)[0]


TRAINERS.register("contrastive")(contrastive_loop.train_contrastive)
TRAINERS.register("autoencoder")(autoencoder.train_autoencoder)
TRAINERS.register("sparse_coding")(sparse_coding.train_sparse_coding)
TRAINERS.register("kmeans")(kmeans.train_kmeans)
TRAINERS.register("multitask")(multitask.train_multitask)

# The trainers whose whole run is one `fit.Task`, by name: `task(config)` rebuilds a run's task (quiet) to
# evaluate its checkpoint again (`deepvision.pretrained.runs.evaluate_run`).
TASKS: Registry[Callable[[ml_collections.ConfigDict], fit.Task]] = Registry("task")
TASKS.register("supervised")(lambda config: supervised_task(config, quiet=True))
TASKS.register("contrastive")(lambda config: contrastive_loop.ContrastiveTask(
    contrastive_loop.plan_contrastive(config, None), config, True))
TASKS.register("autoencoder")(lambda config: autoencoder.make_task(config, None, True))
TASKS.register("sparse_coding")(sparse_coding.build_task)
TASKS.register("kmeans")(lambda config: kmeans.build_task(config, quiet=True))
TASKS.register("multitask")(lambda config: multitask.make_task(config, quiet=True))
