r"""The README's real-digits tables, generated from the committed records of the MNIST-subset runs.

  python -m experiments.mnist_table            # print
  python -m experiments.mnist_table --write    # replace the tables in README.md
  python -m experiments.mnist_table --check    # exit 1 if README.md's tables differ from the records

Records: `results/mnist_subset/lenet5_*.json` (`benchmarks/seed_runs.py`: one config, three seeds, whole
launcher runs), `benchmarks/results/lenet5_time_to_accuracy.json` (the launcher against a plain PyTorch loop,
same run), `results/mnist_subset/rbm_mnist_*.json` and `dbn_mnist*.json` (the RBM with AIS bounds and the
DBN against the same MLP from random weights). The test suite checks that README.md holds these tables.
"""

from __future__ import annotations

import pathlib

from experiments import readme_tables

ROOT = pathlib.Path(__file__).resolve().parent.parent
RECORDS = ROOT / "results" / "mnist_subset"
TIME_TO_ACCURACY = ROOT / "benchmarks" / "results" / "lenet5_time_to_accuracy.json"




_load = readme_tables.load_record


def _percent(x: float) -> str:
  return f"{100 * x:.2f}%"


def lenet_table(records_dir: pathlib.Path = RECORDS) -> str:
  """One row per LeNet record: accuracy per seed and mean ± std, mean wall time of a whole run, command."""
  header = ("| run | test accuracy, seeds 0 / 1 / 2 | mean ± std | training accuracy at the end (seed 0) "
            "| wall time per run | command |")
  rows = [header, "|---|---|---|---|---|---|"]
  for path in sorted(records_dir.glob("lenet5_*.json")):
    record = _load(path)
    seeds = " / ".join(_percent(s["final"]["test/accuracy"]) for s in record["seeds"])
    overrides = "".join(f" --config.{o}" for o in record["overrides"])
    rows.append(f"| `{record['name']}` | {seeds} | **{_percent(record['test_accuracy_mean'])}** ± "
                f"{100 * record['test_accuracy_std']:.2f} | "
                f"{_percent(record['seeds'][0]['last_train_record']['train/accuracy'])} | "
                f"{record['wall_seconds_mean']:.0f} s | `--config={record['config']}{overrides}` |")
  return "\n".join(rows)


def time_to_accuracy_table(path: pathlib.Path = TIME_TO_ACCURACY) -> str:
  """The launcher's whole run of the modern LeNet against the plain PyTorch loop, means over the seeds."""
  s = _load(path)["summary"]
  ratio = lambda key: f"{s[key]:.2f}×" if s.get(key) else "n/a"
  seconds = lambda key: f"{s[key]:.1f} s" if s.get(key) else "n/a"
  return "\n".join([
      ("| contestant | test accuracy (mean) | whole run, end to end | … first run (cold compilation cache) "
       "| … later runs (warm cache) | training without start-up and compilation |"),
      "|---|---|---|---|---|---|",
      (f"| deepvision launcher (`lenet5_modern_mnist`) | {_percent(s['deepvision_test_accuracy_mean'])} | "
       f"{seconds('deepvision_end_to_end_seconds_mean')} | {seconds('deepvision_end_to_end_seconds_cold_cache')} | "
       f"{seconds('deepvision_end_to_end_seconds_warm_cache')} | "
       f"{seconds('deepvision_train_seconds_excluding_compile_mean')} |"),
      (f"| plain PyTorch loop ({s.get('torch_best_mode', 'eager')}, its fastest mode) | "
       f"{_percent(s['torch_test_accuracy_mean'])} | "
       f"{seconds('torch_end_to_end_seconds_mean')} | | | {seconds('torch_loop_seconds_mean')} |"),
      *(f"| … PyTorch {mode} | {_percent(m['test_accuracy'])} | {m['process_seconds']:.1f} s | | | "
        f"{m['loop_seconds']:.1f} s |"
        for mode, m in s.get("torch_modes", {}).items() if mode != s.get("torch_best_mode")),
      (f"| **PyTorch time / deepvision time** | | **{ratio('end_to_end_ratio_torch_over_deepvision_mean')}** | "
       f"{ratio('end_to_end_ratio_torch_over_deepvision_cold_cache')} | "
       f"{ratio('end_to_end_ratio_torch_over_deepvision_warm_cache')} | "
       f"**{ratio('steady_ratio_torch_over_deepvision')}** |")])


def _interval(pair) -> str:
  low, high = (f"{v:.2f}" if abs(v) != float("inf") else ("−∞" if v < 0 else "+∞") for v in pair)
  return f"[{low}, {high}]".replace("-", "−")


def rbm_table(records_dir: pathlib.Path = RECORDS) -> str:
  """One row per `rbm_mnist` record: AIS test log-likelihood with its ±3σ interval, the train − test gap."""
  header = ("| run | rate, epochs | test log-likelihood (AIS) [±3σ interval] | train − test | log Z [interval] "
            "| features + logistic regression (test) | wall time |")
  rows = [header, "|---|---|---|---|---|---|---|"]
  for path in sorted(records_dir.glob("rbm_mnist_*.json")):
    r = _load(path)
    summary, settings = r["summary"], r["settings"]
    rows.append(f"| {r['method']} (`{path.stem}`) | {settings['learning_rate']}, {settings['epochs']} | "
                f"{summary['test/log_likelihood']:.2f} {_interval(summary['test/log_likelihood_interval'])} | "
                f"{summary['train_minus_test']:.2f} | {summary['log_z']:.2f} {_interval(summary['log_z_interval'])} | "
                f"{_percent(summary['test/feature_accuracy'])} | {r['wall_seconds']:.0f} s |".replace(" -", " −"))
  return "\n".join(rows)


def dbn_table(records_dir: pathlib.Path = RECORDS) -> str:
  """The DBN fine-tuned against the same MLP from random weights (test error, mean ± std over seeds)."""
  rows = ["| run | test error, fine-tuned from the DBN | from random weights | seeds |", "|---|---|---|---|"]
  for path in sorted(records_dir.glob("dbn_mnist*.json")):
    s = _load(path)["summary"]
    error, scratch = s["test/error"], s["test/error_scratch"]
    rows.append(f"| `{path.stem}` | **{_percent(error['mean'])}** ± {100 * error['std']:.2f} | "
                f"{_percent(scratch['mean'])} ± {100 * scratch['std']:.2f} | {len(error['values'])} |")
  return "\n".join(rows)


def tables() -> str:
  parts = ["LeNet-5 (three seeds each, the subset's 2,000 test digits):", "", lenet_table()]
  if TIME_TO_ACCURACY.exists():
    parts += ["", ("Time to accuracy: the same modern LeNet, data, batch, epochs and schedule, the launcher's whole "
                   "run against a plain PyTorch loop (`benchmarks/lenet5_time_to_accuracy.py`, means of three seeds, "
                   "the same run; ratios above 1: deepvision takes less time):"), "", time_to_accuracy_table()]
  if any(RECORDS.glob("rbm_mnist_*.json")):
    parts += ["", ("`rbm_mnist` (784 × 500, binarised; nats per test digit; Salakhutdinov & Murray 2008 report "
                   "−86.34 for CD-25 trained on all 60,000 digits):"), "", rbm_table()]
  if any(RECORDS.glob("dbn_mnist*.json")):
    parts += ["", ("`dbn_mnist` (784-500-500 DBN, CD-1, then a sigmoid MLP fine-tuned; Hinton et al. 2006 report "
                   "1.25% test error for a 784-500-500-2000 DBN trained on all 60,000 digits):"), "", dbn_table()]
  return "\n".join(parts)


TABLES = (readme_tables.Table(
    "mnist-subset", "README.md",
    ("results/mnist_subset", "benchmarks/results/lenet5_time_to_accuracy.json"), tables),)


if __name__ == "__main__":
  readme_tables.run_cli(TABLES)
