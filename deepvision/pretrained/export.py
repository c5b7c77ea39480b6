"""Exporting a trained experiment as shipped pretrained weights (`experiments/export_pretrained.py`).

`export(name, config, workdir)` trains the experiment (or finds it trained), evaluates the written
weights through `deepvision.pretrained.evaluate`, the very path users and tests load them by, and records
the metric with a `tolerance`: what a re-evaluation elsewhere may differ by (one test example for
accuracy, ±3σ for AIS log-likelihoods, `INPAINTING_RTOL` of the inpainting MSE).
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

import ml_collections
import numpy as np

from deepvision import checkpoint, pretrained, zoo
from deepvision.data import datasets
from deepvision.pretrained import runs, store
from deepvision.samplers import hmc_chains
from deepvision.train import loop

INPAINTING_RTOL = 0.02
EVALUATION_SEED = 0


def _json_ready(record: dict[str, Any]) -> dict[str, Any]:
  return {k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in record.items()
          if isinstance(v, (int, float, str, bool, np.floating, np.integer))}


def tolerance(kind: str, metric: float, metrics: dict[str, float], num_test: int | None) -> float:
  """How far a re-evaluation of the recorded `metric` may land.

  * accuracy: one test example (1/N): floating-point summation order may flip a borderline example;
  * AIS log-likelihood: the estimate's own ±3σ half-width (a different floating-point path changes the
    sampled chains, so another run is another draw of the estimator);
  * inpainting MSE: `INPAINTING_RTOL` of the value; the fill is a posterior mean estimated from a few
    hundred HMC transitions, and chains whose floating-point path differs are other draws.
  """
  if kind == "classification":
    return 1.0 / num_test
  if kind == "log_likelihood":
    return float((metrics["test/log_likelihood_upper"] - metrics["test/log_likelihood_lower"]) / 2)
  return INPAINTING_RTOL * abs(metric)


def export(name: str, config: ml_collections.ConfigDict, workdir: str, config_file: str,
           output_dir: str | None = None, quiet: bool = False) -> dict[str, Any]:
  """Trains (or finds trained) `config` in `workdir` and writes pretrained `name`; returns its manifest.

  1. trains `config` in `workdir` with `train_and_evaluate` (the launcher's call; a finished run is
     not repeated, an interrupted one resumes);
  2. reads the parameters of the run's newest verified checkpoint (`runs.evaluated_params`) and the
     preprocessing the trainer saved next to it (`preprocessing.json`);
  3. writes the weights and a provisional manifest to a temporary directory and evaluates them through
     `deepvision.pretrained.evaluate`, the very path users and tests load them by;
  4. writes the final files with the measured metric and its `tolerance`.
  """
  shipped = pretrained.SHIPPED.get(name)
  record = loop.train_and_evaluate(config, workdir)
  run_dir = runs.run_directory(config, workdir)
  state, _ = checkpoint.read_state(os.path.join(run_dir, "checkpoints"))
  params = runs.evaluated_params(state)
  preprocessing_file = os.path.join(run_dir, "preprocessing.json")
  preprocessing = None
  if os.path.exists(preprocessing_file):
    with open(preprocessing_file, encoding="utf-8") as f:
      preprocessing = json.load(f)
  evaluation = {"kind": shipped.evaluation, "seed": EVALUATION_SEED}
  step_size = hmc_chains.chain_step_size(state.get("chains"))
  if shipped.evaluation == "log_likelihood" and step_size is not None:
    evaluation["chain_step_size"] = step_size
  manifest = {
      "model": config.model, "model_kwargs": loop.model_kwargs(config), "paper": zoo.paper(config.model),
      "config": config.to_dict(), "config_file": config_file, "dataset": config.dataset,
      "split": config.get("test_split") or "test", "evaluation": evaluation,
      "training": {"steps": int(record.get("step", 0)), "record": _json_ready(record)},
      "parameters": zoo.count_params(params), "versions": checkpoint.library_versions()}
  with tempfile.TemporaryDirectory() as scratch:
    store.write(name, params, preprocessing, {**manifest, "metric": None, "metrics": None}, scratch)
    metrics = pretrained.evaluate(name, scratch)
  value = float(metrics[shipped.metric])
  num_test = _num_examples(config) if shipped.evaluation == "classification" else None
  manifest["metric"] = {"name": shipped.metric, "value": value, "goal": shipped.goal,
                        "description": shipped.description,
                        "tolerance": tolerance(shipped.evaluation, value, metrics, num_test)}
  manifest["metrics"] = _json_ready(metrics)
  written = store.write(name, params, preprocessing, manifest, output_dir)
  if not quiet:
    print(f"{name}: {shipped.description} {value:.6g} (± {manifest['metric']['tolerance']:.3g}); "
          f"{manifest['parameters']:,} parameters, {written['weights']['size']:,} bytes, sha256 "
          f"{written['weights']['sha256'][:16]}…")
  return written


def _num_examples(config: ml_collections.ConfigDict) -> int:
  return len(datasets.get_source(config.dataset, config.test_split, data_dir=config.get("data_dir") or None))
