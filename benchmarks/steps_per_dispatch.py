r"""Choosing K, the training steps per jitted call (`config.steps_per_dispatch`), by measurement.

Two jobs, each trained through the library's real path (`train_and_evaluate`) in a fresh process per run
(`run_timing.py`: every run compiles its programs; JAX's own compile events are summed and reported apart):

* `main`: the default experiment, `experiments/configs/lcn_convnet_digits.py` (89 steps of 16 images per
  epoch; a log record every epoch and a checkpoint every 500 steps cut the dispatches), shortened to
  `--main-epochs` epochs (the full job is 60: `main_job.py` times it);
* `rbm_digits`: `experiments/configs/rbm_digits.py` as the launcher runs it (3,180 steps of 20, a log record
  and an evaluation every epoch), AIS, the linear evaluation and the figures off (`--jobs rbm_digits`);
* `rbm_test_fit`: `experiments/configs/rbm_digits.py` at scikit-learn's `test_fit` settings (1,797 digits, 64
  hidden, batch 10, 7 epochs, PCD-1, plain SGD; 1,253 steps), one log record and one checkpoint at the end
  (`run_timing.rbm_test_fit_config`).

For each K: training steps/s without compilation (`train_seconds - train_compile_seconds`), the training
loop's wall time with compilation, the compile time, the `train_and_evaluate` wall time and the whole
process's wall time (interpreter start and imports included); medians over `--rounds` rounds, the K values
taking turns in rotating order inside every round. The final records of all K are compared: K > 1 must give
the numbers of K = 1.

Results go to benchmarks/results/steps_per_dispatch.json (`--quick`: steps_per_dispatch_quick.json).

Usage (about 10 minutes on 2 idle cores; --quick: 1 round, 1 epoch of the main job, K in {1, 16}):
  python benchmarks/steps_per_dispatch.py [--quick] [--ks 1,4,16,64,256] [--rounds 3] [--main-rounds 1]
      [--main-epochs 3] [--jobs rbm_test_fit,rbm_digits,main] [--out PATH]
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import statistics
import sys
import time

from cpu_load import cpu_busy_seconds  # benchmarks/cpu_load.py (the script's own folder)
import run_timing

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
def summarise(runs: list[dict], steps: int) -> dict:
  med = lambda key: statistics.median(r[key] for r in runs)  # noqa: E731
  train_wo = med("train_seconds_excluding_compile")
  return {
      "steps": steps, "runs": len(runs),
      "steps_per_s_excluding_compile": steps / train_wo,
      "train_seconds_excluding_compile": train_wo,
      "train_seconds": med("train_seconds"),
      "train_compile_seconds": med("train_compile_seconds"),
      "run_seconds": med("run_seconds"), "compile_seconds": med("compile_seconds"),
      "process_seconds": med("process_seconds"),
      "steps_per_s_including_compile": steps / med("train_seconds"),
      "rounds": [{k: round(v, 3) for k, v in r.items() if isinstance(v, float)} for r in runs],
  }


def sweep(job: str, ks: list[int], rounds: int, epochs: int | None) -> dict:
  runs = {k: [] for k in ks}
  for r in range(rounds):
    for k in ks[r % len(ks):] + ks[:r % len(ks)]:
      print(f"  {job} K={k} round {r + 1}/{rounds} ...", flush=True)
      runs[k].append(run_timing.child_run(job, k, 0, epochs))
  steps = runs[ks[0]][0]["record"]["step"]
  out = {}
  reference = runs[ks[0]][-1]["record"]
  for k, results in runs.items():
    name = f"K={k}"
    out[name] = summarise(results, steps)
    record = results[-1]["record"]
    out[name]["final_record"] = record
    out[name]["final_record_equals_K1"] = record == reference
  base = out[f"K={ks[0]}"]
  for entry in out.values():
    entry["speedup_excluding_compile_vs_K1"] = (
        entry["steps_per_s_excluding_compile"] / base["steps_per_s_excluding_compile"])
    entry["speedup_training_with_compile_vs_K1"] = base["train_seconds"] / entry["train_seconds"]
    entry["speedup_process_vs_K1"] = base["process_seconds"] / entry["process_seconds"]
  return out


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true")
  parser.add_argument("--ks", default=None, help="comma-separated K values (the first is the reference)")
  parser.add_argument("--rounds", type=int, default=None, help="rounds of the RBM job")
  parser.add_argument("--main-rounds", type=int, default=1, help="rounds of the main job")
  parser.add_argument("--main-epochs", type=int, default=None, help="epochs of the main job (of 60)")
  parser.add_argument("--jobs", default="rbm_test_fit,main")
  parser.add_argument("--out", type=pathlib.Path, default=None)
  args = parser.parse_args(argv)
  ks = [int(k) for k in (args.ks or ("1,16" if args.quick else "1,4,16,64,256")).split(",")]
  rounds = args.rounds or (1 if args.quick else 3)
  main_epochs = args.main_epochs or (1 if args.quick else 3)
  out_path = args.out or RESULTS / ("steps_per_dispatch_quick.json" if args.quick else "steps_per_dispatch.json")
  command = "python benchmarks/steps_per_dispatch.py" + (
      " " + " ".join(sys.argv[1:]) if argv is None and sys.argv[1:] else "")

  report = {"benchmark": "steps per dispatch (K): training throughput of the real path, CPU",
            "machine_before": run_timing.machine()}
  busy, wall = cpu_busy_seconds(), time.perf_counter()
  jobs = {}
  for job in args.jobs.split(","):
    print(f"{job} ...", flush=True)
    if job == "main":
      jobs[job] = {"settings": {"config": "experiments/configs/lcn_convnet_digits.py", "epochs": main_epochs,
                                "of_epochs": 60, "seed": 0, "figures": False,
                                "log_every": "one epoch (89 steps)", "checkpoint_every": 500},
                   "results": sweep(job, ks, args.main_rounds, main_epochs)}
    elif job == "rbm_digits":
      jobs[job] = {"settings": {"config": "experiments/configs/rbm_digits.py without AIS, linear evaluation and "
                                          "figures (benchmarks/run_timing.py: rbm_digits_config)",
                                "seed": 0, "log_and_eval": "every epoch (53 steps)"},
                   "results": sweep(job, ks, rounds, None)}
    else:
      jobs[job] = {"settings": {"config": "experiments/configs/rbm_digits.py at scikit-learn's test_fit settings "
                                          "(benchmarks/run_timing.py: rbm_test_fit_config)",
                                **run_timing.TEST_FIT, "seed": 0, "log_and_eval": "once, at the end"},
                   "results": sweep(job, ks, rounds, None)}
  elapsed = time.perf_counter() - wall
  cores = report["machine_before"]["cores"]
  busy_share = None if busy is None else (cpu_busy_seconds() - busy) / (elapsed * cores)
  report.update({
      "jobs": jobs,
      "machine_after": run_timing.machine(),
      "cpu_busy_share_all_processes": None if busy_share is None else round(busy_share, 3),
      "cpu_note": "share of the cores busy during the whole benchmark, this benchmark's own runs included "
                  "(they use up to all cores)",
      "versions": run_timing.versions(), "git": run_timing.git_state(),
      "measured_seconds": round(elapsed, 1),
      "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "command": command,
  })
  out_path.parent.mkdir(parents=True, exist_ok=True)
  out_path.write_text(json.dumps(report, indent=2) + "\n")
  for job, block in jobs.items():
    print(f"\n{job}: {next(iter(block['results'].values()))['steps']} steps")
    print(f"  {'K':12s} {'steps/s':>9s} {'train s':>8s} {'compile':>8s} {'run s':>7s} {'process':>8s} same")
    for name, r in block["results"].items():
      print(f"  {name:12s} {r['steps_per_s_excluding_compile']:9.1f} {r['train_seconds']:8.2f} "
            f"{r['train_compile_seconds']:8.2f} {r['run_seconds']:7.2f} {r['process_seconds']:8.2f} "
            f"{r['final_record_equals_K1']}")
  print(f"load average before {report['machine_before']['load_average_1_5_15']}, after "
        f"{report['machine_after']['load_average_1_5_15']}; {elapsed:.0f} s; wrote {out_path}")
  return report


if __name__ == "__main__":
  main()
