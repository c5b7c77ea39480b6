r"""Runs the doctor on configs as a user runs it and writes the records behind the README's doctor figures.

Each config is `python -m experiments.doctor --config=NAME --workdir=...` in a fresh process; the record keeps
the command, the whole process's wall time, the share of the CPU other processes took meanwhile, and the report's
`doctor.json` (alarms, findings and the checks' measurements).

Usage (about a minute on 2 idle cores):
  python benchmarks/doctor_runs.py [--configs lcn_convnet_digits rbm_digits] [--out_dir results/doctor]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import cpu_load  # benchmarks/cpu_load.py (the script's own folder)
import run_timing

ROOT = run_timing.ROOT


def doctor_run(config: str, workdir: str) -> dict:
  """One doctor process: its wall time, other processes' CPU share and its `doctor.json`."""
  command = [sys.executable, "-m", "experiments.doctor", f"--config={config}", f"--workdir={workdir}"]

  def doctor() -> float:
    begin = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    if done.returncode:
      raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return time.perf_counter() - begin

  seconds, load = cpu_load.measure_children(doctor)
  others = load["other_processes_cpu_share"]
  report = json.loads(pathlib.Path(workdir, "doctor.json").read_text(encoding="utf-8"))
  return {"wall_seconds": seconds, "other_processes_cpu_share": others, "report": report}


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--configs", nargs="+", default=["lcn_convnet_digits", "rbm_digits"])
  parser.add_argument("--out_dir", default=str(ROOT / "results" / "doctor"))
  args = parser.parse_args(argv)
  out_dir = pathlib.Path(args.out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  for config in args.configs:
    with tempfile.TemporaryDirectory() as scratch:
      run = doctor_run(config, os.path.join(scratch, config))
    record = {"config": config, **run,
              "command": f"python -m experiments.doctor --config={config} --workdir=runs/doctor_{config}",
              "record_command": f"python benchmarks/doctor_runs.py --configs {config}",
              "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
              "machine": run_timing.machine(), "versions": run_timing.versions(), "git": run_timing.git_state()}
    (out_dir / f"{config}.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({"config": config, "wall_seconds": run["wall_seconds"], "alarms": run["report"]["alarms"],
                      **run["report"]["measurements"]}), flush=True)


if __name__ == "__main__":
  main()
