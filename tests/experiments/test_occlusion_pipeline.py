"""The `occlusion` trainer end to end on the smoke config: records, table, figure, resume; what the
baseline and the fills see of an occluded image; bad configs stopped before any compute."""

from __future__ import annotations

import dataclasses
import os

import jax
import numpy as np
import pytest

from deepvision import zoo
from deepvision.estimators import occlusion
from deepvision.train import loop
from deepvision.train.writers import read_metrics
from experiments import occlusion as occlusion_experiment
from experiments.configs import gmrf_digits


def _smoke(**overrides):
  return loop.override_config(gmrf_digits.get_config("smoke"), overrides)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("occlusion") / "run")
  record, params = occlusion_experiment.run_occlusion(_smoke(), workdir, quiet=True)
  return workdir, record, params


def test_smoke_run_records_every_cell_writes_table_and_figure_and_resumes(smoke_run):
  workdir, record, _ = smoke_run
  masks = gmrf_digits.get_config("smoke").occlusion.masks
  assert masks == ("none", "left_half", "random_square")
  for name in occlusion.INPUTS:
    assert 0.0 <= record[f"test/accuracy_none_{name}"] <= 1.0
    for kind in masks[1:]:
      for fill in occlusion.FILLS:
        assert 0.0 <= record[f"test/accuracy_{kind}_{fill}_{name}"] <= 1.0
  # Logistic regression on clean digit pixels is far above chance (0.1); hiding half of each digit costs.
  assert record["test/accuracy_none_pixels"] > 0.9
  assert record["test/accuracy_left_half_raw_pixels"] < record["test/accuracy_none_pixels"]
  # The conditional mean of the Gaussian minimises the expected squared error given the observed pixels:
  # on held-out digits it beats the unconditional training mean by far.
  for kind in masks[1:]:
    assert record[f"test/fill_mse_{kind}_gaussian"] < 0.8 * record[f"test/fill_mse_{kind}_raw"]
    assert 0.0 < record[f"test/inpaint_acceptance_{kind}"] <= 1.0
    # The training-mean fill is recorded whatever the baseline; here the baseline is that fill itself.
    assert record[f"test/fill_mse_{kind}_train_mean"] == record[f"test/fill_mse_{kind}_raw"]
    for fill in occlusion.FILLS + ("train_mean",):
      assert 0.0 < record[f"test/fill_mse_{kind}_{fill}_stderr"] < 0.1 * record[f"test/fill_mse_{kind}_{fill}"]
  # The mcRBM's clamped-HMC fill beats filling each hidden pixel with its training mean. Measured on
  # the smoke run: 0.81 of the training mean's error on the left half, 0.69 on the random squares
  # (30 averaged transitions; with 4 the left half's fill lost, 1.03).
  for kind in masks[1:]:
    ratio = record[f"test/fill_mse_{kind}_gmrf"] / record[f"test/fill_mse_{kind}_train_mean"]
    assert ratio < 0.9, (kind, ratio)

  assert read_metrics(workdir) == [record]
  with open(os.path.join(workdir, occlusion_experiment.TABLE_FILE)) as f:
    table = f.read()
  assert f"| left_half | none (occluded = training mean) | {record['test/accuracy_left_half_raw_pixels']:.3f} |" \
      in table
  assert (f"| {record['test/fill_mse_left_half_gmrf']:.4f} ± {record['test/fill_mse_left_half_gmrf_stderr']:.4f} |"
          in table)
  assert "training mean (fill error only)" not in table  # the 'raw' row is that fill here
  # With the baseline 0, the training mean's error gets its own row per occluded mask, unclassified.
  settings = gmrf_digits.get_config("smoke").occlusion
  zero = occlusion_experiment.occlusion_settings(_smoke(**{"occlusion.baseline_fill": "zero"}))[1]
  zero_table = occlusion.accuracy_table(record, zero, "MCRBM")
  assert zero_table.count("| training mean (fill error only) | — | — | — |") == len(settings.masks) - 1
  assert (f"| random_square | training mean (fill error only) | — | — | — | "
          f"{record['test/fill_mse_random_square_train_mean']:.4f} ± "
          f"{record['test/fill_mse_random_square_train_mean_stderr']:.4f} |") in zero_table
  assert table.count("\n| random_square |") == 3
  for name in (occlusion_experiment.FIGURE_FILE, "model/checkpoints", "model/preprocessing.json", "config.json"):
    assert os.path.exists(os.path.join(workdir, name)), name

  # Through the launcher's entry point: the trainer is registered; the model is not trained again and the
  # deterministic evaluation gives the same record, so nothing is rewritten.
  assert loop.TRAINERS.get("occlusion") is occlusion_experiment.train_occlusion
  stamps = {name: os.path.getmtime(os.path.join(workdir, name)) for name in (
      "metrics.jsonl", "model/metrics.jsonl", occlusion_experiment.TABLE_FILE)}
  assert loop.train_and_evaluate(_smoke(), workdir) == record
  assert stamps == {name: os.path.getmtime(os.path.join(workdir, name)) for name in stamps}


def test_occluded_pixels_never_reach_the_baseline_or_the_fills(smoke_run):
  _, _, params = smoke_run
  plan = occlusion_experiment.plan_occlusion(_smoke())
  task = dataclasses.replace(plan.task, settings=dataclasses.replace(plan.task.settings, masks=("left_half",)))
  model = zoo.create(plan.model_config.model, **plan.model_config.model_kwargs)
  key = jax.random.key(3)
  truth = task.pixels["test"]
  noise = np.random.default_rng(0).uniform(5.0, 9.0, truth.shape).astype(np.float32)

  # End to end on the left half: corrupting exactly the occluded pixels (bright noise where the digit
  # was hidden) changes no fill and no accuracy.
  observed = occlusion.observed_masks(task, "left_half", jax.random.fold_in(key, 0))
  assert observed.shape == truth.shape and observed.mean() == 0.5
  record, examples = occlusion.evaluate_occlusion(task, model, params, key)
  record_c, examples_c = occlusion.evaluate_occlusion(task, model, params, key,
                                                      test_pixels=np.where(observed, truth, noise))
  accuracies = {k: v for k, v in record.items() if "accuracy" in k}
  assert len(accuracies) == 9 and accuracies == {k: v for k, v in record_c.items() if "accuracy" in k}
  for fill in occlusion.FILLS:
    np.testing.assert_array_equal(examples_c["left_half"][fill], examples["left_half"][fill])
    np.testing.assert_array_equal(examples["left_half"][fill][observed], truth[observed])  # kept exactly
    # The fill's error: pooled over the 32 hidden pixels of each image, its standard error over images.
    per_image = ((examples["left_half"][fill].astype(np.float64) - truth) ** 2).sum(axis=1) / 32
    assert record[f"test/fill_mse_left_half_{fill}"] == pytest.approx(per_image.mean(), rel=1e-5)
    assert record[f"test/fill_mse_left_half_{fill}_stderr"] == pytest.approx(
        per_image.std(ddof=1) / np.sqrt(len(truth)), rel=1e-9)

  # Random squares (a different block per image): the same for every fill.
  observed = occlusion.observed_masks(task, "random_square", jax.random.fold_in(key, 4))
  assert len({tuple(row) for row in observed}) > 10 and np.all(observed.sum(axis=1) == 64 - 16)
  fills, _ = occlusion.fill_occluded(task, model, params, truth, observed, key)
  fills_c, _ = occlusion.fill_occluded(task, model, params, np.where(observed, truth, noise), observed, key)
  for fill in occlusion.FILLS:
    np.testing.assert_array_equal(fills_c[fill], fills[fill])
  # The baseline's view: the observed pixels, and the training mean of each occluded pixel (or 0).
  raw = fills["raw"]
  train_mean = np.broadcast_to(task.pixels["train"].mean(axis=0), raw.shape)
  np.testing.assert_allclose(raw[~observed], train_mean[~observed], rtol=1e-6)
  np.testing.assert_array_equal(raw[observed], truth[observed])
  zero_task = dataclasses.replace(task, settings=dataclasses.replace(task.settings, baseline_fill="zero"))
  np.testing.assert_array_equal(occlusion.baseline_fill_value(zero_task), 0.0)


def _no_training(*args, **kwargs):
  raise AssertionError("run_contrastive was called: the config should have been refused first")


@pytest.mark.parametrize("overrides, message", [
    ({"occlusion.masks": ("left_half", "diagonal")}, r"config.occlusion.masks must be .*'diagonal'"),
    ({"occlusion.masks": ()}, r"config.occlusion.masks must be a non-empty"),
    ({"occlusion.baseline_fill": "median"}, r"baseline_fill must be one of mean, zero, got 'median'"),
    ({"occlusion.sampler": "gibbs"}, r"sampler='gibbs' needs a Gaussian p\(x \| h\)"),
    ({"occlusion.sampler": "langevin"}, r"sampler must be one of hmc, gibbs, got 'langevin'"),
    ({"occlusion.burn_in": 40}, r"burn_in=40 must be smaller than num_steps=40"),
    ({"occlusion.step_size": 0.5}, r"config.occlusion.step_size must be a number in \[0.001, 0.25\], got 0.5"),
    ({"occlusion.square_size": 1.0}, r"square_size: a 8×8 square occludes the whole 8×8 image"),
    ({"occlusion.l2": ()}, r"config.occlusion.l2 must hold at least one"),
    ({"occlusion.l2": (1e-3, -1.0)}, r"config.occlusion.l2 must be numbers >= 0, got \(0.001, -1.0\)"),
    ({"occlusion.num_shown": 0}, r"config.occlusion.num_shown must be an integer >= 1, got 0"),
    ({"preprocess": "standardize"}, r"config.preprocess must be 'whiten'"),
    ({"test_split": ""}, r"config.test_split must name a split"),
    ({"model_kwargs.n_visible": 40}, r"n_visible=40 but the data have 41 features"),
])
def test_bad_config_is_refused_before_any_compute(tmp_path, monkeypatch, overrides, message):
  monkeypatch.setattr(occlusion_experiment, "run_contrastive", _no_training)
  workdir = str(tmp_path / "run")
  with pytest.raises(loop.ConfigError, match=message):
    loop.train_and_evaluate(_smoke(**overrides), workdir)
  assert not os.path.exists(workdir)


def test_config_variants():
  mpot = gmrf_digits.get_config("mpot,smoke")
  assert mpot.model == "mpot" and mpot.model_kwargs.n_factors == 8 and "b_c" not in mpot.optimizer.lr_multipliers
  assert gmrf_digits.get_config("").model == "mcrbm"
  # The mPoT's p(x | h) is Gaussian: its Gibbs fill-in is accepted.
  plan = occlusion_experiment.plan_occlusion(loop.override_config(mpot, {"occlusion.sampler": "gibbs"}))
  assert plan.task.settings.sampler == "gibbs" and plan.task.pixel_shape == (8, 8, 1)
  with pytest.raises(ValueError, match="unknown argument 'big' for config gmrf_digits"):
    gmrf_digits.get_config("big")
