"""Early stopping on a validation metric, with the best checkpoint selected (`config.early_stopping`).

Every periodic evaluation's `metric` is compared with the best so far; an improvement (by more than
`min_delta`, larger for mode 'max', smaller for 'min') saves the state to `workdir/checkpoints_best`; after
`patience` evaluations without one the run stops (0: it runs to the end). Either way the final evaluation,
the figures and the run's last checkpoint are of the best state, so everything that reads the run
(`experiments.evaluate`, `export_features`, `pretrained.runs.trained_model`) sees the selected model; the
final record says which step it was (`early_stopping/best_step`, `/best`, `/stopped_at`).

The best value and the evaluations since are recomputed on resume from `metrics.jsonl` (cut back to the
resumed step), so a resumed run stops where an uninterrupted one does; a best checkpoint newer than the
resumed step is dropped (the bitwise replay saves it again).
"""

from __future__ import annotations

import math
import os
import shutil
from typing import Any

from deepvision.checkpoint import Checkpointer
from deepvision.train.errors import ConfigError

BEST_DIRECTORY = "checkpoints_best"


def selected_checkpoints(config: Any, workdir: str) -> str:
  """Where the run's selected model is saved: the best checkpoint when the run selects one, else the
  run's checkpoints."""
  best = os.path.join(workdir, BEST_DIRECTORY)
  selects = bool(config.get("early_stopping", {}).get("metric"))
  return best if selects and os.path.isdir(best) else os.path.join(workdir, "checkpoints")


class EarlyStopping:
  """The best-so-far bookkeeping of one run (see the module docstring).

  Args:
    settings: the config's `early_stopping` block (`config_blocks.EarlyStopping` fields).
    workdir: the run's directory.
    records: the run's `metrics.jsonl` records up to the resumed step.
    start: the resumed step (0 for a fresh run).
  """

  def __init__(self, settings: Any, workdir: str, records: list[dict], start: int):
    self.metric, self.mode = settings.metric, settings.mode
    self.patience, self.min_delta = int(settings.patience), float(settings.min_delta)
    self.best, self.best_step, self.since_best = math.nan, None, 0
    for record in records:
      if self.metric in record and not record.get("final"):
        self._observe(float(record[self.metric]), int(record["step"]))
    directory = os.path.join(workdir, BEST_DIRECTORY)
    self._checkpointer = Checkpointer(directory, keep=1)
    if (self._checkpointer.latest_step() or 0) > start:
      self._checkpointer.close()
      shutil.rmtree(directory)
      self._checkpointer = Checkpointer(directory, keep=1)

  def _observe(self, value: float, step: int) -> bool:
    sign = 1.0 if self.mode == "max" else -1.0
    if self.best_step is None or sign * (value - self.best) > self.min_delta:
      self.best, self.best_step, self.since_best = value, step, 0
      return True
    self.since_best += 1
    return False

  def update(self, record: dict, step: int, state: Any) -> bool:
    """Takes an evaluation `record` after `step`; returns True when the run should stop."""
    if self.metric not in record:
      raise ConfigError(f"config.early_stopping.metric {self.metric!r} is not in the run's evaluations; "
                        f"they have {', '.join(sorted(k for k in record if k != 'step'))}")
    if self._observe(float(record[self.metric]), step):
      self._checkpointer.save(state)
    return bool(self.patience) and self.since_best >= self.patience

  def best_state(self, template: Any) -> Any:
    """The state of the best evaluation, restored into `template`'s structure."""
    state, _ = self._checkpointer.restore(template, self.best_step)
    return state

  def summary(self, stopped_at: int | None) -> dict[str, float]:
    out = {"early_stopping/best": self.best, "early_stopping/best_step": self.best_step}
    if stopped_at is not None:
      out["early_stopping/stopped_at"] = stopped_at
    return out

  def close(self) -> None:
    self._checkpointer.close()
