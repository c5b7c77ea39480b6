r"""Contrast spread of gated-MRF samples on whitened patches, against the held-out log-likelihood.

The p90/p10 spread of patch contrast (`diagnostics.image_stats.contrast_spread`) is about 30 for held-out
8×8 patches of the photographs but about 2.4 for the samples of `mcrbm_patches` as shipped. This script
trains `mcrbm_patches` / `mpot_patches` (the library's `run_contrastive`, the configs' recipe) on the same
whitened patches multiplied by a scalar s, for each setting of a small grid, and reports:

  * the held-out (test photograph) log-likelihood per patch by the trainer's AIS, given back in the units
    of the unscaled whitened patches: log p(z) = log p_s(s z) + K log s (K whitened components), so that
    every row compares with the shipped model's −11.0 and the Gaussian's −58.6;
  * the contrast spread of 64 samples drawn by HMC (`--trajectories` trajectories of 20 leapfrog steps,
    started at Gaussian (PCA) samples), mapped back to pixels (÷ s, then the inverse whitening), beside the
    training patches' spread.

Why a scale: under `input_norm='original'` the covariance units see x / sqrt(‖x‖²/D + ½), nearly
scale-invariant once ‖x‖² > D/2, so the ½‖x‖² term sets the radial law of the samples (all patches near
one contrast); on patches scaled below that radius the covariance units act on x itself and can gate
contrast.

Usage (about 25 s per setting on 2 idle cores):
  python benchmarks/patch_contrast.py [--settings mcrbm:original:1.0:0.01 mcrbm:original:0.4:0.03 ...]
      [--trajectories 200] [--out benchmarks/results/patch_contrast.json]
A setting is MODEL:INPUT_NORM:SCALE:LEARNING_RATE[:EPOCHS] (INPUT_NORM is ignored for mpot).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import pathlib
import sys
import tempfile
import time

import jax
import numpy as np

import run_timing  # benchmarks/run_timing.py (the script's own folder)
from cpu_load import OwnLoad

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # experiments/ (the configs) is importable from a checkout, not installed.
  sys.path.insert(0, str(ROOT))

from deepvision import zoo
from deepvision.data.energy import prepare_data
from deepvision.diagnostics.image_stats import contrast_spread
from deepvision.models.gaussian import GaussianModel
from deepvision.train import loop
from deepvision.train.contrastive_loop import run_contrastive
from experiments.configs import mcrbm_patches, mpot_patches
from experiments.deep_gmrf import gated_mrf_samples

DEFAULT_SETTINGS = ("mcrbm:original:1.0:0.01", "mcrbm:original:0.4:0.03", "mcrbm:original:0.4:0.04",
                    "mcrbm:original:0.35:0.05", "mcrbm:original:0.5:0.03", "mpot:-:1.0:0.01", "mpot:-:0.4:0.03",
                    "mpot:-:0.35:0.05")  # the shipped configs first (s = 1, their base rates)
NUM_SAMPLES = 64


def _finite(value: float) -> float | None:
  """`value`, or None for an unbounded AIS bound (JSON has no infinity)."""
  return value if math.isfinite(value) else None


def run_setting(setting: str, trajectories: int, workdir: str) -> dict:
  """Trains one setting and measures it (module docstring)."""
  parts = setting.split(":")
  model_name, norm, scale, rate = parts[0], parts[1], float(parts[2]), float(parts[3])
  config = (mcrbm_patches if model_name == "mcrbm" else mpot_patches).get_config()
  config.figures = False
  if model_name == "mcrbm":
    config.model_kwargs.input_norm = norm
  config.optimizer.learning_rate = rate
  if len(parts) > 4:
    config.num_epochs = int(parts[4])
  data = prepare_data(config)
  scaled = dataclasses.replace(data, splits={k: (v * scale).astype(np.float32) for k, v in data.splits.items()})
  start = time.perf_counter()
  record, params = run_contrastive(config, workdir, data=scaled, quiet=True)
  train_seconds = time.perf_counter() - start
  train = scaled.splits["train"].reshape(len(scaled.splits["train"]), -1)
  components = train.shape[1]
  gaussian = GaussianModel.fit(np.asarray(train, np.float64))
  chains_start = gaussian.sample(np.random.default_rng(0), NUM_SAMPLES).astype(np.float32)
  model = zoo.create(config.model, **loop.model_kwargs(config))
  samples, acceptance = gated_mrf_samples((model, jax.device_get(params)), chains_start, trajectories, 20,
                                          jax.random.key(1))
  whitener = data.whitener
  to_pixels = lambda z: np.asarray(whitener.inverse(np.asarray(z, np.float64) / scale)).reshape(len(z), -1)
  shown = np.random.default_rng(0).permutation(len(train))[:NUM_SAMPLES]
  jacobian = components * math.log(scale)
  return {"setting": setting, "model": config.model, "input_norm": norm if model_name == "mcrbm" else None,
          "scale": scale, "learning_rate": rate, "epochs": int(config.num_epochs),
          "train_seconds": round(train_seconds, 1),
          "test_log_likelihood": record["test/log_likelihood"] + jacobian,
          "test_log_likelihood_bounds": [_finite(record["test/log_likelihood_lower"] + jacobian),
                                         _finite(record["test/log_likelihood_upper"] + jacobian)],
          "test_gaussian_log_likelihood": record["test/gaussian_log_likelihood"] + jacobian,
          "contrast_spread_samples": contrast_spread(to_pixels(samples)),
          "contrast_spread_gaussian_samples": contrast_spread(to_pixels(chains_start)),
          "contrast_spread_data": contrast_spread(to_pixels(train[shown])),
          "hmc_acceptance": acceptance}


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--settings", nargs="+", default=list(DEFAULT_SETTINGS))
  parser.add_argument("--trajectories", type=int, default=200)
  parser.add_argument("--out", type=pathlib.Path, default=ROOT / "benchmarks/results/patch_contrast.json")
  args = parser.parse_args(argv)
  load = OwnLoad()
  rows = []
  with tempfile.TemporaryDirectory() as scratch:
    for i, setting in enumerate(args.settings):
      rows.append(run_setting(setting, args.trajectories, f"{scratch}/run{i}"))
      print(json.dumps(rows[-1]), flush=True)
  record = {"benchmark": "gated-MRF samples' contrast spread on whitened patches scaled by s, and the held-out "
                         "log-likelihood in the unscaled units",
            "trajectories": args.trajectories, "num_samples": NUM_SAMPLES, "rows": rows,
            "machine": run_timing.machine(), "versions": run_timing.versions()}
  wall = load.seconds()
  if (share := load.other_share()) is not None:
    record["other_processes_cpu_share"] = share
  record.update({"measured_seconds": round(wall, 1), "git": run_timing.git_state(),
                 "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                 "command": "python benchmarks/patch_contrast.py " + " ".join(argv or sys.argv[1:])})
  args.out.write_text(json.dumps(record, indent=1) + "\n")
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
