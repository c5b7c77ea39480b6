r"""The `sparse_coding` task: online dictionary learning with FISTA codes, and PSD's encoder beside it.

Every step, on a mini-batch X of η examples (`models.sparse_coding`):

1. codes Z by FISTA (`models.fista`): the lasso codes for `sparse_coding`, the codes of the PSD energy
   (started at the encoder's prediction) for `psd`;
2. the statistics A ← β_t A + ZᵀZ/η, B ← β_t B + XᵀZ/η, and one sweep of block-coordinate descent over
   the unit-norm atoms of D (Mairal, Bach, Ponce & Sapiro 2009; 2010);
3. `psd` only: one optimiser step on the encoder along the gradient of E_PSD(X, Z) at the fixed codes,
   α·(F(X) − Z)·∂F, i.e. towards predicting the codes (Kavukcuoglu, Ranzato & LeCun 2008).

Why the online method rather than projected gradient steps on D: the block-coordinate step is the exact
minimiser of the surrogate over the unit sphere (no step size to tune), and A, B average the codes of all
past batches (forgetting the earliest), which removes most of the mini-batch noise a gradient step on D
carries; Mairal et al. prove convergence to a stationary point of the expected objective. It is also the
algorithm of scikit-learn's `MiniBatchDictionaryLearning`, the peer in `benchmarks/dictionary_learning.py`.

D starts at k random training examples, normalised (as Mairal et al. do); a shrinkage encoder starts at
W = D, θ = λ, the exact codes of an orthogonal dictionary. Training codes use the model's FISTA tolerance;
evaluations solve the lasso more tightly (`eval_tol`) and report the mean objective ½‖x − Dz*‖² + λ‖z*‖₁
per example on the held-out splits, the fraction of non-zero codes,
and for PSD the relative error of the encoder, ‖F(X) − Z*‖_F / ‖Z*‖_F against the lasso codes Z* of its
dictionary; the final record adds the localisation and orientation selectivity of the atoms in pixel space
(`estimators.receptive_fields`), and of the PCA components of the same patches when the data are whitened.
"""

from __future__ import annotations

import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import struct

from deepvision import config_blocks, distributed, optim, schema, zoo
from deepvision.data import datasets, pipeline
from deepvision.data.energy import (
  EnergyData,
  check_model_data,
  prepare_data,
  preprocessing_record,
)
from deepvision.errors import ConfigError
from deepvision.estimators import receptive_fields
from deepvision.figures import energy_viz, viz
from deepvision.models.fista import fista, lasso_objective
from deepvision.models.sparse_coding import accumulate, update_dictionary
from deepvision.schema import real, spec
from deepvision.train import fit, resolve
from deepvision.train.contrastive_loop import PREPROCESSING_FILE, check_preprocessing
from deepvision.train.runner import finite_flags
from deepvision.train.state import TrainState
from deepvision.train.writers import read_metrics


@dataclasses.dataclass(frozen=True)
class Whitening:
  """`whiten`: the PCA whitening of `preprocess='whiten'` (`data.energy`)."""

  variance: float = spec(0.99, real(0.0, 1.0, low_open=True), "fraction of the variance kept")
  epsilon: float = spec(0.0, real(0.0), "added to the eigenvalues")


@dataclasses.dataclass(frozen=True)
class SparseCodingConfig(config_blocks.Run):
  """The sparse coding trainer's config (experiments/configs/sparse_coding_patches.py, psd_patches.py)."""

  trainer: str = spec("sparse_coding", schema.text)
  model: str = spec("sparse_coding", schema.text)
  preprocess: str = spec("whiten", schema.one_of(("none", "standardize", "whiten")))
  patches: config_blocks.Patches = spec(config_blocks.Patches())
  whiten: Whitening = spec(Whitening())
  batch_size: int = spec(256, schema.at_least(1))
  eval_tol: float = spec(1e-6, real(0.0, low_open=True), "FISTA's tolerance for the evaluated lasso codes")
  eval_max_iter: int = spec(3000, schema.at_least(1), "FISTA's cap for the evaluated lasso codes")
  optimizer: config_blocks.Optimizer = spec(config_blocks.Optimizer(learning_rate=0.01, weight_decay=0.0),
                                            doc="the PSD encoder's; the dictionary has no rate")


class SparseCodingState(TrainState):
  """`TrainState` plus Mairal's statistics A (k × k) and B (n × k)."""

  A: jax.Array = struct.field(default=None)
  B: jax.Array = struct.field(default=None)


def _flat(x):
  return jnp.reshape(x, (x.shape[0], -1))


class SparseCodingTask(fit.Task):
  """Learns the dictionary (and the PSD encoder) of `model` on `data.splits['train']`: module docstring."""

  identity = ("trainer", "model", "model_kwargs", "dataset", "train_split", "preprocess", "batch_size", "seed",
              "num_epochs", "patches", "whiten")
  progress_keys = ("train/objective",)

  def __init__(self, config: ml_collections.ConfigDict, run: SparseCodingConfig, model, data: EnergyData):
    self.config, self.run, self.model, self.data = config, run, model, data
    self.psd = hasattr(model, "predict")
    self.replicas = resolve.replicas_for(config, run.batch_size)
    steps_per_epoch = len(data.splits["train"]) // run.batch_size
    if steps_per_epoch < 1:
      raise ConfigError(f"config.batch_size {run.batch_size} exceeds the {len(data.splits['train'])} "
                        "training examples")
    self.schedule = fit.default_schedule(config, steps_per_epoch * run.num_epochs, steps_per_epoch)
    encoder = optim.make_optimizer(config, self.schedule.total_steps)
    self.tx = optax.multi_transform({"encoder": encoder, "dictionary": optax.set_to_zero()},
                                    lambda params: {k: "dictionary" if k == "D" else "encoder" for k in params})
    self.advice = f"lower the encoder's rate (learning rate {run.optimizer.learning_rate})"
    self._lasso_codes = jax.jit(lambda params, x: fista(x, params["D"], model.lam, tol=run.eval_tol,
                                                        max_iter=run.eval_max_iter)[0])
    self._predict = jax.jit(lambda params, x: model.apply({"params": params}, x, method="predict"))

  def start(self, workdir, resuming):
    check_preprocessing(workdir, self.data, resuming)

  def init_state(self) -> SparseCodingState:
    init_key, step_key, atom_key = jax.random.split(jax.random.key(self.run.seed), 3)
    x = self.data.splits["train"]
    params = self.model.init(init_key, jnp.zeros((1, *x.shape[1:]), jnp.float32))["params"]
    k = params["D"].shape[1]
    rows = np.asarray(jax.random.choice(atom_key, len(x), (k,), replace=len(x) < k))
    atoms = np.asarray(x[rows], np.float32).reshape(k, -1).T
    norms = np.linalg.norm(atoms, axis=0, keepdims=True)
    params = {**params, "D": jnp.asarray(np.where(norms > 0, atoms / np.maximum(norms, 1e-12), params["D"]))}
    if "theta" in params:  # a shrinkage encoder starts at the codes of an orthogonal D: S_λ(Dᵀx)
      params = {**params, "W": jnp.copy(params["D"]), "theta": jnp.full_like(params["theta"], self.model.lam)}
    n = params["D"].shape[0]
    state = SparseCodingState.create(apply_fn=self.model.apply, params=params, tx=self.tx, key=step_key,
                                     A=jnp.zeros((k, k), jnp.float32), B=jnp.zeros((n, k), jnp.float32))
    return state.replace(step=jnp.zeros((), jnp.int32))

  def train_batches(self):
    x = self.data.splits["train"]
    return pipeline.train_batches(datasets.ArraySource(x, np.zeros(len(x), np.int32)), self.run.batch_size,
                                  seed=self.run.seed, shard=(distributed.process_index(), distributed.process_count()))

  def make_step(self, axis_name):
    model, lam = self.model, self.model.lam

    def step(state: SparseCodingState, batch):
      key = jax.random.fold_in(state.key, state.step)  # the same on every device: D stays replicated
      x = _flat(batch["image"]).astype(jnp.float32)
      D = state.params["D"]
      z = jax.lax.stop_gradient(model.apply({"params": state.params}, x, method="codes"))
      objective, active = lasso_objective(x, D, z, lam).mean(), jnp.mean(z != 0)

      def loss_fn(params):
        return model.apply({"params": params}, x, z, method="energy").mean()

      loss, grads = jax.value_and_grad(loss_fn)(state.params)
      A, B = accumulate(state.A, state.B, x, z, state.step + 1)
      pool = x
      if axis_name is not None:
        loss, grads, objective, active, A, B = jax.lax.pmean((loss, grads, objective, active, A, B), axis_name)
        pool = jax.lax.all_gather(x, axis_name).reshape(-1, x.shape[1])
      replacements = pool[jax.random.randint(key, (D.shape[1],), 0, pool.shape[0])].T
      new_D = update_dictionary(D, A, B, replacements)
      state = state.apply_gradients(grads=grads)
      state = state.replace(params={**state.params, "D": new_D}, A=A, B=B)
      metrics = {"train/objective": objective, "train/active": active, **finite_flags(loss, grads, state.params)}
      if self.psd:
        metrics["train/psd_energy"] = loss
      return state, metrics

    return step

  def _measures(self, params, role: str) -> dict[str, float]:
    x = jnp.asarray(_flat(self.data.splits[role]))
    z = self._lasso_codes(params, x)
    out = {f"{role}/objective": float(jnp.mean(lasso_objective(x, params["D"], z, self.model.lam))),
           f"{role}/active": float(jnp.mean(z != 0))}
    if self.psd:
      error = jnp.linalg.norm(self._predict(params, x) - z) / jnp.maximum(jnp.linalg.norm(z), 1e-12)
      out[f"{role}/prediction_error"] = float(error)
    return out

  def evaluate(self, state, step):
    if step == self.schedule.total_steps or "val" not in self.data.splits:
      return None
    return self._measures(state.params, "val")

  def final_evaluation(self, state):
    out = {}
    for role in ("val", "test"):
      if role in self.data.splits:
        out.update(self._measures(state.params, role))
    out.update(atom_statistics(np.asarray(state.params["D"]), self.data))
    return out

  def began(self, workdir, state, start):
    record = preprocessing_record(self.data)
    if record is not None and distributed.is_primary() and not start:
      with open(os.path.join(workdir, PREPROCESSING_FILE), "w") as f:
        json.dump(record, f)

  def save_figures(self, state, workdir):
    keys = [("train/objective", "val/objective")]
    if self.psd:
      keys.append(("val/prediction_error",))
    viz.save_curves(read_metrics(workdir), os.path.join(workdir, "curves.png"), keys=tuple(keys))
    shape = self.data.pixel_shape or self.data.image_shape
    if len(shape) < 2:
      return
    energy_viz.save_weight_filters(pixel_filters(np.asarray(state.params["D"]), self.data, "patterns"), shape,
                                   os.path.join(workdir, "filters.png"), title="atoms")
    if self.psd:
      energy_viz.save_weight_filters(pixel_filters(np.asarray(state.params["W"]), self.data, "weights"), shape,
                                     os.path.join(workdir, "encoder_filters.png"), title="encoder filters")


def pixel_filters(filters: np.ndarray, data: EnergyData, kind: str) -> np.ndarray:
  """(n, k) columns of the model's space as pixel-space columns: de-whitened when the data were whitened
  (`PCAWhitening.filters_to_pixels`: 'patterns' for atoms, which generate data; 'weights' for filters,
  which are applied to it), else as they are."""
  whitener = data.whitener
  return filters if whitener is None else whitener.filters_to_pixels(filters, kind)


def atom_statistics(D: np.ndarray, data: EnergyData) -> dict[str, float]:
  """Mean localisation and orientation selectivity of the atoms in pixel space (`atoms/...`), and of the
  PCA components of the whitening (`pca/...`) when there is one; {} when the examples are not images."""
  shape = data.pixel_shape or data.image_shape
  if len(shape) < 2 or (len(shape) == 3 and shape[2] != 1):
    return {}
  shape = tuple(shape[:2])
  out = {f"atoms/{k}": v for k, v in receptive_fields.summary(pixel_filters(D, data, "patterns"), shape).items()}
  if data.whitener is not None:
    components = data.whitener.components
    out.update({f"pca/{k}": v for k, v in receptive_fields.summary(components, shape).items()})
  return out


def load_data(config: ml_collections.ConfigDict, run: SparseCodingConfig, model) -> EnergyData:
  """The examples of the config, checked against the model's input size."""
  data = prepare_data(config)
  check_model_data(model, data, run.model)
  return data


def build_task(config: ml_collections.ConfigDict) -> SparseCodingTask:
  """Checks the config, builds the model and reads the data: the task `fit` runs."""
  run = schema.load(SparseCodingConfig, config)
  try:
    model = zoo.create(run.model, **resolve.model_kwargs(config))
  except (KeyError, ValueError, TypeError) as e:
    raise ConfigError(f"config.model / config.model_kwargs: {e}") from None
  if not hasattr(model, "lam") or "D" not in zoo.abstract_variables(model)["params"]:
    raise ConfigError(f"config.model {run.model!r} is not a sparse coding model (sparse_coding, psd, ...)")
  return SparseCodingTask(config, run, model, load_data(config, run, model))


def train_sparse_coding(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains the dictionary (and the PSD encoder) of `config` (`fit`); returns the final record."""
  return fit.fit(build_task(config), config, workdir)[0]

