"""The model a run trained, read back from its work dir: for notebooks, exports and evaluations.

`evaluate_run(workdir, split)` evaluates a finished run again on any split and `export_features(workdir,
split, out)` writes its model's features to `.npz`; neither touches the run's own files
(`python -m experiments.evaluate`, `python -m experiments.export_features`).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from deepvision import zoo
from deepvision.checkpoint import Checkpointer, read_state
from deepvision.data import datasets, pipeline, splits
from deepvision.data import energy as energy_data
from deepvision.schema import override_config
from deepvision.train import early_stopping, loop, supervised
from deepvision.train import workdir as workdirs
from deepvision.train.errors import ConfigError
from deepvision.train.writers import final_record


def run_directory(config: ml_collections.ConfigDict, workdir: str) -> str:
  """Where the run of `config` keeps its model's checkpoints (and `preprocessing.json`): `workdir`, or
  `workdir/<model_subdir>` for a trainer that trains its model in a sub-directory and then uses it (it
  names the sub-directory in its attribute `model_subdir`)."""
  trainer = loop.TRAINERS.get(config.trainer) if config.trainer in loop.TRAINERS else None
  subdir = getattr(trainer, "model_subdir", None)
  return os.path.join(workdir, subdir) if subdir else workdir


def trained_model(config: ml_collections.ConfigDict, workdir: str) -> tuple[Any, dict[str, Any]]:
  """`(module, variables)` of the run of `config` in `workdir`, from its newest verified checkpoint.

  The module is the zoo model of the config; the parameters are those the run evaluates with (the
  moving average when `ema_decay` > 0). Works for every trainer, finished or not (a trainer may keep its
  model's run in a sub-directory: `run_directory`).

  Raises:
    FileNotFoundError: no checkpoint yet. checkpoint.CheckpointCorruptedError: none verifies.
  """
  state, _ = read_state(early_stopping.selected_checkpoints(config, run_directory(config, workdir)))
  return zoo.create(config.model, **loop.model_kwargs(config)), {"params": evaluated_params(state)}


def evaluated_params(state: Mapping[str, Any]) -> Any:
  """The parameters a run evaluates with, from its state as `read_state` returns it: the moving average
  when the run keeps one (`TrainState.eval_params`), else the parameters."""
  ema = state.get("ema_params")
  return ema if isinstance(ema, dict) and ema else state["params"]


def read_run_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a run was started with (`workdir/config.json`).

  Raises:
    ConfigError: `workdir` holds no run.
  """
  path = os.path.join(workdir, workdirs.CONFIG_FILE)
  if not os.path.isfile(path):
    raise ConfigError(f"--workdir {workdir} holds no run (no {workdirs.CONFIG_FILE}); train one first with "
                      "python -m experiments.main --config=NAME --workdir=DIR")
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))


def _split_slug(split: str) -> str:
  return re.sub(r"[^A-Za-z0-9_.+-]+", "_", split).strip("_") or "split"


def evaluate_run(workdir: str, split: str, out: str | None = None) -> dict[str, Any]:
  """Evaluates a finished run's newest verified checkpoint on `split` with the run's own final evaluation.

  The run's task is rebuilt from its `config.json` with `test_split = split` (`loop.TASKS`), its state
  restored from the newest checkpoint that verifies, and `Task.final_evaluation` computes the metrics the
  run's final record has for its test split (accuracy and loss; log-likelihood by AIS; reconstruction
  error; linear read-out). Nothing of the run is touched: the record goes to `out` (default
  `workdir/evaluations/<split>.json`), written when complete.

  Returns:
    {'split', 'step', 'trainer', 'model', 'dataset', 'train_split', 'shared_with_training' (examples of
    `split` the run trained on: its figures are then not held-out ones), 'metrics': {name: value}} (metric
    names without the 'test/' prefix).

  Raises:
    ConfigError: no finished run in `workdir`, a trainer whose run is not one task, or a bad split.
  """
  workdir = os.path.abspath(os.path.expanduser(workdir))
  config = read_run_config(workdir)
  if final_record(workdir) is None:
    raise ConfigError(f"--workdir {workdir} holds no finished run (no final record in metrics.jsonl): "
                      "finish it first by running its training command again")
  if config.trainer not in loop.TASKS:
    raise ConfigError(f"evaluating a run of trainer {config.trainer!r} is not supported; runs of the "
                      f"trainers {', '.join(loop.TASKS.names())} can be evaluated")
  shared = _shared_with_training(config, split)
  config = override_config(config, {"test_split": split, "figures": False})
  task = loop.TASKS.get(config.trainer)(config)
  checkpointer = Checkpointer(early_stopping.selected_checkpoints(config, run_directory(config, workdir)))
  try:
    state, _ = checkpointer.restore(task.init_state())
    step = checkpointer.restored_step
  finally:
    checkpointer.close()
  metrics = {k.removeprefix("test/"): float(v) for k, v in task.final_evaluation(state).items()
             if k.startswith("test/") or not k.startswith(("val/", "train/"))}
  record = {"split": split, "step": int(step), "trainer": config.trainer, "model": config.get("model"),
            "dataset": config.dataset, "train_split": config.train_split, "shared_with_training": shared,
            "metrics": metrics}
  out = out or os.path.join(workdir, "evaluations", f"{_split_slug(split)}.json")
  _write_json(out, record)
  return record


def _shared_with_training(config: ml_collections.ConfigDict, split: str) -> int:
  """How many examples of `split` the run trained on (`data.splits.shared_examples`).

  Raises:
    ConfigError: `split` is not a split expression of the run's data set.
  """
  sizes = datasets.dataset_info(config.dataset, config.get("data_dir") or None).splits
  try:
    return splits.shared_examples(split, config.train_split, sizes)
  except ValueError as e:
    raise ConfigError(f"--split={split}: {e}; the splits of {config.dataset} are "
                      f"{', '.join(f'{k} ({v})' for k, v in sizes.items())}") from None


def export_features(workdir: str, split: str, out: str, batch_size: int = 256) -> dict[str, np.ndarray]:
  """Writes the features a run's model computes for every example of `split` to the `.npz` file `out`.

  Classifiers: every entry of the model's `intermediates` (conv / LCN / pooling maps, flattened per
  example to `features/<layer>`, '/' in names as '.') and the `logits`; energy models, autoencoders and
  sparse coders: `hidden_probs` (p(h | v), the codes) of the split as the run preprocessed it (whitened
  when the run whitens). With `labels` when the data set has them. The newest verified checkpoint is used.

  Returns:
    The arrays written.
  """
  workdir = os.path.abspath(os.path.expanduser(workdir))
  config = override_config(read_run_config(workdir), {"test_split": split, "figures": False})
  if not out.endswith(".npz"):
    raise ConfigError(f"--out {out}: the features are written as a .npz file; name one ending in .npz")
  module, variables = trained_model(config, workdir)
  arrays: dict[str, np.ndarray] = {}
  if config.trainer in ("supervised", "multitask"):  # classifiers (a multi-task one also returns its reconstruction)
    source = datasets.get_source(config.dataset, split, data_dir=config.get("data_dir") or None,
                                 in_memory=True)
    preprocess = supervised.Preprocess(**config.augment.to_dict())
    forward = jax.jit(lambda images: module.apply(variables, preprocess(images, train=False), train=False))
    chunks: dict[str, list[np.ndarray]] = {}
    labels = []
    for start in range(0, len(source), batch_size):
      batch = pipeline.read_batch(source, np.arange(start, min(start + batch_size, len(source))))
      logits, intermediates = forward(jnp.asarray(batch["image"]))
      chunks.setdefault("logits", []).append(np.asarray(logits))
      for name, value in intermediates.items():
        chunks.setdefault(f"features/{name.replace('/', '.')}", []).append(
            np.asarray(value).reshape(len(batch["image"]), -1))
      labels.append(np.asarray(batch["label"]))
    arrays = {name: np.concatenate(parts) for name, parts in chunks.items()}
    arrays["labels"] = np.concatenate(labels)
  elif config.trainer in loop.TASKS:
    data = energy_data.prepare_data(config)
    x = data.splits["test"]
    probs = jax.jit(lambda v: module.apply(variables, v, method="hidden_probs"))
    arrays["features/hidden_probs"] = np.concatenate(
        [np.asarray(probs(jnp.asarray(x[i:i + batch_size]))).reshape(len(x[i:i + batch_size]), -1)
         for i in range(0, len(x), batch_size)])
    if "test" in data.labels:
      arrays["labels"] = np.asarray(data.labels["test"])
  else:
    raise ConfigError(f"exporting features of a run of trainer {config.trainer!r} is not supported; runs of "
                      f"the trainers {', '.join(loop.TASKS.names())} can export theirs")
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  partial = out[:-len(".npz")] + ".partial.npz"
  np.savez_compressed(partial, **arrays)
  os.replace(partial, out)
  return arrays


def _write_json(path: str, record: dict) -> None:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path + ".tmp", "w") as f:
    json.dump(record, f, indent=2, sort_keys=True)
  os.replace(path + ".tmp", path)
