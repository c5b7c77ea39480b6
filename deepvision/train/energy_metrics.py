"""What the contrastive trainer measures: reconstruction error, free energies, pseudo-likelihood,
log-likelihood (exact log Z or AIS), and the linear separability of the features.

* Reconstruction error: ‖v − E[v | h = p(h | v)]‖² / V after one mean-field up-down pass (Hinton's
  "Practical guide to training RBMs", 2010, §5): cheap, but not what the model optimises.
* Free-energy gap ⟨F⟩_val − ⟨F⟩_train on equally large sets (ibid., §6): growing means overfitting.
* Pseudo-likelihood Σ_i log p(v_i | v_−i) (Besag 1975), binary visibles only.
* Log-likelihood ⟨−F(v)⟩ − log Z, with log Z exact (enumeration) or by AIS (Salakhutdinov & Murray 2008).
* Linear evaluation: logistic regression on p(h | v) of the training split, tested on the test split.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from deepvision.estimators import ais, partition, pseudo_likelihood
from deepvision.models.logistic import fit_logistic_regression
from deepvision.train.energy_data import EnergyData


def _mean_over(fn, params, x: np.ndarray, batch: int = 1024) -> np.ndarray:
  """Means of the per-example values fn(params, x[i:i+batch]) over all of x (one array per output)."""
  values = [np.asarray(fn(params, jnp.asarray(x[i:i + batch]))) for i in range(0, len(x), batch)]
  return np.concatenate(values, axis=-1).mean(axis=-1)


@functools.cache
def _per_example_metrics(model) -> Any:
  """A jitted fn(params, v) -> per-example (recon_error, free_energy[, pseudo_likelihood]) of `model`."""
  binary = getattr(model, "visible_kind", "") == "binary"

  def metrics(params, v):
    variables = {"params": params}
    recon = model.apply(variables, model.apply(variables, v, method="hidden_probs"), method="visible_mean")
    values = [jnp.mean((v - recon) ** 2, axis=-1), model.apply(variables, v, method="free_energy")]
    if binary:
      values.append(pseudo_likelihood.pseudo_log_likelihood(model, variables, v))
    return jnp.stack(values)

  return jax.jit(metrics)


def evaluate_split(model, params, x: np.ndarray, prefix: str) -> dict[str, float]:
  """`{prefix}/recon_error` (one mean-field up-down pass), `{prefix}/free_energy` and, for binary
  visibles, `{prefix}/pseudo_likelihood` (exact: all V conditionals), each averaged over x."""
  means = _mean_over(_per_example_metrics(model), params, x.reshape(len(x), -1))
  names = ("recon_error", "free_energy", "pseudo_likelihood")
  return {f"{prefix}/{name}": float(value) for name, value in zip(names, means)}


def log_partition(model, params, method: str, settings: ml_collections.ConfigDict, key: jax.Array,
                  train: np.ndarray) -> dict[str, float]:
  """{'log_z': ...} exactly, or by AIS with its ±3σ bounds ('log_z_lower', 'log_z_upper'); {} for 'none'.

  Args:
    model, params: the energy model and its parameters.
    method: 'exact', 'ais' or 'none'.
    settings: `config.log_likelihood` (`exact_max_units`, `ais_runs`, `ais_betas`).
    key: AIS randomness.
    train: training examples, to fit AIS's base-rate model.
  """
  variables = {"params": params}
  if method == "exact":
    return {"log_z": float(partition.log_partition(model, variables, max_units=settings.exact_max_units))}
  if method == "ais":
    result = ais.ais_log_partition(model, variables, key, data=train.reshape(len(train), -1),
                                   betas=ais_schedule(settings), num_runs=settings.ais_runs)
    return {"log_z": float(result.log_z), "log_z_lower": float(result.log_z_lower),
            "log_z_upper": float(result.log_z_upper)}
  return {}


def ais_schedule(settings: ml_collections.ConfigDict) -> np.ndarray:
  """The β schedule of `config.log_likelihood`: `ais_betas` if given, else Salakhutdinov's 14,501
  temperatures (`ais_temperatures` = 0) or that many evenly spaced ones; ValueError if it is not a
  strictly increasing sequence from exactly 0 to exactly 1."""
  betas = tuple(settings.get("ais_betas", ()) or ())
  if betas:
    return ais.check_betas(betas)
  count = settings.get("ais_temperatures", 0)
  return ais.default_betas() if count == 0 else ais.linear_betas(count)


def evaluate(model, params, splits: dict[str, np.ndarray], log_z_method: str,
             settings: ml_collections.ConfigDict, key: jax.Array) -> dict[str, float]:
  """Metrics of every split in `splits`, the free-energy gap and the log-likelihoods.

  Args:
    model, params: the energy model and its parameters.
    splits: role ('train', 'val', 'test') → examples; 'train' should be a subset as large as 'val'.
    log_z_method: 'exact', 'ais' or 'none' (no log Z, no log-likelihoods).
    settings: `config.log_likelihood`.
    key: AIS randomness.
  """
  record = {}
  for role, x in splits.items():
    record.update(evaluate_split(model, params, x, role))
  roles = tuple(splits)
  if "val" in roles and "train" in roles:
    # Hinton's guide §6: a growing gap between held-out and training free energies signals overfitting.
    record["free_energy_gap"] = record["val/free_energy"] - record["train/free_energy"]
  if log_z_method != "none":
    record.update(log_partition(model, params, log_z_method, settings, key, splits["train"]))
    if "log_z" in record:
      for role in roles:
        record[f"{role}/log_likelihood"] = -record[f"{role}/free_energy"] - record["log_z"]
  return record


def linear_evaluation(model, params, data: EnergyData, l2: tuple[float, ...]) -> dict[str, float]:
  """Test accuracy of logistic regression on the hidden probabilities, and on the raw inputs for reference.

  For each input (features, pixels) a classifier is fitted on the training split
  (`deepvision.models.logistic`) for every L2 weight in `l2`; the one with the best validation accuracy
  (the first of equals; the only one without a validation split) is reported with its test accuracy.
  Returns {} without labelled train and test splits.
  """
  if "train" not in data.labels or "test" not in data.labels:
    return {}
  if "val" not in data.labels:
    l2 = l2[:1]
  features = jax.jit(lambda v: model.apply({"params": params}, v, method="hidden_probs"))
  out = {}
  for name, transform in (("feature", features), ("pixel", lambda v: v)):
    inputs = {role: np.asarray(transform(jnp.asarray(x.reshape(len(x), -1))))
              for role, x in data.splits.items() if role in data.labels}
    fits = [fit_logistic_regression(inputs["train"], data.labels["train"], l2=weight) for weight in l2]
    scores = [fit.accuracy(inputs["val"], data.labels["val"]) if "val" in inputs else 0.0 for fit in fits]
    best = int(np.argmax(scores))
    out[f"test/{name}_accuracy"] = fits[best].accuracy(inputs["test"], data.labels["test"])
    out[f"{name}_l2"] = float(l2[best])
  return out
