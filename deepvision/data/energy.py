"""The examples an energy model trains on: whole images or random patches, binarised, standardised or
PCA-whitened.

`prepare_data(config)` reads the splits named by a contrastive config into float32 arrays (N, *image_shape):
whole images (`dv_digits`, catalog sets) or random `patches.size`² patches of the split's images (e.g.
`dv_natural_images`, `dv_faces`), then optionally binarises them (threshold 0.5), standardises every feature
with a `Standardizer` fitted on the training split, or PCA-whitens them (`preprocess='whiten'`, the
preprocessing of the gated MRFs: Ranzato & Hinton 2010): a `PCAWhitening` fitted on the training split
keeps the fewest components K that hold `config.whiten.variance` of the variance (0.99), every split
becomes (N, K) whitened vectors, and the patch shape is kept for pictures. The fitted preprocessing is
saved with the run (`preprocessing_record`). `check_model_data` refuses data whose feature size or value
range the model cannot take (binary visibles need [0, 1]; after whitening, n_visible must be K).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os

import ml_collections
import numpy as np

from deepvision import config_blocks, schema
from deepvision.data import datasets
from deepvision.data.patches import Standardizer, extract_patches
from deepvision.data.whiten import PCAWhitening
from deepvision.registry import UnknownNameError
from deepvision.errors import ConfigError

PREPROCESSING = ("none", "binarize", "standardize", "whiten")
PREPROCESSING_FILE = "preprocessing.json"  # the fitted preprocessing, kept in a run's work dir


@dataclasses.dataclass(frozen=True)
class EnergyData:
  """Float32 training / evaluation / test examples (N, *image_shape) and what was done to them.

  Attributes:
    splits: split role ('train', 'val', 'test') → examples; roles without a split are absent.
    labels: the same roles → int32 labels, when the data set has them (for feature evaluation).
    image_shape: shape of one example as the pipeline reads it: (H, W, C), or (K, 1, 1) after
      whitening (K whitened values).
    standardizer: {'mean': [...], 'std': [...]} per feature when the data were standardised, else None.
    whitening: `PCAWhitening.to_dict()` when the data were whitened, else None.
    pixel_shape: the shape of one example in pixels, (H, W, C) (= image_shape unless whitened).
  """

  splits: dict[str, np.ndarray]
  labels: dict[str, np.ndarray]
  image_shape: tuple[int, ...]
  standardizer: dict[str, list] | None = None
  whitening: dict | None = None
  pixel_shape: tuple[int, ...] | None = None

  @property
  def whitener(self) -> PCAWhitening | None:
    """The fitted `PCAWhitening`, or None."""
    return None if self.whitening is None else PCAWhitening.from_dict(self.whitening)


def whiten_settings(config: ml_collections.ConfigDict) -> config_blocks.Whiten:
  """`config.whiten` (`config_blocks.Whiten`), checked; its defaults when the config has no such block."""
  return schema.load(config_blocks.Whiten, config.get("whiten", None) or {}, "config.whiten")


def preprocessing_record(data: EnergyData) -> dict | None:
  """What `preprocessing.json` holds for these data (None when nothing was fitted)."""
  if data.standardizer is None and data.whitening is None:
    return None
  record = {"image_shape": list(data.image_shape)}
  if data.standardizer is not None:
    record["standardizer"] = data.standardizer
  if data.whitening is not None:
    record["whitening"] = data.whitening
    record["pixel_shape"] = list(data.pixel_shape)
  return record


def preprocessing_differences(saved: dict, current: dict, rtol: float = 1e-5, atol: float = 1e-6) -> list[str]:
  """The entries of two `preprocessing_record`s that differ (numbers compared with tolerances)."""
  differences = []
  for key in sorted(set(saved) | set(current)):
    if key not in saved or key not in current:
      differences.append(f"{key} ({'missing there' if key not in saved else 'missing now'})")
      continue
    a, b = saved[key], current[key]
    if isinstance(a, dict) and isinstance(b, dict):
      differences += [f"{key}.{d}" for d in preprocessing_differences(a, b, rtol, atol)]
      continue
    try:
      x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
      same = x.shape == y.shape and np.allclose(x, y, rtol=rtol, atol=atol)
    except (TypeError, ValueError):
      same = a == b
    if not same:
      shape = lambda v: np.shape(v) if isinstance(v, list) else v  # noqa: E731
      differences.append(f"{key} ({shape(a)} there, {shape(b)} now)" if np.shape(a) != np.shape(b)
                         else key)
  return differences


def _read_split(config, name: str) -> tuple[np.ndarray, np.ndarray | None]:
  try:
    images, labels = datasets.load_arrays(config.dataset, name, data_dir=config.get("data_dir") or None)
  except ValueError as e:
    if "no labels" not in str(e):
      raise
    raise ConfigError(f"config.dataset {config.dataset!r} holds images of varying size: set "
                      "config.patches.size > 0 to train on patches") from None
  return images, labels


def prepare_data(config: ml_collections.ConfigDict) -> EnergyData:
  """Reads and preprocesses the splits named by the config (see the module docstring).

  Raises:
    ConfigError: unknown data set, split or preprocessing; patches larger than the images.
    DatasetNotFoundError: a catalog set not prepared in the data directory.
  """
  if config.preprocess not in PREPROCESSING:
    raise ConfigError(f"config.preprocess must be one of {', '.join(map(repr, PREPROCESSING))}, got "
                      f"{config.preprocess!r}")
  whiten = whiten_settings(config)
  try:
    datasets.dataset_info(config.dataset, data_dir=config.get("data_dir") or None)
  except UnknownNameError as e:
    raise ConfigError(f"config.dataset: {e}") from None
  roles = {"train": config.get("train_split") or None, "val": config.get("eval_split") or None,
           "test": config.get("test_split") or None}
  if roles["train"] is None:
    raise ConfigError("config.train_split must name a split")
  splits, labels = {}, {}
  patch_size = int(config.patches.get("size", 0))
  for role, split in roles.items():
    if split is None:
      continue
    try:
      if patch_size > 0:
        count = config.patches.num_train if role == "train" else config.patches.num_eval
        seed = config.patches.seed + {"train": 0, "val": 1, "test": 2}[role]
        source = datasets.get_source(config.dataset, split, data_dir=config.get("data_dir") or None)
        splits[role] = extract_patches([source[i]["image"] for i in range(len(source))], patch_size, count,
                                       seed, remove_dc=bool(config.patches.get("remove_dc", False)))
      else:
        splits[role], split_labels = _read_split(config, split)
        labels[role] = split_labels
    except ValueError as e:  # the loaders name the valid splits, sizes and counts
      if isinstance(e, ConfigError):
        raise
      raise ConfigError(f"config ({role} split {split!r}): {e}") from None
  image_shape = tuple(splits["train"].shape[1:])
  pixel_shape = image_shape
  standardizer = whitening = None
  if config.preprocess == "binarize":
    splits = {role: (x > 0.5).astype(np.float32) for role, x in splits.items()}
  elif config.preprocess == "standardize":
    fitted = Standardizer.fit(splits["train"].reshape(len(splits["train"]), -1), eps=1e-8)
    splits = {role: fitted.transform(x.reshape(len(x), -1)).reshape(x.shape).astype(np.float32)
              for role, x in splits.items()}
    standardizer = fitted.to_dict()
  elif config.preprocess == "whiten":
    try:
      whitener = PCAWhitening.fit(splits["train"].astype(np.float64), variance=whiten.variance,
                                  epsilon=whiten.epsilon)
    except ValueError as e:
      raise ConfigError(f"config.whiten (PCA whitening of the training data): {e}") from None
    # (N, K, 1, 1): the training pipeline reads (N, H, W, C) arrays; the models flatten them back.
    image_shape = (whitener.num_components, 1, 1)
    splits = {role: whitener.transform(x).astype(np.float32).reshape(len(x), *image_shape)
              for role, x in splits.items()}
    whitening = whitener.to_dict()
  return EnergyData(splits, labels, image_shape, standardizer, whitening, pixel_shape)


def check_model_data(model, data: EnergyData, model_name: str) -> None:
  """ConfigError unless every split has the model's feature size and value range."""
  size = math.prod(data.image_shape)
  if size != model.n_visible:
    origin = f"shape {data.image_shape}"
    if data.whitening is not None:
      kept = data.whitening["variance_kept"]
      origin = (f"the PCA whitening of {data.pixel_shape} patches keeps K = {size} components "
                f"({100 * kept:.2f}% of the variance)")
    raise ConfigError(f"config.model {model_name!r} has n_visible={model.n_visible} but the data have "
                      f"{size} features per example ({origin}); set "
                      f"--config.model_kwargs.n_visible={size}")
  valid = getattr(model, "visible_range", None)
  if valid is None:
    return
  for role, x in data.splits.items():
    low, high = float(x.min()), float(x.max())
    if low < valid[0] or high > valid[1]:
      raise ConfigError(
          f"{type(model).__name__} has {model.visible_kind} visible units and needs data in "
          f"[{valid[0]:g}, {valid[1]:g}], but the {role} data range over [{low:g}, {high:g}]; use "
          "--config.preprocess=none or binarize with data in [0, 1], or a Gaussian model (grbm)")


def check_preprocessing(workdir: str, data: EnergyData, resuming: bool) -> None:
  """On resume, ConfigError unless `preprocessing.json` in `workdir` matches the preprocessing fitted now.

  The standardisation or whitening is fitted again from the training data at every start; a resumed run
  must continue in the space its parameters were learned in, so a saved record that differs (another data
  version, a hand-edited file) or is missing stops the run before any training.
  """
  current = preprocessing_record(data)
  path = os.path.join(workdir, PREPROCESSING_FILE)
  if not resuming or current is None:
    return
  if not os.path.exists(path):
    raise ConfigError(f"{workdir} holds checkpoints but no {PREPROCESSING_FILE}: the preprocessing its "
                      "parameters were trained under cannot be checked; use a new --workdir")
  try:
    with open(path) as f:
      saved = json.load(f)
  except (OSError, ValueError) as e:
    raise ConfigError(f"{path} is unreadable ({e}); use a new --workdir") from None
  differences = preprocessing_differences(saved, json.loads(json.dumps(current)))
  if differences:
    raise ConfigError(f"{path} differs from the preprocessing fitted now on the training data "
                      f"({', '.join(differences[:6])}): the checkpoints were trained in another "
                      "space; use a new --workdir (or restore the file)")
