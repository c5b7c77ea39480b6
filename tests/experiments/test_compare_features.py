"""`experiments.compare_features` and its README table: learners trained on whole images, one read-out."""

import subprocess
import sys

import numpy as np
import pytest

from deepvision.data import datasets
from deepvision.errors import ConfigError
from experiments import compare_features, features_table

ROOT = features_table.ROOT


def test_a_learner_config_trains_on_the_whole_images_with_the_same_number_of_updates():
  learner = compare_features.LEARNERS.get("sparse_coding")
  settings = compare_features.Settings(features=96, max_updates=10_000)
  config = compare_features.learner_config(learner, "dv_faces", seed=2, settings=settings)
  assert (config.dataset, config.train_split, config.eval_split, config.test_split) == (
      "dv_faces", "train", "validation", "test")
  assert config.patches.size == 0 and config.seed == 2 and not config.figures
  assert config.model_kwargs.n_atoms == 96
  # Whitened 25×25 faces: n_visible is the number of components kept, not 625.
  assert 1 <= config.model_kwargs.n_visible < 120
  # 5 epochs of 40,000 patches in batches of 256 = 780 updates; 120 faces in batches of 256 give 1 per epoch.
  assert config.num_epochs == 780
  capped = compare_features.learner_config(learner, "dv_faces", 0, compare_features.Settings(max_updates=50))
  assert capped.num_epochs == 50


def test_quick_comparison_scores_every_learner_through_one_readout(tmp_path):
  settings = compare_features.Settings(quick=True)
  rows = compare_features.compare("dv_digits", ["pixels", "kmeans_conv"], seeds=1, settings=settings,
                                   workdir=str(tmp_path), log=lambda _: None)
  assert list(rows) == ["pixels", "kmeans_conv"]
  # kmeans_patches:smoke has 12 centroids of 4×4 patches: their codes summed over 4 quadrants.
  assert rows["pixels"]["feature_dim"] == 64 and rows["kmeans_conv"]["feature_dim"] == 4 * 12
  for row in rows.values():
    for key in ("all_labels", "100_labels"):
      assert 0.1 < row[key]["mean"] <= 1.0 and row[key]["std"] == 0.0
    assert row["per_seed"][0]["test_examples"] == 360
  # Raw pixels separate the digits well with all labels (the trainer's own pixel baseline: 0.98).
  assert rows["pixels"]["all_labels"]["mean"] > 0.95
  assert rows["pixels"]["all_labels"]["mean"] > rows["pixels"]["100_labels"]["mean"]
  assert rows["kmeans_conv"]["learn_seconds"] > 0 and rows["kmeans_conv"]["extract_seconds_per_1000"] > 0
  # The run is an ordinary work dir: a second comparison resumes it and trains nothing.
  metrics = tmp_path / "dv_digits" / "kmeans_conv" / "seed_0" / "metrics.jsonl"
  before = metrics.read_bytes()
  again = compare_features.compare("dv_digits", ["kmeans_conv"], 1, settings, str(tmp_path), log=lambda _: None)
  assert metrics.read_bytes() == before
  assert again["kmeans_conv"]["all_labels"] == rows["kmeans_conv"]["all_labels"]


def test_the_pixel_rows_readout_matches_scikit_learn_style_features_by_hand():
  features, labels, _ = compare_features.learned_features(
      compare_features.LEARNERS.get("pixels"), "dv_digits", 0, compare_features.Settings(), "unused")
  x, y = datasets.load_arrays("dv_digits", "test")
  np.testing.assert_array_equal(features["test"], x.reshape(len(x), -1))
  np.testing.assert_array_equal(labels["test"], y)


@pytest.mark.parametrize("datasets, learners, message", [
    (["dv_digit"], ["pixels"], "unknown data set 'dv_digit'; valid: dv_digits, dv_faces, mnist, cifar10"),
    (["mnist"], ["pixels"], "--datasets=mnist is read from a TFDS data dir: set --data_dir=DIR"),
    (["dv_digits"], ["pixels", "kmean"], "--learners: unknown feature learner 'kmean'. Did you mean 'kmeans'?"),
])
def test_bad_data_sets_and_learners_are_named(datasets, learners, message):
  with pytest.raises(ConfigError) as error:
    compare_features.check_flags(datasets, learners, data_dir="")
  assert message in str(error.value)


def test_the_launcher_exits_2_before_anything_is_trained(tmp_path):
  done = subprocess.run([sys.executable, "-m", "experiments.compare_features", f"--workdir={tmp_path / 'w'}",
                         f"--records={tmp_path / 'r'}", "--learners=pixels,kmean"], cwd=ROOT, capture_output=True,
                        text=True, check=False)
  assert done.returncode == 2, done.stderr
  assert done.stderr.startswith("error: --learners: unknown feature learner 'kmean'")
  assert not (tmp_path / "w").exists() and not (tmp_path / "r").exists()


def _record(seeds, pixels, other, test_examples=100_000):
  entry = lambda m, s: {"mean": m, "std": s}
  row = lambda accs: {"summary": "s", "feature_dim": 4, "learn_seconds": 1.0, "extract_seconds_per_1000": 0.5,
                      "all_labels": entry(*accs[0]), "100_labels": entry(*accs[1]),
                      "per_seed": [{"test_examples": test_examples}]}
  return {"dataset": "dv_x", "splits": ["a", "b", "c"], "seeds": seeds, "label_budget": 100,
          "machine": {"cores": 2, "cpu_model": "cpu"}, "date": "d", "command": "c",
          "learners": {"pixels": row(pixels), "other": row(other)}}


def _other_row(text):
  return next(line for line in text.splitlines() if line.startswith("| `other`"))


def test_the_table_says_whether_a_difference_beats_the_noise_of_seeds_and_test_set():
  # 100,000 test examples (binomial noise negligible). 100 labels: +5 points with stds 1 and 1 over 3 seeds
  # (standard error 0.82): beyond noise; all labels: −1 point with stds 2 and 2 (1.63): within noise.
  text = features_table.table(_record(3, [(0.90, 0.02), (0.70, 0.01)], [(0.89, 0.02), (0.75, 0.01)]))
  assert "89.0 ± 2.0 | 75.0 ± 1.0" in _other_row(text)
  assert _other_row(text).endswith("| −1.0 (within noise) / +5.0 (beyond noise) |")
  assert "| — |" in next(line for line in text.splitlines() if line.startswith("| `pixels`"))
  # On 40 test examples the same +5 points is within the test set's own noise (σ ≈ 10 points).
  small = features_table.table(_record(3, [(0.90, 0.02), (0.70, 0.01)], [(0.89, 0.02), (0.75, 0.01)], 40))
  assert _other_row(small).endswith("| −1.0 (within noise) / +5.0 (within noise) |")


def test_the_table_lists_the_learners_in_the_comparisons_order():
  record = _record(1, [(0.9, 0.0), (0.7, 0.0)], [(0.9, 0.0), (0.7, 0.0)])
  record["learners"] = {"rbm": record["learners"]["other"], "kmeans_conv": record["learners"]["other"],
                        "pixels": record["learners"]["pixels"]}
  rows = [line.split("`")[1] for line in features_table.table(record).splitlines()[2:]]
  assert rows == ["pixels", "kmeans_conv", "rbm"]
