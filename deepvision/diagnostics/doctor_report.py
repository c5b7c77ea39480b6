"""What every examination of the doctor shares: its options, the report, figure captions, the split check.

Every examination of `doctor` returns its findings, sections, measurements and captioned figures;
`DoctorReport.markdown` is the text of `doctor.md`, `DoctorReport.to_json` that of `doctor.json`. `unit_figure_captions` says in one line what each picture of
`unit_figures.save_unit_figures` shows and how to read it. `held_out_check` decides whether the config's
evaluation split is held out from its training split (`data.splits`) before anything is compared on it.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np

from deepvision.data import splits as split_lib
from deepvision.diagnostics.unit_stats import LayerStats
from deepvision.errors import ConfigError

REPORT_FILE = "doctor.md"
MEASUREMENTS_FILE = "doctor.json"


@dataclasses.dataclass(frozen=True)
class Options:
  """How much the doctor measures (`run_doctor`'s keyword arguments).

  Attributes:
    model: another Linen module to examine instead of the config's model (None: the config's).
    subset: training examples of the probes (0: all).
    probe_steps: updates of the probe and of each learning-rate trial.
    overfit_subset: examples of the overfit check (classifiers).
    overfit_epochs: its budget.
    gradcheck_batch: examples in the gradient check's batch.
    search_trials: at most this many halvings of the learning rate when the probe diverges.
  """

  model: Any = None
  subset: int = 512
  probe_steps: int = 300
  overfit_subset: int = 256
  overfit_epochs: int = 30
  gradcheck_batch: int = 4
  search_trials: int = 8

  def __post_init__(self):
    for name, low in (("subset", 0), ("probe_steps", 1), ("overfit_subset", 1), ("overfit_epochs", 1),
                      ("gradcheck_batch", 1), ("search_trials", 0)):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")


@dataclasses.dataclass(frozen=True)
class Finding:
  """One line of the diagnosis: `alarm` findings need action, `note` ones are information."""

  severity: str  # 'alarm' | 'note'
  problem: str
  evidence: str
  advice: str


def record_gradient_check(report: Any, title: str, what: str, advice: str,
                          sections: list[tuple[str, str]], findings: list[Finding]) -> None:
  """Appends a `gradcheck` report as the section `title` and, when it failed, the 'gradient' alarm:
  "`what` disagrees with finite differences in <leaves>" with `advice`."""
  sections.append((title, report.format()))
  if not report.ok:
    findings.append(Finding("alarm", "gradient", f"{what} disagrees with finite differences in "
                            f"{', '.join(report.failing_leaves()[:4])}", advice))


@dataclasses.dataclass(frozen=True)
class DoctorReport:
  """What the doctor found.

  Attributes:
    findings: the diagnosis, alarms and notes.
    sections: (title, preformatted text) of every check's measurements.
    figures: paths of the figures written.
    proposed_learning_rate: a rate shown to converge when the configured one diverges, else None.
    captions: one line per figure (same order as `figures`): what it shows and how to read it.
    trainer: the config's trainer the examination was for.
    measurements: the checks' headline numbers by name (e.g. `gradient_max_rel_error`,
      `probe_loss_start`, `overfit_epochs`), for records; `doctor.json` holds them.
  """

  findings: tuple[Finding, ...]
  sections: tuple[tuple[str, str], ...]
  figures: tuple[str, ...]
  proposed_learning_rate: float | None
  captions: tuple[str, ...] = ()
  trainer: str = "supervised"
  measurements: Mapping[str, Any] = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    if self.captions and len(self.captions) != len(self.figures):
      raise ValueError(f"{len(self.captions)} captions for {len(self.figures)} figures")

  @property
  def alarms(self) -> list[Finding]:
    return [f for f in self.findings if f.severity == "alarm"]

  def problems(self) -> set[str]:
    return {f.problem for f in self.alarms}

  def caption(self, path: str) -> str:
    """The caption of the figure at `path` (its file name when it has none)."""
    captions = dict(zip(self.figures, self.captions))
    return captions.get(path) or os.path.basename(path)

  def to_json(self) -> dict:
    """The diagnosis and the measurements as JSON-ready values (the text of `doctor.json`)."""
    return {"trainer": self.trainer, "alarms": sorted(self.problems()),
            "findings": [dataclasses.asdict(f) for f in self.findings],
            "proposed_learning_rate": self.proposed_learning_rate,
            "measurements": {k: (v.item() if hasattr(v, "item") else v) for k, v in self.measurements.items()},
            "figures": [os.path.basename(p) for p in self.figures]}

  def markdown(self) -> str:
    lines = ["# deepvision doctor", "", f"Trainer: `{self.trainer}`.", "", "## Diagnosis", ""]
    if not self.alarms:
      lines.append("Nothing alarming: the checks below passed.")
    for f in self.findings:
      mark = "**ALARM**" if f.severity == "alarm" else "note"
      lines.append(f"- {mark} — {f.problem}: {f.evidence}. → {f.advice}")
    for title, text in self.sections:
      lines += ["", f"## {title}", "", "```", text.rstrip(), "```"]
    if self.figures:
      lines += ["", "## Figures"]
      for path in self.figures:
        name = os.path.basename(path)
        lines += ["", f"![{name}]({name})", "", f"*{name}*: {self.caption(path)}"]
    return "\n".join(lines) + "\n"


def _file_stem(name: str) -> str:
  """A layer name as `unit_figures` puts it into file names."""
  return "".join(c if c.isalnum() or c in "-." else "_" for c in name)


def unit_figure_captions(paths: Sequence[str], stats: Mapping[str, LayerStats], prefix: str,
                         what: str = "training images", params: Any = None) -> tuple[str, ...]:
  """One caption per figure of `unit_figures.save_unit_figures(stats, workdir, prefix, params=params)`.

  Args:
    paths: the paths it returned.
    stats: the layer statistics it drew.
    prefix: the prefix it was given.
    what: what the samples (rows) are, e.g. 'training images'.
    params: the parameters it was given (their 4-D kernels are the filter figures), or None.
  """
  by_stem = {f"{prefix}_{_file_stem(name)}": s for name, s in stats.items()}
  kernels = {}
  for key_path, leaf in jax.tree_util.tree_leaves_with_path(params if params is not None else {}):
    if np.ndim(leaf) == 4:
      label = jax.tree_util.keystr(key_path, simple=True, separator="/")
      kernels[f"{prefix}_filters_{_file_stem(label)}"] = (label, np.shape(leaf))
  captions = []
  for path in paths:
    base = os.path.splitext(os.path.basename(path))[0]
    caption = None
    for stem, s in by_stem.items():
      if base == f"{stem}_activations":
        value = "the activation" if len(s.shape) == 1 else "the map's mean |activation| over positions"
        caption = (f"{s.name} — samples × units: rows are {min(s.num_samples, 512)} {what}, columns its "
                   f"{s.num_units} units, grey level {value} (black the layer's smallest, white its "
                   "largest); a black column is a dead unit, a flat column a unit that ignores the input, "
                   "good units look like sparse speckle")
      elif base == f"{stem}_correlation":
        caption = (f"{s.name} — correlation of units: {s.num_units} × {s.num_units} Pearson correlations "
                   "across the samples, blue −1, white 0, red +1, grey undefined (a constant unit); the "
                   "diagonal is +1, strong colour off it means redundant units (they should be uncorrelated)")
      if caption:
        break
    if caption is None and base.startswith(f"{prefix}_filters_"):
      label, shape = kernels.get(base, (base[len(f"{prefix}_filters_"):], None))
      size = "" if shape is None else f" ({shape[0]}×{shape[1]}, {shape[2]} → {shape[3]} channels)"
      caption = (f"{label}{size} — convolution kernels, one tile per (input channel, output channel) pair (one "
                 "colour tile per output channel on RGB input); smooth oriented edges and blobs are healthy, "
                 "noise-like or identical tiles mean the layer has not learnt")
    if caption is None:
      caption = f"{base.replace('_', ' ')} (a unit-statistics figure)"
    captions.append(caption)
  return tuple(captions)


@dataclasses.dataclass(frozen=True)
class HeldOut:
  """Whether the config validates on held-out data.

  Attributes:
    comparable: the evaluation split exists and shares no example with the training split.
    finding: what to tell the user (None when comparable).
    text: one line for the report's train-vs-validation section.
  """

  comparable: bool
  finding: Finding | None
  text: str


def _suggestion(train_split: str, sizes: Mapping[str, int], test_split: str | None) -> str:
  pair = split_lib.held_out_splits(train_split, sizes, test_split)
  if pair is None:
    return "hold out part of the training data as an eval_split that shares no example with train_split"
  train, evaluation = pair
  flags = ([f"--config.train_split={train}"] if train != train_split else []) + [f"--config.eval_split={evaluation}"]
  return "hold out data: " + " ".join(flags)


def held_out_check(train_split: str, eval_split: str | None, test_split: str | None,
                   sizes: Mapping[str, int]) -> HeldOut:
  """Checks that `eval_split` shares no example with `train_split` (`data.splits`), and says what to do.

  Args:
    train_split, eval_split, test_split: the config's split expressions ('' or None: none).
    sizes: number of examples of every split of the data set.

  Raises:
    ConfigError: a split expression that does not resolve against `sizes`.
  """
  try:
    advice = _suggestion(train_split, sizes, test_split)
    shared = split_lib.shared_examples(train_split, eval_split, sizes) if eval_split else 0
  except ValueError as e:  # the loaders accepted the splits, so this is rare: name them
    raise ConfigError(f"config.train_split={train_split!r} / config.eval_split={eval_split!r}: {e}") from None
  if not eval_split:
    return HeldOut(False, Finding("note", "no validation split", "the config has no eval_split, so training "
                                  "and validation error cannot be compared", advice),
                   f"(the config has no eval_split; to compare, {advice})")
  if not shared:
    return HeldOut(True, None, "")
  text = (f"eval_split {eval_split!r} overlaps train_split {train_split!r} ({shared:,} shared examples): "
          "the comparison would be on training data")
  return HeldOut(False, Finding("alarm", "validation on training data", text, advice),
                 f"(not compared: {text}; {advice})")
