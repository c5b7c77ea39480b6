r"""The benchmark tables of README.md and BUILD.md, generated from the committed benchmark records.

  python -m experiments.tables --only=lenet5-throughput,hmc-throughput --check

Tables (each a `readme_tables.Table`, written by `python -m experiments.tables --write`):

* `lenet5-throughput` (README.md) and `lenet5-throughput-build` (BUILD.md): `benchmarks/lenet5_throughput.py`'s
  record, deepvision's LeNet-5 training step against PyTorch eager, `torch.compile` and `torch.compile` with
  channels_last, every ratio against the fastest PyTorch contestant of the run;
* `rbm-sklearn` (README.md): `benchmarks/rbm_sklearn.py`'s record, quality and speed against scikit-learn's
  `BernoulliRBM`, speed ratios against scikit-learn's fastest mode of the run (float64 or float32; for the
  trainer's real path, float32 at its faster BLAS thread setting);
* `hmc-throughput` (README.md): `benchmarks/hmc_throughput.py`'s record, the mcRBM's HMC trajectory against
  NumPy's fastest contestant of the run (one process on 1 or 2 BLAS threads, or two processes).

Each shows every contestant (one the record lacks prints as "not in this record", so older records still
generate), the ratio against the best peer, the per-round min–max where the record has rounds, the record's
date, machine and command, and its target: met, or **not met** with the measured figure.
"""

from __future__ import annotations

import pathlib
from collections.abc import Sequence

from experiments import readme_tables

ROOT = pathlib.Path(__file__).resolve().parent.parent
RESULTS = "benchmarks/results"
LENET = f"{RESULTS}/lenet5_throughput.json"
RBM = f"{RESULTS}/rbm_sklearn.json"
HMC = f"{RESULTS}/hmc_throughput.json"
MISSING = "not in this record"

LENET_CONTESTANTS = {
    "deepvision": 'deepvision (`zoo.create("lenet5")` + the library\'s train step)',
    "flax_plain": "plain Flax (`nn.Conv`, `nn.max_pool`)",
    "torch_eager": "PyTorch eager",
    "torch_compile": "PyTorch `torch.compile` (default mode)",
    "torch_compile_channels_last": "PyTorch `torch.compile`, channels_last",
}
LENET_PEERS = ("torch_eager", "torch_compile", "torch_compile_channels_last")
LENET_TARGET = 1.0  # deepvision ahead of the fastest PyTorch contestant

HMC_CONTESTANTS = {
    "numpy_blas1": "NumPy, one process, 1 BLAS thread",
    "numpy_blas2": "NumPy, one process, 2 BLAS threads",
    "numpy_2proc": "NumPy, batch split over 2 processes, 1 BLAS thread each",
    "deepvision": "**deepvision, one device, float32** (the headline)",
    "jax_plain": "plain JAX (`jax.grad`, `lax.scan`)",
    "deepvision_autodiff": "deepvision on `jax.vjp` of the free energy",
    "deepvision_bf16": "deepvision, one device, bf16 matmuls",
    "deepvision_batch256": "deepvision, one device, 256 particles",
    "deepvision_data_parallel": "deepvision, batch split over 2 CPU devices (secondary line)",
    "deepvision_data_parallel_bf16": "deepvision, 2 CPU devices, bf16 matmuls (secondary line)",
}
HMC_PEERS = ("numpy_blas1", "numpy_blas2", "numpy_2proc")
HMC_TARGET_AHEAD, HMC_TARGET_SHARE = 1.0, 80.0

RBM_SPEED_CONTESTANTS = {
    "sklearn": "scikit-learn `BernoulliRBM`, float64",
    "sklearn_float32": "scikit-learn `BernoulliRBM`, float32",
    "deepvision": "deepvision, the library's step scanned over each epoch",
    "deepvision_step_loop": "deepvision, one compiled call per minibatch",
    "jax_plain": "the same update written directly in JAX, scanned",
}
RBM_SPEED_PEERS = ("sklearn", "sklearn_float32")
RBM_TARGET = 3.0  # the trainer's real path against scikit-learn's fastest float32 fit
RBM_DEFAULT_K = 16  # experiments/configs/rbm_digits.py's steps_per_dispatch, when a record does not say


def load(path: str, root: pathlib.Path = ROOT) -> dict:
  return readme_tables.load_record(root / path)


def ratio(x: float) -> str:
  return f"{x:.2f}×"


def min_max(values: Sequence[float] | None) -> str:
  return f"{min(values):.2f}–{max(values):.2f}×" if values else "—"


def per_round(values: Sequence[float] | None, peer: Sequence[float] | None) -> list[float]:
  """Per-round ratios of two rate series (the same rounds); empty when either lacks rounds."""
  return [a / b for a, b in zip(values, peer)] if values and peer else []


def seeds(settings: dict) -> str:
  n = len(settings.get("seeds", []))
  return f"{n} seed{'s' if n != 1 else ''}" if n else "seeds not recorded"


def number(x: float, digits: int = 0) -> str:
  return f"{x:,.{digits}f}"


def target_line(what: str, measured: str, target: str, met: bool) -> str:
  """`**Target** (what): met, 1.30× (target 1×).` or `**Target** (what): **not met**: 0.54×, target 3×.`"""
  return (f"**Target** ({what}): met, {measured} (target {target})." if met
          else f"**Target** ({what}): **not met**: {measured}, target {target}.")


def signed(x: float, digits: int = 2) -> str:
  return f"{x:.{digits}f}".replace("-", "−")


def record_line(record: dict, machine: dict | None = None, command: str | None = None,
                date: str | None = None) -> str:
  """The record's date, machine (CPU model, cores, BLAS, others' CPU share) and command."""
  machine = machine if machine is not None else record.get("machine", {})
  cores = machine.get("cores") or record.get("threads", {}).get("cores_available")
  blas = machine.get("blas_summary") or (machine.get("numpy_blas_build") or {}).get("name")
  others = next((machine[k] for k in machine if k.startswith("other_processes_cpu_share")), None)
  date = date or record.get("date", "")
  parts = [f"{date[:10]} {date[11:16]} UTC".strip() if date else "date not recorded",
           machine.get("cpu_model") or "CPU model not recorded",
           f"{cores} cores" if cores else "cores not recorded"]
  if blas:
    parts.append(f"BLAS {blas}")
  if others is not None:
    parts.append(f"other processes {100 * others:.0f}% of the CPU")
  return f"Record: {', '.join(parts)}; `{command or record.get('command', 'command not recorded')}`."


# ----------------------------------------------------------------------------- LeNet-5


def lenet_best_peer(record: dict) -> str:
  """The fastest PyTorch contestant of the record (median images/s)."""
  results = record["results"]
  peers = [name for name in LENET_PEERS if name in results]
  if not peers:
    raise ValueError(f"{LENET}: no PyTorch contestant among {sorted(results)}")
  return max(peers, key=lambda name: results[name]["images_per_s_median"])


def lenet_table(record: dict, *, ms_per_step: bool = False) -> str:
  """Every contestant's images/s, its ratio to the fastest PyTorch contestant and the rounds' min–max."""
  results, best = record["results"], lenet_best_peer(record)
  first_step = record.get("first_step_seconds", {})
  skipped = record.get("skipped", {})
  reference = results[best]
  head = "| contestant |" + (" ms / step |" if ms_per_step else "") + (
      f" images / s | ratio to the fastest PyTorch ({best}) | rounds, min–max | first step (compilation) |")
  rows = [head, "|---|" + ("---:|" if ms_per_step else "") + "---:|---:|---:|---:|"]
  names = list(LENET_CONTESTANTS) + [n for n in results if n not in LENET_CONTESTANTS]
  for name in names:
    label = LENET_CONTESTANTS.get(name, f"`{name}`")
    if name not in results:
      why = f"skipped: {skipped[name]}" if name in skipped else MISSING
      rows.append(f"| {label} |" + (" |" if ms_per_step else "") + f" {why} | | | |")
      continue
    r = results[name]
    value = r["images_per_s_median"] / reference["images_per_s_median"]
    shown = "1" if name == best else (f"**{ratio(value)}**" if name == "deepvision" else ratio(value))
    rounds = per_round(r.get("images_per_s_rounds"), reference.get("images_per_s_rounds"))
    seconds = first_step.get(name)
    rows.append(f"| {label} |" + (f" {r['ms_per_step_median']:.2f} |" if ms_per_step else "")
                + f" {number(r['images_per_s_median'])} | {shown} | {min_max(rounds) if name != best else ''} | "
                + (f"{seconds:.1f} s |" if seconds is not None else "not recorded |"))
  threads = record.get("threads", {})
  versions = record.get("versions", {})
  settings = (f"Batch {record.get('batch', 128)}, {record.get('rounds', '?')} interleaved rounds of "
              f"{record.get('steps_per_round', '?')} steps, medians; PyTorch {versions.get('torch', '?')} with "
              f"{threads.get('torch_intra_op', '?')} intra-op threads, jax {versions.get('jax', '?')}.")
  lines = ["\n".join(rows), settings, record_line(record)]
  if "deepvision" in results:
    value = results["deepvision"]["images_per_s_median"] / reference["images_per_s_median"]
    lines.append(target_line(f"deepvision ahead of the fastest PyTorch contestant, {best}", ratio(value),
                             f"> {LENET_TARGET:g}×", value > LENET_TARGET))
  return "\n\n".join(lines)


# ----------------------------------------------------------------------------- HMC


def hmc_best_peer(record: dict) -> str:
  """NumPy's fastest contestant of the record (median ms per trajectory)."""
  results = record["speed"]["results"]
  peers = [name for name in HMC_PEERS if name in results]
  if not peers:
    raise ValueError(f"{HMC}: no NumPy contestant among {sorted(results)}")
  return min(peers, key=lambda name: results[name]["ms_per_trajectory"])


def hmc_ceiling(record: dict) -> tuple[float, str]:
  """The float32 matrix-product rate of the run (the faster of jax.numpy's and NumPy's) and its source."""
  matmul = record["matmul"]
  rates = {name: matmul[name]["gflops_median"] for name in ("jax_float32", "numpy_float32") if name in matmul}
  name = max(rates, key=rates.get)
  return matmul.get("float32_ceiling_gflops", rates[name]), name


def hmc_table(record: dict) -> str:
  """Every contestant's ms per trajectory, ratio to NumPy's best, rounds' min–max and share of the ceiling;
  then the data-parallel child process's table, when the record has one, and the targets."""
  lines = _hmc_rows(record)
  child = record.get("data_parallel_process")
  if child:
    lines += [(f"The data-parallel line, timed in a fresh process with {child['devices']} CPU devices (NumPy and the "
               "one-device line timed again beside it, so its ratio is of that process's own run):"),
              *_hmc_rows(child, headline=False)]
  quality = record.get("bf16_quality")
  if quality:
    q = quality["summary"]
    lines.append(
        f"bf16 matmuls and the sampling statistics ({q['trajectories']} trajectories, the last {q['kept']} kept): "
        f"acceptance {quality['bfloat16']['mean_acceptance']:.3f} against float32's "
        f"{quality['float32']['mean_acceptance']:.3f}; mean free energy {q['free_energy_mean_diff_bf16_vs_f32']:+.3f} "
        f"from float32's, where two float32 keys differ by {abs(q['free_energy_mean_diff_f32_vs_f32_other_key']):.3f} "
        f"(standard error of the difference {q['standard_error_of_diff']:.3f}): "
        f"{'the statistics hold' if q['holds'] else '**the statistics differ**'} ({q['criterion']}).")
  results = record["speed"]["results"]
  best, (ceiling, _) = hmc_best_peer(record), hmc_ceiling(record)
  ref = results[best]
  if "deepvision" in results:
    value = results["deepvision"]["particle_leapfrog_steps_per_s"] / ref["particle_leapfrog_steps_per_s"]
    share = 100 * results["deepvision"]["gflops"] / ceiling
    lines.append(target_line(f"deepvision, one device, float32, ahead of NumPy's best, {best}", ratio(value),
                             f"> {HMC_TARGET_AHEAD:g}×", value > HMC_TARGET_AHEAD))
    lines.append(target_line("deepvision, one device, float32, share of the fp32 matmul rate",
                             f"{share:.0f}%", f"≥ {HMC_TARGET_SHARE:g}%", share >= HMC_TARGET_SHARE))
  return "\n\n".join(lines)


def _hmc_rows(record: dict, headline: bool = True) -> list[str]:
  """The contestants' table of one run, its how-measured line and its record line (`headline`: the main
  process, every contestant listed; otherwise only those the run timed)."""
  speed = record["speed"]
  results, best = speed["results"], hmc_best_peer(record)
  ceiling, source = hmc_ceiling(record)
  skipped = speed.get("skipped", {})
  ref = results[best]
  rate = lambda r, seconds: r["particles"] / seconds
  rows = [(f"| contestant | ms / trajectory | ratio to NumPy's best ({best}) | rounds, min–max | GFLOP/s "
           f"(share of the fp32 matmul rate, {ceiling:.0f}) |"), "|---|---:|---:|---:|---:|"]
  names = list(HMC_CONTESTANTS) + [n for n in results if n not in HMC_CONTESTANTS]
  if not headline:
    names = [n for n in names if n in results]
  for name in names:
    label = HMC_CONTESTANTS.get(name, f"`{name}` (ablation)" if name.startswith("ablation") else f"`{name}`")
    if not headline and name == "deepvision":
      label = "deepvision, one device of the two, float32"
    if name not in results:
      rows.append(f"| {label} | {'skipped: ' + skipped[name] if name in skipped else MISSING} | | | |")
      continue
    r = results[name]
    value = r["particle_leapfrog_steps_per_s"] / ref["particle_leapfrog_steps_per_s"]
    shown = "1" if name == best else (f"**{ratio(value)}**" if name == "deepvision" and headline else ratio(value))
    rounds = per_round([rate(r, s) for s in r.get("round_seconds", [])],
                       [rate(ref, s) for s in ref.get("round_seconds", [])])
    rows.append(f"| {label} | {r['ms_per_trajectory']:.2f} | {shown} | {min_max(rounds) if name != best else ''} | "
                f"{r['gflops']:.0f} ({100 * r['gflops'] / ceiling:.0f}%) |")
  lines = ["\n".join(rows),
           (f"{speed.get('rounds', '?')} interleaved rounds of {speed.get('trajectories_per_round', '?')} "
            f"trajectories, medians; the fp32 matmul rate is the faster of jax.numpy's and NumPy's "
            f"({source.replace('_', ' ')}) at {record['matmul'].get('size', '?')}³ in the same run"
            + "".join(f"; {label} {record['matmul'][key]['gflops_median']:.0f} GFLOP/s"
                      for key, label in (("jax_float32", "jax.numpy float32"), ("numpy_float32", "NumPy float32"),
                                         ("jax_bfloat16", "jax.numpy bfloat16")) if key in record["matmul"])
            + "."),
           record_line(record)]
  return lines


# ----------------------------------------------------------------------------- RBM against scikit-learn


def _rbm_speed_rows(part: dict) -> list[str]:
  results = part["results"]
  peers = [name for name in RBM_SPEED_PEERS if name in results]
  best = max(peers, key=lambda name: results[name]["examples_per_s"]) if peers else None
  s = part.get("settings", {})
  rows = [(f"| training speed at `test_fit` ({s.get('n_hidden', '?')} hidden, batch {s.get('batch_size', '?')}, "
           f"{s.get('epochs', '?')} epochs), whole fit, median of {part.get('rounds', '?')} rounds | examples / s | "
           f"ratio to scikit-learn's fastest ({best}) | rounds, min–max | compilation |"),
          "|---|---:|---:|---:|---:|"]
  for name, label in list(RBM_SPEED_CONTESTANTS.items()) + [(n, f"`{n}`") for n in results
                                                             if n not in RBM_SPEED_CONTESTANTS]:
    if name not in results:
      rows.append(f"| {label} | {MISSING} | | | |")
      continue
    r = results[name]
    if best is None:
      rows.append(f"| {label} | {number(r['examples_per_s'])} | no scikit-learn in this record | | |")
      continue
    value = r["examples_per_s"] / results[best]["examples_per_s"]
    rounds = per_round([r["examples_per_fit"] / t for t in r.get("fit_seconds_rounds", [])],
                       [results[best]["examples_per_fit"] / t for t in results[best].get("fit_seconds_rounds", [])])
    compile_text = (f"{r['compile_seconds']:.2f} s (with it: {ratio(r['examples_per_s_with_compile'] / results[best]['examples_per_s'])})"
                    if r.get("compile_seconds") is not None else "")
    rows.append(f"| {label} | {number(r['examples_per_s'])} | {'1' if name == best else ratio(value)} | "
                f"{'' if name == best else min_max(rounds)} | {compile_text} |")
  return rows


def rbm_headline(real: dict, default_k: int = RBM_DEFAULT_K) -> dict | None:
  """The trainer at the config's K against the faster scikit-learn float32 (the record's, or computed)."""
  if real.get("headline"):
    return real["headline"]
  name = f"deepvision_trainer_K{default_k}"
  if name not in real.get("results", {}):
    return None
  threads = real["sklearn_float32_fastest_blas_threads"]
  peer = real["results"][f"sklearn_float32_blas{threads}"]
  ratios = real["ratios_vs_fastest_sklearn_float32"][f"{name}/sklearn_float32"]
  mine = real["results"][name]
  rounds = per_round([mine["examples_per_fit"] / x["train_seconds_excluding_compile"] for x in mine.get("rounds", [])],
                     [peer["examples_per_fit"] / t for t in peer.get("fit_seconds_rounds", [])])
  return {"contestant": name, "config_default_k": default_k, "peer": f"sklearn_float32_blas{threads}",
          "ratio": ratios["training_loop_excluding_compile"],
          "ratio_round_min_max": [min(rounds), max(rounds)] if rounds else None,
          "cold_ratio_training_loop_with_compile": ratios["training_loop_with_compile"],
          "cold_ratio_whole_process_from_start": ratios.get("whole_process_from_start"),
          "target": RBM_TARGET, "met": ratios["training_loop_excluding_compile"] >= RBM_TARGET}


def _rbm_real_path_rows(real: dict) -> list[str]:
  results = real["results"]
  threads = real.get("sklearn_float32_fastest_blas_threads")
  peer_name = f"sklearn_float32_blas{threads}"
  peer = results.get(peer_name)
  whole = real.get("whole_process", {}).get("results", {})
  best_process = min((whole[f"sklearn_float32_blas{t}"]["process_seconds_median"] for t in (1, 2)
                      if f"sklearn_float32_blas{t}" in whole), default=None)
  rows = [(f"| the trainer's real path (`train_and_evaluate`, `rbm_digits.py` at `test_fit`), median of "
           f"{real.get('rounds', '?')} rounds | examples / s, training loop | ratio to scikit-learn float32 at its "
           f"faster BLAS setting ({peer_name}) | rounds, min–max | cold: with compilation | cold: fresh process "
           "from interpreter start |"), "|---|---:|---:|---:|---:|---:|"]
  for t in (1, 2):
    name = f"sklearn_float32_blas{t}"
    if name not in results:
      rows.append(f"| `BernoulliRBM`, float32, {t} BLAS thread{'s' if t > 1 else ''} | {MISSING} | | | | |")
      continue
    process = whole.get(name, {}).get("process_seconds_median")
    value = results[name]["examples_per_s"] / peer["examples_per_s"]
    rows.append(f"| `BernoulliRBM`, float32, {t} BLAS thread{'s' if t > 1 else ''} | "
                f"{number(results[name]['examples_per_s'])} | {'1' if name == peer_name else ratio(value)} | | | "
                f"{f'{process:.1f} s' if process else ''} |")
  for name in sorted((n for n in results if n.startswith("deepvision_trainer_K")), key=lambda n: int(n[20:])):
    r = results[name]
    e = r["examples_per_s"]
    rounds = per_round([r["examples_per_fit"] / x["train_seconds_excluding_compile"] for x in r.get("rounds", [])],
                       [peer["examples_per_fit"] / t for t in peer.get("fit_seconds_rounds", [])])
    process = whole.get(name, {}).get("process_seconds_median")
    process_text = (f"{process:.1f} s ({ratio(best_process / process)})" if process and best_process else "")
    compile_seconds = r.get("compile_seconds_median", {}).get("training_loop")
    rows.append(f"| deepvision trainer, K = {name[20:]} | {number(e['training_loop_excluding_compile'])} | "
                f"**{ratio(e['training_loop_excluding_compile'] / peer['examples_per_s'])}** | {min_max(rounds)} | "
                f"{number(e['training_loop_with_compile'])} ({ratio(e['training_loop_with_compile'] / peer['examples_per_s'])}"
                f"{f'; compilation {compile_seconds:.2f} s' if compile_seconds is not None else ''}) | {process_text} |")
  return rows


def rbm_table(record: dict, default_k: int = RBM_DEFAULT_K) -> str:
  """Quality, features and speed against scikit-learn; the trainer's real path with its 3× target."""
  parts = []
  quality = record.get("quality_test_fit", {}).get("summary")
  features = record.get("features_lr", {})
  if quality:
    q = lambda side: quality.get(side, {}).get("exact_pl")
    cell = lambda v: f"{signed(v['mean'])} ± {v['std']:.2f}" if v else MISSING
    rows = ["| quality | scikit-learn `BernoulliRBM` | deepvision |", "|---|---|---|",
            (f"| exact mean pseudo-likelihood at scikit-learn's `test_fit` settings (64 hidden, rate 0.1, batch 10, "
             f"7 epochs, all digits in [0, 1]; {seeds(record['quality_test_fit'].get('settings', {}))}; "
             f"the same estimator for both) | {cell(q('sklearn'))} | **{cell(q('deepvision'))}** |")]
    example = features.get("example_settings", {}).get("test_accuracy", {})
    if example:
      pct = lambda side: f"{100 * example[side]['mean']:.1f}%" if side in example else MISSING
      rows.append("| features + logistic regression on the test split, scikit-learn's example settings (100 hidden, "
                  f"rate 0.06, 10 epochs; {seeds(features['example_settings'].get('settings', {}))}) | "
                  f"{pct('sklearn')} | {pct('deepvision')} |")
    if "deepvision_rbm_digits" in features:
      rows.append(f"| the same with the `rbm_digits` config | | "
                  f"**{100 * features['deepvision_rbm_digits']['test_feature_accuracy']:.1f}%** |")
    if "pixels" in features:
      rows.append(f"| raw pixels, for reference | {100 * features['pixels']['test_accuracy']:.1f}% | |")
    parts.append("\n".join(rows))
  targets = []
  if quality and q("deepvision"):
    value = q("deepvision")["mean"]
    bar = record["quality_test_fit"].get("target", {}).get("deepvision_exact_pl_at_least", -22.5)
    targets.append(target_line("deepvision's exact mean pseudo-likelihood at `test_fit`", signed(value),
                               f"≥ {signed(bar, 1)}", value >= bar))
  if "deepvision_rbm_digits" in features:
    value = features["deepvision_rbm_digits"]["test_feature_accuracy"]
    targets.append(target_line("`rbm_digits` features + logistic regression, test accuracy", f"{100 * value:.1f}%",
                               "≥ 93.5%", value >= 0.935))
  if "speed" in record and "test_fit" in record["speed"]:
    parts.append("\n".join(_rbm_speed_rows(record["speed"]["test_fit"])))
  parts.append(record_line(record))
  real = record.get("real_path")
  if real:
    parts.append("\n".join(_rbm_real_path_rows(real)))
    parts.append(record_line(real, machine=real.get("machine_before", {}),
                             command=real.get("command") or record.get("command"), date=real.get("date")))
    head = rbm_headline(real, default_k)
    if head:
      targets.append(target_line(
          f"the trainer at the config's K = {head['config_default_k']}, training loop without compilation, against "
          "scikit-learn float32 at its faster BLAS setting", ratio(head["ratio"]), f"{RBM_TARGET:g}×",
          head["ratio"] >= RBM_TARGET))
    else:
      targets.append(f"**Target** (the trainer at the config's K = {default_k}, {ratio(RBM_TARGET)} scikit-learn "
                     f"float32): deepvision_trainer_K{default_k} {MISSING}.")
  return "\n\n".join(parts + targets)


def lenet_profile_table(record: dict, top: int = 6) -> str:
  """The most expensive ops of each contestant's step, from the record's per-op profiles (`--profile`)."""
  profiles = record.get("profile_per_op")
  if not profiles:
    return ("No per-op profile in this record: `python benchmarks/lenet5_throughput.py --profile` adds one "
            "(a jax.profiler trace of the compiled step; torch.profiler for PyTorch).")
  lines = [(f"The {top} most expensive ops per step of each contestant (ms per step; XLA ops named with their output "
            "shape; PyTorch's profiler inflates small ops):"), "",
           "| contestant | " + " | ".join(f"op {i + 1}" for i in range(top)) + " |", "|---|" + "---|" * top]
  for name, ops in profiles.items():
    cells = [f"`{op['op'][:40]}`" + (f" {op['shape'].split('{')[0]}" if op.get("shape") else "")
             + f" {op['ms_per_step']:.2f}" for op in ops[:top]]
    cells += [""] * (top - len(cells))
    lines.append(f"| {LENET_CONTESTANTS.get(name, name)} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


TABLES = (
    readme_tables.Table("lenet5-throughput", "README.md", (LENET,), lambda: lenet_table(load(LENET))),
    readme_tables.Table("lenet5-profile", "BUILD.md", (LENET,), lambda: lenet_profile_table(load(LENET))),
    readme_tables.Table("lenet5-throughput-build", "BUILD.md", (LENET,),
                        lambda: lenet_table(load(LENET), ms_per_step=True)),
    readme_tables.Table("rbm-sklearn", "README.md", (RBM,), lambda: rbm_table(load(RBM))),
    readme_tables.Table("hmc-throughput", "README.md", (HMC,), lambda: hmc_table(load(HMC))),
)
