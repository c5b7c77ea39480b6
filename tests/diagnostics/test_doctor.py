"""The doctor's diagnoses on smoke-sized configs: divergence, underfitting, a planted gradient bug,
and a healthy config with nothing alarming."""

import json
import os

import flax.linen as nn
import jax
import pytest

from deepvision import zoo
from deepvision.train import probe
from deepvision.diagnostics.doctor import run_doctor
from experiments.configs import lcn_convnet_digits

SMALL = dict(subset=128, probe_steps=60, overfit_subset=64, overfit_epochs=40, search_trials=6)
# Where the verdict under test does not read the overfit check (a diverging run, a failed gradient
# check), a short one: the doctor still runs every section.
SHORT_OVERFIT = dict(SMALL, overfit_epochs=2)


def _config(**fields):
  config = lcn_convnet_digits.get_config("smoke")
  config.batch_size = 16
  for key, value in fields.items():
    config.optimizer[key] = value
  return config


@jax.custom_vjp
def _leaky_identity(x):
  return x


def _fwd(x):
  return x, None


def _bwd(_, g):
  return (1.5 * g,)  # wrong: the derivative of the identity is 1


_leaky_identity.defvjp(_fwd, _bwd)


class _BuggyNet(nn.Module):
  """lcn_convnet_digits_tiny whose logits pass through an identity with a wrong backward pass."""

  input_shape: tuple = (8, 8, 1)

  @nn.compact
  def __call__(self, x, *, train=False):
    logits, acts = zoo.create("lcn_convnet_digits_tiny")(x, train=train)
    return _leaky_identity(logits), acts


def test_diverging_config_gets_a_halved_rate_that_converges(tmp_path):
  config = _config(learning_rate=8.0)
  report = run_doctor(config, str(tmp_path), **SHORT_OVERFIT)
  assert "diverging" in report.problems()
  assert report.proposed_learning_rate is not None and report.proposed_learning_rate <= 4.0
  plan = probe.make_plan(config, 128)
  assert not probe.probe(config, plan, report.proposed_learning_rate, 60, seed=1).diverged
  with open(tmp_path / "doctor.md") as f:
    assert "lower the learning rate" in f.read()


def test_starved_network_is_diagnosed_as_underfitting(tmp_path):
  starved = zoo.create("lcn_convnet_digits_tiny", stage_features=(1, 1, 1), lcn=False)
  # Its probe stalls, so the doctor searches smaller rates: none converges (two halvings show it as well
  # as six), which tells a net that cannot learn from a rate that is too large.
  report = run_doctor(_config(learning_rate=0.05), str(tmp_path), model=starved,
                      **dict(SMALL, search_trials=2))
  assert "underfitting" in report.problems() and "diverging" not in report.problems()
  assert "learning-rate search" in report.markdown()
  # The verdict names the net's size: its parameter count (and its multiply-adds per example).
  parameters = zoo.count_params(zoo.abstract_variables(starved)["params"])
  assert f"({parameters:,} parameters, " in report.markdown() and " multiply-adds per example)" in report.markdown()


def test_planted_gradient_bug_is_caught(tmp_path):
  report = run_doctor(_config(), str(tmp_path), model=_BuggyNet(), **SHORT_OVERFIT)
  assert "gradient" in report.problems()


def test_healthy_config_raises_no_alarm(tmp_path):
  config = _config()
  config.model = "lcn_convnet_digits"
  report = run_doctor(config, str(tmp_path), **dict(SMALL, subset=512))
  assert report.alarms == [], report.markdown()
  assert report.proposed_learning_rate is None
  assert os.path.exists(tmp_path / "doctor.md") and report.figures
  assert all(os.path.getsize(p) > 0 for p in report.figures)
  # doctor.json carries the numbers doctor.md prints, for records.
  with open(tmp_path / "doctor.json") as f:
    measured = json.load(f)["measurements"]
  sections = dict(report.sections)
  assert f"loss {measured['probe_loss_start']:.4f} → {measured['probe_loss_end']:.4f}" in sections[
      "Probe at the configured learning rate"]
  assert measured["probe_loss_end"] < measured["probe_loss_start"] and measured["gradient_ok"] is True
  assert f"reached 0 after {measured['overfit_epochs']} epochs" in sections["Overfit check"]
  assert measured["gradient_max_rel_error"] < 1e-5 and measured["parameters"] == 113_162
