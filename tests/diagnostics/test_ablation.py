"""The ablation runner: rows from real runs, resumable, diverged seeds recorded, bad names rejected."""

import json
import os

import pytest

from deepvision.diagnostics import ablation
from deepvision.registry import UnknownNameError
from deepvision.train.loop import TrainingDivergedError, override_config, train_and_evaluate
from deepvision.train.writers import read_metrics
from experiments.configs import lcn_convnet_digits


def _config():
  config = lcn_convnet_digits.get_config("smoke")
  config.figures = False
  return config


def test_rows_come_from_the_runs_and_a_rerun_resumes(tmp_path):
  rows = ablation.run_ablation(_config(), str(tmp_path), ["baseline", "no_dropout"], seeds=[0, 1],
                               log=lambda _: None)
  assert [r["variant"] for r in rows] == ["baseline", "no_dropout"]
  for row in rows:
    for seed, error in zip(row["seeds"], row["errors"]):
      final = read_metrics(str(tmp_path / row["variant"] / f"seed{seed}"))[-1]
      assert error == pytest.approx(100 * (1 - final["test/accuracy"]))
  with open(tmp_path / "ablation.json") as f:
    assert json.load(f) == rows
  table = (tmp_path / "ablation.md").read_text()
  assert "| baseline |" in table and "model_kwargs.dropout_rate=0.0" in table
  mtime = os.path.getmtime(tmp_path / "baseline" / "seed0" / "metrics.jsonl")
  assert ablation.run_ablation(_config(), str(tmp_path), ["baseline", "no_dropout"], seeds=[0, 1],
                               log=lambda _: None) == rows
  assert os.path.getmtime(tmp_path / "baseline" / "seed0" / "metrics.jsonl") == mtime  # not retrained


def test_a_diverging_run_stops_early_and_is_recorded(tmp_path):
  config = _config()
  config.optimizer.learning_rate = 1e12
  with pytest.raises(TrainingDivergedError, match="learning rate"):
    train_and_evaluate(config, str(tmp_path / "direct"))
  rows = ablation.run_ablation(config, str(tmp_path / "table"), ["baseline"], seeds=[0], log=lambda _: None)
  assert rows[0]["diverged"] == 1 and "diverged in 1 of 1 seeds" in (tmp_path / "table" / "ablation.md").read_text()


def test_bad_names_fail_before_any_run(tmp_path):
  with pytest.raises(UnknownNameError, match="no_lcn"):
    ablation.run_ablation(_config(), str(tmp_path), ["no_lnc"], seeds=[0])
  with pytest.raises(ValueError, match="optimizer.learning_rat"):
    override_config(_config(), {"optimizer.learning_rat": 0.1})
  assert not os.listdir(tmp_path)


def test_variants_a_model_cannot_express_are_reported_not_applicable(tmp_path):
  """The DBN classifier (sigmoid layers on 8×8 digits) has no LCN or dropout field: those rows say n/a,
  the others still run."""
  config = _config()
  config.model = "dbn_classifier_tiny"
  rows = ablation.run_ablation(config, str(tmp_path), ["baseline", "no_lcn", "no_dropout", "constant_lr"],
                               seeds=[0], log=lambda _: None)
  by_name = {r["variant"]: r for r in rows}
  assert "not_applicable" in by_name["no_lcn"] and "not_applicable" in by_name["no_dropout"]
  assert len(by_name["baseline"]["errors"]) == 1 and len(by_name["constant_lr"]["errors"]) == 1
  assert not (tmp_path / "no_lcn").exists() and (tmp_path / "constant_lr" / "seed0").exists()
  assert "n/a (dbn_classifier_tiny has no such field)" in (tmp_path / "ablation.md").read_text()
