"""The `dbn` trainer end to end on the smoke config: stacking, fine-tuning, outputs, resume, bad configs."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from deepvision.data import datasets
from deepvision.models import dbn
from deepvision.models.rbm import RBM
from deepvision.train import loop
from experiments import dbn as dbn_loop, pipelines  # noqa: F401  (registers the pipelines)
from deepvision.train.writers import read_metrics
from experiments.configs import dbn_digits, rbm_digits


def _smoke(**overrides):
  # The linear probes of each layer are the contrastive trainer's business (and its tests'); off for speed.
  return loop.override_config(dbn_digits.get_config("smoke"), {"linear_eval.enabled": False, **overrides})


def test_smoke_run_stacks_fine_tunes_writes_everything_and_resumes(tmp_path, monkeypatch):
  calls = []
  run_contrastive = dbn_loop.run_contrastive

  def recording(config, workdir, data=None, quiet=False):
    record, params = run_contrastive(config, workdir, data=data, quiet=quiet)
    calls.append({"config": config, "workdir": workdir, "data": data, "params": params})
    return record, params

  monkeypatch.setattr(dbn_loop, "run_contrastive", recording)
  workdir = str(tmp_path / "dbn")
  record = loop.train_and_evaluate(_smoke(), workdir)

  assert record["final"] and record["test/accuracy"] > 0.3  # chance: 0.1
  assert 0.0 <= record["test/accuracy_scratch"] <= 1.0 and "val/accuracy_scratch" in record
  for l in (1, 2):
    assert np.isfinite(record[f"layer_{l}/test/pseudo_likelihood"])
    assert np.isfinite(record[f"layer_{l}/test/log_likelihood"])  # 12 and 8 hidden units: exact log Z

  # Layer 1 trained on the digits themselves, layer 2 on layer 1's hidden probabilities of every split.
  first, second = calls
  assert [c["workdir"] for c in calls] == [os.path.join(workdir, "layer_1"), os.path.join(workdir, "layer_2")]
  images, labels = datasets.load_arrays("dv_digits", "train")
  np.testing.assert_array_equal(first["data"].splits["train"], images)
  layer_1 = [(RBM(n_visible=64, n_hidden=12), first["params"])]
  for role in ("train", "val", "test"):
    below = first["data"].splits[role]
    fed = second["data"].splits[role]
    assert fed.shape == (len(below), 12, 1, 1)
    np.testing.assert_allclose(fed.reshape(len(below), 12), dbn.features(layer_1, below), rtol=1e-6,
                               atol=1e-7)
  np.testing.assert_array_equal(second["data"].labels["train"], labels)
  assert dict(second["config"].model_kwargs) == {"n_visible": 12, "n_hidden": 8}

  # The outputs: the final record, each stage's run, the figures.
  assert read_metrics(workdir) == [record]
  with open(os.path.join(workdir, "config.json")) as f:
    assert json.load(f)["trainer"] == "dbn"
  finetune = read_metrics(os.path.join(workdir, "finetune"))[-1]
  assert finetune["test/accuracy"] == record["test/accuracy"]
  assert read_metrics(os.path.join(workdir, "scratch"))[-1]["test/accuracy"] == record["test/accuracy_scratch"]
  for name in ("samples.png", "filters.png", "curves.png", "layer_1/filters.png", "layer_2/curves.png",
               "layer_2/checkpoints", "finetune/checkpoints", "scratch/checkpoints"):
    assert os.path.exists(os.path.join(workdir, name)), name

  # Re-running the same command trains nothing again and returns the same record.
  stamps = {name: os.path.getmtime(os.path.join(workdir, name)) for name in (
      "metrics.jsonl", "samples.png", "layer_1/metrics.jsonl", "layer_2/metrics.jsonl",
      "finetune/metrics.jsonl", "scratch/metrics.jsonl")}
  assert loop.train_and_evaluate(_smoke(), workdir) == record
  assert stamps == {name: os.path.getmtime(os.path.join(workdir, name)) for name in stamps}
  with pytest.raises(loop.ConfigError, match="holds another run"):
    loop.train_and_evaluate(_smoke(**{"dbn.hidden": (12, 6)}), workdir)


@pytest.mark.parametrize("overrides, message", [
    ({"dbn.hidden": ()}, r"config.dbn.hidden must be a non-empty tuple of integers >= 1, one per layer, got \(\)"),
    ({"dbn.hidden": (12, -3)}, r"config.dbn.hidden must be .* got \(12, -3\)"),
    ({"dbn.num_epochs": (2,)}, r"config.dbn.num_epochs must be empty .* one value per layer \(2 for"),
    ({"model_kwargs.n_hidden": 30}, "config.model_kwargs.n_hidden=30 contradicts config.dbn.hidden"),
    ({"finetune.batch_size": 0}, "config.finetune.batch_size must be an integer >= 1, got 0"),
    ({"finetune.optimizer.learning_rate": -1.0}, r"config.finetune.optimizer.learning_rate must be a number in \(0, inf\), got -1.0"),
    ({"patches.size": 4}, "fine-tuning needs labelled whole images"),
    ({"contrastive.k": 0}, r"config.contrastive.k must be an integer >= 1, got 0"),
])
def test_bad_config_fails_before_anything_is_written(tmp_path, overrides, message):
  workdir = tmp_path / "run"
  with pytest.raises(loop.ConfigError, match=message):
    loop.train_and_evaluate(_smoke(**overrides), str(workdir))
  assert not workdir.exists()


def test_a_contrastive_config_is_not_a_dbn_config(tmp_path):
  config = loop.override_config(rbm_digits.get_config("smoke"), {"trainer": "dbn"})
  with pytest.raises(loop.ConfigError, match="needs the blocks config.dbn"):
    loop.train_and_evaluate(config, str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()
