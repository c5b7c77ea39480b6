"""The model a run trained, read back from its work dir: for notebooks, exports and evaluations."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import ml_collections

from deepvision import zoo
from deepvision.checkpoint import read_state
from deepvision.train import loop


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
  state, _ = read_state(os.path.join(run_directory(config, workdir), "checkpoints"))
  return zoo.create(config.model, **loop.model_kwargs(config)), {"params": evaluated_params(state)}


def evaluated_params(state: Mapping[str, Any]) -> Any:
  """The parameters a run evaluates with, from its state as `read_state` returns it: the moving average
  when the run keeps one (`TrainState.eval_params`), else the parameters."""
  ema = state.get("ema_params")
  return ema if isinstance(ema, dict) and ema else state["params"]
