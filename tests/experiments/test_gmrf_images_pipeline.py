"""The `gmrf_images` trainer: its crops and their scaling, the smoke run end to end and its resume, and bad
configs refused before anything is written."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

from deepvision.diagnostics import image_stats
from deepvision.models.stationary_gaussian import frequency_rings
from deepvision.train import loop
from deepvision.train.writers import read_metrics
from experiments import gmrf_images
from experiments.configs import gmrf_images as gmrf_images_config


def _smoke(**overrides):
  # Two models: one fitted in closed form, one trained by PCD + HMC (the tiled mcRBM's own path is
  # deep_gmrf's, tested there; the wavelet prior and the pair-wise MRF take the same two paths).
  return loop.override_config(gmrf_images_config.get_config("smoke"), {
      "images.models": ("stationary_gaussian", "field_of_experts"), "images.sample_trajectories": 3,
      "images.denoise_steps": 5, **overrides})


def test_the_crops_share_one_scalar_scaling_and_the_reference_stays_in_pixels():
  plan = gmrf_images.plan_images(_smoke())
  images = plan.images
  assert plan.fit_crops.shape == (images.num_fit_crops, images.size, images.size)
  np.testing.assert_allclose(plan.fit_crops.mean(), 0.0, atol=1e-5)
  np.testing.assert_allclose(plan.fit_crops.std(), 1.0, rtol=1e-4)
  # The held-out crops stay in pixel units ([0, 1] photographs), the reference first, then those to denoise.
  assert plan.reference.shape == (images.num_reference + images.num_denoise, images.size, images.size)
  assert 0.0 <= plan.reference.min() and plan.reference.max() <= 1.0
  # The PCD-trained model's crops are in the same units as the closed-form fits' (one mean, one std).
  (data,) = plan.learned_data.values()
  assert data.standardizer == plan.standardizer
  assert data.splits["train"].shape == (images.num_crops, images.crop_size, images.crop_size, 1)
  assert set(plan.learned) == {"field_of_experts"}
  assert plan.learned["field_of_experts"].contrastive.sampler == "hmc"


def test_smoke_run_scores_every_model_writes_both_figures_and_resumes_finished(tmp_path, capsys):
  config = _smoke()
  record = loop.train_and_evaluate(config, str(tmp_path))
  for name in ("data", "stationary_gaussian", "field_of_experts"):
    for key, _ in image_stats.TABLE_COLUMNS:
      assert math.isfinite(record[f"stats/{name}/{key}"]), (name, key)
  # The reference's row is its statistics against itself: no divergence from itself.
  assert record["stats/data/kl_derivative"] == 0.0 and record["stats/data/kl_random"] == 0.0
  # White noise of σ on images in [0, 1] has PSNR 10·log10(1/σ²) ≈ 20.17 dB (here 2 images of 16²).
  sigma = config.images.denoise_sigma
  assert abs(record["denoise/noisy/psnr"] - 10 * math.log10(1 / sigma**2)) < 0.5
  for name in ("stationary_gaussian", "field_of_experts"):
    assert math.isfinite(record[f"denoise/{name}/psnr"])
  assert "samples/stationary_gaussian/hmc_acceptance" not in record  # exact samples, no chain
  assert 0.0 <= record["samples/field_of_experts/hmc_acceptance"] <= 1.0
  for figure in ("high_res_samples.png", "image_stats.png"):
    with open(tmp_path / figure, "rb") as f:
      assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  assert os.path.isdir(tmp_path / "field_of_experts" / "checkpoints")
  assert os.path.exists(tmp_path / "field_of_experts" / "curves.png")  # the trainer's figures of a W-less model
  capsys.readouterr()
  again = loop.train_and_evaluate(config, str(tmp_path))
  assert "already holds the finished run" in capsys.readouterr().out
  assert again == record and len(read_metrics(str(tmp_path))) == 1


@pytest.mark.parametrize("overrides,message", [
    ({"images.models": ("stationary_gaussian", "gaussian_rbm")}, "gaussian_rbm"),
    ({"images.learning_rate": 0.0}, "learning_rate"),
    ({"images.size": 4}, "size"),
])
def test_bad_blocks_are_named_before_anything_is_written(tmp_path, overrides, message):
  with pytest.raises(loop.ConfigError, match=message):
    loop.train_and_evaluate(_smoke(**overrides), str(tmp_path / "run"))
  assert not os.path.exists(tmp_path / "run")


def test_the_tiled_models_crops_are_whitened_to_the_same_power_at_every_frequency_ring():
  plan = gmrf_images.plan_images(_smoke(**{"images.models": ("tiled_mcrbm",)}))
  train = plan.learned_data["tiled_mcrbm"].splits["train"][..., 0].astype(np.float64)
  # The whitening divides by the ring-averaged periodogram of these very crops, so on every ring of
  # frequencies their mean power is t² exactly (t = tiled.pixel_std), from the steep 1/f spectrum of photos.
  periodogram = np.mean(np.abs(np.fft.fft2(train)) ** 2, axis=0) / (train.shape[1] * train.shape[2])
  rings = frequency_rings(train.shape[1:])
  power = np.bincount(rings.ravel(), periodogram.ravel()) / np.bincount(rings.ravel())
  np.testing.assert_allclose(power, plan.tiled_pixel_std ** 2, rtol=1e-4)
  assert plan.learned["tiled_mcrbm"].patches.remove_dc is False
