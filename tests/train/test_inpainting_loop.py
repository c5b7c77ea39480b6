"""The `inpainting` trainer: face preprocessing and baselines against closed forms, fills that keep the
observed pixels bit for bit, the smoke config end to end, and bad configs refused before compute."""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from deepvision import zoo
from deepvision.data.whiten import PCAWhitening
from deepvision.diagnostics import energy_viz
from deepvision.train import inpainting_loop, loop
from deepvision.train.writers import read_metrics
from experiments.configs import gmrf_faces


def _smoke(**overrides):
  return loop.override_config(gmrf_faces.get_config("smoke"), overrides)


def test_crop_and_pool_and_augmentation_match_brute_force():
  images = np.random.default_rng(0).random((3, 25, 25, 1)).astype(np.float32)
  pooled = inpainting_loop.crop_and_pool(images, crop=24, pool=4, top=1, left=0)
  expected = np.zeros((3, 6, 6, 1))
  for n in range(3):
    for i in range(6):
      for j in range(6):
        expected[n, i, j, 0] = images[n, 1 + 4 * i:5 + 4 * i, 4 * j:4 + 4 * j, 0].mean()
  np.testing.assert_allclose(pooled, expected, rtol=1e-6)
  faces = inpainting_loop.FaceSettings("train", "test", crop=24, pool=4, shifts=1, flips=True)
  augmented = inpainting_loop.augment_faces(images, faces)
  assert augmented.shape == (3 * 4 * 2, 6, 6, 1)
  np.testing.assert_allclose(augmented[3 * 2:3 * 3], expected, rtol=1e-6)  # offset (1, 0): third group
  np.testing.assert_array_equal(augmented[3 * 4 + 3 * 2:3 * 4 + 3 * 3], augmented[3 * 2:3 * 3][:, :, ::-1])


def test_gaussian_baseline_is_the_pca_residual_gaussian():
  x = np.random.default_rng(1).standard_normal((200, 9)) @ np.random.default_rng(2).standard_normal((9, 9))
  whitener = PCAWhitening.fit(x, variance=0.9)
  k = whitener.num_components
  assert 1 <= k < 9
  baselines = inpainting_loop.gaussian_baselines(x, whitener, ridge=0.0)
  sample_cov = np.cov(x.T, bias=True)
  # Kept directions keep their variance; the others share the discarded variance equally.
  values = np.linalg.eigvalsh(baselines["gaussian"].covariance)[::-1]
  np.testing.assert_allclose(values[:k], np.linalg.eigvalsh(sample_cov)[::-1][:k], rtol=1e-9)
  np.testing.assert_allclose(values[k:], (np.trace(sample_cov) - values[:k].sum()) / (9 - k), rtol=1e-9)
  np.testing.assert_allclose(baselines["gaussian_full"].covariance, sample_cov, rtol=1e-9, atol=1e-12)


def test_masks_and_errors():
  mask = inpainting_loop.make_masks("central_square", (6, 6, 1), jax.random.key(0), 2, 2)
  grid = mask.reshape(2, 6, 6)
  assert (~grid).sum() == 2 * 4 and not grid[:, 2:4, 2:4].any()
  truth = np.arange(8.0).reshape(2, 4)
  filled = truth + np.array([[1.0, 2.0, 0.0, 0.0], [0.0, 0.0, 0.0, 3.0]])
  observed = np.array([[False, False, True, True], [True, True, True, False]])
  np.testing.assert_allclose(inpainting_loop.missing_mse(filled, truth, observed), [(1 + 4) / 2, 9.0])
  mean, stderr = inpainting_loop.mean_and_stderr(np.array([1.0, 2.0, 6.0]))
  assert mean == pytest.approx(3.0) and stderr == pytest.approx(np.sqrt(7.0 / 3.0))


@pytest.mark.parametrize("model_name, method", [("mcrbm", "hmc"), ("mpot", "gibbs")])
def test_fills_keep_observed_pixels_bitwise_and_records_match_them(model_name, method):
  rng = np.random.default_rng(3)
  train = rng.random((60, 4, 4, 1)).astype(np.float32)
  test = rng.random((5, 4, 4, 1)).astype(np.float32)
  whitener = PCAWhitening.fit(train.astype(np.float64), variance=0.9)
  k = whitener.num_components
  model = zoo.create(model_name, n_visible=k, n_factors=4, n_cov=4, n_mean=3)
  params = model.init(jax.random.key(0), jnp.zeros((1, k)), method="free_energy")["params"]
  settings = inpainting_loop.InpaintSettings(masks=("central_square", "random_square"), square_size=2,
                                             method=method, num_steps=6, burn_in=2, num_leapfrog=3,
                                             step_size=0.05, gaussian_ridge=1e-4, num_shown=3)
  metrics, fills = inpainting_loop.evaluate_inpainting(model, params, whitener, train, test, settings,
                                                       jax.random.key(1))
  pixels = test.reshape(5, -1)
  for kind in settings.masks:
    observed = fills[kind]["observed"]
    assert observed.shape == (5, 16) and (~observed).sum(axis=1).min() == 4
    errors = {}
    for name in ("gmrf", "gaussian", "gaussian_full"):
      fill = fills[kind][name]
      np.testing.assert_array_equal(fill[observed], pixels[observed])  # bit for bit
      assert np.all(np.isfinite(fill))
      errors[name] = ((fill.astype(np.float64) - pixels) ** 2 * ~observed).sum(axis=1) / 4
      assert metrics[f"test/mse_{name}_{kind}"] == pytest.approx(errors[name].mean(), rel=1e-9)
    best = fills[kind]["best_gaussian"]
    assert errors[best].mean() <= min(errors["gaussian"].mean(), errors["gaussian_full"].mean())
    assert metrics[f"test/mse_gain_{kind}"] == pytest.approx((errors[best] - errors["gmrf"]).mean(),
                                                             rel=1e-9, abs=1e-12)


def test_smoke_config_end_to_end_writes_records_and_figure(tmp_path):
  workdir = str(tmp_path / "faces")
  config = _smoke()
  record = loop.train_and_evaluate(config, workdir)
  assert record["final"] and read_metrics(workdir)[-1] == record
  for kind in config.inpainting.masks:
    for name in ("gmrf", "gaussian", "gaussian_full"):
      assert np.isfinite(record[f"test/mse_{name}_{kind}"]) and record[f"test/mse_{name}_{kind}"] > 0
      assert record[f"test/mse_{name}_{kind}_stderr"] > 0
    assert 0.0 <= record[f"inpaint/acceptance_{kind}"] <= 1.0
  assert "model/test/free_energy" in record
  assert os.path.exists(os.path.join(workdir, "model", "checkpoints"))
  with open(os.path.join(workdir, "config.json")) as f:
    assert json.load(f)["trainer"] == "inpainting"
  # One row of originals, then (occluded, Gaussian fill, model fill) per mask, of num_shown faces.
  rows = {f"r{i}": np.zeros((config.inpainting.num_shown, 16)) for i in range(1 + 3 * len(config.inpainting.masks))}
  expected = energy_viz.grid_png_shape(energy_viz.image_rows_grid(rows, (4, 4, 1)).shape)
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
  monkeypatch.setattr(inpainting_loop, "load_faces", no_compute)
  monkeypatch.setattr(inpainting_loop.contrastive_loop, "run_contrastive", no_compute)
  with pytest.raises(loop.ConfigError, match=message.replace("(", r"\(").replace("+", r"\+")):
    loop.train_and_evaluate(_smoke(**overrides), str(tmp_path / "bad"))
  assert not os.path.exists(tmp_path / "bad")


def test_model_size_mismatch_names_the_whitened_size(tmp_path, monkeypatch):
  monkeypatch.setattr(inpainting_loop.contrastive_loop, "run_contrastive",
                      lambda *a, **k: pytest.fail("trained despite a bad n_visible"))
  with pytest.raises(loop.ConfigError, match="n_visible=10"):
    loop.train_and_evaluate(_smoke(**{"model_kwargs.n_visible": 11}), str(tmp_path / "bad"))
