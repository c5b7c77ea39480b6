r"""Which feature learner? Every unsupervised family of deepvision into the same linear read-out.

  python -m experiments.compare_features --workdir=runs/compare_features          # dv_digits and dv_faces
  python -m experiments.compare_features --workdir=runs/cf --datasets=mnist --data_dir=DIR --seeds=1
  python -m experiments.compare_features --workdir=runs/cf_quick --quick           # seconds: smoke configs

The talk's conclusion on generative models: *if generation is not required, other feature learning methods
are more efficient*. For each data set and each learner (`LEARNERS`: raw and PCA-whitened pixels, k-means
with the triangle code, sparse coding (FISTA codes), PSD's encoder, denoising / sparse / contractive
autoencoders, RBM, Gaussian RBM, mcRBM) and seed, the learner's own config is trained on the data set's
training images through the ordinary launcher path (`train_and_evaluate`, its own work dir, so a rerun
resumes and finished runs are not repeated), its features (`hidden_probs`) of the training, validation and
test images go into one logistic regression (`estimators.linear_readout`: features standardised on the
training examples, L2 chosen on validation), with every training label and with a budget of 100 labels
drawn evenly over the classes. Recorded per learner: test accuracy (mean ± std over seeds), the wall time
of the training run (its own final evaluation included; compiled programs come from the launcher's persistent
cache after the first seed, and the table shows the median over seeds) and the feature-extraction time per
1,000 images (jitted, after a warm-up call).

Every learned family gets the same number of features (`--features`, 256; the mcRBM keeps its config's
covariance and mean units) and the same number of parameter updates as its config makes on its own data
(so a config designed for 40,000 patches is not cut to a few steps by a small image set), capped at
`--max_updates`. Records: one JSON per data set in `--records` (default `results/compare_features/`), read
by `experiments/features_table.py` for the README table.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import math
import os
import sys
import time
from contextlib import redirect_stdout

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import app, flags, logging

from deepvision import machine as machine_info
from deepvision.data import datasets
from deepvision.data import energy as energy_data
from deepvision.data.whiten import PCAWhitening
from deepvision.errors import ConfigError
from deepvision.estimators import linear_readout
from deepvision.models import kmeans as kmeans_model
from deepvision.pretrained import runs
from deepvision.registry import Registry, UnknownNameError
from deepvision.train import kmeans as kmeans_task
from deepvision.train import loop
from experiments import cli, config_catalog, pipelines  # noqa: F401  pipelines: registers the trainers


@dataclasses.dataclass(frozen=True)
class Learner:
  """A feature learner: the config that trains it (None: computed, not trained) and its width field."""

  name: str
  config: str | None
  width_field: str | None
  summary: str
  convolutional: bool = False  # k-means on patches, features pooled over whole images (Coates et al.)


LEARNERS: Registry[Learner] = Registry("feature learner")
_IN_ORDER = (
    Learner("pixels", None, None, "raw pixels"),
    Learner("pca_whitened", None, None, "PCA-whitened pixels (99% of the variance)"),
    Learner("kmeans", "kmeans_patches", "n_centroids", "spherical k-means of whole images, triangle code"),
    Learner("kmeans_conv", "kmeans_patches", "n_centroids", "k-means of small patches, triangle code summed over "
            "the image's quadrants (Coates et al. 2011)", convolutional=True),
    Learner("sparse_coding", "sparse_coding_patches", "n_atoms", "sparse coding: FISTA codes (Mairal et al. 2009)"),
    Learner("psd", "psd_patches", "n_atoms", "PSD's feed-forward encoder (Kavukcuoglu et al. 2008)"),
    Learner("dae", "dae_digits", "n_hidden", "denoising autoencoder (Vincent et al. 2008)"),
    Learner("sparse_ae", "sparse_ae_digits", "n_hidden", "sparse autoencoder (KL to a target activity)"),
    Learner("contractive_ae", "contractive_ae_digits", "n_hidden", "contractive autoencoder (Rifai et al. 2011)"),
    Learner("rbm", "rbm_digits", "n_hidden", "binary RBM, PCD (Tieleman 2008)"),
    Learner("grbm", "grbm_patches", "n_hidden", "Gaussian RBM, CD-1, sparsity target"),
    Learner("mcrbm", "mcrbm_patches", None, "mcRBM, PCD with HMC (Ranzato & Hinton 2010)"),
)
for _learner in _IN_ORDER:
  LEARNERS.register(_learner.name, _learner)
ORDER = tuple(learner.name for learner in _IN_ORDER)  # the table's rows: computed, then the families


@dataclasses.dataclass(frozen=True)
class DataPlan:
  """The splits a data set is compared on: train, validation, test."""

  splits: tuple[str, str, str]
  needs_data_dir: bool = False


DATA: dict[str, DataPlan] = {
    "dv_digits": DataPlan(("train", "validation", "test")),
    "dv_faces": DataPlan(("train", "validation", "test")),
    "mnist": DataPlan(("train[:90%]", "train[90%:]", "test"), needs_data_dir=True),
    "cifar10": DataPlan(("train[:90%]", "train[90%:]", "test"), needs_data_dir=True),
}
L2_GRID = (1.0, 0.1, 0.01, 1e-3, 1e-4)
LABEL_BUDGET = 100
ROLES = ("train", "val", "test")


@dataclasses.dataclass(frozen=True)
class Settings:
  """What every run of one comparison shares."""

  features: int = 256
  max_updates: int = 4000
  quick: bool = False
  data_dir: str = ""
  figures: bool = False  # the runs' own figures (filters.png); off for timing


def _own_updates(config: ml_collections.ConfigDict) -> int:
  """The parameter updates `config` makes on its own data: epochs × ⌊training examples / batch⌋."""
  if config.get("patches") is not None and config.patches.size:
    examples = config.patches.num_train
  else:
    examples = len(datasets.get_source(config.dataset, config.train_split, data_dir=config.data_dir or None))
  return config.num_epochs * max(examples // config.batch_size, 1)


def learner_config(learner: Learner, dataset: str, seed: int, settings: Settings) -> ml_collections.ConfigDict:
  """`learner`'s config set to train on the whole images of `dataset` (see the module docstring)."""
  config = config_catalog.load(learner.config, "smoke" if settings.quick else None)
  updates = _own_updates(config)
  config.dataset = dataset
  config.data_dir = settings.data_dir
  config.train_split, config.eval_split, config.test_split = DATA[dataset].splits
  if config.get("patches") is not None:
    config.patches.size = conv_patch_size(dataset, settings.data_dir) if learner.convolutional else 0
    config.patches.remove_dc = learner.convolutional  # each patch's mean removed, as Coates et al. do
  if config.get("linear_eval") is not None:
    config.linear_eval.enabled = False
  if config.get("log_likelihood") is not None:
    config.log_likelihood.method = "none"
  config.seed = seed
  config.figures = settings.figures
  if learner.width_field and not settings.quick:
    # The convolutional features are the K maps summed over 4 quadrants: K = features / 4.
    config.model_kwargs[learner.width_field] = settings.features // (4 if learner.convolutional else 1)
  data = energy_data.prepare_data(config)
  config.model_kwargs.n_visible = math.prod(data.image_shape)
  config.batch_size = min(config.batch_size, len(data.splits["train"]))
  steps_per_epoch = len(data.splits["train"]) // config.batch_size
  config.num_epochs = max(1, math.ceil(min(updates, settings.max_updates) / steps_per_epoch))
  total = config.num_epochs * steps_per_epoch
  config.log_every_steps = max(total // 10, 1)
  config.eval_every_steps = total  # the held-out split is evaluated once, at the end: the read-out needs no more
  config.checkpoint_every_steps = 0
  return config


def conv_patch_size(dataset: str, data_dir: str = "") -> int:
  """The side of the patches convolutional k-means learns from: 4 pixels on 8×8 digits, 6 on larger
  images (Coates et al.'s choice on 32×32 CIFAR-10)."""
  return 4 if datasets.dataset_info(dataset, data_dir=data_dir or None).image_shape[0] <= 8 else 6


def _extract(fn, x: np.ndarray, batch: int = 256) -> np.ndarray:
  return np.concatenate([np.asarray(fn(jnp.asarray(x[i:i + batch]))).reshape(len(x[i:i + batch]), -1)
                         for i in range(0, len(x), batch)])


def run_directory(workdir: str, dataset: str, learner: str, seed: int) -> str:
  """Where `compare` trains `learner` on `dataset` with `seed`."""
  return os.path.join(workdir, dataset, learner, f"seed_{seed}")


def learned_features(learner: Learner, dataset: str, seed: int, settings: Settings, workdir: str
                     ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, float]]:
  """(features per role, labels per role, timings) of one learner and seed; trains it unless it is computed."""
  if learner.config is None:
    splits = {role: datasets.load_arrays(dataset, split, data_dir=settings.data_dir or None)
              for role, split in zip(ROLES, DATA[dataset].splits)}
    pixels = {role: x.reshape(len(x), -1).astype(np.float64) for role, (x, _) in splits.items()}
    labels = {role: y for role, (_, y) in splits.items()}
    start = time.perf_counter()
    if learner.name == "pixels":
      transform = lambda x: x
    else:
      transform = PCAWhitening.fit(pixels["train"], variance=0.99).transform
    learn_seconds = time.perf_counter() - start
    start = time.perf_counter()
    features = {role: transform(x) for role, x in pixels.items()}
    extract = (time.perf_counter() - start) / sum(len(x) for x in pixels.values()) * 1000
    return features, labels, {"learn_seconds": learn_seconds, "extract_seconds_per_1000": extract}
  config = learner_config(learner, dataset, seed, settings)
  run_dir = run_directory(workdir, dataset, learner.name, seed)
  start = time.perf_counter()
  with redirect_stdout(io.StringIO()):
    loop.train_and_evaluate(config, run_dir)
  learn_seconds = time.perf_counter() - start
  module, variables = runs.trained_model(config, run_dir)
  data = energy_data.prepare_data(config)
  if learner.convolutional:
    preprocessing = kmeans_task.patch_preprocessing(config, data)
    splits = {role: datasets.load_arrays(dataset, split, data_dir=settings.data_dir or None)
              for role, split in zip(ROLES, DATA[dataset].splits)}
    images = {role: x for role, (x, _) in splits.items()}
    labels = {role: y for role, (_, y) in splits.items()}
    fn = functools.partial(kmeans_model.convolutional_features, variables["params"]["C"],
                           patch_size=config.patches.size, preprocessing=preprocessing)
  else:
    images, labels = data.splits, dict(data.labels)
    fn = jax.jit(lambda v: module.apply(variables, v, method="hidden_probs"))
  features = {role: _extract(fn, images[role]) for role in ROLES}
  test = images["test"]
  start = time.perf_counter()
  jax.block_until_ready(_extract(fn, test))
  extract = (time.perf_counter() - start) / len(test) * 1000
  return features, labels, {"learn_seconds": learn_seconds, "extract_seconds_per_1000": extract}


def compare(dataset: str, learners: list[str], seeds: int, settings: Settings, workdir: str,
            log=print, first_seed: int = 0) -> dict:
  """The record of one data set: per learner, per seed (first_seed … first_seed + seeds − 1), both label
  budgets."""
  rows = {}
  for name in learners:
    learner = LEARNERS.get(name)
    per_seed = []
    for seed in range(first_seed, first_seed + seeds):
      features, labels, timing = learned_features(learner, dataset, seed, settings, workdir)
      entry = {"seed": seed, "feature_dim": int(features["train"].shape[1]), "test_examples": len(labels["test"]),
               **timing}
      budget = min(LABEL_BUDGET, len(labels["train"]))
      for key, indices in (("all_labels", None),
                           (f"{budget}_labels", linear_readout.balanced_subset(labels["train"], budget, seed))):
        result = linear_readout.readout(features, labels, L2_GRID, train_indices=indices, standardize=True)
        entry[key] = {"test_accuracy": result.test_accuracy, "val_accuracy": result.val_accuracy, "l2": result.l2}
      per_seed.append(entry)
      log(f"{dataset} {name} seed {seed}: all labels {entry['all_labels']['test_accuracy']:.4f}, "
          f"{budget} labels {entry[f'{budget}_labels']['test_accuracy']:.4f}, learning {timing['learn_seconds']:.1f} s")
    rows[name] = {"summary": learner.summary, "config": learner.config, "per_seed": per_seed,
                  **{key: _mean_std([s[key]["test_accuracy"] for s in per_seed])
                     for key in per_seed[0] if key.endswith("_labels")},
                  "feature_dim": per_seed[0]["feature_dim"],
                  "learn_seconds": float(np.median([s["learn_seconds"] for s in per_seed])),
                  "extract_seconds_per_1000": float(np.median([s["extract_seconds_per_1000"] for s in per_seed]))}
  return rows


def _mean_std(values: list[float]) -> dict[str, float]:
  return {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0}


_FLAGS: dict[str, flags.FlagHolder] = {}  # defined when run as a script (the tests import the functions)


def _define_flags() -> None:
  define = {
      "workdir": lambda: flags.DEFINE_string("workdir", None, "Directory of the training runs (one per learner "
                                             "and seed)."),
      "datasets": lambda: flags.DEFINE_list("datasets", ["dv_digits", "dv_faces"],
                                            f"Data sets; valid: {', '.join(DATA)}."),
      "learners": lambda: flags.DEFINE_list("learners", list(ORDER),
                                            f"Learners; valid: {', '.join(LEARNERS.names())}."),
      "seeds": lambda: flags.DEFINE_integer("seeds", 3, "Seeds 0 … n − 1 per learner.", lower_bound=1),
      "features": lambda: flags.DEFINE_integer("features", 256, "Features of every learned family.",
                                               lower_bound=1),
      "max_updates": lambda: flags.DEFINE_integer("max_updates", 4000, "Parameter updates per run at most.",
                                                  lower_bound=1),
      "data_dir": lambda: flags.DEFINE_string("data_dir", "", "TFDS data dir for mnist / cifar10."),
      "quick": lambda: flags.DEFINE_bool("quick", False, "The learners' smoke configs (seconds; for tests)."),
      "records": lambda: flags.DEFINE_string("records", "results/compare_features",
                                             "Directory of the JSON records."),
  }
  for name, make in define.items():
    _FLAGS[name] = make()


USAGE = "python -m experiments.compare_features --workdir=DIR [--datasets=dv_digits,dv_faces] [--seeds=3]"


def check_flags(dataset_names: list[str], learner_names: list[str], data_dir: str) -> None:
  """ConfigError naming a bad data set or learner, before anything is trained."""
  for name in dataset_names:
    if name not in DATA:
      raise ConfigError(f"--datasets: unknown data set {name!r}; valid: {', '.join(DATA)}")
    if DATA[name].needs_data_dir and not data_dir:
      raise ConfigError(f"--datasets={name} is read from a TFDS data dir: set --data_dir=DIR (written by "
                        "python -m experiments.prepare_data)")
  for name in learner_names:
    try:
      LEARNERS.get(name)
    except UnknownNameError as e:
      raise ConfigError(f"--learners: {e.args[0]}") from None


def main(argv: list[str]) -> None:
  value = {name: holder.value for name, holder in _FLAGS.items()}
  if len(argv) > 1 or not value["workdir"]:
    cli.usage_error("--workdir is required" if len(argv) <= 1 else f"unexpected arguments {argv[1:]}", USAGE)
  cli.or_exit_2(check_flags, value["datasets"], value["learners"], value["data_dir"])
  logging.set_verbosity(logging.WARNING)
  settings = Settings(features=value["features"], max_updates=value["max_updates"], quick=value["quick"],
                      data_dir=value["data_dir"])
  for dataset in value["datasets"]:
    rows = cli.or_exit_2(compare, dataset, value["learners"], value["seeds"], settings, value["workdir"])
    record = {"dataset": dataset, "splits": DATA[dataset].splits, "seeds": value["seeds"],
              "settings": dataclasses.asdict(settings), "l2_grid": L2_GRID, "label_budget": LABEL_BUDGET,
              "machine": {**machine_info.describe(), "jax": jax.__version__,
                          "device": jax.devices()[0].device_kind}, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "command": "python -m experiments.compare_features " + " ".join(sys.argv[1:]),
              "learners": rows}
    os.makedirs(value["records"], exist_ok=True)
    path = os.path.join(value["records"], f"{dataset}.json")
    with open(path + ".tmp", "w") as f:
      json.dump(record, f, indent=1)
    os.replace(path + ".tmp", path)
    print(f"wrote {path}")


if __name__ == "__main__":
  _define_flags()
  app.run(main, flags_parser=cli.make_parser(USAGE))
