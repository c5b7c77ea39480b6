"""The default-experiment, ablation and test-tier tables, generated from records (synthetic ones here)."""

from __future__ import annotations

import json

import ml_collections

from experiments import (
  ablate,
  build_tables,
  features_table,
  results_tables,
)

MACHINE = {"cores": 2, "cpu_model": "Test CPU"}


def _seed(seed, accuracy, loss, wall, busy):
  return {"seed": seed, "wall_seconds": wall, "other_processes_cpu_share": busy,
          "final": {"test/accuracy": accuracy, "test/loss": loss}}


def test_default_experiment_table_means_stds_and_busy_machines():
  main = {"command": "python -m experiments.main --config=X", "machine": MACHINE, "date": "2026-12-07T00:00",
          "seeds": [_seed(0, 0.99, 0.02, 40.0, 0.01), _seed(1, 0.98, 0.03, 50.0, 0.5)]}
  train_only = {"command": "TRAIN ONLY", "seeds": [_seed(0, 0.97, 0.1, 1, 0), _seed(1, 0.99, 0.1, 1, 0)]}
  pixels = {"command": "PIXELS", "results": {"svc_rbf_c10": {"validation_accuracy": 0.9, "test_accuracy": 0.91},
                                             "nearest_neighbour": {"validation_accuracy": 0.8,
                                                                   "test_accuracy": 0.81}}}
  text = results_tables.default_experiment(main, train_only, pixels)
  assert "| 0 | 99.00% | 0.0200 | 40.0 s |" in text
  assert "| 1 | 98.00% | 0.0300 | 50.0 s (other processes took 50% of the CPU) |" in text
  assert "**98.50% ± 0.71** (range 98.00–99.00) | | 45.0 s |" in text  # sample std of 99 and 98
  assert "score 97.00 / 99.00% on test (mean 98.00%" in text
  assert "scores 90.0% on validation and 91.0% on test; 1-nearest-neighbour 80.0% / 81.0%." in text


def _variant(name, errors, overrides=None, **extra):
  return {"variant": name, "claim": f"claim of {name}", "overrides": overrides or {}, "errors": errors,
          "seeds": [0, 1, 2], **extra}


def test_ablation_table_differences_noise_divergence_and_not_applicable():
  nan = float("nan")
  record = {"command": "python -m experiments.ablate", "seeds": 3, "machine": MACHINE, "date": "2026-12-07",
            "dataset": "dv_digits", "variants": [
                _variant("baseline", [0.5, 0.6, 0.7]),
                _variant("far", [1.5, 1.6, 1.7], {"a.b": 1}),  # +1.0, s.e. of the difference ≈ 0.08
                _variant("near", [0.4, 0.8, 0.9]),  # +0.1 against 2 s.e. ≈ 0.33
                _variant("gone", [nan, nan, nan], diverged=3),
                _variant("some", [nan, 0.5, 0.7], diverged=1),
                _variant("lenet", [], not_applicable="lenet5 has no such field")]}
  rows = {line.split(" | ")[0][2:]: line for line in results_tables.ablation_table(record).splitlines()
          if line.startswith("| ") and "variant" not in line}
  assert "| `a.b=1` | claim of far | 1.50 / 1.60 / 1.70 | 1.60 ± 0.08 | +1.00 (beyond noise, 2 s.e. 0.16) |" \
      in rows["far"]
  assert "+0.10 (within noise, 2 s.e. 0.33) |" in rows["near"]
  assert "| diverged / diverged / diverged | diverged in 3 of 3 seeds |  |" in rows["gone"]
  assert "| diverged / 0.50 / 0.70 | 0.60 ± 0.10 (diverged in 1 of 3 seeds) | +0.00 (within noise" in rows["some"]
  assert "| n/a (lenet5 has no such field) |  |" in rows["lenet"]
  assert rows["baseline"].endswith("| 0.60 ± 0.08 |  |")


def test_the_ablation_launcher_records_its_rows_and_a_generic_command(tmp_path):
  assert ablate.record_path_problem("table.md") == "--record must name a .json file, got 'table.md'"
  assert ablate.record_path_problem(str(tmp_path)) is not None and ablate.record_path_problem("") is None
  argv = ["ablate.py", "--config=lcn_convnet_digits", "--workdir=/somewhere/private", "--seeds=3"]
  assert ablate.command_line(argv) == ("python -m experiments.ablate --config=lcn_convnet_digits "
                                       "--workdir=runs/ablation --seeds=3")
  rows = [_variant("baseline", [0.5, 0.6, 0.7])]
  config = ml_collections.ConfigDict({"dataset": "dv_digits", "model": "lcn_convnet_digits"})
  ablate.write_record(str(tmp_path / "sub" / "r.json"), rows, config, argv)
  record = json.loads((tmp_path / "sub" / "r.json").read_text())
  assert record["variants"] == rows and record["seeds"] == 3 and record["dataset"] == "dv_digits"
  assert record["machine"]["cores"] >= 1 and "--workdir=runs/ablation" in record["command"]


def test_test_tier_sentence_and_build_rows():
  record = {"tests": 1234, "pytest_seconds": 600.4, "wall_seconds_with_install": 690.0, "commit": "abc1234",
            "machine": MACHINE}
  assert results_tables.test_tier_sentence(record).startswith(
      "`make test`: 1,234 tests in 600 s (`pytest -n 2`, 2-core CPU, clean clone of abc1234; 11.5 min with the install")
  rows = results_tables.test_tier_rows(record, None).splitlines()
  assert rows[2].endswith("(1,234 tests, clean clone of abc1234; `results/test_tier.json`) | 10.0 min |")
  assert rows[3].endswith("| no timed record |")
  slow = results_tables.test_tier_rows(record, {"tests": 18, "pytest_seconds": 300.0}).splitlines()[3]
  assert slow.endswith("| 5.0 min (18 tests; `results/test_tier_slow.json`) |")


def test_doctor_table_rows_for_a_classifier_and_an_energy_model():
  classifier = {"config": "c", "command": "python -m experiments.doctor --config=c", "wall_seconds": 31.0,
                "other_processes_cpu_share": 0.0, "report": {"alarms": [], "measurements": {
                    "probe_loss_start": 3.9, "probe_loss_end": 0.078, "probe_steps": 300, "overfit_subset": 256,
                    "overfit_reached_zero": True, "overfit_epochs": 6, "gradient_max_rel_error": 5.3e-8,
                    "gradient_ok": True}}}
  energy = {"config": "r", "command": "D", "wall_seconds": 14.0, "other_processes_cpu_share": 0.6,
            "report": {"alarms": ["dead units"], "measurements": {
                "probe_measure": "reconstruction error", "probe_start": 0.178, "probe_end": 0.079,
                "probe_steps": 300, "gradient_max_rel_error": 2e-3, "gradient_ok": False}}}
  rows = results_tables.doctor_table([classifier, energy]).splitlines()
  assert rows[2] == ("| `c` | `python -m experiments.doctor --config=c` | 31.0 s | none | 5.3e-08 (ok) | "
                     "loss 3.900 → 0.078 in 300 steps | 256 examples memorised in 6 epochs |")
  assert rows[3] == ("| `r` | `D` | 14.0 s (other processes took 60% of the CPU) | dead units | 2.0e-03 (FAILED) | "
                     "reconstruction error 0.178 → 0.079 in 300 updates | — (classifiers only) |")


def test_dictionary_table_says_which_psd_encoder_meets_the_target():
  def psd(error, speedup):
    return {"test_examples": 100, "prediction_error_vs_lasso_codes": error, "seconds_encoder": 0.001,
            "seconds_fista_tol_1e-3": 0.1, "fista_iterations_tol_1e-3": 9, "speedup_vs_fista_tol_1e-3": speedup,
            "speedup_vs_fista_tol_1e-6": 2 * speedup}
  atoms = {"localisation": 0.5, "orientation_index": 0.4}
  record = {"problem": {"n_atoms": 8, "n_visible": 4, "lambda": 0.5, "objective_train_on": "10 patches"},
            "final_objective_train_median": {"deepvision": 1.0, "sklearn_cd": 1.1}, "budget_seconds": 3,
            "rounds": 2, "atoms_pixel_space": {"deepvision": atoms, "sklearn_cd": atoms},
            "psd": {"good": psd(0.10, 60.0), "slow": psd(0.01, 20.0), "wrong": psd(0.5, 300.0)}}
  rows = {line.split(" | ")[0][3:-1]: line for line in features_table.dictionary_tables(record).splitlines()
          if line.startswith("| `")}
  assert rows["good"].endswith("| 60× / 120× | met |")
  assert rows["slow"].endswith("| **not met** |") and rows["wrong"].endswith("| **not met** |")
  assert "| **1.000** | 1.100 |" in features_table.dictionary_tables(record)


def test_device_scaling_and_gpu_tables_rows():
  row = lambda rate, ratio: {"images_per_s_median": rate, "ratio_to_1_device": ratio}
  scaling = {"command": "S", "date": "2026-01-01", "jax_version": "0.10", "global_batch": 128,
             "machine": {"cores": 2, "machine_busy_share_during_run": 0.5},
             "results": {"cifar_convnet": {"1": row(500, 1.0), "1 (jit, no pmap)": row(600, 1.2), "4": row(900, 1.8)},
                         "rbm_pcd1": {"1": row(20000, 1.0), "4": row(10000, 0.5)}}}
  lines = build_tables.device_scaling_table(scaling).splitlines()
  assert lines[-3:] == ["| 1 | 128 | 500 (1.00) | 20,000 (1.00) |", "| 1, plain jit (no pmap) | 128 | 600 (1.20) |  |",
                        "| 4 | 32 | 900 (1.80) | 10,000 (0.50) |"]
  train = lambda mode, batch, rate: {"mode": mode, "batch": batch, "images_per_s_median": rate,
                                     "ms_per_step_median": 1.0, "achieved_tflops": 2.0,
                                     "fraction_of_measured_matmul": 0.1, "fraction_of_spec": 0.05}
  peak = {"tflops_median": 1.0}
  gpu = {"command": "G", "date": "2026-01-01", "device": {"kind": "GPU"}, "versions": {"jax": "0.11"},
         "matmul_peak": {"n": 64, "bfloat16": peak, "float32_default": peak, "float32_highest": peak},
         "spec_peak_tflops": {"bf16": 4, "tf32": 2, "fp32": 1},
         "training": [train("float32", 128, 100.0), train("bfloat16", 128, 150.0), train("bfloat16", 8, 50.0)],
         "bfloat16_speedup_over_float32": {"128": 1.5}}
  text = build_tables.gpu_convnet_table(gpu)
  rows = [line for line in text.splitlines() if line.startswith(("| b", "| f"))]
  assert rows == ["| bfloat16 | 8 | 50 | 1.00 | 2.0 | 10.0 | 5.0 |", "| bfloat16 | 128 | **150** | 1.00 | 2.0 | 10.0 | 5.0 |",
                  "| float32 (TF32) | 128 | 100 | 1.00 | 2.0 | 10.0 | 5.0 |"]
  assert text.endswith("bfloat16 over float32 (TF32), images/s: 1.50× at batch 128.")


def test_xla_flag_sweep_table_marks_the_fastest_path():
  def row(flags, dv, np2):
    return {"xla_flags": flags, "jax_float32_gflops": 130.0, "jax_bfloat16_gflops": 300.0,
            "numpy_float32_gflops": 180.0, "deepvision_ms_per_trajectory": dv, "numpy_blas2_ms_per_trajectory": np2,
            "deepvision_over_numpy_blas2": np2 / dv}
  record = {"command": "X", "date": "2026-12-07", "machine": MACHINE, "versions": {"jax": "0.10"}, "rounds": 7,
            "sweep": {"defaults": row("", 10.0, 9.0), "no_ynn_fusions": row("--f=", 9.0, 9.0)}}
  rows = build_tables.xla_flag_sweep_table(record).splitlines()[-2:]
  assert rows[0] == "| defaults | `(none)` | 130 | 300 | 180 | 10.00 | 9.00 | 0.90× |"
  assert rows[1] == "| no ynn fusions | `--f=` | 130 | 300 | 180 | 9.00 | 9.00 | **1.00×** |"


def test_configs_table_wall_times_from_records_or_says_there_is_none(tmp_path):
  seeds = [{"wall_seconds": 40.0, "other_processes_cpu_share": 0.5}, {"wall_seconds": 50.0,
                                                                       "other_processes_cpu_share": 0.5}]
  assert results_tables.measured_wall({"seeds": seeds}, "") == "45 s (other processes took 50% of the CPU)"
  assert results_tables.measured_wall({"wall_seconds": 200.0}, "on a subset") == "3.3 min (on a subset)"
  assert results_tables.measured_wall(None, "") == "no timed record"
  path = tmp_path / "r.json"
  path.write_text(json.dumps({"wall_seconds_mean": 10.0}))
  rows = (("lcn_convnet_digits", "m", "d", None, ""), ("other", "m2", "d2", path, ""))
  lines = results_tables.configs_table(rows).splitlines()
  assert lines[2] == "| `lcn_convnet_digits` (default) | m | d | no timed record |"
  assert lines[3].startswith("| `other` | m2 | d2 | 10 s; `")


def test_family_diff_table_counts_library_and_test_lines():
  record = {"commit": "abc", "subject": "A family", "command": "python benchmarks/family_diff.py", "files": [
      {"path": "deepvision/train/loop.py", "added": 3, "removed": 2},
      {"path": "tests/train/test_x.py", "added": 40, "removed": 0}, {"path": "experiments/configs/x.py", "added": 20,
                                                                   "removed": 0}]}
  lines = build_tables.family_diff_table(record).splitlines()
  assert lines[4].startswith("| `deepvision/train/loop.py` | `TRAINERS.register(") and lines[4].endswith("| 3 | 2 |")
  assert lines[-1] == "3 files: 23 lines of library and config added, 40 of tests."
