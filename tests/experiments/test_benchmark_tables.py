"""`experiments.benchmark_tables`: the benchmark tables from their records, on small synthetic records."""

from __future__ import annotations

import pytest

from experiments import benchmark_tables, readme_tables


def _row(table: str, label: str) -> list[str]:
  """The cells of the table row whose first cell starts with `label`."""
  for line in table.splitlines():
    cells = [c.strip() for c in line.strip("|").split("|")]
    if line.startswith("|") and cells[0].startswith(label):
      return cells
  raise AssertionError(f"no row {label!r} in\n{table}")


def _lenet_record(**rates) -> dict:
  return {"batch": 128, "rounds": 2, "steps_per_round": 10, "date": "2026-12-07T22:00:00+00:00",
          "command": "python benchmarks/lenet5_throughput.py", "threads": {"cores_available": 2, "torch_intra_op": 2},
          "machine": {"cpu_model": "Test CPU 9000", "cores": 2, "blas_summary": "openblas 0.3.31 (Haswell)",
                      "other_processes_cpu_share": 0.0},
          "first_step_seconds": {"torch_compile": 25.0},
          "results": {name: {"images_per_s_median": sum(r) / 2, "ms_per_step_median": 128e3 / (sum(r) / 2),
                             "images_per_s_rounds": list(r)} for name, r in rates.items()}}


def test_lenet_ratios_are_against_the_fastest_pytorch_contestant_and_a_missing_one_is_named():
  record = _lenet_record(deepvision=(800, 1000), torch_eager=(1000, 1000), torch_compile=(1500, 2500))
  table = benchmark_tables.lenet_table(record)
  assert "ratio to the fastest PyTorch (torch_compile)" in table
  assert _row(table, "deepvision")[1:4] == ["900", "**0.45×**", "0.40–0.53×"]  # 900 / 2000; 800/1500, 1000/2500
  assert _row(table, "PyTorch eager")[2] == "0.50×"
  assert _row(table, "PyTorch `torch.compile` (default mode)")[2:5] == ["1", "", "25.0 s"]
  assert _row(table, "PyTorch `torch.compile`, channels_last")[1] == "not in this record"
  assert _row(table, "plain Flax")[1] == "not in this record"
  assert ("**Target** (deepvision ahead of the fastest PyTorch contestant, torch_compile): **not met**: 0.45×, "
          "target > 1×.") in table
  assert "Record: 2026-12-07 22:00 UTC, Test CPU 9000, 2 cores, BLAS openblas 0.3.31 (Haswell)" in table
  build = benchmark_tables.lenet_table(record, ms_per_step=True)
  assert _row(build, "deepvision")[1:3] == ["142.22", "900"]


def test_lenet_target_met_when_deepvision_leads_and_a_record_without_pytorch_is_refused():
  table = benchmark_tables.lenet_table(_lenet_record(deepvision=(1300, 1300), torch_eager=(1000, 1000)))
  assert "met, 1.30× (target > 1×)." in table and "not met" not in table
  with pytest.raises(ValueError, match="no PyTorch contestant"):
    benchmark_tables.lenet_table(_lenet_record(deepvision=(1, 1)))


def _hmc_record(ms: dict[str, float]) -> dict:
  results = {name: {"ms_per_trajectory": t, "particles": 128, "particle_leapfrog_steps_per_s": 128 * 20 / (t / 1e3),
                    "gflops": 0.76 / (t / 1e3), "round_seconds": [t / 100, t / 100 * 1.25]}
             for name, t in ms.items()}
  return {"date": "2026-12-07T22:00:00+00:00", "command": "python benchmarks/hmc_throughput.py",
          "machine": {"cores": 2}, "matmul": {"size": 2048, "jax_float32": {"gflops_median": 150.0},
                                              "numpy_float32": {"gflops_median": 190.0}},
          "speed": {"results": results, "rounds": 2, "trajectories_per_round": 10,
                    "skipped": {"numpy_blas2": "warm-up 3 s > 3 × numpy_blas1's: a core was busy; not timed"}}}


def test_hmc_ratio_against_numpys_best_and_targets_against_the_matmul_ceiling():
  table = benchmark_tables.hmc_table(_hmc_record({"numpy_blas1": 10.0, "numpy_2proc": 8.0, "deepvision": 5.0}))
  assert "ratio to NumPy's best (numpy_2proc)" in table and "rate, 190)" in table
  # 8 / 5 = 1.6×; both rounds of each ran 1.25× apart, so every per-round ratio is 1.6 as well
  assert _row(table, "**deepvision, one device, float32**")[1:5] == ["5.00", "**1.60×**", "1.60–1.60×", "152 (80%)"]
  assert _row(table, "NumPy, one process, 1 BLAS thread")[2] == "0.80×"
  assert _row(table, "NumPy, one process, 2 BLAS threads")[1].startswith("skipped: warm-up 3 s")
  assert _row(table, "deepvision, batch split over 2 CPU devices")[1] == "not in this record"
  assert "**Target** (deepvision, one device, float32, ahead of NumPy's best, numpy_2proc): met, 1.60×" in table
  assert "share of the fp32 matmul rate): met, 80% (target ≥ 80%)." in table
  slow = benchmark_tables.hmc_table(_hmc_record({"numpy_blas1": 10.0, "deepvision": 12.5}))
  assert "ahead of NumPy's best, numpy_blas1): **not met**: 0.80×, target > 1×." in slow
  assert "matmul rate): **not met**: 32%, target ≥ 80%." in slow  # 0.76 / 0.0125 = 60.8 GFLOP/s of 190


def _rbm_record(k16_seconds: float) -> dict:
  fit = lambda s: {"examples_per_s": 1000 / s, "examples_per_fit": 1000, "fit_seconds_rounds": [s, s]}
  trainer = {"examples_per_fit": 1000, "compile_seconds_median": {"training_loop": 0.5},
             "examples_per_s": {"training_loop_excluding_compile": 1000 / k16_seconds,
                                "training_loop_with_compile": 1000 / (k16_seconds + 0.5)},
             "rounds": [{"train_seconds_excluding_compile": k16_seconds}, {"train_seconds_excluding_compile": 2 * k16_seconds}]}
  return {
      "date": "2026-12-07T22:00:00+00:00", "command": "python benchmarks/rbm_sklearn.py", "machine": {"cores": 2},
      "speed": {"test_fit": {"rounds": 2, "settings": {"n_hidden": 64, "batch_size": 10, "epochs": 7},
                             "results": {"sklearn": fit(0.2), "sklearn_float32": fit(0.1),
                                         "deepvision": {**fit(0.05), "compile_seconds": 0.7,
                                                        "examples_per_s_with_compile": 1000 / 0.75}}}},
      "real_path": {"rounds": 2, "sklearn_float32_fastest_blas_threads": 2, "date": "2026-12-07T22:10:00+00:00",
                    "command": "python benchmarks/rbm_sklearn.py --real-path-only",
                    "machine_before": {"cpu_model": "Test CPU 9000", "cores": 2},
                    "results": {"sklearn_float32_blas1": fit(0.2), "sklearn_float32_blas2": fit(0.1),
                                "deepvision_trainer_K16": trainer},
                    "ratios_vs_fastest_sklearn_float32": {"deepvision_trainer_K16/sklearn_float32": {
                        "training_loop_excluding_compile": 0.1 / k16_seconds,
                        "training_loop_with_compile": 0.1 / (k16_seconds + 0.5)}}}}


def test_rbm_speed_against_scikit_learns_fastest_mode_and_the_real_path_target():
  table = benchmark_tables.rbm_table(_rbm_record(k16_seconds=0.2))
  assert "ratio to scikit-learn's fastest (sklearn_float32)" in table
  assert _row(table, "scikit-learn `BernoulliRBM`, float64")[1:3] == ["5,000", "0.50×"]
  assert _row(table, "deepvision, the library's step")[1:5] == ["20,000", "2.00×", "2.00–2.00×",
                                                                 "0.70 s (with it: 0.13×)"]
  assert _row(table, "deepvision, one compiled call per minibatch")[1] == "not in this record"
  assert "faster BLAS setting (sklearn_float32_blas2)" in table
  assert _row(table, "deepvision trainer, K = 16")[1:5] == ["5,000", "**0.50×**", "0.25–0.50×",
                                                             "1,429 (0.14×; compilation 0.50 s)"]
  assert _row(table, "`BernoulliRBM`, float32, 1 BLAS thread")[2] == "0.50×"
  assert ("**Target** (the trainer at the config's K = 16, training loop without compilation, against scikit-learn "
          "float32 at its faster BLAS setting): **not met**: 0.50×, target 3×.") in table
  assert "Record: 2026-12-07 22:10 UTC, Test CPU 9000, 2 cores" in table
  assert "against scikit-learn float32 at its faster BLAS setting): met, 4.00× (target 3×)." in (
      benchmark_tables.rbm_table(_rbm_record(k16_seconds=0.025)))


def test_rbm_record_without_the_configs_k_says_so():
  record = _rbm_record(k16_seconds=0.2)
  real = record["real_path"]
  real["results"]["deepvision_trainer_K64"] = real["results"].pop("deepvision_trainer_K16")
  table = benchmark_tables.rbm_table(record)
  assert "deepvision_trainer_K16 not in this record." in table
  assert _row(table, "deepvision trainer, K = 64")[2] == "**0.50×**"


def test_the_documents_hold_the_tables_the_committed_records_give():
  assert readme_tables.stale(benchmark_tables.TABLES) == []


def test_hmc_data_parallel_child_gets_its_own_table_after_the_headline():
  record = _hmc_record({"numpy_blas1": 10.0, "deepvision": 8.0})
  child = _hmc_record({"numpy_blas1": 10.0, "deepvision": 12.0, "deepvision_data_parallel": 4.0})
  record["data_parallel_process"] = {"devices": 2, "command": "python benchmarks/hmc_throughput.py --devices 2",
                                     **{k: child[k] for k in ("speed", "matmul", "machine", "date")}}
  table = benchmark_tables.hmc_table(record)
  headline, rest = table.split("fresh process with 2 CPU devices")
  assert "| **deepvision, one device, float32** (the headline) | 8.00 | **1.25×** |" in headline
  assert "| deepvision, one device of the two, float32 | 12.00 | 0.83× |" in rest
  assert "| deepvision, batch split over 2 CPU devices (secondary line) | 4.00 | 2.50× |" in rest
  assert "not in this record" not in rest and "`python benchmarks/hmc_throughput.py --devices 2`" in rest
  assert "ahead of NumPy's best, numpy_blas1): met, 1.25× (target > 1×)" in rest  # the headline process's


def test_lenet_profile_table_lists_each_contestants_most_expensive_ops():
  assert "No per-op profile in this record" in benchmark_tables.lenet_profile_table({})
  record = {"profile_per_op": {"deepvision": [{"op": "dot.4", "shape": "f32[40,24]{1,0}", "ms_per_step": 1.2}],
                               "torch_eager": [{"op": "aten::mm", "ms_per_step": 0.5}, {"op": "aten::relu",
                                                                                         "ms_per_step": 0.1}]}}
  rows = benchmark_tables.lenet_profile_table(record, top=2).splitlines()
  assert rows[-2].endswith("| `dot.4` f32[40,24] 1.20 |  |")
  assert rows[-1] == "| PyTorch eager | `aten::mm` 0.50 | `aten::relu` 0.10 |"
