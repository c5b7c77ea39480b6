"""The `contrastive` trainer: RBMs (and any energy model) trained with CD-k, PCD or FPCD from a config.

Same launcher, workdir layout and resume guarantees as the supervised trainer:
  1. the whole config is checked before any compute: names, fields, values, the data's feature size and
     value range against the model (binary visibles need data in [0, 1]);
  2. the data become float arrays (`energy_data`): whole images (`dv_digits`, catalog sets) or random
     patches (`patches.size > 0`, e.g. from `dv_natural_images`), optionally binarised or standardised per
     feature (the standardisation, fitted on the training data, is saved as `preprocessing.json`);
  3. training resumes from the newest checkpoint (parameters, optimiser, persistent chains, fast weights,
     key and data position), so a resumed run ends bitwise equal to an uninterrupted one;
  4. every evaluation (`energy_metrics`) writes to `metrics.jsonl`: reconstruction error, pseudo-likelihood (binary
     visibles), the free-energy gap between validation and training data (Hinton's overfitting monitor)
     and, when log Z is computed (exactly for small models, by AIS at the end otherwise), the
     log-likelihood;
  5. figures: filters, Gibbs sample chains, histograms of hidden activities and parameters, curves.
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

from deepvision import optim, parallel, zoo
from deepvision.checkpoint import Checkpointer
from deepvision.data import datasets, pipeline
from deepvision.data.patches import Standardizer
from deepvision.registry import UnknownNameError, check_choice
from deepvision.train import contrastive, loop, runner, workdir as workdirs
from deepvision.train.energy_data import EnergyData, check_model_data, prepare_data
from deepvision.train import energy_metrics
from deepvision.train.energy_metrics import evaluate, linear_evaluation
from deepvision.train.writers import MetricsWriter, Progress, read_metrics

ConfigError = loop.ConfigError
LOG_LIKELIHOOD = ("auto", "exact", "ais", "none")
# Fields that shape the train state or the data: a resumed run must not change them.
RUN_IDENTITY = ("trainer", "model", "model_kwargs", "dataset", "train_split", "patches", "preprocess",
                "batch_size", "seed", "num_epochs", "contrastive")


def contrastive_spec(config: ml_collections.ConfigDict) -> contrastive.ContrastiveSpec:
  """The `ContrastiveSpec` of `config.contrastive`; ConfigError on bad values."""
  c = config.contrastive.to_dict()
  options = tuple(sorted((c.pop("sampler_options", None) or {}).items()))
  c.pop("num_chains", None)
  try:
    return contrastive.ContrastiveSpec(sampler_options=options, **c)
  except (TypeError, ValueError, UnknownNameError) as e:
    raise ConfigError(f"config.contrastive: {e}") from None


def _as_tuple(value: Any) -> tuple:
  return tuple(value) if isinstance(value, (tuple, list)) else (value,)


@dataclasses.dataclass(frozen=True)
class ContrastivePlan:
  """Everything checked and resolved from the config before compute."""

  model: Any
  spec: contrastive.ContrastiveSpec
  data: EnergyData
  num_chains: int
  steps_per_epoch: int
  total_steps: int
  log_likelihood: str  # 'exact', 'ais' or 'none', resolved from 'auto'
  replicas: parallel.Replicas


def plan_contrastive(config: ml_collections.ConfigDict, data: EnergyData | None = None) -> ContrastivePlan:
  """Checks the config (and the data) before any compute; raises ConfigError naming the bad value."""
  try:
    model = zoo.create(config.model, **loop.model_kwargs(config))
  except (UnknownNameError, ValueError, TypeError) as e:
    raise ConfigError(f"config.model / config.model_kwargs: {e}") from None
  if not hasattr(model, "free_energy"):
    raise ConfigError(f"config.model {config.model!r} is not an energy model (no free_energy); the "
                      "contrastive trainer trains RBMs and gated MRFs")
  spec = contrastive_spec(config)
  batch_size = loop._positive_int(config, "batch_size")  # pylint: disable=protected-access
  loop._positive_int(config, "num_epochs")  # pylint: disable=protected-access
  for field in ("log_every_steps", "eval_every_steps", "checkpoint_every_steps", "seed"):
    loop._positive_int(config, field, allow_zero=True)  # pylint: disable=protected-access
  loop._positive_int(config, "keep_checkpoints")  # pylint: disable=protected-access
  num_chains = int(config.contrastive.get("num_chains", 0)) or batch_size
  if num_chains < 1:
    raise ConfigError(f"config.contrastive.num_chains must be >= 0 (0: the batch size), got {num_chains}")
  replicas = loop.replicas_for(config, batch_size)
  if spec.persistent:  # every device advances an equal share of the persistent chains
    loop.replicas_for(config, num_chains, what="contrastive.num_chains")
  ll = config.log_likelihood
  try:
    check_choice("log_likelihood.method", ll.method, LOG_LIKELIHOOD)
  except ValueError as e:
    raise ConfigError(f"config.{e}") from None
  enumerable = model.n_hidden if getattr(model, "visible_kind", "") == "gaussian" else min(
      model.n_visible, model.n_hidden)
  method = ll.method
  if method == "auto":
    method = "exact" if enumerable <= ll.exact_max_units else "ais"
  if method == "exact" and enumerable > ll.exact_max_units:
    raise ConfigError(f"config.log_likelihood.method='exact' would enumerate 2^{enumerable} states of "
                      f"{config.model!r}; the limit is log_likelihood.exact_max_units="
                      f"{ll.exact_max_units}: use 'ais'")
  if method == "ais" and ll.ais_runs < 1:
    raise ConfigError(f"config.log_likelihood.ais_runs must be >= 1, got {ll.ais_runs!r}")
  if method == "ais":
    try:
      energy_metrics.ais_schedule(ll)
    except ValueError as e:
      raise ConfigError(f"config.log_likelihood (ais_betas / ais_temperatures): {e}") from None

  weights = _as_tuple(config.linear_eval.l2)
  if config.linear_eval.enabled and (not weights or any(
      not isinstance(w, (int, float)) or w < 0 for w in weights)):
    raise ConfigError(f"config.linear_eval.l2 must be one or more L2 weights >= 0, got {config.linear_eval.l2!r}")

  data = prepare_data(config) if data is None else data
  check_model_data(model, data, config.model)
  n_train = len(data.splits["train"])
  if batch_size > n_train:
    raise ConfigError(f"config.batch_size={batch_size} exceeds the {n_train} training examples")
  if spec.persistent and num_chains > n_train:
    raise ConfigError(f"config.contrastive.num_chains={num_chains} exceeds the {n_train} training "
                      "examples the chains start from")
  steps_per_epoch = n_train // batch_size
  total_steps = steps_per_epoch * config.num_epochs
  try:
    optim.make_optimizer(config, total_steps)
  except (UnknownNameError, ValueError) as e:
    raise ConfigError(f"config.optimizer: {e}") from None
  return ContrastivePlan(model, spec, data, num_chains, steps_per_epoch, total_steps, method, replicas)


# ----------------------------------------------------------------------------- training


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
  plan = plan_contrastive(config, data)
  replicas, primary = plan.replicas, parallel.is_primary()
  quiet = quiet or not primary  # only process 0 talks
  workdir = workdirs.prepare(config, workdir, RUN_IDENTITY, write=primary)
  checkpoints = os.path.join(workdir, "checkpoints")
  train_x = plan.data.splits["train"]
  train_flat = train_x.reshape(len(train_x), -1)
  tx = optim.make_optimizer(config, plan.total_steps)
  lr_fn = optim.learning_rate_schedule(config, plan.total_steps)
  root = jax.random.key(config.seed)
  state_key, eval_key = jax.random.split(root)
  chain_start = train_flat[np.random.default_rng(config.seed).permutation(len(train_flat))[:plan.num_chains]]
  state = contrastive.create_state(plan.model, tx, state_key, plan.spec, chain_start)
  labels = plan.data.labels.get("train", np.zeros(len(train_x), np.int32))
  train_iter = pipeline.train_batches(datasets.ArraySource(train_x, labels), config.batch_size,
                                      seed=config.seed, shard=(parallel.process_index(), parallel.process_count()))

  checkpointer = Checkpointer(checkpoints, keep=config.keep_checkpoints,
                              metadata={"config_hash": workdirs.config_hash(config)})
  state, start, pending = runner.resume(checkpointer, state, train_iter)
  records = read_metrics(workdir)
  if start >= plan.total_steps and records and records[-1].get("final"):
    checkpointer.close()
    if not quiet:
      print(f"{workdir} already holds the finished run ({start} steps); nothing to do.")
    return records[-1], state.params
  if start and not quiet:
    print(f"Resuming from step {start} of {plan.total_steps} ({checkpointer.directory}).")
  writer = MetricsWriter(workdir, resume_step=start if start else None, enabled=primary)
  if plan.data.standardizer is not None and primary:
    with open(os.path.join(workdir, "preprocessing.json"), "w") as f:
      json.dump({"standardizer": plan.data.standardizer, "image_shape": plan.data.image_shape}, f)
  if not quiet:
    print(f"{config.model}: {zoo.count_params(state.params):,} parameters, {plan.spec.method.upper()}-"
          f"{plan.spec.k}; {config.dataset}: {len(train_x)} training examples of shape "
          f"{plan.data.image_shape}, {plan.total_steps} steps of {config.batch_size}.")

  def step_on_images(axis_name):
    contrastive_step = contrastive.make_train_step(plan.model, plan.spec, lr_fn, axis_name=axis_name)
    return lambda state, batch: contrastive_step(state, batch["image"])

  step_fn = step_on_images(replicas.axis_name)
  eval_every = config.eval_every_steps or plan.steps_per_epoch
  # A fixed training subset as large as the validation split, for the free-energy gap.
  n_val = len(plan.data.splits["val"]) if "val" in plan.data.splits else min(len(train_x), 1000)
  train_subset = train_x[np.random.default_rng(config.seed + 1).permutation(len(train_x))[:n_val]]
  eval_splits = {"train": train_subset, **{r: plan.data.splits[r] for r in ("val",) if r in plan.data.splits}}
  final_splits = {**eval_splits, **{r: plan.data.splits[r] for r in ("test",) if r in plan.data.splits}}
  # log Z at every evaluation when it is exact (cheap) or asked for; AIS otherwise only at the end.
  every_eval = plan.log_likelihood == "exact" or config.log_likelihood.get("ais_every_eval", False)
  periodic_log_z = plan.log_likelihood if every_eval else "none"

  def periodic_evaluation(state, step: int) -> dict | None:
    if step % eval_every or step == plan.total_steps:  # the last step gets the final evaluation below
      return None
    return evaluate(plan.model, replicas.host_state(state).params, eval_splits, periodic_log_z,
                    config.log_likelihood, jax.random.fold_in(eval_key, step))

  steps = runner.StepLoop(
      train_step=replicas.compile(runner.guard_step(step_fn)), replicas=replicas, total_steps=plan.total_steps,
      log_every=config.log_every_steps or plan.steps_per_epoch,
      checkpoint_every=config.checkpoint_every_steps or plan.total_steps, evaluate=periodic_evaluation,
      progress_keys=("train/cd_loss", "train/recon_error"),
      advice=f"lower the rate (learning rate {config.optimizer.learning_rate})")
  try:
    state = runner.run_steps(steps, replicas.place_state(state), train_iter, start, checkpointer, writer,
                             None if quiet else Progress(plan.total_steps, start_step=start), pending,
                             debug_step=step_on_images(None) if config.get("debug_nans", False) else None)
  except BaseException:
    writer.close()
    checkpointer.close()
    raise
  final = evaluate(plan.model, state.params, final_splits, plan.log_likelihood, config.log_likelihood,
                   jax.random.fold_in(eval_key, 0))
  if config.linear_eval.enabled:
    final.update(linear_evaluation(plan.model, state.params, plan.data, _as_tuple(config.linear_eval.l2)))
  record = writer.write(plan.total_steps, {**final, "final": True})
  writer.close()
  checkpointer.close()
  if config.get("figures", True) and primary:
    save_figures(plan, state, workdir, jax.random.fold_in(eval_key, 1))
  if parallel.process_count() > 1 and not quiet:
    print(f"parameters agree across {parallel.process_count()} processes: sha256 "
          f"{parallel.check_replicas_agree(state.params)}")
  elif parallel.process_count() > 1:
    parallel.check_replicas_agree(state.params)
  if not quiet:
    shown = {k: v for k, v in record.items() if k not in ("step", "final")}
    print("Done: " + ", ".join(f"{k} {v:.4f}" for k, v in shown.items()) +
          f"\n  metrics     {os.path.join(workdir, 'metrics.jsonl')}\n  checkpoints {checkpointer.directory}")
  return record, state.params


def save_figures(plan: ContrastivePlan, state, workdir: str, key: jax.Array) -> None:
  """filters.png, samples.png, histograms.png and curves.png in `workdir`.

  samples.png: ten chains started at held-out examples (first column); each further column shows
  E[v | h] of the chain's hidden sample after another 100 sampler steps (the mean reads better than a
  binary sample).
  """
  from deepvision.diagnostics import energy_viz, viz  # pylint: disable=g-import-not-at-top
  from deepvision.samplers.base import run_chain  # pylint: disable=g-import-not-at-top
  records = read_metrics(workdir)
  groups = (("train/recon_error", "val/recon_error"), ("train/pseudo_likelihood", "val/pseudo_likelihood"),
            ("train/log_likelihood", "val/log_likelihood"), ("free_energy_gap",))
  logged = {key for record in records for key in record}
  viz.save_curves(records, os.path.join(workdir, "curves.png"),
                  keys=tuple(g for g in groups if logged.intersection(g)))
  params = jax.device_get(state.params)
  shape = plan.data.image_shape
  if len(shape) < 2:  # not images (e.g. the features of a lower DBN layer): curves only
    return
  to_pixels = (Standardizer.from_dict(plan.data.standardizer) if plan.data.standardizer is not None
               else None)
  value_range = (0.0, 1.0) if getattr(plan.model, "visible_kind", "") == "binary" else None
  energy_viz.save_weight_filters(np.asarray(params["W"]), shape, os.path.join(workdir, "filters.png"),
                                 to_pixels=to_pixels)
  source = plan.data.splits.get("test", plan.data.splits.get("val", plan.data.splits["train"]))
  start = source[:10].reshape(min(10, len(source)), -1)
  sampler = plan.spec.make_sampler(plan.model, {"params": state.params})
  advance = jax.jit(lambda k, c: run_chain(k, sampler.step, c, 100)[0])
  mean = jax.jit(lambda h: plan.model.apply({"params": state.params}, h, method="visible_mean"))
  chain = sampler.init(jnp.asarray(start))
  snapshots = [np.asarray(chain.position)]
  for column in range(9):  # 10 columns: the examples, then E[v | h] every 100 sampler steps
    chain = advance(jax.random.fold_in(key, column), chain)
    hidden = getattr(chain, "hidden", None)  # Gibbs chains carry h; others show their position
    snapshots.append(np.asarray(chain.position if hidden is None else mean(hidden)))
  energy_viz.save_sample_chains(np.stack(snapshots), shape, os.path.join(workdir, "samples.png"),
                                title="Gibbs", value_range=value_range,
                                to_pixels=to_pixels)
  probs = plan.model.apply({"params": state.params}, jnp.asarray(source.reshape(len(source), -1)),
                           method="hidden_probs")
  energy_viz.save_histograms({"p(h=1|v), held-out data": np.asarray(probs), "W": params["W"],
                              "b_h": params["b_h"], "b_v": params["b_v"]},
                             os.path.join(workdir, "histograms.png"))


@loop.TRAINERS.register("contrastive")
def train_contrastive(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains an energy model with CD / PCD / FPCD; see the module docstring."""
  return run_contrastive(config, workdir)[0]
