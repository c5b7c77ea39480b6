"""The k-means task end to end: the launcher on patches (record, figures, resume), passes split into batches
equal to full-batch Lloyd, the triangle features of whole images exported, bad values refused with exit 2."""

import itertools
import json
import os
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepvision.checkpoint import read_state
from deepvision.data import datasets
from deepvision.data.patches import extract_patches
from deepvision.models import kmeans as km
from deepvision.pretrained import runs
from deepvision.train import kmeans as kmeans_task
from deepvision.train import loop
from experiments.configs import kmeans_images, kmeans_patches

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _main(*args):
  return subprocess.run([sys.executable, "-m", "experiments.main", *args], cwd=ROOT, capture_output=True,
                        text=True, timeout=300, check=False)


def _records(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [{k: v for k, v in json.loads(line).items() if k != "steps_per_second"} for line in f]


def test_the_launcher_trains_on_patches_writes_the_record_and_the_centroids_and_resumes_finished(tmp_path, capsys):
  workdir = str(tmp_path / "run")
  first = _main("--config=kmeans_patches:smoke", f"--workdir={workdir}")
  assert first.returncode == 0, first.stderr[-3000:]
  records = _records(workdir)
  final = records[-1]
  assert final["final"] and final["step"] == 4
  assert {"val/objective", "val/cosine", "val/empty", "test/objective", "test/cosine", "test/empty",
          "centroids/empty", "centroids/localisation", "centroids/orientation_index", "pca/localisation",
          "pca/orientation_index"} <= set(final)
  assert 0 <= final["centroids/empty"] <= 1 and 0 < final["test/cosine"] <= 1
  train = [r["train/objective"] for r in records if "train/objective" in r]
  assert len(train) == 4 and all(b <= a * (1 + 1e-6) for a, b in itertools.pairwise(train)) and train[-1] < train[0]
  assert os.path.getsize(os.path.join(workdir, "filters.png")) > 0
  assert os.path.exists(os.path.join(workdir, "preprocessing.json"))
  config = kmeans_patches.get_config("smoke")
  _, variables = runs.trained_model(config, workdir)
  assert variables["params"]["C"].shape == (12, 8)  # 4×4 patches whitened to 8 components (90%)
  np.testing.assert_allclose(np.linalg.norm(variables["params"]["C"], axis=1), 1.0, rtol=1e-5)
  capsys.readouterr()
  assert loop.train_and_evaluate(config, workdir) == final  # the same command again (in process: faster)
  assert "already holds the finished run (4 steps); nothing to do." in capsys.readouterr().out
  assert _records(workdir) == records


def test_a_pass_split_into_batches_is_the_same_lloyd_iteration_as_one_full_batch(tmp_path):
  centroids, objectives = {}, {}
  for batch_size in (256, kmeans_task.FULL_BATCH):  # 1,024 training patches: 4 batches, or one
    config = loop.override_config(kmeans_patches.get_config("smoke"), {"batch_size": batch_size, "figures": False})
    workdir = str(tmp_path / str(batch_size))
    loop.train_and_evaluate(config, workdir)
    centroids[batch_size] = np.asarray(runs.trained_model(config, workdir)[1]["params"]["C"])
    objectives[batch_size] = [r["train/objective"] for r in _records(workdir) if "train/objective" in r]
  np.testing.assert_allclose(centroids[256], centroids[kmeans_task.FULL_BATCH], atol=1e-5)
  np.testing.assert_allclose(objectives[256], objectives[kmeans_task.FULL_BATCH], rtol=1e-5)  # one per pass


def test_export_features_of_a_whole_image_run_are_the_triangle_features_of_each_image(tmp_path):
  workdir = str(tmp_path / "digits")
  config = loop.override_config(kmeans_images.get_config("smoke"), {"figures": False})
  record = loop.train_and_evaluate(config, workdir)
  arrays = runs.export_features(workdir, "test", str(tmp_path / "f.npz"))
  features, labels = arrays["features/hidden_probs"], arrays["labels"]
  assert features.shape == (360, 8) and labels.shape == (360,)  # dv_digits' test split, K = 8
  task = kmeans_task.build_task(config)
  x = jnp.asarray(task.data.splits["test"].reshape(360, -1))
  C = runs.trained_model(config, workdir)[1]["params"]["C"]
  np.testing.assert_allclose(features, km.triangle(x, C), rtol=1e-5, atol=1e-6)
  assert np.all(features >= 0) and np.all((features == 0).any(axis=1))  # the triangle zeroes the far half
  with np.load(tmp_path / "f.npz") as saved:
    np.testing.assert_array_equal(saved["features/hidden_probs"], features)
  evaluation = runs.evaluate_run(workdir, "test", str(tmp_path / "test.json"))
  assert abs(evaluation["metrics"]["objective"] - record["test/objective"]) < 1e-5 * record["test/objective"]


def test_bad_values_exit_2_naming_the_field_before_anything_is_written(tmp_path):
  result = _main("--config=kmeans_images:smoke", f"--workdir={tmp_path}/run", "--config.model_kwargs.n_centroids=0")
  assert result.returncode == 2, result.stderr
  assert result.stderr.splitlines()[0] == ("error: config.model / config.model_kwargs: n_centroids must be an "
                                           "integer ≥ 1, got 0"), result.stderr
  cases = {"model": ("rbm_tiny", ("config.model 'rbm_tiny' is not a k-means model; the k-means models: kmeans, "
                                  "kmeans_tiny")),
           "batch_size": (0, "config.batch_size must be an integer >= 1, got 0"),
           "model_kwargs.n_visible": (5, "config.model_kwargs.n_visible=5 but one example has 41 values")}
  for field, (value, message) in cases.items():
    config = loop.override_config(kmeans_images.get_config("smoke"), {field: value})
    with pytest.raises(loop.ConfigError) as caught:
      loop.train_and_evaluate(config, str(tmp_path / "run"))
    assert str(caught.value).startswith(message), (field, str(caught.value))
  assert os.listdir(tmp_path) == []


def test_a_run_resumed_mid_pass_ends_bitwise_as_an_uninterrupted_one(tmp_path):
  config = loop.override_config(kmeans_patches.get_config("smoke"), {
      "batch_size": 256, "num_epochs": 2, "checkpoint_every_steps": 6, "figures": False})  # saves at 6 and 8
  reference = tmp_path / "reference"
  loop.train_and_evaluate(config, str(reference))
  resumed = tmp_path / "resumed"
  shutil.copytree(reference, resumed)
  checkpoints = resumed / "checkpoints"
  for entry in os.listdir(checkpoints):  # back to step 6: the middle of the second pass, its sums half full
    if entry.isdigit() and int(entry) > 6:
      shutil.rmtree(checkpoints / entry)
  state, step = read_state(str(checkpoints))
  assert step == 6 and float(np.sum(state["counts"])) == 512  # two of the pass's four batches assigned
  loop.train_and_evaluate(config, str(resumed))
  (a, step_a), (b, step_b) = read_state(str(reference / "checkpoints")), read_state(str(checkpoints))
  assert step_a == step_b == 8
  for name in ("params", "sums", "counts"):
    np.testing.assert_array_equal(np.asarray(jax.tree.leaves(a[name])[0]), np.asarray(jax.tree.leaves(b[name])[0]))
  assert _records(resumed) == _records(reference)


def test_patch_preprocessing_repeats_the_runs_preprocessing_of_its_training_patches():
  config = kmeans_patches.get_config("smoke")
  task = kmeans_task.build_task(config, quiet=True)
  preprocessing = kmeans_task.patch_preprocessing(task.config, task.data)
  assert preprocessing.remove_dc and preprocessing.projection.shape == (16, 8)
  source = datasets.get_source(config.dataset, config.train_split)
  raw = extract_patches([source[i]["image"] for i in range(len(source))], 4, 1024, config.patches.seed)
  x = km.preprocess_patches(jnp.asarray(raw.reshape(1024, -1)), preprocessing)
  np.testing.assert_allclose(x, task.data.splits["train"].reshape(1024, -1), rtol=1e-4, atol=1e-4)
  with pytest.raises(loop.ConfigError, match="need an affine preprocessing"):
    kmeans_task.patch_preprocessing(loop.override_config(config, {"preprocess": "binarize"}), task.data)
