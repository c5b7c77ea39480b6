"""End to end: the launcher and train_and_evaluate on the smoke configs, resume, overfitting, bad input."""

import json
import os
import shutil
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from deepvision.checkpoint import Checkpointer
from deepvision.train.loop import ConfigError, train_and_evaluate
from deepvision.train.writers import read_metrics
from experiments.configs import lcn_convnet_digits

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _smoke(**overrides):
  config = lcn_convnet_digits.get_config("smoke")
  config.figures = False
  for key, value in overrides.items():
    target = config
    *path, leaf = key.split(".")
    for part in path:
      target = target[part]
    target[leaf] = value
  return config


def _launch(*args, timeout=120):
  return subprocess.run([sys.executable, "-m", "experiments.main", *args], cwd=ROOT, capture_output=True,
                        text=True, timeout=timeout)


def _final_params(workdir, config):
  from deepvision import optim, zoo  # pylint: disable=g-import-not-at-top
  from deepvision.data import datasets  # pylint: disable=g-import-not-at-top
  from deepvision.train.state import create_train_state  # pylint: disable=g-import-not-at-top
  info = datasets.dataset_info(config.dataset)
  template = create_train_state(zoo.create(config.model), optim.make_optimizer(config, 10),
                                jax.random.key(0), info.image_shape)
  ckpt = Checkpointer(os.path.join(workdir, "checkpoints"))
  state, _ = ckpt.restore(template)
  ckpt.close()
  return state


def test_smoke_run_writes_every_output(tmp_path):
  config = _smoke(figures=True)
  record = train_and_evaluate(config, str(tmp_path))
  records = read_metrics(str(tmp_path))
  assert all("step" in r for r in records)
  assert {"train/loss", "train/accuracy", "learning_rate"} <= set(records[0])
  assert "val/accuracy" in records[-2] or "val/accuracy" in records[-1]
  assert "test/accuracy" in records[-1] and record == records[-1]
  assert 0.0 <= record["test/accuracy"] <= 1.0
  total = records[-1]["step"]
  assert total == 2 * (128 // 32)
  with open(tmp_path / "config.json") as f:
    assert json.load(f)["model"] == "lcn_convnet_digits_tiny"
  assert Checkpointer(str(tmp_path / "checkpoints")).latest_step() == total  # final step always saved
  for name in ("curves.png", "filters.png"):
    assert os.path.getsize(tmp_path / name) > 1000
  assert any(n.startswith("events.out.tfevents") for n in os.listdir(tmp_path))
  # The learning rate decays ~100x by the end (cosine, decay_factor 100).
  lrs = [r["learning_rate"] for r in records if "learning_rate" in r]
  assert lrs[0] > lrs[-1]


def test_resume_is_bitwise_equal_to_an_uninterrupted_run(tmp_path):
  config = _smoke(checkpoint_every_steps=3, keep_checkpoints=10, num_epochs=3)
  full, cut = str(tmp_path / "full"), str(tmp_path / "cut")
  train_and_evaluate(config, full)
  total = read_metrics(full)[-1]["step"]
  # An interrupted run: only the checkpoint at step 3 survived (and whatever it had logged).
  shutil.copytree(full, cut)
  ckpt_dir = os.path.join(cut, "checkpoints")
  for name in os.listdir(ckpt_dir):
    if name.isdigit() and int(name) > 3:
      shutil.rmtree(os.path.join(ckpt_dir, name))
  assert Checkpointer(ckpt_dir).latest_step() == 3
  train_and_evaluate(config, cut)
  a, b = _final_params(full, config), _final_params(cut, config)
  assert int(a.step) == int(b.step) == total
  for x, y in zip(jax.tree.leaves((a.params, a.opt_state)), jax.tree.leaves((b.params, b.opt_state))):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  strip = lambda records: [{k: v for k, v in r.items() if k != "steps_per_second"} for r in records]
  assert strip(read_metrics(cut)) == strip(read_metrics(full))  # the logs too, not only the parameters
  # Re-running a finished run changes nothing.
  before = read_metrics(cut)
  train_and_evaluate(config, cut)
  assert read_metrics(cut) == before


def test_overfits_256_examples_to_zero_training_error(tmp_path):
  """The talk's check: on a small subset the training error must go to 0."""
  config = _smoke(model="lcn_convnet_digits", train_subset=256, eval_split="train", test_split="",
                  num_epochs=25, batch_size=32, **{"optimizer.weight_decay": 0.0,
                                                   "augment.translate": 0})
  config.model_kwargs.dropout_rate = 0.0
  train_and_evaluate(config, str(tmp_path))
  final = [r for r in read_metrics(str(tmp_path)) if "val/accuracy" in r][-1]
  assert final["val/accuracy"] == 1.0, final


@pytest.mark.parametrize("overrides,match", [
    ({"model": "lenet"}, "lenet5"),
    ({"dataset": "digits"}, "dv_digits"),
    ({"batch_size": 0}, "batch_size"),
    ({"optimizer.learning_rate": -0.1}, "learning_rate"),
    ({"optimizer.schedule": "linear"}, "cosine"),
    ({"eval_split": "valid"}, "validation"),
    ({"trainer": "adversarial"}, "supervised"),
    ({"model": "lenet5"}, "(28, 28, 1)"),
])
def test_bad_config_fails_before_writing_anything(tmp_path, overrides, match):
  with pytest.raises(ConfigError, match=match):
    train_and_evaluate(_smoke(**overrides), str(tmp_path / "run"))
  assert not os.path.exists(tmp_path / "run")


def test_launcher_usage_errors_exit_2(tmp_path):
  config = "experiments/configs/lcn_convnet_digits.py:smoke"
  unknown_field = _launch(f"--config={config}", f"--workdir={tmp_path}/a", "--config.learning_rat=0.1")
  assert unknown_field.returncode == 2, unknown_field.stderr
  assert "learning_rat" in unknown_field.stderr
  unknown_model = _launch(f"--config={config}", f"--workdir={tmp_path}/b", "--config.model=resnet")
  assert unknown_model.returncode == 2 and "lcn_convnet_digits" in unknown_model.stderr
  assert not os.path.exists(tmp_path / "b")
  bad_arg = _launch(f"--config=experiments/configs/lcn_convnet_digits.py:fast", f"--workdir={tmp_path}/c")
  assert bad_arg.returncode == 2 and "smoke" in bad_arg.stderr
  bad_model_field = _launch(f"--config={config}", f"--workdir={tmp_path}/d",
                            "--config.model_kwargs.dropout=0.3")
  assert bad_model_field.returncode == 2 and "dropout_rate" in bad_model_field.stderr
  assert not os.path.exists(tmp_path / "d")


def test_missing_catalog_data_fails_fast_with_instructions(tmp_path):
  start = time.monotonic()
  result = _launch("--config=experiments/configs/lenet5_mnist.py:smoke", f"--workdir={tmp_path}/w",
                   f"--config.data_dir={tmp_path}/empty")
  assert time.monotonic() - start < 60
  assert result.returncode == 2
  assert "mnist" in result.stderr and "tfds build" in result.stderr


# The same catalog path for both; MNIST's (the larger compile, ~20 s) is in the slow tier, and its reading of a
# prepared `mnist` is tested in tests/data/test_prepare.py.
@pytest.mark.parametrize("config_name,dataset", [pytest.param("lenet5_mnist", "mnist", marks=pytest.mark.slow),
                                                 ("cifar10_convnet", "cifar10")])
def test_catalog_smoke_configs_train_on_mocked_data(tmp_path, config_name, dataset):
  """The MNIST and CIFAR-10 configs run end to end on tfds's mock data (no download)."""
  import importlib  # pylint: disable=g-import-not-at-top
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from mock_catalog import write_catalog_metadata  # pylint: disable=g-import-not-at-top
  config = importlib.import_module(f"experiments.configs.{config_name}").get_config("smoke")
  config.data_dir, config.figures = str(tmp_path / "data"), False
  write_catalog_metadata(config.data_dir, dataset, {"train": 64, "test": 32})
  with tfds.testing.mock_data(num_examples=64, data_dir=config.data_dir):
    record = train_and_evaluate(config, str(tmp_path / "run"))
  assert "test/accuracy" in record and np.isfinite(record["test/loss"])
  assert record["step"] == config.train_subset // config.batch_size * config.num_epochs


@pytest.mark.slow
def test_default_experiment_reaches_target_accuracy_over_three_seeds(tmp_path):
  """The README's main job: ≥ 99.2% mean test accuracy on dv_digits over seeds 0, 1, 2 (minutes)."""
  accuracies = []
  for seed in range(3):
    config = lcn_convnet_digits.get_config()
    config.seed, config.figures = seed, False
    accuracies.append(train_and_evaluate(config, str(tmp_path / f"seed{seed}"))["test/accuracy"])
  assert np.mean(accuracies) >= 0.992, accuracies


def test_a_run_killed_before_its_test_evaluation_finishes_it_on_rerun(tmp_path):
  config = _smoke()
  first = train_and_evaluate(config, str(tmp_path))
  records = read_metrics(str(tmp_path))
  with open(tmp_path / "metrics.jsonl", "w") as f:  # as if killed after the final checkpoint
    f.writelines(json.dumps(r) + "\n" for r in records[:-1])
  assert train_and_evaluate(config, str(tmp_path)) == first
  assert read_metrics(str(tmp_path))[-1] == first


def test_resuming_with_another_batch_size_or_seed_is_refused(tmp_path):
  train_and_evaluate(_smoke(), str(tmp_path))
  before = read_metrics(str(tmp_path))
  with pytest.raises(ConfigError, match="batch_size: 32 there, 16 now"):
    train_and_evaluate(_smoke(batch_size=16), str(tmp_path))
  with pytest.raises(ConfigError, match="seed"):
    train_and_evaluate(_smoke(seed=5), str(tmp_path))
  assert read_metrics(str(tmp_path)) == before


def test_parameters_turning_non_finite_stop_the_run_with_advice(tmp_path):
  from deepvision.train.loop import TrainingDivergedError  # pylint: disable=g-import-not-at-top
  config = _smoke(checkpoint_every_steps=1, **{"optimizer.learning_rate": 1e12})
  with pytest.raises(TrainingDivergedError, match="lower the rate"):
    train_and_evaluate(config, str(tmp_path))
  kept = Checkpointer(str(tmp_path / "checkpoints")).latest_step()
  assert kept is None or kept < 8  # nothing non-finite was saved
