"""The learning-rate search halves from a diverging rate to a converging one; the overfit check
reaches zero training error with a capable net and not with a starved one."""

import os

import pytest

from deepvision import zoo
from deepvision.diagnostics import overfit
from deepvision.train import probe
from deepvision.train.lr_search import search_learning_rate
from experiments.configs import lcn_convnet_digits


def _config():
  config = lcn_convnet_digits.get_config("smoke")
  config.figures = False
  return config


def test_search_halves_until_the_loss_converges():
  config = _config()
  result = search_learning_rate(config, start=8.0, steps=60, subset=128)
  rates = [t.learning_rate for t in result.trail]
  assert rates == [8.0 / 2 ** i for i in range(len(rates))]  # halving from the start
  assert all(t.diverged for t in result.trail[:-1]) and not result.trail[-1].diverged
  assert result.learning_rate == rates[-1] < 8.0 and len(rates) >= 2
  assert result.trail[0].end_loss > 0.9 * result.trail[0].start_loss or result.trail[0].end_loss != \
      result.trail[0].end_loss  # the first trial really failed (stalled, grew or went NaN)
  # The chosen rate converges on an independent probe (another seed).
  plan = probe.make_plan(config, 128)
  config.seed = 1
  assert not probe.probe(config, plan, result.learning_rate, 60, seed=1).diverged
  assert "chosen" in result.format()


def test_search_rejects_bad_arguments():
  with pytest.raises(ValueError, match="start"):
    search_learning_rate(_config(), start=0.0)


def test_overfit_check_reaches_zero_with_a_capable_net():
  config = _config()
  config.model, config.batch_size = "lcn_convnet_digits", 16
  result = overfit.overfit_check(config, subset=64, max_epochs=40)
  assert result.reached_zero, result.format()
  assert result.errors[-1] == 0.0 and result.step == result.epochs * (64 // config.batch_size)


def test_overfit_check_fails_for_a_starved_net():
  starved = zoo.create("lcn_convnet_digits_tiny", stage_features=(1, 1, 1), lcn=False)
  result = overfit.overfit_check(_config(), subset=128, max_epochs=6, learning_rate=0.05, model=starved)
  assert not result.reached_zero and result.step is None and result.epochs == 6
  assert result.errors[-1] > 0.2


def test_training_with_lr_search_from_the_command_line_config(tmp_path):
  """`--config.optimizer.lr_search=True`: the run trains at the searched rate, and a resumed run reuses it."""
  import json  # pylint: disable=g-import-not-at-top
  from deepvision.train.loop import train_and_evaluate  # pylint: disable=g-import-not-at-top
  config = _config()
  config.optimizer.learning_rate, config.optimizer.lr_search = 8.0, True
  config.optimizer.lr_search_steps, config.optimizer.lr_search_subset = 60, 128
  train_and_evaluate(config, str(tmp_path))
  with open(tmp_path / "lr_search.json") as f:
    searched = json.load(f)
  assert searched["learning_rate"] < 8.0 and searched["trail"][0]["diverged"]
  with open(tmp_path / "config.json") as f:  # the config as requested; the searched rate is trained with
    assert json.load(f)["optimizer"]["learning_rate"] == 8.0
  from deepvision.train.writers import read_metrics  # pylint: disable=g-import-not-at-top
  rates = [r["learning_rate"] for r in read_metrics(str(tmp_path)) if "learning_rate" in r]
  assert max(rates) <= searched["learning_rate"]
  # Re-running the same command finds the finished run (same config, the search is not repeated).
  mtime = os.path.getmtime(tmp_path / "lr_search.json")
  train_and_evaluate(config, str(tmp_path))
  assert os.path.getmtime(tmp_path / "lr_search.json") == mtime
