"""The `sdae` trainer end to end on the smoke config: stacking, the DBN's fine-tuning, outputs, resume, bad configs."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepvision.data import datasets
from deepvision.models import dbn
from deepvision.models.autoencoder import DenoisingAutoencoder
from deepvision.train import loop
from deepvision.train.writers import read_metrics
from experiments import pipelines  # noqa: F401  (registers the pipelines)
from experiments import sdae as sdae_pipeline
from experiments.configs import sdae_digits


def _smoke(**overrides):
  # One step per dispatch compiles one program per stage (K > 1 is the autoencoder task's own test).
  return loop.override_config(sdae_digits.get_config("smoke"), {
      "finetune.compare_scratch": False, "finetune.num_epochs": 5, "steps_per_dispatch": 1, **overrides})


def test_smoke_run_stacks_denoising_autoencoders_fine_tunes_and_resumes(tmp_path, monkeypatch):
  calls = []
  run_autoencoder = sdae_pipeline.autoencoder.run_autoencoder

  def recording(config, workdir, data=None, quiet=False):
    record, params = run_autoencoder(config, workdir, data, quiet)
    calls.append({"config": config, "workdir": workdir, "data": data, "params": params})
    return record, params

  monkeypatch.setattr(sdae_pipeline.autoencoder, "run_autoencoder", recording)
  workdir = str(tmp_path / "sdae")
  record = loop.train_and_evaluate(_smoke(), workdir)
  assert record["final"] and record["test/accuracy"] > 0.3  # chance: 0.1
  assert record["layer_1/test/recon_loss"] > 0 and record["layer_2/test/recon_loss"] > 0

  # Layer 1 on the digits, layer 2 on layer 1's clean codes of every split, each a denoising autoencoder.
  first, second = calls
  images, labels = datasets.load_arrays("dv_digits", "train")
  np.testing.assert_array_equal(first["data"].splits["train"], images)
  layer_1 = DenoisingAutoencoder(n_visible=64, n_hidden=12)
  for role in ("train", "val", "test"):
    below = first["data"].splits[role]
    codes = layer_1.apply({"params": first["params"]}, jnp.asarray(below), method="hidden_probs")
    np.testing.assert_allclose(second["data"].splits[role].reshape(len(below), 12), codes, rtol=1e-6, atol=1e-7)
  np.testing.assert_array_equal(second["data"].labels["train"], labels)
  assert dict(second["config"].model_kwargs) == {"n_visible": 12, "n_hidden": 8}
  assert second["config"].trainer == "autoencoder" and second["config"].corruption == 0.25

  # The classifier's hidden layers start as the encoders: its upward pass is the stack's codes.
  stack = [(layer_1, first["params"]), (DenoisingAutoencoder(n_visible=12, n_hidden=8), second["params"])]
  classifier = dbn.DBNClassifier(hidden=(12, 8))
  params = dbn.classifier_params_from_stack(stack, classifier.init(jax.random.key(0), jnp.zeros((1, 64)))["params"])
  x = jnp.asarray(images[:5])
  codes = x
  for model, layer_params in stack:
    codes = model.apply({"params": layer_params}, codes, method="hidden_probs")
  np.testing.assert_allclose(classifier.apply({"params": params}, x)[1]["features"], codes, rtol=1e-5, atol=1e-6)

  assert read_metrics(workdir) == [record]
  assert read_metrics(os.path.join(workdir, "finetune"))[-1]["test/accuracy"] == record["test/accuracy"]
  for name in ("filters.png", "curves.png", "layer_1/filters.png", "layer_2/checkpoints", "finetune/checkpoints"):
    assert os.path.exists(os.path.join(workdir, name)), name
  assert not os.path.exists(os.path.join(workdir, "scratch"))

  # Re-running the same command trains nothing again and returns the same record.
  stamp = os.path.getmtime(os.path.join(workdir, "metrics.jsonl"))
  assert loop.train_and_evaluate(_smoke(), workdir) == record
  assert os.path.getmtime(os.path.join(workdir, "metrics.jsonl")) == stamp
  with pytest.raises(loop.ConfigError, match="holds another run"):
    loop.train_and_evaluate(_smoke(**{"sdae.hidden": (12, 6)}), workdir)


@pytest.mark.parametrize("overrides, message", [
    ({"sdae.hidden": ()}, r"config.sdae.hidden must be a tuple of positive ints"),
    ({"sdae.num_epochs": (2,)}, r"config.sdae.num_epochs must be empty .* one value per layer"),
    ({"sdae.upper_model": "rbm"}, r"SDAE layer 2: config.model 'rbm' is not an autoencoder"),
    ({"finetune.batch_size": 0}, r"config.finetune.batch_size must be an integer >= 1"),
    ({"model_kwargs.n_hidden": 5}, r"contradicts config.sdae.hidden\[0\]=12"),
    ({"corruption": 1.5}, r"config.corruption"),
])
def test_bad_config_fails_before_anything_is_written(tmp_path, overrides, message):
  with pytest.raises(loop.ConfigError, match=message):
    loop.train_and_evaluate(_smoke(**overrides), str(tmp_path / "run"))
  assert not os.path.exists(tmp_path / "run")
