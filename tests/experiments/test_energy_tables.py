"""`experiments.energy_tables`: each block of the README's RBM, DBN and gated-MRF figures from a small record."""

from __future__ import annotations

from experiments import energy_tables, readme_tables


def _record(name: str, finals: list[dict], walls=None, shares=None, resolved=None) -> dict:
  """A record shaped like `benchmarks/seed_runs.py`'s: one entry per seed, seeds 0, 1, ..."""
  walls = walls or [10.0] * len(finals)
  shares = shares or [0.0] * len(finals)
  return {"name": name, "command": f"python -m experiments.main --config={name} --workdir=runs/{name}_seedS "
                                   "--config.seed=S",
          "record_command": f"python benchmarks/seed_runs.py --config={name} --out_dir results/energy",
          "date": "2026-12-07T21:00:00+00:00", "machine": {"cores": 2, "cpu_model": "Test CPU"},
          "resolved_config": resolved,
          "seeds": [{"seed": i, "wall_seconds": w, "other_processes_cpu_share": s, "final": f}
                    for i, (f, w, s) in enumerate(zip(finals, walls, shares))]}


def test_numbers_use_a_typographic_minus_and_mean_std_drops_a_zero_spread():
  assert energy_tables.number(-1.5) == "−1.50"
  assert energy_tables.bounds(-24.514, -24.304) == "[−24.51, −24.30]"
  assert energy_tables.mean_std([0.1, 0.2, 0.3]) == "0.200 ± 0.100"
  assert energy_tables.mean_std([0.5, 0.5]) == "0.500"  # every seed equal: no ± 0
  assert energy_tables.mean_std([0.96, 0.97], 2, 100, bold=True) == "**96.50** ± 0.71"
  assert [energy_tables._points(v) for v in (1.25, -1.94, -0.04)] == ["+1.2", "−1.9", "0.0"]  # pylint: disable=protected-access


def test_wall_times_name_other_processes_share_only_above_a_tenth():
  seed = lambda share: {"wall_seconds": 40.0, "other_processes_cpu_share": share}
  assert energy_tables.wall_time([seed(0.05)]) == "40.0 s"
  assert energy_tables.wall_time([seed(None)]) == "40.0 s"  # not measured: no note
  assert energy_tables.wall_time([seed(0.7), seed(0.5)]) == "40.0 s (other processes: 60% of the CPU)"


def _rbm_final(ll: float, log_z: float, pl: float, acc: float) -> dict:
  return {"test/log_likelihood": ll, "test/log_likelihood_lower": ll - 0.1, "test/log_likelihood_upper": ll + 0.1,
          "log_z": log_z, "log_z_lower": log_z - 0.1, "log_z_upper": log_z + 0.1, "test/pseudo_likelihood": pl,
          "test/feature_accuracy": acc, "test/pixel_accuracy": 0.98, "ais_temperatures": 14501, "ais_runs": 100}


def test_rbm_digits_gives_a_row_per_seed_and_the_mean_and_std():
  record = _record("rbm_digits", [_rbm_final(-24.0, 50.0, -18.0, 0.96), _rbm_final(-25.0, 52.0, -18.2, 0.97)],
                   walls=[30.0, 50.0], shares=[0.0, 0.5])
  text = energy_tables.rbm_digits(record)
  lines = text.splitlines()
  assert "| 0 | −24.00 [−24.10, −23.90] | 50.00 [49.90, 50.10] | −18.00 | 96.00% | 30.0 s |" in lines
  assert "| 1 | −25.00 [−25.10, −24.90] | 52.00 [51.90, 52.10] | −18.20 | 97.00% | " \
         "50.0 s (other processes: 50% of the CPU) |" in lines
  assert ("| **mean ± std** | **−24.50** ± 0.71 | | **−18.10** ± 0.14 | **96.50** ± 0.71% | "
          "40.0 s (other processes: 25% of the CPU) |") in lines
  assert "by AIS (14,501 temperatures, 100 runs)" in text
  assert "raw pixels of the same split (same L2 search): 98.00% on test." in text
  assert "Record `results/energy/rbm_digits.json`, written by `python benchmarks/seed_runs.py" in text


def test_grbm_patches_sentence_gives_log_z_with_bounds_and_each_split():
  final = {"log_z": 87.074, "log_z_lower": 87.02, "log_z_upper": 87.12, "train/log_likelihood": -76.67,
           "val/log_likelihood": -100.19, "test/log_likelihood": -69.72}
  text = energy_tables.grbm_patches(_record("grbm_patches", [final]))
  assert text.startswith("`grbm_patches` (seed 0): log Z (AIS) 87.07 [87.02, 87.12]; log-likelihood per "
                         "standardised 8×8 patch −76.7 (training patches), −100.2 (validation photograph")
  assert "−69.7 (test photograph, *flower*); wall time 10.0 s." in text


def _dbn_final(test: float, test_scratch: float, val: float, val_scratch: float, ll: float) -> dict:
  return {"test/accuracy": test, "test/accuracy_scratch": test_scratch, "val/accuracy": val,
          "val/accuracy_scratch": val_scratch, "layer_1/test/log_likelihood": ll}


def test_dbn_digits_counts_the_seeds_pre_training_wins_and_ties():
  record = _record("dbn_digits", [_dbn_final(0.98, 0.985, 0.96, 0.95, -24.6),
                                  _dbn_final(0.975, 0.98, 0.95, 0.95, -24.8)])
  text = energy_tables.dbn_digits(record)
  assert "scores 98.00 / 97.50% on test (mean 97.75%), the same MLP from random weights 98.50 / 98.00% " \
         "(mean 98.25%); on validation 96.00 / 95.00% against 95.00 / 95.00%." in text
  assert "Pre-training wins on validation for 1 of 2 seeds (1 tied) and on test for no seed; its mean test " \
         "accuracy is 0.50 points lower." in text
  assert "test log-likelihood of −24.60 / −24.80 nats (AIS; mean −24.70)" in text
  every = energy_tables.dbn_digits(_record("dbn_digits", [_dbn_final(0.99, 0.98, 0.96, 0.95, -24.6)] * 2))
  assert "wins on validation for every seed and on test for every seed; its mean test accuracy is 1.00 " \
         "points higher." in every


def _gmrf_final(test: float, val: float, train: float, gaussian=(-58.6, -161.2, -74.5)) -> dict:
  return {"test/log_likelihood": test, "test/log_likelihood_lower": test - 0.05,
          "test/log_likelihood_upper": test + 0.05, "val/log_likelihood": val, "train/log_likelihood": train,
          "test/gaussian_log_likelihood": gaussian[0], "val/gaussian_log_likelihood": gaussian[1],
          "train/gaussian_log_likelihood": gaussian[2]}


def test_gated_mrf_likelihood_bolds_each_columns_best_and_says_where_the_gaussian_is_beaten():
  sizes = {"n_factors": 64, "n_cov": 16, "n_mean": 32}
  records = [_record("mcrbm_patches", [_gmrf_final(-11.04, -128.3, -48.6)],
                     resolved={"model": "mcrbm", "model_kwargs": sizes}),
             _record("mpot_patches", [_gmrf_final(-36.29, -170.0, -80.0)], shares=[0.4],
                     resolved={"model": "mpot", "model_kwargs": {**sizes, "gamma": 1.0}})]
  lines = energy_tables.gated_mrf_likelihood(*records).splitlines()
  assert ("| `mcrbm_patches` (mcRBM, 64 factors → 16 covariance units, 32 mean units) | **−11.04** "
          "[−11.09, −10.99] | **−128.3** | **−48.6** | 10.0 s |") in lines
  assert ("| `mpot_patches` (mPoT, 64 factors → 16 covariance units, 32 mean units, γ = 1) | −36.29 [−36.34, −36.24] | −170.0 | −80.0 | "
          "10.0 s (other processes: 40% of the CPU) |") in lines
  assert "| Gaussian (PCA) model | −58.60 | −161.2 | −74.5 | |" in lines
  assert lines[-1].startswith("`mcrbm_patches` beats the Gaussian on both held-out photographs; `mpot_patches` "
                              "beats the Gaussian on the test photograph only. The run (S = 0): `python -m "
                              "experiments.main --config=mcrbm_patches")
  both = energy_tables.gated_mrf_likelihood(records[0], records[0]).splitlines()[-1]
  assert both.startswith("`mcrbm_patches` and `mcrbm_patches` beat the Gaussian on both held-out photographs.")


def _occlusion_final(shift: float, mse_gmrf: float) -> dict:
  final = {f"test/accuracy_none_{i}": 0.98 for i in energy_tables.INPUTS}
  for mask in ("left_half", "random_square"):
    for fill, base in (("raw", 0.77), ("gaussian", 0.87), ("gmrf", 0.88)):
      for i, offset in zip(energy_tables.INPUTS, (0.0, -0.03, 0.01)):
        final[f"test/accuracy_{mask}_{fill}_{i}"] = base + offset + shift
      final[f"test/fill_mse_{mask}_{fill}"] = {"raw": 0.07, "gaussian": 0.042, "gmrf": mse_gmrf}[fill]
  return final


def test_occlusion_gives_mean_and_std_per_cell_and_compares_the_fills_seed_by_seed():
  record = _record("gmrf_digits", [_occlusion_final(0.0, 0.040), _occlusion_final(0.002, 0.045)],
                   resolved={"model": "mcrbm", "occlusion": {"square_size": 0.5}})
  text = energy_tables.occlusion(record)
  lines = text.splitlines()
  assert "| none | — | **0.980** | **0.980** | **0.980** | — |" in lines  # equal everywhere: all best, no ±
  assert ("| left half | mcRBM (HMC, observed pixels clamped) | 0.881 ± 0.001 | 0.851 ± 0.001 | "
          "**0.891** ± 0.001 | 0.0425 ± 0.0035 |") in lines
  assert "| random 4×4 | none (training mean) | 0.771 ± 0.001 | 0.741 ± 0.001 | 0.781 ± 0.001 | 0.0700 |" in lines
  worse = _record("gmrf_digits", [_occlusion_final(0.0, 0.040)])
  worse["seeds"][0]["final"]["test/accuracy_left_half_gmrf_latent_pixels"] = 0.70  # below the raw pixels' 0.77
  assert "and the pixels scores −7.0 points (left half) and +12.0 points (random ?×?) against the raw occluded " \
         "pixels." in energy_tables.occlusion(worse)  # no resolved config: the square's side is unknown
  record["resolved_config"]["occlusion"]["baseline_fill"] = "zero"
  assert "| left half | none (occluded = 0) | 0.771 ± 0.001 | 0.741 ± 0.001 | 0.781 ± 0.001 | 0.0700 |" in \
      energy_tables.occlusion(record).splitlines()
  assert ("beats the raw occluded pixels by 12.0 points (left half) and 12.0 points (random 4×4). Against the "
          "same classifier on the Gaussian conditional-mean fill it scores +1.0 on average (+1.0 / +1.0 seed by "
          "seed; left half) and +1.0 on average (+1.0 / +1.0 seed by seed; random 4×4), in points; the mcRBM's "
          "fill has the lower squared error in 1 of 2 (left half) and 1 of 2 (random 4×4) seeds.") in text


def _inpainting_final(gains: dict) -> dict:
  final = {}
  for mask, gain in gains.items():
    final.update({f"test/mse_gmrf_{mask}": 0.0107, f"test/mse_gmrf_{mask}_stderr": 0.0013,
                  f"test/mse_gaussian_{mask}": 0.0107 + gain, f"test/mse_gaussian_{mask}_stderr": 0.0014,
                  f"test/mse_gaussian_full_{mask}": 0.0120, f"test/mse_gaussian_full_{mask}_stderr": 0.0014,
                  f"test/mse_gain_{mask}": gain, f"test/mse_gain_{mask}_stderr": 0.0002})
  return final


def test_inpainting_bolds_the_lowest_error_and_gives_the_paired_gain_in_standard_errors():
  record = _record("gmrf_faces", [_inpainting_final({"central_square": 0.0004, "bottom_half": -0.0002})],
                   resolved={"model": "mcrbm", "inpainting": {"square_size": 6}})
  text = energy_tables.inpainting(record)
  lines = text.splitlines()
  assert lines[2] == ("| mask | mcRBM | Gaussian (PCA + residual) | Gaussian (full covariance) | "
                      "gain over the better Gaussian (paired) |")
  assert "| central 6×6 | **0.0107** ± 0.0013 | 0.0111 ± 0.0014 | 0.0120 ± 0.0014 | 0.0004 ± 0.0002 |" in lines
  assert "| bottom half | 0.0107 ± 0.0013 | **0.0105** ± 0.0014 | 0.0120 ± 0.0014 | −0.0002 ± 0.0002 |" in lines
  assert ("The mcRBM's error is below the better Gaussian's on 1 of the 2 masks; the paired gain is "
          "2.0 (central 6×6), −1.0 (bottom half) standard errors.") in text
  final = record["seeds"][0]["final"]  # a record with the training-mean fill gets its column
  final.update({"test/mse_train_mean_central_square": 0.0177, "test/mse_train_mean_central_square_stderr": 0.0026,
                "test/mse_train_mean_bottom_half": 0.0100, "test/mse_train_mean_bottom_half_stderr": 0.0023})
  lines = energy_tables.inpainting(record).splitlines()
  assert lines[2:4] == [("| mask | mcRBM | Gaussian (PCA + residual) | Gaussian (full covariance) | training mean | "
                         "gain over the better Gaussian (paired) |"), "|---|---|---|---|---|---|"]
  assert ("| central 6×6 | **0.0107** ± 0.0013 | 0.0111 ± 0.0014 | 0.0120 ± 0.0014 | 0.0177 ± 0.0026 | "
          "0.0004 ± 0.0002 |") in lines
  assert ("| bottom half | 0.0107 ± 0.0013 | 0.0105 ± 0.0014 | 0.0120 ± 0.0014 | **0.0100** ± 0.0023 | "
          "−0.0002 ± 0.0002 |") in lines


def _images_final(kl_gmrf: float, kl_foe: float, psnr: float) -> dict:
  final = {"denoise/noisy/psnr": 20.0}
  stats = {"data": 0.0, "stationary_gaussian": 1.2, "field_of_experts": kl_foe, "tiled_mcrbm": kl_gmrf}
  for name, kl in stats.items():
    final.update({f"stats/{name}/{key}": kl for key in ("kl_derivative", "kl_random")})
    final.update({f"stats/{name}/{key}": 3.0 for key in ("kurtosis_derivative", "kurtosis_random")})
    final.update({f"stats/{name}/spectrum_slope": -2.5, f"stats/{name}/neighbour_correlation": 0.9,
                  f"stats/{name}/contrast_spread": 2.0})
    if name != "data":
      final[f"denoise/{name}/psnr"] = psnr
  return final


def test_gmrf_images_gives_means_over_seeds_bolds_the_lowest_kl_and_counts_the_gated_mrfs_wins():
  record = _record("gmrf_images", [_images_final(0.7, 0.9, 29.0), _images_final(1.0, 0.9, 31.0)],
                   resolved={"images": {"num_samples": 16, "size": 64, "num_reference": 64, "num_denoise": 8}})
  text = energy_tables.gmrf_images(record)
  assert text.startswith("Seeds 0, 1; wall time 10.0 s per run; 16 samples of 64×64 per model against 64 "
                         "held-out crops; denoising of 8 other held-out crops at σ = 25/255:")
  rows = {line.split(" | ")[0]: line for line in text.splitlines() if line.startswith("| ")}
  # Means over the seeds (± their std when they differ); the gated MRF's mean KL (0.85) is the lowest: bold.
  gated = rows["| gated MRF (tiled mcRBM, 1 layer)"]
  assert gated.startswith("| gated MRF (tiled mcRBM, 1 layer) | **0.85** ± 0.21 | **0.85** ± 0.21 | 3 |")
  assert rows["| Field of Experts (8 3×3)"].startswith("| Field of Experts (8 3×3) | 0.9 | 0.9 | 3 |")
  assert gated.endswith("| 30.00 ± 1.41 |")
  assert rows["| held-out photographs"].endswith("| 20.00 (noisy input) |")
  assert ("The gated MRF's derivative-histogram KL is below the Gaussian's on 2 of 2 seeds and the FoE's on 1 "
          "of 2 seeds.") in text


def test_readme_holds_the_blocks_the_committed_records_give():
  assert readme_tables.stale(energy_tables.TABLES) == [], f"stale: run {readme_tables.COMMAND}"
  for table in energy_tables.TABLES:
    assert all((readme_tables.ROOT / s).is_file() for s in table.sources), table.sources
