"""Where a run reports: `metrics.jsonl`, TensorBoard event files, and a progress line with steps/s and ETA."""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

import numpy as np

METRICS_FILE = "metrics.jsonl"


def _to_python(value: Any) -> Any:
  arr = np.asarray(value)
  if arr.ndim == 0:
    return arr.item()
  return arr.tolist()


def read_metrics(workdir: str) -> list[dict]:
  """All records of `workdir/metrics.jsonl`, in order (empty if there is none)."""
  path = os.path.join(workdir, METRICS_FILE)
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def final_record(workdir: str) -> dict | None:
  """The final record (`"final": true`) when it is the last of `workdir/metrics.jsonl`, else None."""
  records = read_metrics(workdir)
  return records[-1] if records and records[-1].get("final") else None


class MetricsWriter:
  """Appends one JSON object per call to `metrics.jsonl` (always with "step") and mirrors scalars to TensorBoard.

  Args:
    workdir: the run's directory.
    resume_step: when resuming from a checkpoint at this step, records written after it by the
      interrupted run are dropped first, so the file describes exactly one run.
    tensorboard: also write TensorBoard event files into `workdir`.
    enabled: False makes `write` only return its records (the processes other than process 0 of a
      multi-process run, which all compute the same records).

  Attributes:
    last: the record most recently written (None before any).
  """

  def __init__(self, workdir: str, resume_step: int | None = None, tensorboard: bool = True,
               enabled: bool = True):
    self.path = os.path.join(workdir, METRICS_FILE)
    self.enabled = enabled
    self.last: dict | None = None
    self._tb = None
    if not enabled:
      return
    os.makedirs(workdir, exist_ok=True)
    records = read_metrics(workdir)
    if resume_step is None:
      records = []
    else:
      records = [r for r in records if r["step"] <= resume_step]
    tmp = self.path + ".tmp"
    with open(tmp, "w") as f:
      f.writelines(json.dumps(r) + "\n" for r in records)
    os.replace(tmp, self.path)
    if tensorboard:
      self._tb = _summary_writer_class()(logdir=workdir, flush_secs=30)

  def write(self, step: int, metrics: Mapping[str, Any]) -> dict:
    """Writes one record and returns it (values converted to Python numbers)."""
    record = {"step": int(step), **{k: _to_python(v) for k, v in metrics.items()}}
    self.last = record
    if not self.enabled:
      return record
    with open(self.path, "a") as f:
      f.write(json.dumps(record) + "\n")
    if self._tb is not None:
      for key, value in record.items():
        if (key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value)):
          self._tb.add_scalar(key, value, global_step=step)
    return record

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()


def _summary_writer_class():
  """tensorboardX's `SummaryWriter`, imported without PyTorch.

  tensorboardX's writer module imports PyTorch whenever it is installed (seconds of start-up, for a
  writer that gets only Python numbers here); unless the process has imported PyTorch already, the import
  is made to fail for that moment, and tensorboardX falls back to NumPy.
  """
  if "torch" in sys.modules:
    from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
    return SummaryWriter
  sys.modules["torch"] = None  # `import torch` raises ImportError while this is set
  try:
    from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
  finally:
    del sys.modules["torch"]
  return SummaryWriter


def closing_summary(workdir: str, record: Mapping[str, Any], keys: Sequence[str] | None = None) -> str:
  """The lines a finished run prints: its final metrics (`keys`, default all but 'step' / 'final', four
  significant digits) and where its metrics (with the TensorBoard command), checkpoints and figures are."""
  shown = [k for k in (keys if keys is not None else record) if k in record and k not in ("step", "final")]
  lines = ["Done: " + ", ".join(f"{k} {float(record[k]):.4g}" for k in shown)]
  metrics, names = os.path.join(workdir, METRICS_FILE), sorted(os.listdir(workdir))
  events = any(name.startswith("events.out.tfevents") for name in names)
  lines.append(f"  metrics     {metrics}" + (f" (TensorBoard: tensorboard --logdir {workdir})" if events else ""))
  if os.path.isdir(os.path.join(workdir, "checkpoints")):
    lines.append(f"  checkpoints {os.path.join(workdir, 'checkpoints')}")
  figures = [name for name in names if name.endswith(".png")]
  if figures:
    lines.append(f"  figures     {workdir}/: {', '.join(figures)}")
  return "\n".join(lines)


def _clock(seconds: float) -> str:
  seconds = int(max(seconds, 0))
  return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class Progress:
  """A progress line: step, fraction done, the latest metrics, steps/s and ETA.

  Rewritten in place on a terminal; one line per report otherwise (logs, notebooks). The first report's
  time includes compiling the step, so the rate and the ETA are measured from the first report on (until
  the second, the rate since the start is shown and the ETA is '?').
  """

  def __init__(self, total_steps: int, start_step: int = 0, stream: TextIO | None = None):
    self.total = total_steps
    self.start_step = start_step
    self.stream = stream or sys.stdout
    self._t0 = time.perf_counter()
    self._first: tuple[int, float] | None = None  # (step, time) of the first report
    self._tty = hasattr(self.stream, "isatty") and self.stream.isatty()

  def rate(self, step: int) -> float:
    """Steps per second since the first report (compiled), or since this run (re)started before it."""
    now = time.perf_counter()
    if self._first is not None and step > self._first[0] and now > self._first[1]:
      return (step - self._first[0]) / (now - self._first[1])
    elapsed = now - self._t0
    return (step - self.start_step) / elapsed if elapsed > 0 else 0.0

  def update(self, step: int, metrics: Mapping[str, Any]) -> None:
    steady = self._first is not None and step > self._first[0]
    rate = self.rate(step)
    if self._first is None:
      self._first = (step, time.perf_counter())
    eta = (self.total - step) / rate if steady and rate > 0 else float("nan")
    shown = " ".join(f"{k.split('/')[-1] if k.startswith('train/') else k} {float(v):.4g}"
                     for k, v in metrics.items() if np.ndim(v) == 0)
    line = (f"step {step}/{self.total} ({100.0 * step / max(self.total, 1):.0f}%) {shown} | "
            f"{rate:.1f} steps/s | ETA {_clock(eta) if math.isfinite(eta) else '?'}")
    if self._tty:
      self.stream.write("\r" + line + "\033[K")
      if step >= self.total:
        self.stream.write("\n")
    else:
      self.stream.write(line + "\n")
    self.stream.flush()
