r"""The doctor's examination of an energy model (the `contrastive` trainer: RBMs, Gaussian RBMs, mcRBM, mPoT).

The checks that make sense for a model trained by contrastive divergence (Hinton, "A practical guide to
training restricted Boltzmann machines", 2010; Ranzato 2013):

* the parameter table (shape, count, mean |θ| per parameter);
* the gradient of the mean free energy ⟨F(v)⟩ w.r.t. the parameters against float64 central differences
  (`gradcheck`): the CD update is ∂⟨F(v⁺)⟩/∂θ − ∂⟨F(v⁻)⟩/∂θ, so a wrong ∂F/∂θ is a wrong update;
* a short CD / PCD / FPCD probe at the configured learning rate on a subset (the trainer's own step): the
  reconstruction error ‖v − E[v | p(h | v)]‖² / V (models with E[v | h]) must fall, nothing may become
  non-finite; when it diverges, the rate is halved until a probe converges. The free-energy gap
  ⟨F(v_val)⟩ − ⟨F(v_train)⟩ before and after the probe (on a held-out validation split only): a gap that
  grows is the guide's sign of overfitting;
* unit statistics of the hidden probabilities p(h | v) on training examples: units that are always off
  (mean p < 0.01) or always on (p > 0.99 on 95% of the examples) learn nothing.

`check` reads the config and the data (nothing is written); `examine` runs the checks.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from deepvision import optim
from deepvision.data import datasets, pipeline
from deepvision.diagnostics import gradcheck, unit_figures, unit_stats
from deepvision.diagnostics.doctor_report import (
  DoctorReport,
  Finding,
  HeldOut,
  Options,
  held_out_check,
  record_gradient_check,
  unit_figure_captions,
)
from deepvision.errors import ConfigError
from deepvision.schema import override_config
from deepvision.train import contrastive, contrastive_loop

#: The probe diverges unless the reconstruction error falls by this fraction (mean of the last tenth of
#: the steps against the first step's).
MIN_DECREASE = 0.1
#: A hidden unit is off when its mean probability over the examples is below this.
OFF_LEVEL = 0.01
#: Examples of the free-energy gap and the unit statistics.
MEASURE_EXAMPLES = 256


@dataclasses.dataclass(frozen=True)
class Checked:
  """The config, checked: the contrastive plan, the probe's training subset, the held-out check."""

  config: ml_collections.ConfigDict
  options: Options
  plan: contrastive_loop.ContrastivePlan
  train: np.ndarray  # the probe's training examples (a fixed permutation's first `subset`)
  val: np.ndarray | None  # the validation examples when held out, else None
  held_out: HeldOut


def check(config: ml_collections.ConfigDict, options: Options) -> Checked:
  """Checks the config (`contrastive_loop.plan_contrastive`) and reads the data; writes nothing."""
  plan = contrastive_loop.plan_contrastive(config)
  if options.model is not None:
    if not hasattr(options.model, "free_energy"):
      raise ConfigError(f"model {type(options.model).__name__} is not an energy model (no free_energy)")
    plan = dataclasses.replace(plan, model=options.model)
  run = plan.run
  sizes = datasets.dataset_info(run.dataset, data_dir=run.data_dir or None).splits
  held_out = held_out_check(run.train_split, run.eval_split or None, run.test_split or None, sizes)
  train_x = plan.data.splits["train"]
  count = len(train_x) if not options.subset else min(int(options.subset), len(train_x))
  if count < run.batch_size:
    raise ConfigError(f"subset={options.subset} gives {count} training examples, fewer than "
                      f"config.batch_size={run.batch_size}: use a larger subset (0: all {len(train_x)})")
  if plan.spec.keeps_chains and plan.num_chains > count:
    raise ConfigError(f"subset={options.subset} gives {count} training examples, fewer than the "
                      f"{plan.num_chains} chains (config.contrastive.num_chains): use a larger subset")
  train = train_x[np.random.default_rng(run.seed).permutation(len(train_x))[:count]]
  val = plan.data.splits.get("val") if held_out.comparable else None
  return Checked(config, options, plan, train, val, held_out)


@dataclasses.dataclass(frozen=True)
class EnergyProbe:
  """The record of a CD / PCD probe.

  Attributes:
    learning_rate: the constant rate used.
    cd_losses: ⟨F(v⁺)⟩ − ⟨F(v⁻)⟩ of every step (float64).
    recon_errors: the reconstruction error of every step (before its update), or None for models
      without E[v | h] (gated MRFs).
    finite: every metric, gradient and parameter stayed finite.
    diverged: not finite, or the reconstruction error did not fall by `MIN_DECREASE`.
    steps_per_second: measured speed (compilation excluded).
    params: the final parameters.
  """

  learning_rate: float
  cd_losses: np.ndarray
  recon_errors: np.ndarray | None
  finite: bool
  diverged: bool
  steps_per_second: float
  params: object

  def trend(self) -> str:
    """'reconstruction error a → b' (means of the first and last tenth of the steps)."""
    if self.recon_errors is None:
      return f"CD loss {_start(self.cd_losses):.4g} → {_end(self.cd_losses):.4g} (no E[v | h] to reconstruct)"
    return f"reconstruction error {_start(self.recon_errors):.4g} → {_end(self.recon_errors):.4g}"


def _start(values: np.ndarray) -> float:
  return float(values[0]) if len(values) else float("nan")


def _end(values: np.ndarray) -> float:
  return float(np.mean(values[-max(1, len(values) // 10):])) if len(values) else float("nan")


def _flat(x: np.ndarray) -> np.ndarray:
  """Examples as the model's visible vectors (B, n_visible)."""
  return np.asarray(x, np.float32).reshape(len(x), -1)


def probe(checked: Checked, learning_rate: float, steps: int) -> EnergyProbe:
  """Trains the plan's model with the trainer's step for `steps` updates at a constant rate on the subset."""
  plan, config = checked.plan, checked.config
  config = override_config(config, {"optimizer.learning_rate": float(learning_rate),
                                    "optimizer.schedule": "constant", "optimizer.warmup_steps": 0})
  batch_size = plan.run.batch_size
  steps_per_epoch = len(checked.train) // batch_size
  tx = optim.make_optimizer(config, steps, steps_per_epoch)
  lr_fn = optim.learning_rate_schedule(config, steps, steps_per_epoch)
  train_flat = checked.train.reshape(len(checked.train), -1)
  chain_start = train_flat[np.random.default_rng(plan.run.seed).permutation(len(train_flat))[:plan.num_chains]]
  state = contrastive.create_state(plan.model, tx, jax.random.key(plan.run.seed), plan.spec, chain_start,
                                   plan.recipe)
  step = jax.jit(contrastive.make_train_step(plan.model, plan.spec, lr_fn, recipe=plan.recipe), donate_argnums=0)
  source = datasets.ArraySource(checked.train, np.zeros(len(checked.train), np.int32))
  batches = pipeline.train_batches(source, batch_size, seed=plan.run.seed)
  records, start = [], None
  for i in range(1, steps + 1):
    state, metrics = step(state, next(batches)["image"])
    records.append({k: v for k, v in metrics.items() if k in ("train/cd_loss", "train/recon_error")
                    or k.startswith("finite/")})
    if i == 1:
      jax.block_until_ready(state)
      start = time.perf_counter()
    if (i % steps_per_epoch == 0 or i == steps) and not np.isfinite(float(metrics["train/cd_loss"])):
      break
  jax.block_until_ready(state)
  rate = (len(records) - 1) / max(time.perf_counter() - start, 1e-9)
  records = jax.device_get(records)
  cd = np.asarray([r["train/cd_loss"] for r in records], np.float64)
  recon = (np.asarray([r["train/recon_error"] for r in records], np.float64)
           if "train/recon_error" in records[0] else None)
  finite = bool(np.all(np.isfinite(cd)) and (recon is None or np.all(np.isfinite(recon)))
                and all(bool(v) for r in records for k, v in r.items() if k.startswith("finite/")))
  diverged = not finite or (recon is not None and _end(recon) > (1.0 - MIN_DECREASE) * _start(recon))
  return EnergyProbe(float(learning_rate), cd, recon, finite, bool(diverged), rate, state.params)


def _mean_free_energy(model, params, x: np.ndarray) -> float:
  return float(jnp.mean(model.apply({"params": params}, jnp.asarray(x), method="free_energy")))


def _parameter_table(params) -> str:
  rows = [("parameter", "shape", "count", "mean |θ|")]
  for path, leaf in jax.tree_util.tree_leaves_with_path(params):
    leaf = np.asarray(leaf)
    rows.append((jax.tree_util.keystr(path, simple=True, separator="/"), "×".join(map(str, leaf.shape)) or "()",
                 f"{leaf.size:,}", f"{float(np.mean(np.abs(leaf))) if leaf.size else 0.0:.3g}"))
  rows.append(("total", "", f"{sum(np.size(x) for x in jax.tree.leaves(params)):,}", ""))
  widths = [max(len(row[i]) for row in rows) for i in range(4)]
  return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
                   for row in rows)


def examine(checked: Checked, workdir: str) -> DoctorReport:
  """Runs the energy model's checks (module docstring) and writes the unit figures into `workdir`."""
  config, options, plan = checked.config, checked.options, checked.plan
  model, spec = plan.model, plan.spec
  findings: list[Finding] = []
  sections: list[tuple[str, str]] = []
  steps = options.probe_steps

  # The probe's initial parameters (`contrastive.create_state` initialises from the first half of the key).
  init_key = jax.random.split(jax.random.key(plan.run.seed))[0]
  initial = model.init(init_key, jnp.zeros((1, model.n_visible), jnp.float32), method="free_energy")["params"]
  sections.append(("Parameters", f"{config.model}: {spec.method.upper()}-{spec.k} with the {spec.sampler} "
                   f"sampler, {plan.num_chains} chains\n\n" + _parameter_table(initial)))

  batch = _flat(checked.train[:max(1, options.gradcheck_batch)])
  grad_report = gradcheck.check_gradients(
      lambda params: jnp.mean(model.apply({"params": params}, batch, method="free_energy")), initial,
      key=jax.random.key(plan.run.seed))
  record_gradient_check(grad_report, "Gradient check of the mean free energy (float64 central differences)",
                        "jax.grad of the free energy",
                        "the model's free energy or its backward pass is buggy: fix it before tuning",
                        sections, findings)

  rate = float(config.optimizer.learning_rate)
  run = probe(checked, rate, steps)
  probe_text = (f"learning rate {rate:g}, {len(run.cd_losses)} {spec.method.upper()}-{spec.k} updates of "
                f"{plan.run.batch_size} on {len(checked.train)} examples: {run.trend()}, "
                f"{run.steps_per_second:.1f} updates/s")
  proposed = None
  if run.diverged:
    trail = []
    for trial in range(1, options.search_trials + 1):
      candidate = probe(checked, rate / 2 ** trial, steps)
      trail.append(f"  {candidate.learning_rate:<10g} {candidate.trend()}"
                   + ("" if candidate.finite else " (non-finite)"))
      if not candidate.diverged:
        proposed = candidate.learning_rate
        break
    probe_text += "\n\nlearning-rate search (halving):\n" + "\n".join(trail)
    what = (run.trend() if run.finite else "the update became non-finite (NaN or inf)")
    advice = (f"lower the learning rate to {proposed:g} (it converges: {candidate.trend()} in {steps} steps)"
              if proposed is not None else "no smaller rate converged either: check the gradients and the data's "
              "preprocessing (the visible units' range must match the model)")
    if not grad_report.ok:
      advice += "; or the free energy's gradient is buggy (gradient check failed)"
    findings.append(Finding("alarm", "diverging", f"at learning rate {rate:g}: {what} in {len(run.cd_losses)} "
                            "updates", advice))
    if proposed is not None:
      run = candidate
  sections.append(("CD probe at the configured learning rate", probe_text))
  diverging = any(f.problem == "diverging" for f in findings)

  gap_text = ""
  if checked.val is not None and run.finite:
    n = min(MEASURE_EXAMPLES, len(checked.val), len(checked.train))
    train_x, val_x = _flat(checked.train[:n]), _flat(checked.val[:n])
    before = _mean_free_energy(model, initial, val_x) - _mean_free_energy(model, initial, train_x)
    after = _mean_free_energy(model, run.params, val_x) - _mean_free_energy(model, run.params, train_x)
    gap_text = (f"free-energy gap ⟨F(validation)⟩ − ⟨F(train)⟩ on {n} examples each: {before:.4g} before the "
                f"probe, {after:.4g} after (a gap that keeps growing during training means overfitting: "
                "stop earlier or add weight cost)")
    findings.append(Finding("note", "free-energy gap", f"{before:.3g} → {after:.3g} over the probe",
                            "watch it during training (free_energy_gap in metrics.jsonl): a growing gap is "
                            "overfitting"))
  elif checked.held_out.finding is not None:
    gap_text = "free-energy gap not measured " + checked.held_out.text
    findings.append(checked.held_out.finding)
  else:
    gap_text = "free-energy gap not measured: the probe's parameters are not finite"
  sections.append(("Train vs validation", gap_text))

  figures: list[str] = []
  captions: tuple[str, ...] = ()
  if run.finite:
    images = _flat(checked.train[:MEASURE_EXAMPLES])
    stats = unit_stats.unit_statistics(model, run.params, images)
    lines = [unit_stats.format_table(stats), ""]
    useless = []
    for name, s in stats.items():
      off = int(np.sum(np.mean(s.activations, axis=0) < OFF_LEVEL))
      on = int(s.num_saturated or 0)
      lines.append(f"{name}: {off} of {s.num_units} units off (mean p < {OFF_LEVEL}), {on} always on "
                   f"(p > 0.99 on 95% of the examples)")
      if off + on > 0.5 * s.num_units:
        useless.append(f"{name} ({off} off, {on} always on of {s.num_units})")
    sections.append(("Unit statistics of the hidden probabilities p(h | v)", "\n".join(lines)))
    if useless and not diverging:
      findings.append(Finding("alarm", "dead units", f"more than half the hidden units are constant in "
                              f"{', '.join(useless)}", "lower the learning rate, start from smaller weights "
                              "(Hinton's guide: 0.01·N(0, 1)), or add a sparsity target"))
    figures = list(unit_figures.save_unit_figures(stats, workdir, "doctor"))
    captions = unit_figure_captions(figures, stats, "doctor", "training examples (after the probe)")

  findings.append(Finding("note", "speed", f"{run.steps_per_second:.1f} updates/s of {plan.run.batch_size} "
                          f"examples ({spec.method.upper()}-{spec.k}, {spec.sampler})",
                          "if too slow: fewer sampler steps k, a smaller model, an accelerator, more devices"))
  errors = run.recon_errors if run.recon_errors is not None else run.cd_losses
  measurements = {"gradient_max_rel_error": grad_report.max_rel_error, "gradient_ok": grad_report.ok,
                  "probe_learning_rate": run.learning_rate, "probe_steps": len(run.cd_losses),
                  "probe_measure": "reconstruction error" if run.recon_errors is not None else "CD loss",
                  "probe_start": _start(errors), "probe_end": _end(errors),
                  "steps_per_second": run.steps_per_second}
  return DoctorReport(tuple(findings), tuple(sections), tuple(figures), proposed, captions, "contrastive",
                      measurements)
