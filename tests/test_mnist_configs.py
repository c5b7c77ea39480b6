"""The MNIST LeNet configs on a prepared `mnist` (small synthetic digits; the real subset is for benchmarks/)."""

import importlib

import numpy as np
import pytest

from deepvision.data import prepare
from deepvision.train.loop import train_and_evaluate
from deepvision.train.supervised import plan_supervised


def _bars(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """28×28 digits of two kinds a convnet separates at once: a vertical bar (label 0), a horizontal one (1)."""
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, 2, size=count).astype(np.uint8)
  images = rng.integers(0, 40, size=(count, 28, 28)).astype(np.uint8)
  for image, label, offset in zip(images, labels, rng.integers(6, 20, size=count)):
    if label:
      image[offset:offset + 3, 4:24] = 255
    else:
      image[4:24, offset:offset + 3] = 255
  return images, labels


@pytest.fixture(name="mnist_dir")
def _mnist_dir(tmp_path):
  prepare.prepare_arrays("mnist", {"train": _bars(128, 0), "test": _bars(64, 1)}, tmp_path / "data")
  return str(tmp_path / "data")


def _config(name: str, data_dir: str, epochs: int):
  config = importlib.import_module(f"experiments.configs.{name}").get_config("smoke")
  config.data_dir, config.figures, config.num_epochs = data_dir, False, epochs
  return config


def test_the_1998_config_trains_with_sdlm_on_the_papers_net(mnist_dir):
  config = _config("lenet5_mnist", mnist_dir, 1)
  assert config.optimizer.name == "sdlm" and config.optimizer.sdlm_curvature == "euclidean"
  assert config.optimizer.momentum == 0.9 and not config.optimizer.nesterov
  assert config.model == "lenet5_1998"
  plan = plan_supervised(config)  # the config and the data checked, the optimiser built
  assert plan.info.image_shape == (28, 28, 1) and plan.total_steps == config.train_subset // config.batch_size


def test_the_modern_config_learns_prepared_digits(tmp_path, mnist_dir):
  record = train_and_evaluate(_config("lenet5_modern_mnist", mnist_dir, 6), str(tmp_path / "run"))
  assert record["step"] == 6 * 64 // 16
  assert record["test/accuracy"] >= 0.9, record


@pytest.mark.slow
def test_the_1998_config_learns_prepared_digits(tmp_path, mnist_dir):
  record = train_and_evaluate(_config("lenet5_mnist", mnist_dir, 6), str(tmp_path / "run"))
  assert record["test/accuracy"] >= 0.9, record


def test_the_readme_real_digits_tables_are_generated_from_the_records():
  from experiments import mnist_table, readme_tables  # pylint: disable=g-import-not-at-top
  assert readme_tables.stale(mnist_table.TABLES) == [], (
      "README.md's real-digits tables are stale: run " + readme_tables.COMMAND)
  assert mnist_table.lenet_table().count("\n") >= 3  # a header, its rule and a row per LeNet record


def test_the_dae_corruption_experiment_runs_on_28x28_digits(tmp_path, mnist_dir):
  from experiments import dae_corruption  # pylint: disable=g-import-not-at-top
  out = str(tmp_path / "out" / "dae")
  record = dae_corruption.run([0.5], 1, str(tmp_path / "runs"), out, smoke=True, config_name="dae_mnist",
                              data_dir=mnist_dir)
  assert record["config"] == "experiments/configs/dae_mnist.py:smoke"
  assert "in its top 98 of 784 pixels" in record["statistic"]["localisation"]  # an eighth of the pixels
  assert set(record["levels"]) == {"0.5"} and len(record["runs"]) == 1
  # A 28×28 grid of evenly spread energy has spread √(2·(28² − 1)/12) = 11.4 pixels; random filters near it.
  assert 9.0 < record["random_filters"]["spread_raw"] < 11.5
  assert (tmp_path / "out" / "dae.png").stat().st_size > 1000
