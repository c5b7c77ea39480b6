"""The sparse coding task: dictionary learning and PSD run end to end through the launcher's library call."""

import json
import os

import jax.numpy as jnp
import numpy as np

from deepvision.pretrained import runs
from deepvision.train import loop
from deepvision.train import sparse_coding as sc
from experiments.configs import psd_patches, sparse_coding_patches


def _records(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [{k: v for k, v in json.loads(line).items() if k != "steps_per_second"} for line in f]


def test_smoke_run_lowers_the_objective_keeps_unit_atoms_and_k_steps_per_dispatch_change_no_number(tmp_path):
  records = {}
  for k in (1, 4):
    config = loop.override_config(sparse_coding_patches.get_config("smoke"),
                                  {"steps_per_dispatch": k, "figures": k == 4})
    record = loop.train_and_evaluate(config, str(tmp_path / f"k{k}"))
    records[k] = _records(tmp_path / f"k{k}")
    assert record["final"] and record["test/objective"] > 0
  assert records[1] == records[4]
  train = [r["train/objective"] for r in records[1] if "train/objective" in r]
  assert train[-1] < train[0]
  assert 0 < records[1][-1]["test/active"] < 1 and "atoms/localisation" in records[1][-1]
  assert os.path.exists(tmp_path / "k4" / "filters.png") and os.path.exists(tmp_path / "k4" / "checkpoints")
  _, variables = runs.trained_model(config, str(tmp_path / "k4"))
  np.testing.assert_allclose(np.linalg.norm(variables["params"]["D"], axis=0), 1.0, rtol=1e-5)


def test_psd_encoder_predicts_the_lasso_codes_better_than_trivial_baselines(tmp_path):
  config = loop.override_config(psd_patches.get_config("smoke"), {"figures": False})
  record = loop.train_and_evaluate(config, str(tmp_path))
  task = sc.build_task(config)
  x = jnp.asarray(task.data.splits["test"].reshape(len(task.data.splits["test"]), -1))
  _, variables = runs.trained_model(config, str(tmp_path))
  z = task._lasso_codes(variables["params"], x)
  mean_code = jnp.broadcast_to(jnp.mean(z, axis=0), z.shape)  # the best constant prediction
  trivial = float(jnp.linalg.norm(mean_code - z) / jnp.linalg.norm(z))
  assert record["test/prediction_error"] < 0.5 * min(trivial, 1.0)  # 1.0: predicting zeros
  np.testing.assert_allclose(
      float(jnp.linalg.norm(task._predict(variables["params"], x) - z) / jnp.linalg.norm(z)),
      record["test/prediction_error"], rtol=1e-4)
