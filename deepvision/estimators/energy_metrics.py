"""What the contrastive trainer measures: reconstruction error, free energies, pseudo-likelihood,
log-likelihood (exact log Z or AIS), and the linear separability of the features.

* reconstruction error ‖v − E[v | h = p(h | v)]‖² / V and the free-energy gap ⟨F⟩_val − ⟨F⟩_train
  (Hinton's "Practical guide to training RBMs", 2010, §5-6);
* pseudo-likelihood Σ_i log p(v_i | v_−i) (Besag 1975), binary visibles only;
* log-likelihood ⟨−F(v)⟩ − log Z, log Z exact or by AIS (Salakhutdinov & Murray 2008), and the
  full-covariance Gaussian's as a baseline (Ranzato et al., PAMI 2013);
* linear evaluation: logistic regression on p(h | v). Details in `evaluate` and `linear_evaluation`.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from deepvision.estimators import ais, linear_readout, partition, pseudo_likelihood
from deepvision.models.gaussian import GaussianModel
from deepvision.data.energy import EnergyData

# Continuous AIS (gated MRFs): HMC leapfrog steps per trajectory and trajectories per temperature.
DEFAULT_AIS_LEAPFROG = ais.DEFAULT_NUM_LEAPFROG


def _mean_over(fn, params, x: np.ndarray, batch: int = 1024) -> np.ndarray:
  """Means of the per-example values fn(params, x[i:i+batch]) over all of x (one array per output)."""
  values = [np.asarray(fn(params, jnp.asarray(x[i:i + batch]))) for i in range(0, len(x), batch)]
  return np.concatenate(values, axis=-1).mean(axis=-1)


def _metric_names(model) -> tuple[str, ...]:
  """The per-example metrics of `model`: recon_error (with `visible_mean`), free_energy,
  pseudo_likelihood (binary visibles)."""
  names = ("recon_error",) if callable(getattr(model, "visible_mean", None)) else ()
  names += ("free_energy",)
  if getattr(model, "visible_kind", "") == "binary":
    names += ("pseudo_likelihood",)
  return names


@functools.cache
def _per_example_metrics(model) -> Any:
  """A jitted fn(params, v) -> per-example values of `_metric_names(model)`, stacked."""
  names = _metric_names(model)

  def metrics(params, v):
    variables = {"params": params}
    values = []
    if "recon_error" in names:
      recon = model.apply(variables, model.apply(variables, v, method="hidden_probs"), method="visible_mean")
      values.append(jnp.mean((v - recon) ** 2, axis=-1))
    values.append(model.apply(variables, v, method="free_energy"))
    if "pseudo_likelihood" in names:
      values.append(pseudo_likelihood.pseudo_log_likelihood(model, variables, v))
    return jnp.stack(values)

  return jax.jit(metrics)


def evaluate_split(model, params, x: np.ndarray, prefix: str) -> dict[str, float]:
  """`{prefix}/recon_error` (one mean-field up-down pass; models with `visible_mean`),
  `{prefix}/free_energy` and, for binary visibles, `{prefix}/pseudo_likelihood` (exact: all V
  conditionals), each averaged over x."""
  means = _mean_over(_per_example_metrics(model), params, x.reshape(len(x), -1))
  return {f"{prefix}/{name}": float(value) for name, value in zip(_metric_names(model), means)}


def anneals_hidden_units(model) -> bool:
  """Whether AIS anneals the model's binary hidden layer (RBMs: `n_hidden`) or, for continuous
  visibles without one (gated MRFs), its free energy from N(b_v, I) with HMC transitions."""
  return hasattr(model, "n_hidden")


def continuous_ais_settings(settings: ml_collections.ConfigDict,
                            chain_step_size: float | None = None) -> dict[str, Any]:
  """The HMC settings of continuous AIS from `config.log_likelihood`: `hmc_leapfrog` (10),
  `hmc_trajectories` per temperature (1) and `hmc_step_size` (0: the step size the training chains
  adapted to, `chain_step_size`, clipped to [0.001, 0.25]; else `ais.DEFAULT_STEP_SIZE`); ValueError on
  bad values."""
  leapfrog = settings.get("hmc_leapfrog", DEFAULT_AIS_LEAPFROG)
  trajectories = settings.get("hmc_trajectories", 1)
  step_size = settings.get("hmc_step_size", 0.0)
  for name, value in (("hmc_leapfrog", leapfrog), ("hmc_trajectories", trajectories)):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
      raise ValueError(f"log_likelihood.{name} must be an int >= 1, got {value!r}")
  if isinstance(step_size, bool) or not isinstance(step_size, (int, float)) or not 0 <= step_size <= 10:
    raise ValueError(f"log_likelihood.hmc_step_size must be a number in (0, 10] (0: the training chains' "
                     f"adapted step size), got {step_size!r}")
  if step_size == 0:
    step_size = ais.DEFAULT_STEP_SIZE if chain_step_size is None else float(
        np.clip(chain_step_size, 0.001, 0.25))
  return {"num_leapfrog": leapfrog, "num_trajectories": trajectories, "step_size": float(step_size)}


def log_partition(model, params, method: str, settings: ml_collections.ConfigDict, key: jax.Array,
                  train: np.ndarray, chain_step_size: float | None = None) -> dict[str, float]:
  """{'log_z': ...} exactly, or by AIS with its ±3σ bounds; {} for 'none'.

  AIS (Salakhutdinov & Murray 2008) adds what the estimate's spread needs to be read: 'log_z_lower' and
  'log_z_upper', log(Ẑ ∓ 3σ̂) with σ̂ the standard error of the mean importance weight over the runs (the
  lower bound −inf when Ẑ − 3σ̂ ≤ 0); 'log_z_std', the delta-method standard error σ̂ / Ẑ of log Ẑ;
  'ais_runs' and 'ais_temperatures', the runs and the length of the β schedule.

  Args:
    model, params: the energy model and its parameters.
    method: 'exact', 'ais' or 'none'.
    settings: `config.log_likelihood` (`exact_max_units`, `ais_runs`, `ais_betas`, and for continuous
      AIS `hmc_leapfrog`, `hmc_trajectories`, `hmc_step_size`).
    key: AIS randomness.
    train: training examples, to fit AIS's base-rate model (RBMs).
    chain_step_size: the HMC step size the training chains adapted to (continuous AIS's default).
  """
  variables = {"params": params}
  if method == "exact":
    return {"log_z": float(partition.log_partition(model, variables, max_units=settings.exact_max_units))}
  if method == "ais":
    if anneals_hidden_units(model):
      result = ais.ais_log_partition(model, variables, key, data=train.reshape(len(train), -1),
                                     betas=ais_schedule(settings), num_runs=settings.ais_runs)
      extra = {}
    else:
      result = ais.ais_log_partition_continuous(
          model, variables, key, betas=ais_schedule(settings), num_runs=settings.ais_runs,
          **continuous_ais_settings(settings, chain_step_size))
      extra = {"ais_acceptance_rate": float(result.acceptance_rate)}
    return {"log_z": float(result.log_z), "log_z_lower": float(result.log_z_lower),
            "log_z_upper": float(result.log_z_upper), "log_z_std": float(result.log_z_std),
            "ais_runs": int(result.log_weights.size), "ais_temperatures": int(result.num_temperatures),
            **extra}
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
             settings: ml_collections.ConfigDict, key: jax.Array, gaussian: GaussianModel | None = None,
             chain_step_size: float | None = None) -> dict[str, float]:
  """Metrics of every split in `splits`, the free-energy gap and the log-likelihoods.

  * Reconstruction error: ‖v − E[v | h = p(h | v)]‖² / V after one mean-field up-down pass (Hinton's
    "Practical guide to training RBMs", 2010, §5): cheap, but not what the model optimises.
  * Free-energy gap ⟨F⟩_val − ⟨F⟩_train on equally large sets (ibid., §6): growing means overfitting.
  * Pseudo-likelihood Σ_i log p(v_i | v_−i) (Besag 1975), binary visibles only.
  * Log-likelihood ⟨−F(v)⟩ − log Z, with log Z exact (enumeration) or by AIS (Salakhutdinov & Murray
    2008): for RBMs from a base-rate model with Gibbs transitions, for models with continuous visibles and
    no binary hidden layer to anneal (the gated MRFs) from N(b_v, I) with HMC transitions
    (`ais.ais_log_partition_continuous`). With AIS the ±3σ bounds of log Z give
    `{role}/log_likelihood_lower` and `_upper`.
  * The Gaussian baseline: for continuous visibles, the log-density of every split under the
    full-covariance Gaussian fitted to the training data (`GaussianModel`),
    `{role}/gaussian_log_likelihood`, in the same space as the model's (e.g. PCA-whitened patches): what a
    model gains over it is what it learns beyond second-order statistics (Ranzato et al., PAMI 2013).

  Args:
    model, params: the energy model and its parameters.
    splits: role ('train', 'val', 'test') → examples; 'train' should be a subset as large as 'val'.
    log_z_method: 'exact', 'ais' or 'none' (no log Z, no log-likelihoods).
    settings: `config.log_likelihood`.
    key: AIS randomness.
    gaussian: the Gaussian baseline fitted to the training data (`fit_gaussian_baseline`), or None;
      given, every split gets `{role}/gaussian_log_likelihood` (mean log-density, nats per example).
    chain_step_size: the training chains' adapted HMC step size (continuous AIS's default).
  """
  record = {}
  for role, x in splits.items():
    record.update(evaluate_split(model, params, x, role))
  roles = tuple(splits)
  if "val" in roles and "train" in roles:
    # Hinton's guide §6: a growing gap between held-out and training free energies signals overfitting.
    record["free_energy_gap"] = record["val/free_energy"] - record["train/free_energy"]
  if log_z_method != "none":
    record.update(log_partition(model, params, log_z_method, settings, key, splits["train"],
                                chain_step_size))
    if "log_z" in record:
      for role in roles:
        record[f"{role}/log_likelihood"] = -record[f"{role}/free_energy"] - record["log_z"]
        if "log_z_upper" in record:  # log p = −F − log Z falls as log Z rises: the bounds swap
          record[f"{role}/log_likelihood_lower"] = -record[f"{role}/free_energy"] - record["log_z_upper"]
          record[f"{role}/log_likelihood_upper"] = -record[f"{role}/free_energy"] - record["log_z_lower"]
  if gaussian is not None:
    for role, x in splits.items():
      record[f"{role}/gaussian_log_likelihood"] = float(np.mean(gaussian.log_prob(x.reshape(len(x), -1))))
  return record


def fit_gaussian_baseline(data: EnergyData) -> GaussianModel | None:
  """The maximum-likelihood Gaussian (`GaussianModel.fit`) of the whitened training data, or None when
  the data were not PCA-whitened.

  On whitened data (full rank by construction: PCA keeps only directions of non-zero variance) it is the
  PCA model the gated MRFs are compared with; other data (binary digits, standardised DC-removed patches
  that lie in a subspace) have no such comparison.
  """
  if data.whitening is None:
    return None
  train = data.splits["train"]
  return GaussianModel.fit(np.asarray(train, np.float64).reshape(len(train), -1))


def linear_evaluation(model, params, data: EnergyData, l2: tuple[float, ...]) -> dict[str, float]:
  """Test accuracy of logistic regression on the hidden probabilities, and on the raw inputs for reference.

  For each input (features, pixels) a classifier is fitted on the training split
  (`deepvision.models.logistic`) for every L2 weight in `l2`; the one with the best validation accuracy
  (the first of equals; the only one without a validation split) is reported with its test accuracy.
  Returns {} without labelled train and test splits.
  """
  if "train" not in data.labels or "test" not in data.labels:
    return {}
  features = jax.jit(lambda v: model.apply({"params": params}, v, method="hidden_probs"))
  out = {}
  for name, transform in (("feature", features), ("pixel", lambda v: v)):
    inputs = {role: np.asarray(transform(jnp.asarray(x.reshape(len(x), -1))))
              for role, x in data.splits.items() if role in data.labels}
    result = linear_readout.readout(inputs, data.labels, l2)
    out[f"test/{name}_accuracy"] = result.test_accuracy
    out[f"{name}_l2"] = result.l2
  return out
