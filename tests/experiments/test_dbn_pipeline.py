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



def _dbn_mnist_smoke(tmp_path):
  """dbn_mnist:smoke on a mock MNIST in tmp_path/data (64 training, 32 test digits); the caller enters the
  returned mock context."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from mock_catalog import write_catalog_metadata  # pylint: disable=g-import-not-at-top

  from experiments.configs import dbn_mnist  # pylint: disable=g-import-not-at-top
  config = loop.override_config(dbn_mnist.get_config("smoke"), {
      "linear_eval.enabled": False, "figures": False, "data_dir": str(tmp_path / "data")})
  write_catalog_metadata(config.data_dir, "mnist", {"train": 64, "test": 32})
  return config, tfds.testing.mock_data(num_examples=64, data_dir=config.data_dir)


def test_dbn_mnist_config_plans_a_784_500_500_stack_on_mocked_mnist(tmp_path):
  """The MNIST DBN config resolves, and its smoke variant is planned on tfds's mock data (no download):
  binarised digits, 784 × 12 × 8, fine-tuning on the labels; the run itself is the slow test below."""
  from experiments.configs import dbn_mnist  # pylint: disable=g-import-not-at-top
  full = dbn_mnist.get_config()
  assert (tuple(full.dbn.hidden), full.model_kwargs.n_visible, full.contrastive.method, full.contrastive.k) == (
      (500, 500), 784, "cd", 1)
  assert (full.train_split, full.eval_split, full.preprocess) == ("train[:90%]", "train[90%:]", "binarize")
  config, mock = _dbn_mnist_smoke(tmp_path)
  with mock:
    plan = dbn_loop.plan_dbn(config)
  assert set(np.unique(plan.data.splits["train"])) <= {0.0, 1.0}
  assert plan.data.image_shape == (28, 28, 1) and set(plan.data.labels) == {"train", "val", "test"}
  assert [dict(c.model_kwargs) for c in plan.layer_configs] == [{"n_visible": 784, "n_hidden": 12},
                                                                {"n_visible": 12, "n_hidden": 8}]
  assert set(plan.finetune_configs) == {"stack", "random"}
  assert plan.finetune_steps == 64 // 16 * 2


@pytest.mark.slow  # ~40 s on a loaded 2-core CPU, mostly compilation; the pipeline is tested on the digits
def test_dbn_mnist_smoke_config_stacks_and_fine_tunes_on_mocked_mnist(tmp_path):
  """The MNIST DBN smoke config runs end to end on the mock data: both fine-tunings, one final record."""
  config, mock = _dbn_mnist_smoke(tmp_path)
  workdir = str(tmp_path / "run")
  with mock:
    record = loop.train_and_evaluate(config, workdir)
  assert read_metrics(workdir) == [record] and record["final"]
  assert record["step"] == 64 // 16 * 2  # the fine-tuning's steps
  for key in ("test/accuracy", "test/accuracy_scratch", "val/accuracy", "val/accuracy_scratch"):
    assert 0.0 <= record[key] <= 1.0, key
  for l in (1, 2):
    assert np.isfinite(record[f"layer_{l}/test/log_likelihood"])  # 12 and 8 hidden units: exact log Z
  assert read_metrics(os.path.join(workdir, "scratch"))[-1]["test/accuracy"] == record["test/accuracy_scratch"]
