"""The doctor: the talk's checklist run on an experiment config, with a diagnosis and its evidence.

The diagnosis follows "What if it does not work?" (Ranzato 2013): diverging → a lower learning rate or a
buggy backward pass; cannot memorise a small subset → more capacity; training error far below validation
error → regularise; too slow → count FLOPs and parameters. `run_doctor` runs the checks, returns the
findings as data and writes `doctor.md` (with figures) into the work dir.
"""

from __future__ import annotations

import dataclasses
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from deepvision.data import pipeline
from deepvision.diagnostics import flops, gradcheck, overfit, unit_figures, unit_stats
from deepvision.train import lr_search
from deepvision.train import probe as probe_lib
from deepvision.train import supervised
from deepvision.train.supervised import evaluate_split as evaluate


@dataclasses.dataclass(frozen=True)
class Finding:
  """One line of the diagnosis: `alarm` findings need action, `note` ones are information."""

  severity: str  # 'alarm' | 'note'
  problem: str
  evidence: str
  advice: str


@dataclasses.dataclass(frozen=True)
class DoctorReport:
  findings: tuple[Finding, ...]
  sections: tuple[tuple[str, str], ...]  # (title, preformatted text)
  figures: tuple[str, ...]
  proposed_learning_rate: float | None

  @property
  def alarms(self) -> list[Finding]:
    return [f for f in self.findings if f.severity == "alarm"]

  def problems(self) -> set[str]:
    return {f.problem for f in self.alarms}

  def markdown(self) -> str:
    lines = ["# deepvision doctor", "", "## Diagnosis", ""]
    if not self.alarms:
      lines.append("Nothing alarming: the checks below passed.")
    for f in self.findings:
      mark = "**ALARM**" if f.severity == "alarm" else "note"
      lines.append(f"- {mark} — {f.problem}: {f.evidence}. → {f.advice}")
    for title, text in self.sections:
      lines += ["", f"## {title}", "", "```", text.rstrip(), "```"]
    if self.figures:
      lines += ["", "## Figures", ""] + [f"![{os.path.basename(p)}]({os.path.basename(p)})"
                                         for p in self.figures]
    return "\n".join(lines) + "\n"


def _batch_loss(plan, batch):
  """The mean cross-entropy of `plan.model` on `batch` as a function of (params, images)."""
  labels = jnp.asarray(batch["label"])

  def loss(params, images):
    logits, _ = plan.model.apply({"params": params}, plan.preprocess(images, train=False), train=False)
    return supervised.cross_entropy(logits, labels).mean()

  return loss


def run_doctor(config: ml_collections.ConfigDict, workdir: str, *, model=None, subset: int = 512,
               probe_steps: int = 300, overfit_subset: int = 256, overfit_epochs: int = 30,
               gradcheck_batch: int = 4, search_trials: int = 8) -> DoctorReport:
  """Runs the checklist on `config` and writes `workdir/doctor.md`.

  Checks, in order: the per-layer parameters / FLOPs table; a float64 finite-difference gradient check of
  the loss on a real batch; a short probe at the configured learning rate on a subset (and, when it
  diverges, the halving learning-rate search); the overfit check on a small subset; train vs validation
  error after the probe; unit statistics of the probed network. The diagnoses:

  * diverging → lower the learning rate (a halved rate is proposed and shown to converge), or the
    backward pass is buggy (the gradient check says which);
  * parameters collapse / low accuracy at low loss → check the loss for degenerate solutions;
  * underperforming (cannot even memorise a small subset) → more capacity: see the FLOPs / parameters
    table, make the net larger, visualise the units;
  * overfitting (training error far below validation error) → regularise: dropout, weight decay,
    augmentation;
  * too slow → count FLOPs and parameters: the table and the measured steps per second.

  Args:
    config: the experiment config (model, data, optimiser, batch size).
    workdir: where the report and figures go.
    model: another Linen module to examine instead of the config's model.
    subset: training examples of the probe and the learning-rate search.
    probe_steps: updates of the probe and of each search trial.
    overfit_subset: examples of the overfit check.
    overfit_epochs: its budget.
    gradcheck_batch: examples in the gradient check's batch.
    search_trials: at most this many halvings when the probe does not converge.
  """
  plan = probe_lib.make_plan(config, subset, model=model)  # checks the config before any compute
  os.makedirs(workdir, exist_ok=True)
  findings: list[Finding] = []
  sections: list[tuple[str, str]] = []

  table = flops.layer_table(plan.model)
  total_params = sum(layer.params for layer in table)
  total_macs = sum(layer.macs_forward for layer in table)
  sections.append(("Parameters and multiply-adds per layer", flops.format_table(table)))

  batch = pipeline.read_batch(plan.train_source, np.arange(min(gradcheck_batch, len(plan.train_source))))
  # One update first: at initialisation the biases are 0, so blank pixels sit exactly on ReLU kinks,
  # where finite differences are meaningless.
  params = probe_lib.probe(config, plan, config.optimizer.learning_rate, 1, seed=config.seed).state.params
  grad_report = gradcheck.check_gradients(_batch_loss(plan, batch), params, jnp.asarray(batch["image"]),
                                          key=jax.random.key(config.seed))
  sections.append(("Gradient check (float64 central differences)", grad_report.format()))
  if not grad_report.ok:
    findings.append(Finding("alarm", "gradient", f"jax.grad disagrees with finite differences in "
                            f"{', '.join(grad_report.failing_leaves()[:4])}",
                            "the backward pass is buggy: fix it before tuning anything else"))

  rate = float(config.optimizer.learning_rate)
  run = probe_lib.probe(config, plan, rate, probe_steps, seed=config.seed)
  proposed = None
  probe_text = (f"learning rate {rate:g}, {len(run.losses)} steps on {len(plan.train_source)} examples: "
                f"loss {run.start_loss:.4f} → {run.end_loss:.4f}, {run.steps_per_second:.1f} steps/s")
  # A loss that grows (or becomes NaN) diverges; one that merely stalls may be a rate too large for
  # the net (LCN and saturating units stall) or a net that cannot learn: the search tells them apart.
  blew_up = not np.all(np.isfinite(run.losses)) or run.end_loss > run.start_loss
  if run.diverged:
    search = lr_search.search_learning_rate(config, start=rate / 2, steps=probe_steps, subset=subset,
                                            max_trials=search_trials, model=model)
    proposed = search.learning_rate
    probe_text += "\n\nlearning-rate search (halving):\n" + search.format()
  if run.diverged and (blew_up or proposed is not None):
    advice = (f"lower the learning rate to {proposed:g} (it converges: loss "
              f"{search.trail[-1].start_loss:.3f} → {search.trail[-1].end_loss:.3f} in {probe_steps} steps)"
              if proposed is not None else "no smaller rate converged either: check the gradients and the loss")
    if not grad_report.ok:
      advice += "; or the backward pass is buggy (gradient check failed)"
    findings.append(Finding("alarm", "diverging", f"at learning rate {rate:g} the loss went "
                            f"{run.start_loss:.3f} → {run.end_loss:.3f} in {len(run.losses)} steps", advice))
    if proposed is not None:
      run = probe_lib.probe(config, plan, proposed, probe_steps, seed=config.seed)
  sections.append(("Probe at the configured learning rate", probe_text))
  diverging = any(f.problem == "diverging" for f in findings)

  working_rate = proposed or rate
  fit = overfit.overfit_check(config, subset=overfit_subset, max_epochs=overfit_epochs,
                              learning_rate=working_rate, model=model)
  sections.append(("Overfit check", fit.format()))

  eval_step = jax.jit(supervised.make_eval_step(plan.preprocess))
  train_metrics = evaluate(eval_step, run.state, plan.train_source, 512, "train")
  split_text = f"after the probe: train error {1 - train_metrics['train/accuracy']:.3f}"
  chance = 1.0 - 1.0 / plan.info.num_classes
  if plan.eval_source is not None:
    val_metrics = evaluate(eval_step, run.state, plan.eval_source, 512, "val")
    train_err, val_err = 1 - train_metrics["train/accuracy"], 1 - val_metrics["val/accuracy"]
    split_text += f", validation error {val_err:.3f}"
    if val_err - train_err > max(0.05, 2 * train_err) and not diverging:
      findings.append(Finding("alarm", "overfitting", f"train error {train_err:.3f} vs validation error "
                              f"{val_err:.3f}", "regularise: dropout, weight decay, data augmentation"))
  else:
    split_text += " (the config has no eval_split: set one, e.g. --config.eval_split=validation, to compare)"
  sections.append(("Train vs validation", split_text))

  if not fit.reached_zero and not diverging and grad_report.ok:
    findings.append(Finding(
        "alarm", "underfitting", f"training error still {fit.errors[-1] if fit.errors else 1.0:.3f} on "
        f"{fit.subset} examples after "
        f"{fit.epochs} epochs ({total_params:,} parameters, {total_macs:,} multiply-adds per example)",
        "more capacity: make the net larger (see the table), check the units below"))
  final_loss = float(train_metrics["train/loss"])
  if (not diverging and final_loss < 0.1 * run.start_loss
      and 1 - train_metrics["train/accuracy"] > 0.5 * chance):
    findings.append(Finding("alarm", "degenerate loss", f"loss {final_loss:.3f} but training error "
                            f"{1 - train_metrics['train/accuracy']:.3f}",
                            "the loss has a degenerate solution: check it"))

  images = pipeline.read_batch(plan.train_source, np.arange(min(256, len(plan.train_source))))["image"]
  stats = unit_stats.unit_statistics(plan.model, run.state.params, images)
  sections.append(("Unit statistics", unit_stats.format_table(stats)))
  dead_layers = [name for name, s in stats.items() if s.num_units and s.num_dead > 0.5 * s.num_units]
  if dead_layers and not diverging:
    findings.append(Finding("alarm", "dead units", f"more than half the units never fire in "
                            f"{', '.join(dead_layers)}", "lower the learning rate or change the initialisation"))
  figures = list(unit_figures.save_unit_figures(stats, workdir, "doctor", params=run.state.params))

  findings.append(Finding("note", "speed", f"{run.steps_per_second:.1f} steps/s of {config.batch_size} images; "
                          f"{total_macs:,} multiply-adds per example forward",
                          "if too slow: fewer FLOPs (smaller maps or filters), an accelerator, more devices"))
  report = DoctorReport(tuple(findings), tuple(sections), tuple(figures), proposed)
  with open(os.path.join(workdir, "doctor.md"), "w") as f:
    f.write(report.markdown())
  return report

