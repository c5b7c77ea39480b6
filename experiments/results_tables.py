r"""README / BUILD.md tables of the default experiment, its ablation and the test tiers, from committed records.

Records:
  * `results/digits/lcn_convnet_digits.json`, `..._train_only.json`: whole launcher runs over seeds
    (`python benchmarks/seed_runs.py --config=lcn_convnet_digits --out_dir results/digits`);
  * `results/digits/pixel_baselines.json`: an RBF SVM and 1-NN on the raw pixels
    (`python benchmarks/pixel_baselines.py`);
  * `results/ablation/dv_digits.json`: `python -m experiments.ablate ... --record=results/ablation/dv_digits.json`;
  * `results/doctor/*.json`: `python benchmarks/doctor_runs.py` (the doctor as a user runs it);
  * `results/test_tier.json`: the default tier through `.ci/run` on a clean clone.

`python -m experiments.tables --write` writes them; the test suite checks them.
"""

from __future__ import annotations

import math
import statistics

from experiments import readme_tables

ROOT = readme_tables.ROOT
DIGITS = ROOT / "results" / "digits"
MAIN = DIGITS / "lcn_convnet_digits.json"
TRAIN_ONLY = DIGITS / "lcn_convnet_digits_train_only.json"
PIXELS = DIGITS / "pixel_baselines.json"
ABLATION = ROOT / "results" / "ablation" / "dv_digits.json"
TEST_TIER = ROOT / "results" / "test_tier.json"
SLOW_TIER_RECORD = ROOT / "results" / "test_tier_slow.json"
DOCTOR = ROOT / "results" / "doctor"
BUSY = readme_tables.BUSY_SHARE


_load, _rel = readme_tables.load_record, readme_tables.relative


def _wall(run: dict) -> str:
  """A run's wall time, with the share of the CPU other processes took when above `BUSY`."""
  busy = run.get("other_processes_cpu_share")
  note = f" (other processes took {100 * busy:.0f}% of the CPU)" if busy is not None and busy > BUSY else ""
  return f"{run['wall_seconds']:.1f} s{note}"


def _percents(values: list[float]) -> str:
  return " / ".join(f"{100 * v:.2f}" for v in values) + "%"


def default_experiment(main: dict, train_only: dict, pixels: dict) -> str:
  """The per-seed table of the default experiment, then its train-only scores and the pixel baselines."""
  seeds = main["seeds"]
  accuracies = [s["final"]["test/accuracy"] for s in seeds]
  std = statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0
  lines = [(f"`{main['command']}` ({main['machine']['cores']} cores of {main['machine']['cpu_model']}, "
            f"{main['date'][:10]}; record `{_rel(MAIN)}`):"), "",
           "| seed | test accuracy | test loss | wall time of the whole run |", "|---|---|---|---|"]
  lines += [f"| {s['seed']} | {100 * s['final']['test/accuracy']:.2f}% | {s['final']['test/loss']:.4f} | "
            f"{_wall(s)} |" for s in seeds]
  lines.append(f"| **mean ± std** | **{100 * statistics.mean(accuracies):.2f}% ± {100 * std:.2f}** (range "
               f"{100 * min(accuracies):.2f}–{100 * max(accuracies):.2f}) | | "
               f"{statistics.mean(s['wall_seconds'] for s in seeds):.1f} s |")
  only = [s["final"]["test/accuracy"] for s in train_only["seeds"]]
  svc, nn = pixels["results"]["svc_rbf_c10"], pixels["results"]["nearest_neighbour"]
  lines += ["", (f"Trained on `train` alone (`{train_only['command']}`), the same settings score "
                 f"{_percents(only)} on test (mean {100 * statistics.mean(only):.2f}%; record "
                 f"`{_rel(TRAIN_ONLY)}`). On raw pixels trained on `train` (`{pixels['command']}`, record "
                 f"`{_rel(PIXELS)}`): an RBF SVM (scikit-learn `SVC(C=10)`) scores "
                 f"{100 * svc['validation_accuracy']:.1f}% on validation and {100 * svc['test_accuracy']:.1f}% "
                 f"on test; 1-nearest-neighbour {100 * nn['validation_accuracy']:.1f}% / "
                 f"{100 * nn['test_accuracy']:.1f}%.")]
  return "\n".join(lines)


def _difference(row: dict, base: dict) -> tuple[float, float]:
  """Mean difference of test error to the baseline (points) and twice its standard error over seeds."""
  a = [e for e in row["errors"] if math.isfinite(e)]
  b = [e for e in base["errors"] if math.isfinite(e)]
  var = lambda xs: statistics.variance(xs) / len(xs) if len(xs) > 1 else 0.0
  return statistics.mean(a) - statistics.mean(b), 2 * math.sqrt(var(a) + var(b))


def ablation_table(record: dict) -> str:
  """One row per variant: the change, per-seed errors, mean ± std, the difference to the baseline and
  whether it exceeds two standard errors of the difference (the seed noise)."""
  rows = record["variants"]
  base = next((r for r in rows if r["variant"] == "baseline"), None)
  lines = [(f"`{record['command']}` ({record['seeds']} seeds per variant; {record['machine']['cores']} cores of "
            f"{record['machine']['cpu_model']}, {record['date'][:10]}; record `{_rel(ABLATION)}`). "
            "Beyond noise: the difference exceeds twice its standard error over seeds."), "",
           (f"| variant ({record['dataset']}) | change | the talk's claim | test error %, seeds "
            f"{', '.join(map(str, rows[0]['seeds']))} | mean ± std | vs baseline |"),
           "|---|---|---|---|---|---|"]
  for r in rows:
    change = ", ".join(f"`{k}={v}`" for k, v in r["overrides"].items()) or "—"
    errors = " / ".join("diverged" if not math.isfinite(e) else f"{e:.2f}" for e in r["errors"])
    finite = [e for e in r["errors"] if math.isfinite(e)]
    if r.get("not_applicable"):
      summary, versus = f"n/a ({r['not_applicable']})", ""
    elif not finite:
      summary, versus = f"diverged in {len(r['errors'])} of {len(r['errors'])} seeds", ""
    else:
      std = statistics.pstdev(finite)
      summary = f"{statistics.mean(finite):.2f} ± {std:.2f}"
      if r.get("diverged"):
        summary += f" (diverged in {r['diverged']} of {len(r['errors'])} seeds)"
      versus = ""
      if base is not None and r is not base:
        delta, noise = _difference(r, base)
        verdict = "beyond noise" if abs(delta) > noise else "within noise"
        versus = f"{delta:+.2f} ({verdict}, 2 s.e. {noise:.2f})".replace("-", "−")
    lines.append(f"| {r['variant']} | {change} | {r['claim']} | {errors} | {summary} | {versus} |")
  return "\n".join(lines)


ENERGY = ROOT / "results" / "energy"
MNIST_SUBSET = ROOT / "results" / "mnist_subset"
# (config, model, data, its record or None, what the record's data is when it is not the config's own)
LAUNCHER_CONFIGS = (
    ("lcn_convnet_digits", "`lcn_convnet_digits`", "`dv_digits` (embedded)", MAIN, ""),
    ("lenet5_mnist", "`lenet5_1998`", "`mnist` (TFDS data dir)", MNIST_SUBSET / "lenet5_mnist.json",
     "on the 8,004-digit subset"),
    ("cifar10_convnet", "`cifar_convnet`", "`cifar10` (TFDS data dir)", None, ""),
)
ENERGY_CONFIGS = (
    ("rbm_digits", "binary RBM 64 × 256, PCD-1, momentum ramp 0.5 → 0.9, L2 2e-4, 60 epochs",
     "`dv_digits`, pixels in [0, 1] as probabilities", ENERGY / "rbm_digits.json", ""),
    ("grbm_patches", "Gaussian-Bernoulli RBM 64 × 256, CD-1, sparsity target 0.1",
     ("40,000 8×8 patches of 14 `dv_natural_images` photographs, mean removed, standardised per pixel; held-out "
     "patches from the other two"), ENERGY / "grbm_patches.json", ""),
    ("dbn_digits", ("two RBMs (64 × 256, 256 × 256, CD-1) stacked greedily, then a 64-256-256-10 sigmoid MLP "
     "fine-tuned from the stack and, for comparison, from random weights"), "`dv_digits`", ENERGY / "dbn_digits.json",
     ""),
    ("rbm_mnist", ("binary RBM 784 × 500, PCD-1 by default; `:cd1`, `:cd10`, `:cd25` for CD-k (Salakhutdinov & "
     "Murray 2008)"), "`mnist` (TFDS data dir), binarised; validation the last 10% of `train`",
     MNIST_SUBSET / "rbm_mnist_pcd.json", "PCD-1 on the 8,004-digit subset"),
    ("dbn_mnist", ("784-500-500 DBN (CD-1), then a 784-500-500-10 MLP fine-tuned from the stack and from random "
     "weights"), "`mnist` (TFDS data dir), binarised", None, ""),
)


def measured_wall(record: dict | None, note: str) -> str:
  """A record's wall time per whole run (mean over seeds), with the CPU share other processes took when
  above `BUSY`, or that no record has one."""
  if record is None:
    return "no timed record"
  seeds = record.get("seeds") if isinstance(record.get("seeds"), list) else []
  walls = [s["wall_seconds"] for s in seeds if isinstance(s, dict) and "wall_seconds" in s]
  seconds = record.get("wall_seconds_mean") or (statistics.mean(walls) if walls else record.get("wall_seconds"))
  if seconds is None:
    return "no timed record"
  shares = [s["other_processes_cpu_share"] for s in seeds if isinstance(s, dict)
            and s.get("other_processes_cpu_share") is not None]
  busy = statistics.mean(shares) if shares else None
  text = f"{seconds / 60:.1f} min" if seconds >= 120 else f"{seconds:.0f} s"
  details = [d for d in (note, f"other processes took {100 * busy:.0f}% of the CPU" if busy and busy > BUSY
                         else "") if d]
  return text + (f" ({'; '.join(details)})" if details else "")


def configs_table(rows, model_header: str = "model") -> str:
  """Configs with their model, data and measured wall time of a whole run (from their records)."""
  lines = [f"| config | {model_header} | data | measured wall time of a whole run (2-core CPU) |", "|---|---|---|---|"]
  for name, model, data, path, note in rows:
    record = _load(path) if path is not None and path.exists() else None
    cell = measured_wall(record, note) + (f"; `{_rel(path)}`" if record is not None else "")
    shown = f"`{name}`" + (" (default)" if name == "lcn_convnet_digits" else "")
    lines.append(f"| {shown} | {model} | {data} | {cell} |")
  return "\n".join(lines)


def doctor_table(records: list[dict]) -> str:
  """One row per doctor record: the command, its wall time, the alarms and the checks' numbers."""
  lines = [("| config | command | wall time | alarms | gradient check, worst relative error | probe at the "
            "configured rate | overfit check |"), "|---|---|---|---|---|---|---|"]
  for r in records:
    m = r["report"]["measurements"]
    if "probe_loss_start" in m:
      probe = f"loss {m['probe_loss_start']:.3f} → {m['probe_loss_end']:.3f} in {m['probe_steps']} steps"
      fit = (f"{m['overfit_subset']} examples memorised in {m['overfit_epochs']} epochs" if m["overfit_reached_zero"]
             else f"not memorised in {m['overfit_epochs']} epochs")
    else:
      probe = f"{m['probe_measure']} {m['probe_start']:.3f} → {m['probe_end']:.3f} in {m['probe_steps']} updates"
      fit = "— (classifiers only)"
    alarms = ", ".join(r["report"]["alarms"]) or "none"
    lines.append(f"| `{r['config']}` | `{r['command']}` | {_wall(r)} | {alarms} | "
                 f"{m['gradient_max_rel_error']:.1e} ({'ok' if m['gradient_ok'] else 'FAILED'}) | {probe} | {fit} |")
  return "\n".join(lines)


def _doctor_records() -> list[dict]:
  return [_load(path) for path in sorted(DOCTOR.glob("*.json"))]


def test_tier_sentence(record: dict) -> str:
  return (f"`make test`: {record['tests']:,} tests in {record['pytest_seconds']:.0f} s (`pytest -n 2`, "
          f"{record['machine']['cores']}-core CPU, clean clone of {record['commit']}; "
          f"{record['wall_seconds_with_install'] / 60:.1f} min with the install; record `{_rel(TEST_TIER)}`), "
          "the five notebooks and the pretrained-metric checks included.")


DEFAULT_TIER = ("every unit, gradient, estimator, sampler, resume, fault-injection, multi-device, two-process, "
                "bad-input, diagnostics and smoke test, the five notebooks executed headless, the shipped weights' "
                "metrics recomputed")
SLOW_TIER = ("full training runs (the default experiment over 3 seeds, mean test accuracy ≥ 99.2%; the 1998 LeNet-5 "
             "config on prepared MNIST digits), a PCD run preempted on 4 devices resumed on 4 and on 1, kill -9 at "
             "random steps of lcn_convnet_digits then bitwise resume (four children), kill -9 mid-run of four tasks "
             "(lcn_convnet_digits, rbm_digits, mcrbm_patches, dbn_digits) then a bitwise rerun, a PCD resume with "
             "persistent chains, a killed and a frozen process of a two-process run (three tests), the smoke runs "
             "of the mcRBM launcher, the deep gated MRF, the DBN and LeNet-5 on mocked MNIST, the DAE corruption "
             "sweep and the multi-task ablation")


def test_tier_rows(default: dict, slow: dict | None) -> str:
  """BUILD.md's table of the test tiers: what each runs and its time from its record (or that it has none)."""
  slow_time = (f"{slow['pytest_seconds'] / 60:.1f} min ({slow['tests']:,} tests; `{_rel(SLOW_TIER_RECORD)}`)"
               if slow else "no timed record")
  return "\n".join([
      "| tier | command | what | time (2-core CPU) |", "|---|---|---|---|",
      (f"| default | `make test` | {DEFAULT_TIER} ({default['tests']:,} tests, clean clone of {default['commit']}; "
       f"`{_rel(TEST_TIER)}`) | {default['pytest_seconds'] / 60:.1f} min |"),
      f"| slow | `make test-slow` | {SLOW_TIER} | {slow_time} |"])


def _config_sources(rows) -> tuple[str, ...]:
  return tuple(_rel(path) for *_, path, _ in rows if path is not None)


TABLES = (
    readme_tables.Table("launcher-configs", "README.md", _config_sources(LAUNCHER_CONFIGS),
                        lambda: configs_table(LAUNCHER_CONFIGS)),
    readme_tables.Table("energy-configs", "README.md", _config_sources(ENERGY_CONFIGS),
                        lambda: configs_table(ENERGY_CONFIGS)),
    readme_tables.Table("default-experiment", "README.md", (_rel(MAIN), _rel(TRAIN_ONLY), _rel(PIXELS)),
                        lambda: default_experiment(_load(MAIN), _load(TRAIN_ONLY), _load(PIXELS))),
    readme_tables.Table("ablation", "README.md", (_rel(ABLATION),), lambda: ablation_table(_load(ABLATION))),
    readme_tables.Table("doctor", "README.md", (_rel(DOCTOR),), lambda: doctor_table(_doctor_records())),
    readme_tables.Table("test-tier", "README.md", (_rel(TEST_TIER),), lambda: test_tier_sentence(_load(TEST_TIER))),
    readme_tables.Table("test-tiers", "BUILD.md", (_rel(TEST_TIER),), lambda: test_tier_rows(
        _load(TEST_TIER), _load(SLOW_TIER_RECORD) if SLOW_TIER_RECORD.exists() else None)),
)
