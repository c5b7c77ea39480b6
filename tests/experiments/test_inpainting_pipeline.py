"""The `inpainting` trainer: the smoke config end to end, and bad configs refused before compute."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

from deepvision.figures import energy_viz, gated_mrf_viz
from deepvision.train import loop
from deepvision.train.writers import read_metrics
from experiments import inpainting
from experiments.configs import gmrf_faces


def _smoke(**overrides):
  return loop.override_config(gmrf_faces.get_config("smoke"), overrides)


def test_smoke_config_end_to_end_writes_records_and_figure(tmp_path):
  workdir = str(tmp_path / "faces")
  config = _smoke()
  record = loop.train_and_evaluate(config, workdir)
  assert record["final"] and read_metrics(workdir)[-1] == record
  for kind in config.inpainting.masks:
    for name in ("gmrf", "gaussian", "gaussian_full", "train_mean"):
      assert np.isfinite(record[f"test/mse_{name}_{kind}"]) and record[f"test/mse_{name}_{kind}"] > 0
      assert record[f"test/mse_{name}_{kind}_stderr"] > 0
    assert 0.0 <= record[f"inpaint/acceptance_{kind}"] <= 1.0
    # The mcRBM's fill (HMC in pixel space, observed pixels clamped) beats filling each hidden pixel
    # with its training mean. Measured on this smoke run: 0.43 of the training mean's error on the
    # central square, 0.69 on the random squares.
    ratio = record[f"test/mse_gmrf_{kind}"] / record[f"test/mse_train_mean_{kind}"]
    assert ratio < 0.85, (kind, ratio)
  assert "model/test/free_energy" in record
  assert os.path.exists(os.path.join(workdir, "model", "checkpoints"))
  with open(os.path.join(workdir, "config.json")) as f:
    assert json.load(f)["trainer"] == "inpainting"
  # One row of originals, then (occluded, Gaussian fill, model fill) per mask, of num_shown faces.
  rows = {f"r{i}": np.zeros((config.inpainting.num_shown, 16)) for i in range(1 + 3 * len(config.inpainting.masks))}
  expected = energy_viz.grid_png_shape(gated_mrf_viz.image_rows_grid(rows, (4, 4, 1)).shape)
  with Image.open(os.path.join(workdir, "inpainted_faces.png")) as png:
    assert (png.height, png.width) == expected


@pytest.mark.parametrize("overrides, message", [
    ({"inpainting.masks": ("left_half", "eye_patch")}, "inpainting.masks"),
    ({"inpainting.burn_in": 20}, "burn_in"),
    ({"inpainting.method": "gibbs"}, "input_norm='paper'"),
    ({"inpainting.square_size": 4}, "square_size"),
    ({"faces.test_split": "train+validation"}, "held-out"),
    ({"faces.crop": 25, "faces.shifts": 1}, "crop + shifts"),
    ({"faces.pool": 3}, "faces.pool"),
    ({"inpainting.step_size": 0.5}, "step_size"),
    ({"dataset": "dv_digits"}, "dv_faces"),
    ({"preprocess": "standardize"}, "'whiten'"),
])
def test_bad_config_values_fail_before_compute(tmp_path, monkeypatch, overrides, message):
  def no_compute(*args, **kwargs):
    raise AssertionError("the run started computing before refusing the config")
  monkeypatch.setattr(inpainting, "load_faces", no_compute)
  monkeypatch.setattr(inpainting.contrastive_loop, "run_contrastive", no_compute)
  with pytest.raises(loop.ConfigError, match=message.replace("(", r"\(").replace("+", r"\+")):
    loop.train_and_evaluate(_smoke(**overrides), str(tmp_path / "bad"))
  assert not os.path.exists(tmp_path / "bad")


def test_model_size_mismatch_names_the_whitened_size(tmp_path, monkeypatch):
  monkeypatch.setattr(inpainting.contrastive_loop, "run_contrastive",
                      lambda *a, **k: pytest.fail("trained despite a bad n_visible"))
  with pytest.raises(loop.ConfigError, match="n_visible=10"):
    loop.train_and_evaluate(_smoke(**{"model_kwargs.n_visible": 11}), str(tmp_path / "bad"))
