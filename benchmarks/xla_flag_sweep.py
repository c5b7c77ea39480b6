r"""Which XLA:CPU path runs the mcRBM HMC trajectory and a float32 matrix product fastest on this machine.

Runs `hmc_throughput.py` (NumPy on two BLAS threads against deepvision on one device, one process each) once
per set of XLA flags, each in a fresh process, and records the matrix-product rates (jax.numpy float32 and
bfloat16, NumPy float32 at 2048³) and the trajectory times beside the flags. The flag sets: XLA:CPU's
defaults; XNNPACK (`--xla_cpu_use_xnnpack=true`); oneDNN (`--xla_cpu_use_onednn=true`); Eigen's
single-threaded path (`--xla_cpu_multi_thread_eigen=false`); no YNNPACK library fusions
(`--xla_cpu_experimental_ynn_fusion_type=`); the pre-thunk runtime (`--xla_cpu_use_thunk_runtime=false`).

Usage (about 4 minutes on 2 idle cores):
  python benchmarks/xla_flag_sweep.py [--rounds 7] [--out results/xla_flag_sweep.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import subprocess
import sys
import tempfile

import run_timing  # benchmarks/run_timing.py (the script's own folder)

ROOT = run_timing.ROOT
FLAG_SETS = {"defaults": "", "xnnpack": "--xla_cpu_use_xnnpack=true", "onednn": "--xla_cpu_use_onednn=true",
             "eigen_single_thread": "--xla_cpu_multi_thread_eigen=false",
             "no_ynn_fusions": "--xla_cpu_experimental_ynn_fusion_type=",
             "no_thunk_runtime": "--xla_cpu_use_thunk_runtime=false"}


def run(flags: str, rounds: int, out: str) -> dict:
  """One `hmc_throughput.py` process under `flags`: the rates and times of its record."""
  command = [sys.executable, str(ROOT / "benchmarks" / "hmc_throughput.py"), "--contestants",
             "numpy_blas2,deepvision", "--rounds", str(rounds), "--skip-quality", "--no-data-parallel",
             f"--xla-flags={flags}", "--out", out]
  done = subprocess.run(command, capture_output=True, text=True, check=False)
  if done.returncode:
    raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
  record = json.loads(pathlib.Path(out).read_text())
  results, matmul = record["speed"]["results"], record["matmul"]
  return {"xla_flags": flags,
          "jax_float32_gflops": matmul["jax_float32"]["gflops_median"],
          "jax_bfloat16_gflops": matmul["jax_bfloat16"]["gflops_median"],
          "numpy_float32_gflops": matmul["numpy_float32"]["gflops_median"],
          "deepvision_ms_per_trajectory": results["deepvision"]["ms_per_trajectory"],
          "numpy_blas2_ms_per_trajectory": results["numpy_blas2"]["ms_per_trajectory"],
          "deepvision_over_numpy_blas2": (results["numpy_blas2"]["ms_per_trajectory"]
                                          / results["deepvision"]["ms_per_trajectory"]),
          "other_processes_cpu_share": record["machine"].get("other_processes_cpu_share_during_timings")}


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--rounds", type=int, default=7)
  parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "xla_flag_sweep.json"))
  args = parser.parse_args(argv)
  sweep = {}
  with tempfile.TemporaryDirectory() as scratch:
    for name, flags in FLAG_SETS.items():
      sweep[name] = run(flags, args.rounds, str(pathlib.Path(scratch) / f"{name}.json"))
      print(json.dumps({name: sweep[name]}), flush=True)
  record = {"what": "XLA:CPU flag sets against the mcRBM HMC trajectory and 2048³ matrix products, one fresh "
                    "process each (benchmarks/hmc_throughput.py)",
            "sweep": sweep, "rounds": args.rounds,
            "command": "python benchmarks/xla_flag_sweep.py" + (f" --rounds {args.rounds}" if args.rounds != 7 else ""),
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "machine": run_timing.machine(), "versions": run_timing.versions(), "git": run_timing.git_state()}
  out = pathlib.Path(args.out)
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
  main()
