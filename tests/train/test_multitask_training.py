"""The multi-task trainer: the loss by hand, λ = 0 is the supervised step, the labelled selection, the launcher."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from deepvision import zoo
from deepvision.errors import ConfigError
from deepvision.pretrained import runs
from deepvision.schema import override_config
from deepvision.train import multitask, supervised
from deepvision.train.loop import train_and_evaluate
from deepvision.train.state import create_train_state
from experiments.configs import multitask_digits

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _state(model, seed=0):
  tx = optax.chain(optax.add_decayed_weights(1e-3), optax.sgd(0.05, momentum=0.9))
  return create_train_state(model, tx, jax.random.key(seed), model.input_shape)


def _batch(labelled=4, unlabelled=6):
  keys = jax.random.split(jax.random.key(7), 3)
  return {"image": jax.random.uniform(keys[0], (labelled, 8, 8, 1)),
          "label": jax.random.randint(keys[1], (labelled,), 0, 10),
          "unlabelled": jax.random.uniform(keys[2], (unlabelled, 8, 8, 1))}


def test_the_loss_is_cross_entropy_plus_lambda_times_the_mean_squared_error():
  model = zoo.create("lcn_convnet_digits_recon_tiny", dropout_rate=0.0)  # no dropout: the forward is fixed
  state, batch, weight = _state(model), _batch(), 0.7
  preprocess = supervised.Preprocess(standardize=False)
  _, metrics = jax.jit(multitask.make_train_step(preprocess, None, weight))(state, batch)
  variables = {"params": state.params}
  logits, labelled = model.apply(variables, batch["image"])
  _, unlabelled = model.apply(variables, batch["unlabelled"])
  ce = np.mean(np.asarray(optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])))
  squares = np.concatenate([np.square(labelled["reconstruction"] - batch["image"]).ravel(),
                            np.square(unlabelled["reconstruction"] - batch["unlabelled"]).ravel()])
  mse = squares.sum() / ((4 + 6) * 64)
  assert float(metrics["train/cross_entropy"]) == pytest.approx(ce, rel=1e-5)
  assert float(metrics["train/reconstruction"]) == pytest.approx(mse, rel=1e-5)
  assert float(metrics["train/loss"]) == pytest.approx(ce + weight * mse, rel=1e-5)
  assert mse > 0.01 and ce > 0.1  # neither term is trivially zero


def test_with_lambda_zero_the_classifier_moves_exactly_as_the_supervised_step_moves_it():
  """Same keys, same augmentation and dropout draws on the labelled batch: the backbone's update is bitwise
  the supervised step's (the decoder gets a zero gradient, only weight decay)."""
  model = zoo.create("lcn_convnet_digits_recon_tiny")  # with dropout: the draws must agree
  state, batch = _state(model, seed=3), _batch()
  preprocess = supervised.Preprocess(translate=1, noise_std=0.05)
  plain, _ = jax.jit(supervised.make_train_step(preprocess))(state, {"image": batch["image"],
                                                                      "label": batch["label"]})
  mixed, metrics = jax.jit(multitask.make_train_step(preprocess, None, 0.0))(state, batch)
  same = jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), plain.params["backbone"], mixed.params["backbone"])
  assert all(jax.tree.leaves(same)), same
  assert not np.array_equal(state.params["backbone"]["conv1"]["kernel"], mixed.params["backbone"]["conv1"]["kernel"])
  assert "train/reconstruction" not in metrics
  # With λ > 0 the reconstruction's gradient reaches the shared convnet.
  joint, _ = jax.jit(multitask.make_train_step(preprocess, None, 1.0))(state, batch)
  assert not np.array_equal(joint.params["backbone"]["conv1"]["kernel"], plain.params["backbone"]["conv1"]["kernel"])


def test_the_labelled_selection_is_seeded_balanced_and_has_n_examples():
  labels = np.random.default_rng(0).integers(0, 10, 1000)
  first = multitask.select_labelled(labels, 50, seed=4)
  assert np.array_equal(first, multitask.select_labelled(labels, 50, seed=4))
  assert len(first) == len(set(first.tolist())) == 50
  assert np.bincount(labels[first], minlength=10).tolist() == [5] * 10
  assert not np.array_equal(np.sort(first), np.sort(multitask.select_labelled(labels, 50, seed=5)))
  odd = multitask.select_labelled(labels, 23, seed=0)
  assert np.bincount(labels[odd], minlength=10).tolist() == [3, 3, 3] + [2] * 7
  assert np.array_equal(multitask.select_labelled(labels, 30, seed=1, balanced=False),
                        np.random.default_rng(1).permutation(1000)[:30])
  with pytest.raises(ValueError, match=r"num_labelled=1001 must be in \[1, 1000\]"):
    multitask.select_labelled(labels, 1001, seed=0)
  with pytest.raises(ValueError, match=r"classes \[9\] have \[1\]"):
    multitask.select_labelled(np.concatenate([np.repeat(np.arange(9), 3), [9]]), 20, seed=0, num_classes=10)


def test_the_task_labels_the_same_digits_for_the_same_seed():
  config = multitask_digits.get_config("50,smoke")
  task = multitask.make_task(config, quiet=True)
  again = multitask.make_task(config, quiet=True)
  assert len(task.train_source) == 50 and np.array_equal(task.train_source.indices, again.train_source.indices)
  assert len(task.unlabelled_source) == 1077 and task.schedule.total_steps == 1077 // 64
  config.seed = 1
  assert not np.array_equal(multitask.make_task(config, quiet=True).train_source.indices, task.train_source.indices)


def _launch(*args):
  return subprocess.run([sys.executable, "-m", "experiments.main", *args], cwd=ROOT, capture_output=True,
                        text=True, timeout=180, check=False)


def test_the_launcher_trains_the_smoke_config_end_to_end(tmp_path):
  result = _launch("--config=multitask_digits:smoke", f"--workdir={tmp_path}/run", "--config.figures=False")
  assert result.returncode == 0, result.stderr
  assert "100 labelled of 1077 training images" in result.stdout
  records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
  train = [r for r in records if "train/reconstruction" in r]
  assert train and all(r["train/loss"] > r["train/cross_entropy"] for r in train)
  assert records[-1]["final"] and 0.0 <= records[-1]["test/accuracy"] <= 1.0
  assert any("val/accuracy" in r for r in records)
  assert json.loads((tmp_path / "run" / "config.json").read_text())["num_labelled"] == 100
  # The finished run evaluates again and exports its maps (the reconstruction among them) as a classifier's.
  evaluation = runs.evaluate_run(str(tmp_path / "run"), "test")
  assert evaluation["metrics"]["accuracy"] == pytest.approx(records[-1]["test/accuracy"])
  arrays = runs.export_features(str(tmp_path / "run"), "test", str(tmp_path / "features.npz"))
  assert arrays["logits"].shape == (360, 10) and arrays["features/reconstruction"].shape == (360, 64)


def test_config_errors_are_named_before_anything_is_written(tmp_path):
  cases = [
      ({"num_labelled": 5000}, "config.num_labelled"),
      ({"reconstruction_weight": -1.0}, "config.reconstruction_weight must be a number in [0"),
      ({"model": "lcn_convnet_digits_tiny"}, "unknown field 'stage'"),
      ({"model_kwargs.stage": "stage7/lcn"}, "stage7/lcn"),
  ]
  for overrides, message in cases:
    with pytest.raises(ConfigError) as error:
      train_and_evaluate(override_config(multitask_digits.get_config("smoke"), overrides), str(tmp_path / "w"))
    assert message in str(error.value), (overrides, error.value)
    assert not os.path.exists(tmp_path / "w")
  with pytest.raises(ValueError, match="label count >= 10"):
    multitask_digits.get_config("5,smoke")
  # The launcher turns them into exit status 2 (one case through a process of its own).
  result = _launch("--config=multitask_digits:smoke", "--config.num_labelled=5000", f"--workdir={tmp_path}/w")
  assert result.returncode == 2 and "config.num_labelled" in result.stderr, result.stderr
  assert not os.path.exists(tmp_path / "w")


def test_a_model_without_a_reconstruction_head_needs_lambda_zero():
  config = multitask_digits.get_config("smoke")
  config.model, config.model_kwargs = "lcn_convnet_digits_tiny", {}
  with pytest.raises(ConfigError, match="'lcn_convnet_digits_tiny' has no reconstruction head"):
    multitask.make_task(config, quiet=True)
  config.reconstruction_weight = 0.0
  assert multitask.make_task(config, quiet=True).reconstruction_weight == 0.0


def test_config_arguments():
  assert multitask_digits.get_config("50").num_labelled == 50
  assert multitask_digits.get_config().num_labelled == 100
  smoke = multitask_digits.get_config("100,smoke")
  assert smoke.num_labelled == 100 and smoke.model == "lcn_convnet_digits_recon_tiny"
  for bad in ("fast", "50,60", "smoke,smoke", "9"):
    with pytest.raises(ValueError, match="unknown argument"):
      multitask_digits.get_config(bad)
