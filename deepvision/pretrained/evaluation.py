"""The figure each shipped model is known by, recomputed from its weights on the embedded test split.

Every pretrained model carries one headline metric in its manifest, computed at export by the function
here that matches its `evaluation.kind`, and the test suite recomputes it from the loaded weights:
'classification' (test accuracy), 'log_likelihood' (mean test log p(x) = −F(x) − log Z in nats, log Z by
AIS: Neal 2001; Salakhutdinov & Murray 2008) and 'inpainting' (MSE per missing pixel of the held-out
faces, Ranzato et al., PAMI 2013). The data are rebuilt from the config, and the preprocessing fitted on
them must equal the one shipped with the weights.
"""

from __future__ import annotations

from typing import Any

import jax
import ml_collections
import numpy as np
import optax

from deepvision.data import datasets
from deepvision.estimators.inpainting import evaluate_inpainting
from deepvision.data import energy as energy_data, face_data
from deepvision.estimators import energy_metrics
from deepvision.train import supervised
from deepvision.train.state import TrainState

KINDS = ("classification", "log_likelihood", "inpainting")


def _check_preprocessing(name: str, shipped: dict | None, fitted: dict | None) -> None:
  """ValueError unless the preprocessing fitted on today's data equals the shipped one.

  The embedded sets are deterministic, so a difference means the data or the code that prepares them
  changed since the export.
  """
  if (shipped is None) != (fitted is None):
    raise ValueError(f"pretrained {name!r}: the weights were shipped {'with' if shipped else 'without'} "
                     f"preprocessing but the data prepare {'with' if fitted else 'without'} it")
  if shipped is not None:
    differences = energy_data.preprocessing_differences(shipped, fitted)
    if differences:
      raise ValueError(f"pretrained {name!r}: the preprocessing fitted on today's data differs from the "
                       f"shipped one in {', '.join(differences)}; the data set or its preparation changed "
                       "since the export (regenerate with `python -m experiments.export_pretrained`)")


def classification(module: Any, variables: dict, config: ml_collections.ConfigDict) -> dict[str, float]:
  """{'test/accuracy', 'test/loss'} on `config.test_split` of `config.dataset`.

  The supervised trainer's evaluation step: the config's preprocessing, no augmentation, dropout off.
  """
  source = datasets.get_source(config.dataset, config.test_split, data_dir=config.get("data_dir") or None,
                               in_memory=True)
  state = TrainState.create(apply_fn=module.apply, params=variables["params"], tx=optax.identity(),
                            key=jax.random.key(0))  # evaluation draws no random numbers
  eval_step = jax.jit(supervised.make_eval_step(supervised.Preprocess(**config.augment.to_dict())))
  return supervised.evaluate_split(eval_step, state, source, config.get("eval_batch_size") or config.batch_size, "test")


def log_likelihood(name: str, module: Any, variables: dict, config: ml_collections.ConfigDict,
                   preprocessing: dict | None, seed: int, chain_step_size: float | None) -> dict[str, float]:
  """The test split's mean log-likelihood by AIS (`energy_metrics.evaluate`), with log Z and its ±3σ.

  Nats per example, log p(x) = −F(x) − log Z, with log Z by annealed importance sampling (Neal 2001;
  Salakhutdinov & Murray 2008 for RBMs, HMC transitions for continuous visibles) exactly as the
  experiment estimates it at its end, with the evaluation's own `seed`; for whitened data the Gaussian
  (PCA) baseline's is reported alongside.
  """
  data = energy_data.prepare_data(config)
  _check_preprocessing(name, preprocessing, energy_data.preprocessing_record(data))
  train = data.splits["train"]
  # A fixed subset of the training split: RBM AIS fits its base-rate model on it.
  subset = train[np.random.default_rng(config.seed + 1).permutation(len(train))[:min(len(train), 1000)]]
  splits = {"train": subset, "test": data.splits["test"]}
  record = energy_metrics.evaluate(module, variables["params"], splits, "ais", config.log_likelihood,
                                   jax.random.key(seed), energy_metrics.fit_gaussian_baseline(data),
                                   chain_step_size)
  keep = ("test/log_likelihood", "test/log_likelihood_lower", "test/log_likelihood_upper",
          "test/gaussian_log_likelihood", "test/free_energy", "log_z", "log_z_lower", "log_z_upper")
  return {k: record[k] for k in keep if k in record}


def inpainting(name: str, module: Any, variables: dict, config: ml_collections.ConfigDict,
               preprocessing: dict | None) -> dict[str, float]:
  """Per mask, the gated MRF's and the Gaussians' MSE per missing pixel on the held-out faces.

  `deepvision.estimators.inpainting.evaluate_inpainting` on the faces of `deepvision.data.face_data`,
  with the experiment's masks and chains.
  """
  faces = face_data.face_settings(config)
  settings = face_data.inpaint_settings(config, faces)
  train, test = face_data.load_faces(config, faces)
  data = face_data.face_data(config, train, test)
  _check_preprocessing(name, preprocessing, energy_data.preprocessing_record(data))
  key = jax.random.fold_in(jax.random.key(config.seed), 2)  # the experiment's inpainting key
  metrics, _ = evaluate_inpainting(module, variables["params"], data.whitener, train, test, settings, key)
  return metrics


def evaluate(manifest: dict, module: Any, variables: dict, preprocessing: dict | None) -> dict[str, float]:
  """Every figure of the evaluation `manifest["evaluation"]` names, the headline metric among them."""
  config = ml_collections.ConfigDict(manifest["config"])
  spec = manifest["evaluation"]
  if spec["kind"] == "classification":
    return classification(module, variables, config)
  if spec["kind"] == "log_likelihood":
    return log_likelihood(manifest["name"], module, variables, config, preprocessing, spec["seed"],
                          spec.get("chain_step_size"))
  if spec["kind"] == "inpainting":
    return inpainting(manifest["name"], module, variables, config, preprocessing)
  raise ValueError(f"pretrained {manifest['name']!r}: unknown evaluation kind {spec['kind']!r}; "
                   f"known: {', '.join(KINDS)}")
