"""The examples an energy model trains on: whole images or random patches, binarised or standardised.

`prepare_data(config)` reads the splits named by a contrastive config into float32 arrays (N, *image_shape):
whole images (`dv_digits`, catalog sets) or random `patches.size`² patches of the split's images (e.g.
`dv_natural_images`), then optionally binarises them (threshold 0.5) or standardises every feature with a
`Standardizer` fitted on the training split (saved with the run). `check_model_data` refuses data whose
feature size or value range the model cannot take (binary visibles need [0, 1]).
"""

from __future__ import annotations

import dataclasses
import math

import ml_collections
import numpy as np

from deepvision.data import datasets
from deepvision.data.patches import Standardizer, extract_patches
from deepvision.registry import UnknownNameError
from deepvision.train.loop import ConfigError

PREPROCESSING = ("none", "binarize", "standardize")


@dataclasses.dataclass(frozen=True)
class EnergyData:
  """Float32 training / evaluation / test examples (N, *image_shape) and what was done to them.

  Attributes:
    splits: split role ('train', 'val', 'test') → examples; roles without a split are absent.
    labels: the same roles → int32 labels, when the data set has them (for feature evaluation).
    image_shape: shape of one example, (H, W, C).
    standardizer: {'mean': [...], 'std': [...]} per feature when the data were standardised, else None.
  """

  splits: dict[str, np.ndarray]
  labels: dict[str, np.ndarray]
  image_shape: tuple[int, ...]
  standardizer: dict[str, list] | None = None


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
  standardizer = None
  if config.preprocess == "binarize":
    splits = {role: (x > 0.5).astype(np.float32) for role, x in splits.items()}
  elif config.preprocess == "standardize":
    fitted = Standardizer.fit(splits["train"].reshape(len(splits["train"]), -1), eps=1e-8)
    splits = {role: fitted.transform(x.reshape(len(x), -1)).reshape(x.shape).astype(np.float32)
              for role, x in splits.items()}
    standardizer = fitted.to_dict()
  return EnergyData(splits, labels, image_shape, standardizer)


def check_model_data(model, data: EnergyData, model_name: str) -> None:
  """ConfigError unless every split has the model's feature size and value range."""
  size = math.prod(data.image_shape)
  if size != model.n_visible:
    raise ConfigError(f"config.model {model_name!r} has n_visible={model.n_visible} but the data have "
                      f"{size} features per example (shape {data.image_shape}); set "
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
