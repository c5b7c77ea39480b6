"""`benchmarks/seed_runs.py`: one seed's record (CPU shares, final record) and the resolved config it keeps."""

from __future__ import annotations

import importlib
import json
import pathlib
import types

import pytest

BENCHMARKS = pathlib.Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(name="seed_runs")
def _seed_runs(monkeypatch):
  monkeypatch.syspath_prepend(str(BENCHMARKS))  # the script imports its neighbours cpu_load and run_timing
  return importlib.import_module("seed_runs")


def test_run_seed_separates_the_runs_own_cpu_from_other_processes(seed_runs, monkeypatch):
  records = [{"step": 10, "train/loss": 0.5, "val/accuracy": 0.8},
             {"step": 20, "test/accuracy": 0.9, "final": True}]
  done = []  # the counters read before the run and after it

  def launcher_run(*args):
    done.append(args)
    return 29.0, records

  monkeypatch.setattr(seed_runs.run_timing, "launcher_run", launcher_run)
  monkeypatch.setattr(seed_runs.cpu_load, "cpu_busy_seconds", lambda: 154.0 if done else 100.0)  # 54 s busy
  monkeypatch.setattr(seed_runs.cpu_load, "children_cpu_seconds", lambda: 23.0 if done else 5.0)  # the run: 18 s
  monkeypatch.setattr(seed_runs.cpu_load, "time", types.SimpleNamespace(perf_counter=lambda: 30.0 if done else 0.0))
  monkeypatch.setattr(seed_runs.cpu_load.os, "cpu_count", lambda: 2)  # 30 s × 2 cores = 60 CPU seconds
  seed = seed_runs.run_seed("rbm_digits", None, 3, [], "unused")
  assert seed["seed"] == 3 and seed["wall_seconds"] == 29.0
  assert done == [("rbm_digits", "unused", ["seed=3"])]
  assert seed["final"] == records[1]
  assert seed["last_train_record"] == {"step": 10, "train/loss": 0.5}
  assert seed["machine_busy_share"] == pytest.approx(0.9)
  assert seed["run_cpu_seconds"] == pytest.approx(18.0)
  assert seed["other_processes_cpu_share"] == pytest.approx(0.6)  # 0.9 − 18 / 60


def test_the_resolved_config_is_the_work_dirs_config_json(seed_runs, tmp_path):
  assert seed_runs._resolved_config(str(tmp_path)) is None  # pylint: disable=protected-access
  (tmp_path / "config.json").write_text(json.dumps({"model": "rbm", "seed": 0}))
  assert seed_runs._resolved_config(str(tmp_path)) == {"model": "rbm", "seed": 0}  # pylint: disable=protected-access
