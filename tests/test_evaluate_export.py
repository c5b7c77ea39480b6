"""Evaluate-only mode and feature export: a finished run evaluated again, byte-identical afterwards."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from deepvision.pretrained import runs
from deepvision.train.loop import ConfigError, train_and_evaluate
from deepvision.train.writers import read_metrics
from experiments.configs import lcn_convnet_digits, rbm_digits

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _digests(workdir):
  out = {}
  for folder, _, files in os.walk(workdir):
    for name in files:
      path = os.path.join(folder, name)
      with open(path, "rb") as f:
        out[os.path.relpath(path, workdir)] = hashlib.sha256(f.read()).hexdigest()
  return out


@pytest.fixture(scope="module")
def convnet_run(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("lcn"))
  config = lcn_convnet_digits.get_config("smoke")
  config.figures = False
  return workdir, config, train_and_evaluate(config, workdir)


def test_evaluating_on_the_test_split_reproduces_the_final_record(convnet_run):
  workdir, _, final = convnet_run
  before = _digests(workdir)
  record = runs.evaluate_run(workdir, "test", out=os.path.join(workdir, "..", "lcn_test.json"))
  assert record["step"] == final["step"] and record["split"] == "test"
  assert record["metrics"]["accuracy"] == pytest.approx(final["test/accuracy"], abs=1e-9)
  assert record["metrics"]["loss"] == pytest.approx(final["test/loss"], rel=1e-6)
  assert _digests(workdir) == before  # --out elsewhere: the run's directory is untouched


def test_evaluating_another_split_writes_a_separate_record_only(convnet_run):
  workdir, _, final = convnet_run
  before = _digests(workdir)
  record = runs.evaluate_run(workdir, "validation")
  after = _digests(workdir)
  assert {k: v for k, v in after.items() if not k.startswith("evaluations")} == before
  with open(os.path.join(workdir, "evaluations", "validation.json")) as f:
    assert json.load(f) == record
  assert 0.0 <= record["metrics"]["accuracy"] <= 1.0 and record["metrics"]["loss"] > 0
  assert record["shared_with_training"] == 0  # the smoke run trains on `train` only
  assert read_metrics(workdir)[-1] == final
  # Training examples are evaluated if asked for, and the record says how many of them the run trained on.
  seen = runs.evaluate_run(workdir, "train[:20]", out=os.path.join(workdir, "..", "lcn_train.json"))
  assert seen["shared_with_training"] == 20 and seen["train_split"] == "train"
  with pytest.raises(ConfigError, match=r"--split=valid: unknown split 'valid'.*validation \(360\)"):
    runs.evaluate_run(workdir, "valid")


def test_a_finished_runs_config_cannot_be_rewritten_by_a_rerun(convnet_run):
  workdir, config, _ = convnet_run
  before = _digests(workdir)
  changed = lcn_convnet_digits.get_config("smoke")
  changed.figures, changed.test_split, changed.allow_config_change = False, "validation", True
  with pytest.raises(ConfigError, match=r"holds a finished run and its config cannot change \(test_split"):
    train_and_evaluate(changed, workdir)
  assert train_and_evaluate(config, workdir)["final"]  # the same config: "nothing to do"
  assert {k: v for k, v in _digests(workdir).items() if k in before} == before


def test_exported_features_are_the_models_intermediates_and_logits(convnet_run, tmp_path):
  workdir, _, final = convnet_run
  before = _digests(workdir)
  out = str(tmp_path / "features.npz")
  arrays = runs.export_features(workdir, "test", out)
  with np.load(out) as saved:
    assert sorted(saved.files) == sorted(arrays)
    logits, labels = saved["logits"], saved["labels"]
    assert logits.shape == (len(labels), 10)
    assert np.mean(np.argmax(logits, -1) == labels) == pytest.approx(final["test/accuracy"], abs=1e-9)
    assert {"features/stage1.conv", "features/stage3.pool"} <= set(saved.files)
    assert all(saved[k].shape[0] == len(labels) for k in saved.files)
  assert _digests(workdir) == before
  with pytest.raises(ConfigError, match=r"\.npz"):
    runs.export_features(workdir, "test", str(tmp_path / "features.csv"))


def test_an_energy_run_evaluates_and_exports_its_hidden_probabilities(tmp_path):
  config = rbm_digits.get_config("smoke")
  config.figures = False
  final = train_and_evaluate(config, str(tmp_path / "rbm"))
  record = runs.evaluate_run(str(tmp_path / "rbm"), "test", out=str(tmp_path / "rbm_test.json"))
  # The same AIS estimate with the same key: the run's own final evaluation, exactly.
  assert record["metrics"]["log_likelihood"] == pytest.approx(final["test/log_likelihood"], abs=1e-5)
  arrays = runs.export_features(str(tmp_path / "rbm"), "test", str(tmp_path / "rbm.npz"))
  probs = arrays["features/hidden_probs"]
  assert probs.shape == (len(arrays["labels"]), config.model_kwargs.n_hidden)
  assert np.all((probs >= 0) & (probs <= 1))


def test_what_cannot_be_evaluated_is_refused_before_any_compute(tmp_path):
  with pytest.raises(ConfigError, match="holds no run"):
    runs.evaluate_run(str(tmp_path / "none"), "test")
  os.makedirs(tmp_path / "dbn")
  with open(tmp_path / "dbn" / "config.json", "w") as f:
    json.dump({"trainer": "dbn", "dataset": "dv_digits"}, f)
  with pytest.raises(ConfigError, match="holds no finished run"):
    runs.evaluate_run(str(tmp_path / "dbn"), "test")
  with open(tmp_path / "dbn" / "metrics.jsonl", "w") as f:
    f.write(json.dumps({"step": 1, "final": True}) + "\n")
  with pytest.raises(ConfigError, match="trainer 'dbn' is not supported; .*supervised"):
    runs.evaluate_run(str(tmp_path / "dbn"), "test")
  result = subprocess.run([sys.executable, "-m", "experiments.evaluate", f"--workdir={tmp_path}/none",
                           "--split=test"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
  assert result.returncode == 2 and result.stderr.startswith(f"error: --workdir {tmp_path}/none holds no run")
  assert not os.path.exists(tmp_path / "none")
