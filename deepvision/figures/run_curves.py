"""Several runs' curves in one figure: one panel per metric, one line per run.

Each run is a work dir with a `metrics.jsonl` (one JSON object per line, each with "step"; written by
`train.writers.MetricsWriter`). `read_runs` reads and checks them, `save_runs_curves` draws every
chosen metric against step, the panels wrapped at `viz.CURVE_COLUMNS` per row, the runs labelled by
their work dir's name. `python -m experiments.plot` is the command line.

Example:
  >>> runs = read_runs(["runs/lr_0.01", "runs/lr_0.02"])
  >>> save_runs_curves(runs, "runs/lr.png", keys=["train/loss", "val/accuracy"])
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence

from deepvision.figures import viz

METRICS_FILE = "metrics.jsonl"  # below train/ in the layers, so named here as train.writers names it
MAX_PANELS = 18  # six rows of three: a taller figure stops being readable on a screen


def run_labels(run_dirs: Sequence[str]) -> list[str]:
  """The legend label of each run: its work dir's name, or its path as given when two runs share
  a name (e.g. seed_0/lcn and seed_1/lcn)."""
  names = [os.path.basename(os.path.normpath(d)) for d in run_dirs]
  if len(set(names)) == len(names):
    return names
  return [os.path.normpath(d) for d in run_dirs]


def read_run(run_dir: str) -> list[dict]:
  """The records of `run_dir/metrics.jsonl`, checked: the dir and file exist, every line is a JSON
  object with a "step", and there is at least one.

  Raises:
    ValueError: naming the run dir (and line) that is missing or unreadable.
  """
  if not os.path.isdir(run_dir):
    raise ValueError(f"run dir {run_dir!r} does not exist (or is not a directory)")
  path = os.path.join(run_dir, METRICS_FILE)
  if not os.path.isfile(path):
    raise ValueError(f"run dir {run_dir!r} has no {METRICS_FILE} (is it a work dir of "
                     "experiments.main?)")
  records = []
  with open(path) as f:
    for number, line in enumerate(f, 1):
      if not line.strip():
        continue
      try:
        record = json.loads(line)
      except json.JSONDecodeError as e:
        raise ValueError(f"{path}, line {number}: not JSON ({e.msg})") from None
      if not isinstance(record, dict) or not _is_number(record.get("step")):
        raise ValueError(f"{path}, line {number}: expected a JSON object with a numeric \"step\", "
                         f"got {line.strip()[:80]!r}")
      records.append(record)
  if not records:
    raise ValueError(f"{path} has no records")
  return records


def read_runs(run_dirs: Sequence[str]) -> dict[str, list[dict]]:
  """{label: records} of every run dir (`run_labels`, `read_run`), all checked before returning.

  Raises:
    ValueError: no run dirs, a run dir given twice, or a run that `read_run` rejects.
  """
  run_dirs = list(run_dirs)
  if not run_dirs:
    raise ValueError("no run dirs given: name at least one work dir")
  repeated = sorted({d for d in run_dirs if run_dirs.count(d) > 1})
  if repeated:
    raise ValueError(f"run dir(s) given more than once: {repeated}")
  return {label: read_run(d) for label, d in zip(run_labels(run_dirs), run_dirs)}


def _is_number(value) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool)


def metric_keys(runs: Mapping[str, Sequence[dict]]) -> list[str]:
  """The numeric metric keys that any run logs (not "step"), in order of first appearance."""
  keys = {}
  for records in runs.values():
    for record in records:
      for key, value in record.items():
        if key != "step" and _is_number(value):
          keys.setdefault(key, None)
  return list(keys)


def check_keys(keys: Sequence[str], available: Sequence[str]) -> list[str]:
  """`keys` as a list, checked: non-empty, at most `MAX_PANELS`, no repeats, each logged by a run.

  Raises:
    ValueError: naming the unknown keys and the keys the runs log.
  """
  keys = list(keys)
  if not keys:
    raise ValueError(f"no metric keys to draw; the runs log: {', '.join(available) or 'none'}")
  unknown = [k for k in keys if k not in available]
  if unknown:
    raise ValueError(f"unknown metric key(s) {', '.join(unknown)}; the runs log: "
                     f"{', '.join(available) or 'no numeric metrics'}")
  repeated = sorted({k for k in keys if keys.count(k) > 1})
  if repeated:
    raise ValueError(f"metric key(s) given more than once: {', '.join(repeated)}")
  if len(keys) > MAX_PANELS:
    raise ValueError(f"{len(keys)} metric keys make {len(keys)} panels, more than {MAX_PANELS} fit in "
                     f"one readable figure: choose some of {', '.join(keys)}")
  return keys


def save_runs_curves(runs: Mapping[str, Sequence[dict]], path: str,
                     keys: Sequence[str] | None = None, title: str | None = None,
                     columns: int = viz.CURVE_COLUMNS) -> list[str]:
  """Draws every run's curves of each key, one panel per key, one line per run.

  Args:
    runs: {label: records} (e.g. `read_runs(dirs)`), records with "step".
    path: the PNG to write (replaced only once the figure is drawn).
    keys: the metrics to draw (default: every numeric metric a run logs, `metric_keys`).
    title: the figure's title (default "N runs: label, label, ...").
    columns: panels per row.

  Returns:
    The keys drawn, in panel order.

  Raises:
    ValueError: no runs, or keys that `check_keys` rejects (checked before drawing).
  """
  if not runs:
    raise ValueError("no runs to draw")
  available = metric_keys(runs)
  keys = check_keys(available if keys is None else keys, available)
  viz.panel_layout(len(keys), columns)  # checks columns
  title = title or f"{len(runs)} run{'s' if len(runs) > 1 else ''}: {', '.join(runs)}"
  fig, axes = viz.panel_figure(len(keys), columns)
  for ax, key in zip(axes, keys):
    lines = {label: [(r["step"], r[key]) for r in records if _is_number(r.get(key))]
             for label, records in runs.items()}
    viz.draw_curves_panel(ax, lines, key, key.split("/")[-1], "not logged by")
  fig.suptitle(title, fontsize=13, wrap=True)
  viz.save_figure(fig, path, title, f"panels: {', '.join(keys)}; one line per run: {', '.join(runs)}")
  return keys
