r"""Runs one config through the launcher for several seeds and writes the record behind its README row.

Each seed is `python -m experiments.main --config=CONFIG --workdir=... [--config.data_dir=DATA_DIR]
--config.seed=S [--config.KEY=VALUE ...]` in a fresh process, as a user runs it; the record keeps the exact
command, the resolved config, the wall time of each whole process, the final metrics, how busy the machine
was, the machine and the commit, and the first seed's `curves.png`, `filters.png`, `high_res_samples.png` and
`image_stats.png` (those it drew) go beside it.

Usage:
  python benchmarks/seed_runs.py --config=lenet5_mnist --data_dir=DATA_DIR [--seeds 0 1 2] \
      [--set optimizer.name=sgd ...] [--name RECORD] [--out_dir results/mnist_subset]
  python benchmarks/seed_runs.py --config=lcn_convnet_digits --out_dir results/digits   # embedded data
DATA_DIR holds `mnist` prepared by `python -m experiments.prepare_data` (BUILD.md).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import shutil
import statistics
import tempfile

import cpu_load  # benchmarks/cpu_load.py (the script's own folder)
import run_timing

ROOT = run_timing.ROOT
DEFAULT_OUT = (ROOT / "results" / "mnist_subset").resolve()
SUBSET_NOTE = ("the 8,004-digit MNIST training subset prepared by benchmarks/prepare_mnist_subset.py: "
               "seed-0 permutation, 6,004 digits as `train`, 2,000 as `test`")


def run_seed(config: str, data_dir: str | None, seed: int, overrides: list[str], workdir: str) -> dict:
  """One launcher run: its wall time, final record, last training record and how busy the machine was.

  `machine_busy_share` is the share of all cores busy during the run (this run included),
  `run_cpu_seconds` the CPU time of the launcher process itself, and `other_processes_cpu_share` the
  share of all cores that other processes took (the busy share less the run's own)."""
  data = [f"data_dir={data_dir}"] if data_dir else []
  (seconds, records), load = cpu_load.measure_children(
      lambda: run_timing.launcher_run(config, workdir, [*data, f"seed={seed}", *overrides]))
  final = [r for r in records if r.get("final")][-1]
  train = [r for r in records if any(k.startswith("train/") for k in r)]
  last_train = {k: v for k, v in train[-1].items() if k == "step" or k.startswith("train/")} if train else {}
  return {"seed": seed, "wall_seconds": seconds, "final": final, "last_train_record": last_train, **load}

def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--config", required=True, help="a config name, e.g. lenet5_mnist")
  parser.add_argument("--data_dir", default=None, help="TFDS data dir (none for the embedded data sets)")
  parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
  parser.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="KEY=VALUE",
                      help="config overrides, as --config.KEY=VALUE")
  parser.add_argument("--name", default=None, help="record name (default: the config's)")
  parser.add_argument("--out_dir", default=str(DEFAULT_OUT))
  parser.add_argument("--data_note", default=None, help="what DATA_DIR's data set is (default: the MNIST "
                      "subset with --data_dir, else the config's embedded data set)")
  args = parser.parse_args(argv)
  data_dir = os.path.abspath(os.path.expanduser(args.data_dir)) if args.data_dir else None
  name = args.name or args.config
  out_dir = pathlib.Path(args.out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  seeds = []
  with tempfile.TemporaryDirectory() as scratch:
    for seed in args.seeds:
      workdir = os.path.join(scratch, f"seed{seed}")
      seeds.append(run_seed(args.config, data_dir, seed, args.overrides, workdir))
      print(json.dumps(seeds[-1]), flush=True)
      if seed == args.seeds[0]:
        resolved = _resolved_config(workdir)
        for figure in ("curves.png", "filters.png", "high_res_samples.png", "image_stats.png"):
          if os.path.exists(os.path.join(workdir, figure)):
            shutil.copyfile(os.path.join(workdir, figure), out_dir / f"{name}_{figure}")
  accuracies = [s["final"]["test/accuracy"] for s in seeds if "test/accuracy" in s["final"]]
  record = {
      "name": name, "config": args.config, "overrides": args.overrides,
      "resolved_config": resolved,  # the first seed's config.json (the others differ only in `seed`)
      "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
      "command": (f"python -m experiments.main --config={args.config} --workdir=runs/{name}_seedS "
                  + ("--config.data_dir=DATA_DIR " if data_dir else "") + "--config.seed=S"
                  + "".join(f" --config.{o}" for o in args.overrides)),
      "record_command": (f"python benchmarks/seed_runs.py --config={args.config} "
                         + ("--data_dir=DATA_DIR " if data_dir else "") + "--seeds "
                         + " ".join(map(str, args.seeds))
                         + (" --set " + " ".join(args.overrides) if args.overrides else "")
                         + (f" --name {args.name}" if args.name else "")
                         + (f" --out_dir {out_dir.resolve().relative_to(ROOT)}" if out_dir.resolve() != DEFAULT_OUT else "")),
      "data": args.data_note or (SUBSET_NOTE if data_dir else "the config's embedded data set"),
      "splits": _splits(data_dir) if data_dir else None,
      "machine": run_timing.machine(), "versions": run_timing.versions(), "git": run_timing.git_state(),
      "seeds": seeds,
      "test_accuracy_mean": statistics.mean(accuracies) if accuracies else None,
      "test_accuracy_std": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0,
      "wall_seconds_mean": statistics.mean(s["wall_seconds"] for s in seeds),
  }
  (out_dir / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n")
  print(json.dumps({k: record[k] for k in ("name", "test_accuracy_mean", "test_accuracy_std",
                                           "wall_seconds_mean")}))
  return record


def _resolved_config(workdir: str) -> dict | None:
  """The run's `config.json` (the resolved config the launcher wrote), or None when it wrote none."""
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    return None
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def _splits(data_dir: str) -> dict:
  from deepvision.data import datasets  # pylint: disable=g-import-not-at-top
  return dict(datasets.dataset_info("mnist", data_dir).splits)


if __name__ == "__main__":
  main()
