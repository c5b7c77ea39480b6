"""Early stopping on a validation metric with the best checkpoint selected (`config.early_stopping`)."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from deepvision.pretrained import runs
from deepvision.train.loop import ConfigError, train_and_evaluate
from deepvision.train.writers import read_metrics
from experiments.configs import lcn_convnet_digits


def _config(**early_stopping):
  config = lcn_convnet_digits.get_config("smoke")  # 128 examples, 4 steps per epoch, val each epoch
  config.figures, config.num_epochs = False, 4
  for key, value in early_stopping.items():
    config.early_stopping[key] = value
  return config


def test_no_improvement_for_patience_evaluations_stops_and_selects_the_best(tmp_path, capsys):
  # An improvement must exceed 1.0 in accuracy: only the first evaluation is ever the best.
  config = _config(metric="val/accuracy", patience=2, min_delta=1.0)
  record = train_and_evaluate(config, str(tmp_path))
  evaluations = [r for r in read_metrics(str(tmp_path)) if "val/accuracy" in r and not r.get("final")]
  assert [r["step"] for r in evaluations] == [4, 8, 12]  # stopped after the third of four epochs
  assert record["step"] == 12 and record["early_stopping/stopped_at"] == 12
  assert record["early_stopping/best_step"] == 4
  assert record["early_stopping/best"] == evaluations[0]["val/accuracy"]
  assert "early stopping at step 12" in capsys.readouterr().out
  # The final test figures, the evaluate command and the exported logits are all of step 4's state.
  again = runs.evaluate_run(str(tmp_path), "test", out=str(tmp_path.parent / "es_test.json"))
  assert again["step"] == 4 and again["metrics"]["accuracy"] == pytest.approx(record["test/accuracy"], abs=1e-9)
  # Finished: a rerun does nothing and returns the same record.
  assert train_and_evaluate(config, str(tmp_path)) == record
  assert read_metrics(str(tmp_path))[-1] == record


def test_a_run_resumed_before_its_stop_stops_at_the_same_step_with_the_same_record(tmp_path):
  config = _config(metric="val/accuracy", patience=2, min_delta=1.0)
  config.checkpoint_every_steps, config.keep_checkpoints = 4, 10
  reference = train_and_evaluate(config, str(tmp_path / "reference"))
  shutil.copytree(tmp_path / "reference", tmp_path / "resumed")
  checkpoints = tmp_path / "resumed" / "checkpoints"
  for step in os.listdir(checkpoints):  # as if killed after step 8's checkpoint, before the stop at 12
    if step.isdigit() and int(step) > 8:
      shutil.rmtree(checkpoints / step)
  assert train_and_evaluate(config, str(tmp_path / "resumed")) == reference
  untimed = lambda d: [{k: v for k, v in r.items() if k != "steps_per_second"}
                       for r in read_metrics(str(tmp_path / d))]
  assert untimed("resumed") == untimed("reference")


def test_without_patience_the_run_ends_and_the_best_evaluation_is_kept(tmp_path):
  config = _config(metric="val/loss", mode="min")
  record = train_and_evaluate(config, str(tmp_path))
  evaluations = [r for r in read_metrics(str(tmp_path)) if "val/loss" in r and not r.get("final")]
  best = min(evaluations, key=lambda r: r["val/loss"])
  assert record["step"] == 16 and "early_stopping/stopped_at" not in record
  assert record["early_stopping/best_step"] == best["step"] and record["early_stopping/best"] == best["val/loss"]
  features = runs.export_features(str(tmp_path), "test", str(tmp_path / "f.npz"))
  accuracy = np.mean(np.argmax(features["logits"], -1) == features["labels"])
  assert accuracy == pytest.approx(record["test/accuracy"], abs=1e-9)


@pytest.mark.parametrize("fields,message", [
    ({"metric": "test/accuracy"}, r"early_stopping.metric must be '' \(off\) or a validation metric"),
    ({"metric": "val/accuracy", "mode": "highest"}, r"early_stopping.mode"),
    ({"metric": "val/accuracy", "patience": -1}, r"early_stopping.patience"),
])
def test_bad_settings_fail_before_anything_is_written(tmp_path, fields, message):
  with pytest.raises(ConfigError, match=message):
    train_and_evaluate(_config(**fields), str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()


def test_early_stopping_needs_a_validation_split(tmp_path):
  config = _config(metric="val/accuracy")
  config.eval_split = ""
  with pytest.raises(ConfigError, match="needs periodic evaluations on a validation split"):
    train_and_evaluate(config, str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()
  with pytest.raises(ConfigError, match="'val/acc' is not in the run's evaluations; they have val/accuracy"):
    train_and_evaluate(_config(metric="val/acc"), str(tmp_path / "typo"))
