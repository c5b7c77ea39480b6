"""The autoencoder task end to end: each config's smoke run, K steps per dispatch, bad inputs refused.

The losses, penalties, gradients and noise are tested in tests/models/test_autoencoder_math.py."""

import json
import os

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepvision import zoo
from deepvision.checkpoint import read_state
from deepvision.errors import ConfigError
from deepvision.train import loop
from experiments.configs import ae_patches, dae_digits


def test_parameter_count_and_tied_decoder():
  model = zoo.create("dae")
  params = model.init(jax.random.key(0), jnp.zeros((1, 64)))["params"]
  assert zoo.count_params(params) == 64 * 100 + 64 + 100
  assert set(params) == {"W", "b_v", "b_h"}


def test_smoke_run_learns_features_and_k_steps_per_dispatch_change_no_number(tmp_path):
  records = {}
  for k in (1, 16):
    config = loop.override_config(dae_digits.get_config("smoke"), {"steps_per_dispatch": k, "figures": False})
    record = loop.train_and_evaluate(config, str(tmp_path / f"k{k}"))
    with open(tmp_path / f"k{k}" / "metrics.jsonl") as f:
      records[k] = [{key: v for key, v in json.loads(line).items() if key != "steps_per_second"} for line in f]
    first = records[k][0]["train/recon_loss"]
    assert record["final"] and record["test/recon_loss"] < first
    assert record["test/feature_accuracy"] > 0.5  # 4 features of the digits, read out linearly
  assert records[1] == records[16]
  # The parameters too, bit for bit.
  (one, step_one), (sixteen, step_sixteen) = (read_state(str(tmp_path / f"k{k}" / "checkpoints")) for k in (1, 16))
  assert step_one == step_sixteen > 0
  assert jax.tree.structure(one["params"]) == jax.tree.structure(sixteen["params"])
  for x, y in zip(jax.tree.leaves(one["params"]), jax.tree.leaves(sixteen["params"])):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _records(workdir):
  with open(workdir / "metrics.jsonl") as f:
    return [json.loads(line) for line in f]


@pytest.mark.parametrize("name", ["sparse_ae_digits", "contractive_ae_digits", "ae_patches"])
def test_each_config_smoke_run_lowers_its_loss(name, tmp_path):
  config = importlib.import_module(f"experiments.configs.{name}").get_config("smoke")
  config = loop.override_config(config, {"figures": name == "ae_patches", "steps_per_dispatch": 1})
  record = loop.train_and_evaluate(config, str(tmp_path))
  records = _records(tmp_path)
  assert record["final"] and record["test/recon_loss"] < records[0]["train/recon_loss"]
  train = [r["train/recon_loss"] for r in records if "train/recon_loss" in r]
  assert len(train) >= 2 and train[-1] < train[0]
  if name == "ae_patches":  # whitened patches: n_visible is K; the filters are drawn in pixel space
    with open(tmp_path / "config.json") as f:
      assert json.load(f)["preprocess"] == "whiten"
    assert "test/feature_accuracy" not in record and os.path.exists(tmp_path / "filters.png")
  else:  # the penalty is logged, positive, and the features read out linearly above chance (10 classes)
    assert all(r["train/penalty"] > 0 for r in records if "train/penalty" in r)
    assert "train/penalty" in records[0] and record["test/feature_accuracy"] > 0.3


def test_a_sigmoid_decoder_on_whitened_data_is_refused_before_training(tmp_path):
  config = loop.override_config(ae_patches.get_config("smoke"), {"model": "dae_tiny"})
  with pytest.raises(ConfigError, match="sigmoid decoder.*linear decoder"):
    loop.train_and_evaluate(config, str(tmp_path / "run"))
  assert not os.path.exists(tmp_path / "run" / "checkpoints")
  config = loop.override_config(dae_digits.get_config("smoke"), {"model": "rbm_tiny"})
  with pytest.raises(ConfigError, match="not an autoencoder.*contractive_ae"):
    loop.train_and_evaluate(config, str(tmp_path / "run2"))
