"""The doctor's examination of a classifier (the `supervised` trainer): the talk's checklist.

"What if it does not work?" (Ranzato 2013): diverging → a lower learning rate or a buggy backward pass;
cannot memorise a small subset → more capacity; training error far below validation error → regularise;
too slow → count FLOPs and parameters. `check` reads the config and opens the data (no file is written);
`examine` runs the checks and returns what `doctor.run_doctor` writes into `doctor.md`.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from deepvision.data import pipeline
from deepvision.diagnostics import flops, gradcheck, overfit, unit_figures, unit_stats
from deepvision.diagnostics.doctor_report import (
  DoctorReport,
  Finding,
  HeldOut,
  Options,
  held_out_check,
  record_gradient_check,
  unit_figure_captions,
)
from deepvision.train import lr_search, supervised
from deepvision.train import probe as probe_lib
from deepvision.train.supervised import evaluate_split as evaluate


@dataclasses.dataclass(frozen=True)
class Checked:
  """The config, checked: its plan on the probe's subset and whether its validation split is held out."""

  config: ml_collections.ConfigDict
  options: Options
  plan: supervised.Plan
  held_out: HeldOut


def check(config: ml_collections.ConfigDict, options: Options) -> Checked:
  """Checks the config and opens its splits; ConfigError / DatasetNotFoundError before any compute."""
  plan = probe_lib.make_plan(config, options.subset, model=options.model)
  held_out = held_out_check(config.train_split, config.get("eval_split") or None,
                            config.get("test_split") or None, plan.info.splits)
  return Checked(config, options, plan, held_out)


def _batch_loss(plan, batch):
  """The mean cross-entropy of `plan.model` on `batch` as a function of (params, images)."""
  labels = jnp.asarray(batch["label"])

  def loss(params, images):
    logits, _ = plan.model.apply({"params": params}, plan.preprocess(images, train=False), train=False)
    return supervised.cross_entropy(logits, labels).mean()

  return loss


def examine(checked: Checked, workdir: str) -> DoctorReport:
  """Runs the checklist (see `doctor.run_doctor`) and writes the unit figures into `workdir`."""
  config, options, plan = checked.config, checked.options, checked.plan
  model, subset, probe_steps = options.model, options.subset, options.probe_steps
  findings: list[Finding] = []
  sections: list[tuple[str, str]] = []

  table = flops.layer_table(plan.model)
  total_params = sum(layer.params for layer in table)
  total_macs = sum(layer.macs_forward for layer in table)
  sections.append(("Parameters and multiply-adds per layer", flops.format_table(table)))

  batch = pipeline.read_batch(plan.train_source,
                              np.arange(min(options.gradcheck_batch, len(plan.train_source))))
  # One update first: at initialisation the biases are 0, so blank pixels sit exactly on ReLU kinks,
  # where finite differences are meaningless.
  prober = probe_lib.Prober(config, plan)  # one compiled step for the doctor's probes
  params = prober.run(config.optimizer.learning_rate, 1, seed=config.seed).state.params
  grad_report = gradcheck.check_gradients(_batch_loss(plan, batch), params, jnp.asarray(batch["image"]),
                                          key=jax.random.key(config.seed))
  record_gradient_check(grad_report, "Gradient check (float64 central differences)", "jax.grad",
                        "the backward pass is buggy: fix it before tuning anything else", sections, findings)

  rate = float(config.optimizer.learning_rate)
  run = prober.run(rate, probe_steps, seed=config.seed)
  proposed = None
  probe_text = (f"learning rate {rate:g}, {len(run.losses)} steps on {len(plan.train_source)} examples: "
                f"loss {run.start_loss:.4f} → {run.end_loss:.4f}, {run.steps_per_second:.1f} steps/s")
  # A loss that grows (or becomes NaN) diverges; one that merely stalls may be a rate too large for
  # the net (LCN and saturating units stall) or a net that cannot learn: the search tells them apart.
  blew_up = not np.all(np.isfinite(run.losses)) or run.end_loss > run.start_loss
  if run.diverged:
    search = lr_search.search_learning_rate(config, start=rate / 2, steps=probe_steps, subset=subset,
                                            max_trials=options.search_trials, model=model)
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
      run = prober.run(proposed, probe_steps, seed=config.seed)
  sections.append(("Probe at the configured learning rate", probe_text))
  diverging = any(f.problem == "diverging" for f in findings)

  working_rate = proposed or rate
  fit = overfit.overfit_check(config, subset=options.overfit_subset, max_epochs=options.overfit_epochs,
                              learning_rate=working_rate, model=model)
  sections.append(("Overfit check", fit.format()))

  eval_step = jax.jit(supervised.make_eval_step(plan.preprocess))
  train_metrics = evaluate(eval_step, run.state, plan.train_source, 512, "train")
  split_text = f"after the probe: train error {1 - train_metrics['train/accuracy']:.3f}"
  chance = 1.0 - 1.0 / plan.info.num_classes
  if checked.held_out.comparable and plan.eval_source is not None:
    val_metrics = evaluate(eval_step, run.state, plan.eval_source, 512, "val")
    train_err, val_err = 1 - train_metrics["train/accuracy"], 1 - val_metrics["val/accuracy"]
    split_text += f", validation error {val_err:.3f}"
    if val_err - train_err > max(0.05, 2 * train_err) and not diverging:
      findings.append(Finding("alarm", "overfitting", f"train error {train_err:.3f} vs validation error "
                              f"{val_err:.3f}", "regularise: dropout, weight decay, data augmentation"))
  else:
    split_text += " " + checked.held_out.text
    findings.append(checked.held_out.finding)
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
  captions = unit_figure_captions(figures, stats, "doctor", "training images (after the probe)",
                                  params=run.state.params)

  findings.append(Finding("note", "speed", f"{run.steps_per_second:.1f} steps/s of {config.batch_size} images; "
                          f"{total_macs:,} multiply-adds per example forward",
                          "if too slow: fewer FLOPs (smaller maps or filters), an accelerator, more devices"))
  measurements = {"gradient_max_rel_error": grad_report.max_rel_error, "gradient_ok": grad_report.ok,
                  "probe_learning_rate": working_rate, "probe_steps": len(run.losses),
                  "probe_loss_start": run.start_loss, "probe_loss_end": run.end_loss,
                  "steps_per_second": run.steps_per_second, "overfit_subset": fit.subset,
                  "overfit_reached_zero": fit.reached_zero, "overfit_epochs": fit.epochs,
                  "parameters": total_params, "macs_per_example": total_macs}
  return DoctorReport(tuple(findings), tuple(sections), tuple(figures), proposed, captions, "supervised",
                      measurements)
