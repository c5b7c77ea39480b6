"""The `deep_gmrf` trainer: the stack's data, the crops' standardisation, the smoke run end to end and
its resume, and bad configs refused before any compute."""

from __future__ import annotations

import os

import jax
import numpy as np
import pytest

from deepvision import zoo
from deepvision.models import deep_gated_mrf
from deepvision.train import loop
from deepvision.train.contrastive_loop import EnergyData
from deepvision.train.writers import read_metrics
from experiments import deep_gmrf
from experiments.configs import deep_gmrf_patches


def _smoke(**overrides):
  # The log-likelihoods are the contrastive trainer's business (and its tests'); off for speed.
  return loop.override_config(deep_gmrf_patches.get_config("smoke"), {
      "log_likelihood.method": "none", "deep.rbm.log_likelihood.method": "none", "deep.hidden": (6, 4),
      "deep.top_gibbs_steps": 5, "deep.num_samples": 8, "deep.layer_one_figures": False, "num_epochs": 1,
      "deep.rbm.num_epochs": 1, "deep.gmrf_trajectories": 3, "deep.hmc_steps": 4, "deep.hmc_burn_in": 2,
      "tiled.sample_trajectories": 3, **overrides})


def _sigmoid(z):
  return 1.0 / (1.0 + np.exp(-z))


def test_code_data_are_the_mcrbm_posterior_means_in_closed_form():
  model = zoo.create("mcrbm_tiny")
  params = jax.device_get(model.init(jax.random.key(0), np.zeros((1, 4), np.float32),
                                     method="free_energy")["params"])
  params = {k: np.asarray(v, np.float64) for k, v in params.items()}
  x = np.random.default_rng(0).normal(size=(7, 4))
  data = EnergyData({"train": x.astype(np.float32).reshape(7, 4, 1, 1)}, {}, (4, 1, 1))
  codes = deep_gmrf.code_data((model, {k: v.astype(np.float32) for k, v in params.items()}), data)
  # p(h_c = 1 | x) = σ(b_c − ½Pᵀ(Cᵀx̃)²), x̃ = x / sqrt(‖x‖²/D + ½); p(h_m = 1 | x) = σ(Wᵀx + b_m).
  x_tilde = x / np.sqrt(np.mean(x * x, axis=1, keepdims=True) + 0.5)
  cov = _sigmoid(params["b_c"] - 0.5 * ((x_tilde @ params["C"]) ** 2) @ params["P"])
  mean = _sigmoid(x @ params["W"] + params["b_m"])
  assert codes.image_shape == (5, 1, 1)
  np.testing.assert_allclose(codes.splits["train"].reshape(7, 5), np.concatenate([cov, mean], axis=1),
                             rtol=1e-5, atol=1e-6)


def test_crop_data_remove_each_crops_mean_and_scale_every_pixel_by_one_scalar():
  config = deep_gmrf.tiled_config(_smoke())
  data = deep_gmrf.crop_data(config)
  train = data.splits["train"]
  assert train.shape == (config.patches.num_train, 8, 8, 1) and set(data.splits) == {"train", "val", "test"}
  np.testing.assert_allclose(train.mean(axis=(1, 2, 3)), 0.0, atol=1e-5)  # each crop's mean removed
  np.testing.assert_allclose(train.std(), config.tiled_pixel_std, rtol=1e-4)
  # One scalar for every pixel: back through it, DC-removed pixels of [0, 1] images lie in [-1, 1].
  mean, std = data.standardizer["mean"], data.standardizer["std"]
  assert len(mean) == len(std) == 1
  pixels = train * std[0] + mean[0]
  assert pixels.min() >= -1 - 1e-5 and pixels.max() <= 1 + 1e-5 and pixels.std() > 0.01


@pytest.mark.slow  # three layers, a tiled model, AIS and figures: ~40 s
def test_smoke_run_stacks_samples_writes_figures_and_resumes(tmp_path, monkeypatch):
  calls = []
  run_contrastive = deep_gmrf.run_contrastive

  def recording(config, workdir, data=None, quiet=False):
    record, params = run_contrastive(config, workdir, data=data, quiet=quiet)
    calls.append({"config": config, "workdir": workdir, "data": data, "params": params})
    return record, params

  monkeypatch.setattr(deep_gmrf, "run_contrastive", recording)
  workdir = str(tmp_path / "deep")
  record = loop.train_and_evaluate(_smoke(), workdir)  # through the trainer registry

  names = [os.path.basename(c["workdir"]) for c in calls]
  assert names == ["layer_1", "layer_2", "layer_3", "tiled"]
  # Layer 2 sees the layer-1 codes of every split, layer 3 RBM 2's posterior means.
  gmrf = (zoo.create("mcrbm", **calls[0]["config"].model_kwargs), calls[0]["params"])
  rbm2 = (zoo.create("rbm", **calls[1]["config"].model_kwargs), calls[1]["params"])
  for role in ("train", "val", "test"):
    x = calls[0]["data"].splits[role].reshape(len(calls[0]["data"].splits[role]), -1)
    np.testing.assert_allclose(calls[1]["data"].splits[role].reshape(len(x), -1),
                               deep_gated_mrf.layer_one_codes(gmrf, x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(calls[2]["data"].splits[role].reshape(len(x), -1),
                               deep_gated_mrf.features(gmrf, [rbm2], x), rtol=1e-5, atol=1e-6)
  assert dict(calls[1]["config"].model_kwargs) == {"n_visible": 4 + 8, "n_hidden": 6}
  assert dict(calls[2]["config"].model_kwargs) == {"n_visible": 6, "n_hidden": 4}
  # The tiled model trained on standardised crops, with the crop as its image shape.
  assert calls[3]["data"].image_shape == (8, 8, 1)
  assert tuple(calls[3]["config"].model_kwargs.image_shape) == (8, 8)

  # One final record: every layer's final metrics as its own run wrote them, and the samplers' statistics.
  assert read_metrics(workdir) == [record] and record["final"]
  for call in calls:
    name = os.path.basename(call["workdir"])
    final = read_metrics(call["workdir"])[-1]
    assert {k: record[f"{name}/{k}"] for k in final if k not in ("step", "final")} == {
        k: v for k, v in final.items() if k not in ("step", "final")}
  for key in ("gmrf_hmc_acceptance", "deep_hmc_acceptance", "tiled_hmc_acceptance"):
    assert 0.0 <= record[f"samples/{key}"] <= 1.0
  assert 0.0 <= record["samples/deep_code_mean"] <= 1.0
  figures = [os.path.join(workdir, name) for name in ("samples_compared.png", "large_sample.png")]
  assert all(os.path.getsize(f) > 0 for f in figures)
  stamps = [os.path.getmtime(f) for f in figures]

  # Re-running finds every layer finished: nothing trains again, the record and figures stand.
  calls.clear()
  again = loop.train_and_evaluate(_smoke(), workdir)
  assert again == record and read_metrics(workdir) == [record]
  assert [os.path.getmtime(f) for f in figures] == stamps
  for call, name in zip(calls, ("layer_1", "layer_2", "layer_3", "tiled")):
    assert len(read_metrics(os.path.join(workdir, name))) == len(read_metrics(call["workdir"]))


@pytest.mark.parametrize("overrides, message", [
    ({"deep.hidden": (6, 0)}, "deep.hidden"),
    ({"deep.rbm.num_epochs": 0}, "deep.rbm.num_epochs"),
    ({"deep.hmc_burn_in": 4}, "hmc_burn_in"),
    ({"deep.hmc_step_size": 0.5}, "hmc_step_size"),
    ({"deep.num_samples": 0}, "deep.num_samples"),
    ({"tiled.sample_shape": (13, 13)}, "sample_shape"),
    ({"tiled.pixel_std": 0.0}, "tiled.pixel_std"),
    ({"tiled.crop_size": 0}, "tiled.crop_size"),
    ({"deep.rbm.optimizer.learning_rate": -1.0}, "config.deep.rbm.optimizer.learning_rate"),
    ({"model": "rbm"}, "config.model"),
    ({"preprocess": "none"}, "whiten"),
])
def test_bad_values_raise_config_error_before_any_compute(tmp_path, monkeypatch, overrides, message):
  def no_training(*args, **kwargs):
    raise AssertionError("trained before the config was checked")

  monkeypatch.setattr(deep_gmrf, "run_contrastive", no_training)
  workdir = tmp_path / "deep"
  with pytest.raises(loop.ConfigError, match=message):
    deep_gmrf.run_deep_gmrf(_smoke(**overrides), str(workdir), quiet=True)
  assert not workdir.exists()


def test_contrast_spread_is_the_ratio_of_the_contrast_deciles():
  pattern = np.array([1.0, -1.0, 1.0, -1.0])  # standard deviation 1
  contrasts = np.arange(1.0, 12.0)  # deciles 2 and 10 (numpy's linear interpolation)
  patches = contrasts[:, None] * pattern
  assert deep_gmrf.contrast_spread(patches) == pytest.approx(np.percentile(contrasts, 90) / 2.0)
  assert deep_gmrf.contrast_spread(np.tile(pattern, (5, 1))) == pytest.approx(1.0)
