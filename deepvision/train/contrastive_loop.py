"""The contrastive task: an energy model (RBM, GRBM, mcRBM, mPoT, tiled) trained by CD-k, PCD or FPCD.

`plan_contrastive` checks the config (`config_blocks.Contrastive`, then the model against the data, the
log-likelihood method and the gated-MRF recipe) before any compute; `ContrastiveTask` is what `fit` runs:
the step of `contrastive.py` on the arrays of `data.energy` (the fitted standardisation or whitening kept
as `preprocessing.json` and checked on resume), evaluations from `estimators.energy_metrics` (exact log Z
or AIS, Salakhutdinov & Murray 2008), figures from `figures.energy_figures`. Gated MRFs follow the original
recipe of Ranzato & Hinton (2010) when the config has a `gated_mrf` block (`gated_mrf_recipe`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from deepvision import config_blocks, distributed, optim, parallel, schema, zoo
from deepvision.data import datasets, pipeline
from deepvision.data.energy import (PREPROCESSING_FILE, EnergyData, check_model_data, check_preprocessing,
                                    prepare_data, preprocessing_record)
from deepvision.errors import ConfigError
from deepvision.estimators import energy_metrics
from deepvision.estimators.energy_metrics import evaluate, fit_gaussian_baseline, linear_evaluation
from deepvision.figures import energy_figures
from deepvision.models import gated_mrf
from deepvision.registry import UnknownNameError
from deepvision.samplers.hmc_chains import chain_step_size
from deepvision.train import contrastive, fit, resolve

# Fields that shape the train state or the data: a resumed run must not change them.
RUN_IDENTITY = ("trainer", "model", "model_kwargs", "dataset", "train_split", "patches", "preprocess",
                "whiten", "batch_size", "seed", "num_epochs", "contrastive", "gated_mrf")


def _pooling_mask(name_or_mask: Any, model: Any) -> np.ndarray | None:
  """The mask P is projected under (`config_blocks.GatedMRF.pooling_mask`), checked against the model."""
  shape = (model.n_factors, model.n_cov)
  if isinstance(name_or_mask, str):
    try:
      return {"model": model.pooling_mask, "none": lambda: None,
              "identity": lambda: np.eye(*shape, dtype=np.float32),
              "topographic": lambda: gated_mrf.topographic_mask(*shape)}[name_or_mask]()
    except ValueError as e:
      raise ConfigError(f"config.gated_mrf.pooling_mask={name_or_mask!r}: {e}") from None
  mask = np.asarray(name_or_mask, np.float32)
  if mask.shape != shape:
    raise ConfigError(f"config.gated_mrf.pooling_mask must be (n_factors, n_cov) = {shape} for "
                      f"{type(model).__name__}, got an array of shape {mask.shape}")
  return mask


def gated_mrf_recipe(run: config_blocks.Contrastive, model: Any,
                     steps_per_epoch: int) -> contrastive.GatedMRFRecipe | None:
  """The `GatedMRFRecipe` of the checked `gated_mrf` block (None without one)."""
  block = run.gated_mrf
  if block is None:
    return None
  if not all(hasattr(model, field) for field in ("n_factors", "n_cov")):
    raise ConfigError(f"config.gated_mrf constrains the factors C and pooling P of a gated MRF (mcrbm, "
                      f"mpot); config.model {run.model!r} has none: remove the gated_mrf block")
  return contrastive.GatedMRFRecipe(
      pooling_frozen_steps=block.pooling_frozen_epochs * steps_per_epoch, project_pooling=block.project_pooling,
      pooling_mask=_pooling_mask(block.pooling_mask, model), normalize_factors=block.normalize_factors,
      factor_norm_decay=block.factor_norm_decay)


def _check_optimizer(config: ml_collections.ConfigDict, model: Any, total_steps: int,
                     steps_per_epoch: int) -> None:
  """ConfigError unless the optimiser builds and its lr_multipliers name parameters of the model."""
  try:
    optim.make_optimizer(config, total_steps, steps_per_epoch)
    multipliers = config.optimizer.get("lr_multipliers", None)
    if multipliers:
      shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, model.n_visible)),
                                                 method="free_energy"))["params"]
      optim.parameter_multipliers(shapes, dict(multipliers))
  except (UnknownNameError, ValueError, TypeError) as e:
    raise ConfigError(f"config.optimizer: {e}") from None


def _log_likelihood_method(run: config_blocks.Contrastive, model: Any) -> str:
  """'exact', 'ais' or 'none': `log_likelihood.method` with 'auto' resolved for `model`."""
  ll, method = run.log_likelihood, run.log_likelihood.method
  if energy_metrics.anneals_hidden_units(model):
    enumerable = model.n_hidden if getattr(model, "visible_kind", "") == "gaussian" else min(
        model.n_visible, model.n_hidden)
    if method == "auto":
      method = "exact" if enumerable <= ll.exact_max_units else "ais"
    if method == "exact" and enumerable > ll.exact_max_units:
      raise ConfigError(f"config.log_likelihood.method='exact' would enumerate 2^{enumerable} states of "
                        f"{run.model!r}; the limit is log_likelihood.exact_max_units="
                        f"{ll.exact_max_units}: use 'ais'")
  elif method == "exact":  # continuous visibles without a binary hidden layer (gated MRFs): AIS with HMC
    raise ConfigError(f"config.log_likelihood.method='exact' has no enumeration for {run.model!r} "
                      "(continuous visibles): use 'ais' (or 'auto')")
  else:
    method = "ais" if method == "auto" else method
  if method == "ais":
    try:
      energy_metrics.ais_schedule(dataclasses.asdict(ll))
    except ValueError as e:
      raise ConfigError(f"config.log_likelihood (ais_betas / ais_temperatures): {e}") from None
  return method


@dataclasses.dataclass(frozen=True)
class ContrastivePlan:
  """Everything checked and resolved from the config before compute."""

  run: config_blocks.Contrastive
  model: Any
  spec: contrastive.ContrastiveSpec
  data: EnergyData | None  # None when planned from the number of training examples alone
  num_chains: int
  steps_per_epoch: int
  total_steps: int
  log_likelihood: str  # 'exact', 'ais' or 'none', resolved from 'auto'
  replicas: parallel.Replicas
  recipe: contrastive.GatedMRFRecipe | None = None


def plan_contrastive(config: ml_collections.ConfigDict, data: EnergyData | None = None,
                     n_train: int | None = None) -> ContrastivePlan:
  """Checks the config (`config_blocks.Contrastive`, then what depends on the model and the data) before
  any compute; raises ConfigError naming the bad value.

  Args:
    config: a contrastive config.
    data: the examples (default: `prepare_data(config)`).
    n_train: instead of the data, only their number of training examples: every check but the data's
      (the upper layers of a stack, trained on the features of the layer below); the plan holds no data.
  """
  run = schema.load(config_blocks.Contrastive, config)
  try:
    model = zoo.create(run.model, **resolve.model_kwargs(config))
  except (UnknownNameError, ValueError, TypeError) as e:
    raise ConfigError(f"config.model / config.model_kwargs: {e}") from None
  if not hasattr(model, "free_energy"):
    raise ConfigError(f"config.model {run.model!r} is not an energy model (no free_energy); the "
                      "contrastive trainer trains RBMs and gated MRFs")
  settings = dataclasses.asdict(run.contrastive)
  options = tuple(sorted(settings.pop("sampler_options").items()))
  settings.pop("num_chains")
  try:
    spec = contrastive.ContrastiveSpec(sampler_options=options, **settings)
    spec.make_sampler(model, {"params": {}})  # the sampler's options, checked without compute
  except (TypeError, ValueError, UnknownNameError) as e:
    raise ConfigError(f"config.contrastive (sampler {run.contrastive.sampler!r}): {e}") from None
  batch_size = run.batch_size
  num_chains = run.contrastive.num_chains or batch_size
  if not spec.persistent:  # CD's chains (an adaptive sampler's state) are the batch
    num_chains = batch_size
  replicas = resolve.replicas_for(config, batch_size)
  if spec.keeps_chains:  # every device advances an equal share of the chains
    resolve.replicas_for(config, num_chains, what="contrastive.num_chains")
  method = _log_likelihood_method(run, model)
  gated_mrf_recipe(run, model, 1)  # the gated-MRF block, checked before the data are read

  if n_train is None:
    data = prepare_data(config) if data is None else data
    check_model_data(model, data, run.model)
    n_train = len(data.splits["train"])
  if batch_size > n_train:
    raise ConfigError(f"config.batch_size={batch_size} exceeds the {n_train} training examples")
  if spec.persistent and num_chains > n_train:
    raise ConfigError(f"config.contrastive.num_chains={num_chains} exceeds the {n_train} training "
                      "examples the chains start from")
  steps_per_epoch = n_train // batch_size
  total_steps = steps_per_epoch * run.num_epochs
  _check_optimizer(config, model, total_steps, steps_per_epoch)
  recipe = gated_mrf_recipe(run, model, steps_per_epoch)
  return ContrastivePlan(run, model, spec, data, num_chains, steps_per_epoch, total_steps, method, replicas, recipe)


# ----------------------------------------------------------------------------- training


class ContrastiveTask(fit.Task):
  """An energy model trained with CD-k / PCD / FPCD on `plan.data` (see the module docstring)."""

  identity = RUN_IDENTITY
  progress_keys = ("train/cd_loss", "train/recon_error", "sampler/acceptance_rate")

  def __init__(self, plan: ContrastivePlan, config: ml_collections.ConfigDict, quiet: bool = False):
    self.plan, self.config, self.quiet = plan, config, quiet
    self.replicas = plan.replicas
    self.schedule = fit.default_schedule(config, plan.total_steps, plan.steps_per_epoch)
    self.advice = f"lower the rate (learning rate {config.optimizer.learning_rate})"
    self.lr_fn = optim.learning_rate_schedule(config, plan.total_steps, plan.steps_per_epoch)
    self.state_key, self.eval_key = jax.random.split(jax.random.key(config.seed))
    train_x = plan.data.splits["train"]
    # A fixed training subset as large as the validation split, for the free-energy gap.
    n_val = len(plan.data.splits["val"]) if "val" in plan.data.splits else min(len(train_x), 1000)
    subset = train_x[np.random.default_rng(config.seed + 1).permutation(len(train_x))[:n_val]]
    self.eval_splits = {"train": subset, **{r: plan.data.splits[r] for r in ("val",) if r in plan.data.splits}}
    self.final_splits = {**self.eval_splits,
                         **{r: plan.data.splits[r] for r in ("test",) if r in plan.data.splits}}
    # log Z at every evaluation when it is exact (cheap) or asked for; AIS otherwise only at the end.
    every_eval = plan.log_likelihood == "exact" or plan.run.log_likelihood.ais_every_eval
    self.periodic_log_z = plan.log_likelihood if every_eval else "none"

  def start(self, workdir, resuming):
    check_preprocessing(workdir, self.plan.data, resuming)

  def init_state(self):
    plan, config = self.plan, self.config
    train_x = plan.data.splits["train"]
    train_flat = train_x.reshape(len(train_x), -1)
    tx = optim.make_optimizer(config, plan.total_steps, plan.steps_per_epoch)
    chain_start = train_flat[np.random.default_rng(config.seed).permutation(len(train_flat))[:plan.num_chains]]
    return contrastive.create_state(plan.model, tx, self.state_key, plan.spec, chain_start, plan.recipe)

  def train_batches(self):
    train_x = self.plan.data.splits["train"]
    labels = self.plan.data.labels.get("train", np.zeros(len(train_x), np.int32))
    return pipeline.train_batches(datasets.ArraySource(train_x, labels), self.config.batch_size,
                                  seed=self.config.seed,
                                  shard=(distributed.process_index(), distributed.process_count()))

  def make_step(self, axis_name):
    step = contrastive.make_train_step(self.plan.model, self.plan.spec, self.lr_fn, axis_name=axis_name,
                                       recipe=self.plan.recipe)
    return lambda state, batch: step(state, batch["image"])

  def began(self, workdir, state, start):
    plan, config = self.plan, self.config
    record = preprocessing_record(plan.data)
    if record is not None and distributed.is_primary() and not start:
      with open(os.path.join(workdir, PREPROCESSING_FILE), "w") as f:
        json.dump(record, f)
    if not self.quiet and distributed.is_primary():
      print(f"{config.model}: {zoo.count_params(state.params):,} parameters, {plan.spec.method.upper()}-"
            f"{plan.spec.k}; {config.dataset}: {len(plan.data.splits['train'])} training examples of shape "
            f"{plan.data.image_shape}, {plan.total_steps} steps of {config.batch_size}.")

  def evaluate(self, state, step):
    if step == self.plan.total_steps:  # the last step gets the final evaluation
      return None
    return evaluate(self.plan.model, state.params, self.eval_splits, self.periodic_log_z,
                    self.config.log_likelihood, jax.random.fold_in(self.eval_key, step))

  def final_evaluation(self, state):
    plan, config = self.plan, self.config
    final = evaluate(plan.model, state.params, self.final_splits, plan.log_likelihood, config.log_likelihood,
                     jax.random.fold_in(self.eval_key, 0), gaussian=fit_gaussian_baseline(plan.data),
                     chain_step_size=chain_step_size(state.chains))
    if plan.run.linear_eval.enabled:
      final.update(linear_evaluation(plan.model, state.params, plan.data, plan.run.linear_eval.l2))
    return final

  def save_figures(self, state, workdir):
    energy_figures.save_figures(self.plan, state, workdir, jax.random.fold_in(self.eval_key, 1), self.config)


def run_contrastive(config: ml_collections.ConfigDict, workdir: str, data: EnergyData | None = None,
                    quiet: bool = False) -> tuple[dict, Any]:
  """Trains the energy model of `config` in `workdir` (resuming if it holds a checkpoint).

  Args:
    config: a contrastive experiment config (experiments/configs/common.py: `contrastive_config`).
    workdir: the run's directory.
    data: the examples to train on (default: `prepare_data(config)`), e.g. the hidden probabilities of
      the layer below when stacking a DBN.
    quiet: no progress line and no closing summary.

  Returns:
    `(record, params)`: the final metrics record (with the test metrics when there is a test split) and
    the trained parameters.
  """
  return fit.fit_params(ContrastiveTask(plan_contrastive(config, data), config, quiet), config, workdir)


def train_contrastive(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains an energy model with CD / PCD / FPCD; see the module docstring."""
  return run_contrastive(config, workdir)[0]
