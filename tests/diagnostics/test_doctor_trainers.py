"""The doctor across trainers: energy models are examined, other trainers refused before anything is
written; validation splits are checked against the training split; the report captions its figures and
the launcher names it."""

import importlib
import json
import os
import re
import subprocess
import sys

import jax
import numpy as np
import pytest

from deepvision.data import datasets, splits
from deepvision.diagnostics import (
  doctor,
  doctor_energy,
  doctor_report,
  doctor_supervised,
  unit_stats,
)
from deepvision.models.rbm import RBM
from deepvision.train import loop
from experiments.configs import lcn_convnet_digits, rbm_digits

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FAST_ENERGY = {"subset": 128, "probe_steps": 40, "search_trials": 4}
HANDLED = ("the doctor diagnoses supervised (classifier) configs and contrastive (RBM, Gaussian RBM, mcRBM, "
           "mPoT) configs; config trainer {!r} is not one of them: ")


def _config(module, arg="smoke"):
  return importlib.import_module(f"experiments.configs.{module}").get_config(arg)


# ----------------------------------------------------------------------------- which trainers


@pytest.mark.parametrize("module, trainer", [
    ("dbn_digits", "dbn"), ("sdae_digits", "sdae"), ("deep_gmrf_patches", "deep_gmrf"),
    ("gmrf_images", "gmrf_images"), ("gmrf_faces", "inpainting"), ("gmrf_digits", "occlusion"), ("dae_digits", "autoencoder"),
    ("sparse_coding_patches", "sparse_coding"), ("kmeans_patches", "kmeans"),
])
def test_other_trainers_are_refused_before_anything_is_written(tmp_path, module, trainer):
  workdir = tmp_path / "doctor"
  with pytest.raises(doctor.DoctorRefusal) as caught:
    doctor.run_doctor(_config(module), str(workdir))
  message = str(caught.value)
  assert message.startswith(HANDLED.format(trainer)), message
  assert message[len(HANDLED.format(trainer)):] == doctor.INSTEAD[trainer]
  assert not workdir.exists()


def test_every_registered_trainer_is_examined_or_refused_with_advice():
  import experiments.pipelines  # noqa: F401  (registers the pipelines' trainers)
  examined = set(doctor.EXAMINATIONS.names())
  assert examined == {"supervised", "contrastive"}
  assert set(loop.TRAINERS.names()) - examined == set(doctor.INSTEAD)


def test_a_contrastive_config_with_a_bad_field_is_refused_before_anything_is_written(tmp_path):
  config = rbm_digits.get_config("smoke")
  config.contrastive.method = "cd7"
  with pytest.raises(doctor.ConfigError, match="cd7"):
    doctor.run_doctor(config, str(tmp_path / "doctor"))
  with pytest.raises(doctor.ConfigError, match=r"subset=10 gives 10 training examples, fewer than "
                     r"config.batch_size=20"):
    doctor.run_doctor(rbm_digits.get_config("smoke"), str(tmp_path / "doctor"), subset=10)
  with pytest.raises(ValueError, match="probe_steps must be an int >= 1, got 0"):
    doctor.run_doctor(rbm_digits.get_config("smoke"), str(tmp_path / "doctor"), probe_steps=0)
  assert not (tmp_path / "doctor").exists()


# ----------------------------------------------------------------------------- energy models


def test_rbm_report_checks_the_free_energy_gradient_probe_gap_and_units(tmp_path):
  report = doctor.run_doctor(rbm_digits.get_config("smoke"), str(tmp_path), **FAST_ENERGY)
  assert report.trainer == "contrastive" and report.alarms == [], report.markdown()
  sections = dict(report.sections)
  assert "W" in sections["Parameters"] and re.search(r"total\s+844", sections["Parameters"])  # 64·12 + 12 + 64
  assert ": OK (3 leaves" in sections["Gradient check of the mean free energy (float64 central differences)"]
  probe_line = sections["CD probe at the configured learning rate"]
  start, end = map(float, re.search(r"reconstruction error ([\d.]+) → ([\d.]+)", probe_line).groups())
  assert end < 0.9 * start, probe_line
  measured = json.loads((tmp_path / "doctor.json").read_text())["measurements"]
  assert measured["probe_measure"] == "reconstruction error" and measured["gradient_ok"] is True
  assert (f"{measured['probe_start']:.4g}", f"{measured['probe_end']:.4g}") == (f"{start:.4g}", f"{end:.4g}")
  assert "free-energy gap" in report.problems() | {f.problem for f in report.findings}
  assert "hidden: 0 of 12 units off" in sections["Unit statistics of the hidden probabilities p(h | v)"]
  assert {os.path.basename(p) for p in report.figures} == {"doctor_hidden_activations.png",
                                                           "doctor_hidden_correlation.png"}
  text = (tmp_path / "doctor.md").read_text()
  for path in report.figures:
    name = os.path.basename(path)
    assert os.path.getsize(path) > 0
    caption = re.search(rf"^\*{re.escape(name)}\*: (.+)$", text, re.MULTILINE).group(1)
    assert caption.startswith("hidden — ") and len(caption) > 60, caption
  assert "rows are 128 training examples" in text


def test_diverging_rbm_gets_a_halved_rate_that_converges(tmp_path):
  config = rbm_digits.get_config("smoke")
  config.optimizer.learning_rate = 40.0
  report = doctor.run_doctor(config, str(tmp_path), **FAST_ENERGY)
  assert "diverging" in report.problems()
  assert report.proposed_learning_rate is not None and report.proposed_learning_rate <= 20.0
  checked = doctor.examination_for(config)[1].check(config, doctor.Options(**FAST_ENERGY))
  assert not doctor_energy.probe(checked, report.proposed_learning_rate, 40).diverged
  assert "lower the learning rate to" in (tmp_path / "doctor.md").read_text()


@jax.custom_vjp
def _leaky_identity(x):
  return x


_leaky_identity.defvjp(lambda x: (x, None), lambda _, g: (1.5 * g,))  # wrong: the identity's slope is 1


class _BuggyRBM(RBM):
  """An RBM whose free energy has a wrong backward pass."""

  def free_energy(self, v):
    return _leaky_identity(super().free_energy(v))


def test_planted_free_energy_gradient_bug_is_caught(tmp_path):
  report = doctor.run_doctor(rbm_digits.get_config("smoke"), str(tmp_path), model=_BuggyRBM(64, 12),
                             **{**FAST_ENERGY, "probe_steps": 20})
  assert "gradient" in report.problems()


# ----------------------------------------------------------------------------- held-out advice


def _sizes():
  return datasets.dataset_info("dv_digits").splits


def _suggested_splits(advice, config):
  train = re.search(r"--config.train_split=(\S+)", advice)
  evaluation = re.search(r"--config.eval_split=(\S+)", advice).group(1)
  return (train.group(1) if train else config.train_split), evaluation


def test_default_config_advice_holds_out_data_it_does_not_train_on():
  config = lcn_convnet_digits.get_config()
  assert (config.train_split, config.eval_split) == ("train+validation", "")
  checked = doctor_supervised.check(config, doctor.Options(subset=64))
  finding = checked.held_out.finding
  assert not checked.held_out.comparable and finding.problem == "no validation split"
  assert finding.advice == "hold out data: --config.train_split=train --config.eval_split=validation"
  train, evaluation = _suggested_splits(finding.advice, config)
  assert not splits.splits_overlap(train, evaluation, _sizes())
  assert not splits.splits_overlap(evaluation, config.test_split, _sizes())


@pytest.mark.parametrize("train, evaluation, overlap", [
    ("train+validation", "validation", True),
    ("train", "validation", False),
    ("train[:50%]", "train[40%:]", True),
    ("train[:50%]", "train[50%:]", False),
    ("train", "train", True),
])
def test_overlapping_validation_is_reported_not_compared(train, evaluation, overlap):
  held_out = doctor_report.held_out_check(train, evaluation, "test", _sizes())
  assert held_out.comparable == (not overlap)
  if overlap:
    assert held_out.finding.severity == "alarm"
    assert held_out.finding.evidence.startswith(f"eval_split {evaluation!r} overlaps train_split {train!r} (")
    assert held_out.finding.evidence.endswith("shared examples): the comparison would be on training data")
    suggested = _suggested_splits(held_out.finding.advice, type("C", (), {"train_split": train}))
    assert not splits.splits_overlap(*suggested, _sizes())
  else:
    assert held_out.finding is None


def test_a_split_outside_the_data_set_is_a_config_error():
  with pytest.raises(doctor.ConfigError, match=r"config.train_split='train\[:5000\]' / config.eval_split="
                     r"'validation': Requested slice \[:5000\] incompatible with 1077 examples"):
    doctor_report.held_out_check("train[:5000]", "validation", "test", _sizes())


def test_supervised_doctor_does_not_compare_on_overlapping_validation(tmp_path):
  config = lcn_convnet_digits.get_config("smoke")
  config.train_split, config.eval_split = "train+validation", "validation"
  config.batch_size = 16
  config.model = "dbn_classifier_tiny"  # a dense net: compiles in a fraction of a convnet's time
  report = doctor.run_doctor(config, str(tmp_path), subset=64, probe_steps=10, overfit_subset=32,
                             overfit_epochs=1, search_trials=1)
  assert "validation on training data" in report.problems()
  section = dict(report.sections)["Train vs validation"]
  assert "validation error" not in section
  assert "(not compared: eval_split 'validation' overlaps train_split 'train+validation' (360 shared" in section
  text = (tmp_path / "doctor.md").read_text()
  assert "--config.train_split=train --config.eval_split=validation" in text
  assert len(report.captions) == len(report.figures) > 0
  for path in report.figures:
    assert f"*{os.path.basename(path)}*: {report.caption(path)}" in text
    assert report.caption(path) != os.path.basename(path)


def test_unit_figure_captions_say_what_each_picture_shows():
  stats = {"conv1/relu": unit_stats.layer_statistics("conv1/relu", np.random.default_rng(0).random((7, 5)))}
  paths = ["w/x_conv1_relu_activations.png", "w/x_conv1_relu_correlation.png", "w/x_filters_conv1_kernel.png"]
  params = {"conv1": {"kernel": np.zeros((3, 3, 1, 4)), "bias": np.zeros(4)}}
  act, corr, filters = doctor_report.unit_figure_captions(paths, stats, "x", "digits", params=params)
  assert act.startswith("conv1/relu — samples × units: rows are 7 digits, columns its 5 units, grey level "
                        "the activation")
  assert "a black column is a dead unit" in act
  assert corr.startswith("conv1/relu — correlation of units: 5 × 5 Pearson correlations")
  assert filters.startswith("conv1/kernel (3×3, 1 → 4 channels) — convolution kernels")


# ----------------------------------------------------------------------------- the launcher


def _launch(*args):
  return subprocess.run([sys.executable, "-m", "experiments.doctor", *args], check=False, cwd=ROOT,
                        capture_output=True, text=True, timeout=300)


def test_launcher_refuses_a_dbn_config_with_exit_2_and_names_doctor_md_otherwise(tmp_path):
  refused = _launch("--config=experiments/configs/dbn_digits.py:smoke", f"--workdir={tmp_path / 'dbn'}")
  assert refused.returncode == 2, refused.stderr
  assert refused.stderr.splitlines()[0].startswith("error: " + HANDLED.format("dbn")), refused.stderr
  assert not (tmp_path / "dbn").exists()
  done = _launch("--config=experiments/configs/rbm_digits.py:smoke", f"--workdir={tmp_path / 'rbm'}",
                 "--subset=64", "--probe_steps=10")
  assert done.returncode == 0, done.stderr
  assert done.stdout.rstrip().splitlines()[-1] == f"wrote {tmp_path / 'rbm' / 'doctor.md'} (and 2 figures)"
  assert (tmp_path / "rbm" / "doctor.md").read_text().startswith("# deepvision doctor")
