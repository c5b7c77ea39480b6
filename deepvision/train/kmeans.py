r"""The `kmeans` task: spherical k-means centroids (`models.kmeans`) learned by full-batch Lloyd iterations.

Each pass over the training set is one Lloyd iteration: every step assigns the examples of its batch to
their nearest centroids with the centroids of the pass, adds them to per-centroid sums and counts kept in
the state, and the last step of the pass replaces each centroid by its normalised sum (re-seeding the
empty ones at random examples of that batch, drawn from `fold_in(key, step)`) and clears the sums. With
`batch_size` ≥ N (the default, `FULL_BATCH`) a batch is the whole training set and each step is one
iteration; a smaller `batch_size` splits each pass into ⌊N / batch_size⌋ batches (reshuffled every pass,
the N mod batch_size examples left over dropped), for data too large to assign at once.

Why full-batch Lloyd rather than mini-batch (Sculley-style per-centroid rates): Coates & Ng iterate
full-batch updates; one iteration over the default config's 40,000 × 52 patches with 256 centroids takes about
a quarter of a second on 2 CPU cores (most of it XLA:CPU's argmax over the similarities); it has no rate to
tune; and it never increases the objective (`models.kmeans`), which the tests check. Mini-batch updates would
only pay on data sets far larger than the ones here.

The centroids start at k-means++ seeds of the training set (`models.kmeans.kmeans_plus_plus`). On the
well-separated clusters of the tests, seeding at uniformly drawn examples can put two centroids in one
cluster and stay there; on the default config's patches the difference is small (distortion after 20
iterations 10.876-10.879 from k-means++ seeds against 10.880-10.885 from drawn examples, seeds 0-2).

Evaluations report on the held-out splits the mean distortion J = mean min_k ‖x − c_k‖² (`objective`),
the mean cosine max_k c_k·x/‖x‖ (`cosine`) and the fraction of centroids that are no example's nearest
(`empty`). The final record adds the fraction of dead centroids on the training set (`centroids/empty`)
and the localisation and orientation selectivity of the centroids in pixel space
(`estimators.receptive_fields`, the centroids de-whitened as patterns, like the sparse coder's atoms), and
of the PCA components of the same patches when the data are whitened (`pca/...`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import struct

from deepvision import config_blocks, distributed, schema, zoo
from deepvision.data import datasets, pipeline
from deepvision.data.energy import EnergyData, prepare_data, preprocessing_record
from deepvision.errors import ConfigError
from deepvision.estimators import receptive_fields
from deepvision.figures import energy_viz, viz
from deepvision.models import kmeans as kmeans_model
from deepvision.schema import spec
from deepvision.train import fit, resolve
from deepvision.train.contrastive_loop import PREPROCESSING_FILE, check_preprocessing
from deepvision.train.runner import finite_flags
from deepvision.train.sparse_coding import pixel_filters
from deepvision.train.state import TrainState
from deepvision.train.writers import read_metrics

FULL_BATCH = 1_000_000  # the default batch size: any training set up to this size in one batch


@dataclasses.dataclass(frozen=True)
class KMeansConfig(config_blocks.Run):
  """The k-means trainer's config (experiments/configs/kmeans_patches.py)."""

  trainer: str = spec("kmeans", schema.text)
  model: str = spec("kmeans", schema.text)
  preprocess: str = spec("whiten", schema.one_of(("none", "standardize", "whiten")))
  patches: config_blocks.Patches = spec(config_blocks.Patches())
  whiten: config_blocks.Whiten = spec(config_blocks.Whiten())
  batch_size: int = spec(FULL_BATCH, schema.at_least(1), "examples per step; the training set's size or "
                         "more = all of them (one Lloyd iteration per step)")
  num_epochs: int = spec(10, schema.at_least(1), "Lloyd iterations (passes over the training set)")


class KMeansState(TrainState):
  """`TrainState` (params = {'C': centroids}) plus the pass's per-centroid sums (K, D) and counts (K,)."""

  sums: jax.Array = struct.field(default=None)
  counts: jax.Array = struct.field(default=None)


def _flat(x):
  return jnp.reshape(x, (x.shape[0], -1))


class KMeansTask(fit.Task):
  """Learns the centroids of `model` on `data.splits['train']`: module docstring."""

  identity = ("trainer", "model", "model_kwargs", "dataset", "train_split", "preprocess", "batch_size", "seed",
              "num_epochs", "patches", "whiten")
  progress_keys = ("train/objective",)
  advice = "check the data for non-finite values"

  def __init__(self, config: ml_collections.ConfigDict, run: KMeansConfig, model, data: EnergyData,
               quiet: bool = False):
    self.config, self.run, self.model, self.data, self.quiet = config, run, model, data, quiet
    n = len(data.splits["train"])
    self.batch_size = min(run.batch_size, n)
    self.replicas = resolve.replicas_for(config, self.batch_size)
    self.steps_per_pass = n // self.batch_size
    self.schedule = fit.default_schedule(config, self.steps_per_pass * run.num_epochs, self.steps_per_pass)
    self._measure = jax.jit(_split_measures)

  def start(self, workdir, resuming):
    check_preprocessing(workdir, self.data, resuming)

  def init_state(self) -> KMeansState:
    init_key, step_key, seed_key = jax.random.split(jax.random.key(self.run.seed), 3)
    x = self.data.splits["train"]
    params = self.model.init(init_key, jnp.zeros((1, *x.shape[1:]), jnp.float32))["params"]
    k, d = params["C"].shape
    seeds = kmeans_model.kmeans_plus_plus(seed_key, jnp.asarray(_flat(x), jnp.float32), k)
    norms = jnp.linalg.norm(seeds, axis=1, keepdims=True)
    params = {"C": jnp.where(norms > 0, seeds, params["C"])}  # all-zero data: the model's random directions
    state = KMeansState.create(apply_fn=self.model.apply, params=params, tx=optax.set_to_zero(), key=step_key,
                               sums=jnp.zeros((k, d), jnp.float32), counts=jnp.zeros((k,), jnp.float32))
    return state.replace(step=jnp.zeros((), jnp.int32))

  def train_batches(self):
    x = self.data.splits["train"]
    return pipeline.train_batches(datasets.ArraySource(x, np.zeros(len(x), np.int32)), self.batch_size,
                                  seed=self.run.seed, shard=(distributed.process_index(), distributed.process_count()))

  def make_step(self, axis_name):
    steps_per_pass = self.steps_per_pass

    def step(state: KMeansState, batch):
      x = _flat(batch["image"]).astype(jnp.float32)
      C = state.params["C"]
      sums, counts = kmeans_model.cluster_sums(x, C)
      objective = jnp.mean(kmeans_model.distortion(x, C))
      pool = x
      if axis_name is not None:
        sums, counts = jax.lax.psum((sums, counts), axis_name)
        objective = jax.lax.pmean(objective, axis_name)
        pool = jax.lax.all_gather(x, axis_name).reshape(-1, x.shape[1])
      sums, counts = state.sums + sums, state.counts + counts
      key = jax.random.fold_in(state.key, state.step)  # the same on every device: C stays replicated
      updated = kmeans_model.update_centroids(C, sums, counts, kmeans_model.random_examples(key, pool, C.shape[0]))
      end = (state.step + 1) % steps_per_pass == 0
      state = state.replace(step=state.step + 1, params={"C": jnp.where(end, updated, C)},
                            sums=jnp.where(end, 0.0, sums), counts=jnp.where(end, 0.0, counts))
      metrics = {"train/objective": objective, **finite_flags(objective, sums, state.params)}
      return state, metrics

    return step

  def _measures(self, params, role: str) -> dict[str, float]:
    x = jnp.asarray(_flat(self.data.splits[role]), jnp.float32)
    objective, cosine, empty = self._measure(params["C"], x)
    name = "centroids" if role == "train" else role
    out = {f"{name}/empty": float(empty)}
    if role != "train":
      out.update({f"{role}/objective": float(objective), f"{role}/cosine": float(cosine)})
    return out

  def evaluate(self, state, step):
    if step == self.schedule.total_steps or "val" not in self.data.splits:
      return None
    return self._measures(state.params, "val")

  def final_evaluation(self, state):
    out = {}
    for role in ("val", "test", "train"):
      if role in self.data.splits:
        out.update(self._measures(state.params, role))
    out.update(centroid_statistics(np.asarray(state.params["C"]), self.data))
    return out

  def began(self, workdir, state, start):
    record = preprocessing_record(self.data)
    if record is not None and distributed.is_primary() and not start:
      with open(os.path.join(workdir, PREPROCESSING_FILE), "w") as f:
        json.dump(record, f)

  def save_figures(self, state, workdir):
    viz.save_curves(read_metrics(workdir), os.path.join(workdir, "curves.png"),
                    keys=(("train/objective", "val/objective"),))
    shape = self.data.pixel_shape or self.data.image_shape
    if len(shape) < 2:
      return
    energy_viz.save_weight_filters(pixel_filters(np.asarray(state.params["C"]).T, self.data, "patterns"), shape,
                                   os.path.join(workdir, "filters.png"), title="centroids")


def _split_measures(C, x):
  """(mean distortion, mean cosine max_k c_k·x/‖x‖, fraction of centroids nearest to no example) of x."""
  similarity = x @ C.T
  norms = jnp.linalg.norm(x, axis=1)
  cosine = jnp.max(similarity, axis=1) / jnp.where(norms > 0, norms, 1.0)
  used = jnp.zeros(C.shape[0], bool).at[jnp.argmax(similarity, axis=1)].set(True)
  return jnp.mean(kmeans_model.distortion(x, C)), jnp.mean(cosine), jnp.mean(~used)


def centroid_statistics(C: np.ndarray, data: EnergyData) -> dict[str, float]:
  """Mean localisation and orientation selectivity of the centroids (K, n) in pixel space
  (`centroids/...`), and of the whitening's PCA components (`pca/...`) when there is one; {} unless the
  examples are grey images."""
  shape = data.pixel_shape or data.image_shape
  if len(shape) < 2 or (len(shape) == 3 and shape[2] != 1):
    return {}
  shape = tuple(shape[:2])
  pixels = pixel_filters(C.T, data, "patterns")
  out = {f"centroids/{k}": v for k, v in receptive_fields.summary(pixels, shape).items()}
  if data.whitener is not None:
    out.update({f"pca/{k}": v for k, v in receptive_fields.summary(data.whitener.components, shape).items()})
  return out


def patch_preprocessing(config: ml_collections.ConfigDict, data: EnergyData) -> kmeans_model.PatchPreprocessing:
  """The preprocessing of a run's training patches (its config and `prepare_data(config)`) as a
  `PatchPreprocessing`, for `models.kmeans.convolutional_features`.

  Raises:
    ConfigError: the data were binarised (not an affine map of the patch).
  """
  if config.preprocess not in ("none", "standardize", "whiten"):
    raise ConfigError(f"config.preprocess {config.preprocess!r}: convolutional features need an affine "
                      "preprocessing of the patches: none, standardize or whiten")
  remove_dc = bool(config.patches.get("remove_dc", False)) and int(config.patches.get("size", 0)) > 0
  if data.whitening is not None:
    whitener = data.whitener
    return kmeans_model.PatchPreprocessing(remove_dc, whitener.mean.astype(np.float32),
                                           (whitener.components / whitener.scales).astype(np.float32))
  if data.standardizer is not None:
    mean = np.asarray(data.standardizer["mean"], np.float32).ravel()
    std = np.asarray(data.standardizer["std"], np.float32).ravel()
    return kmeans_model.PatchPreprocessing(remove_dc, mean, np.diag(1.0 / std).astype(np.float32))
  return kmeans_model.PatchPreprocessing(remove_dc)


def build_task(config: ml_collections.ConfigDict, quiet: bool = False) -> KMeansTask:
  """Checks the config, reads the data and builds the model: the task `fit` runs.

  `model_kwargs.n_visible` defaults to the size of one example (e.g. the number of whitening components);
  the task's `config` then holds it, so the run's config.json rebuilds the same model.

  Raises:
    ConfigError: a bad field, an unknown or non-k-means model, or an input size that does not match.
  """
  run = schema.load(KMeansConfig, config)
  try:
    zoo.fields(run.model)
  except KeyError as e:
    raise ConfigError(f"config.model: {e}") from None
  if not zoo.is_family(run.model, kmeans_model.KMeans):
    valid = zoo.names_of(kmeans_model.KMeans)
    raise ConfigError(f"config.model {run.model!r} is not a k-means model; the k-means models: {', '.join(valid)}")
  kwargs = resolve.model_kwargs(config)
  try:
    zoo.create(run.model, **kwargs)  # the model's own fields are checked before the data are read
  except (KeyError, ValueError, TypeError) as e:
    raise ConfigError(f"config.model / config.model_kwargs: {e}") from None
  data = prepare_data(config)
  size = math.prod(data.image_shape)
  if "n_visible" not in kwargs:  # resolved from the data, and recorded in the run's config.json
    config = schema.override_config(config, {"model_kwargs.n_visible": size})
    kwargs["n_visible"] = size
  model = zoo.create(run.model, **kwargs)
  if model.n_visible != size:
    raise ConfigError(f"config.model_kwargs.n_visible={model.n_visible} but one example has {size} values "
                      f"(shape {data.image_shape}); leave it unset to take the data's size")
  return KMeansTask(config, run, model, data, quiet)


def train_kmeans(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains the centroids of `config` (`fit`); returns the final record."""
  task = build_task(config)
  return fit.fit(task, task.config, workdir)[0]
