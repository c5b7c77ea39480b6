"""Writes image/label arrays into a TFDS data directory as array_record files, without TensorFlow.

Two kinds of name:

* a catalog name, `mnist`, `fashion_mnist`, `cifar10` or `svhn_cropped`: the data are written exactly
  as `tfds build NAME --file_format=array_record` would lay them out (the catalog's version folder,
  `dataset_info.json`, `features.json`, PNG-encoded `Image` features, a `ClassLabel` of the catalog's
  size, the catalog's split names), so `datasets.load_arrays(NAME, ...)` and the configs that name the
  set read them unchanged;
* a name of your own (lower case letters, digits and `_`, starting with a letter; not a TFDS catalog
  name nor a deepvision one): images of any fixed shape (H, W) or (H, W, C), stored exactly as
  `Tensor` features, under `NAME/1.0.0/`; `datasets.load_arrays(NAME, split, data_dir=...)` and
  `config.dataset = NAME` read them.

Images are uint8 (N, H, W) or (N, H, W, C); labels integers (N,) in 0 … num_classes − 1. Every input
is checked before anything is written, and the set is written into a temporary folder of the data
directory that is renamed into place at the end: a failing run leaves nothing behind, and prepared
data are replaced only when asked (`overwrite=True`).

Example:
  >>> prepare_arrays("mnist", {"train": (x_train, y_train), "test": (x_test, y_test)}, "data")
  >>> images, labels = datasets.load_arrays("mnist", "test", data_dir="data")
"""

from __future__ import annotations

import dataclasses
import io
import math
import os
import re
import shutil
import tempfile
import uuid
import zipfile
from collections.abc import Mapping

import numpy as np
import tensorflow_datasets as tfds
from array_record.python import array_record_module
from PIL import Image

from deepvision.data import datasets

USER_VERSION = "1.0.0"
# Keeps each array_record shard near this many bytes of raw pixels (TFDS shards near 1 GiB).
_SHARD_BYTES = 256 * 2**20
_NAME = re.compile(r"[a-z][a-z0-9_]*")
_SPLIT = re.compile(r"[a-z][a-z0-9_]*")
_EMBEDDED = ("dv_digits", "dv_faces", "dv_natural_images")

Arrays = tuple[np.ndarray, np.ndarray]


class PrepareError(ValueError):
  """Input that cannot be prepared; the message names the bad value and what is accepted."""


@dataclasses.dataclass(frozen=True)
class CatalogLayout:
  """What the TFDS catalog builder of a set writes beyond its features.

  Attributes:
    splits: the catalog's split names.
    id_format: format of the `id` text feature (`{split}`, `{index}`), or None if there is none.
    label_names: the class names the catalog stores, or None for '0', '1', ….
  """

  splits: tuple[str, ...]
  id_format: str | None = None
  label_names: tuple[str, ...] | None = None


CATALOG: dict[str, CatalogLayout] = {
    "mnist": CatalogLayout(("train", "test")),
    "fashion_mnist": CatalogLayout(("train", "test")),
    "cifar10": CatalogLayout(
        ("train", "test"), "{split}_{index:05d}",
        ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")),
    "svhn_cropped": CatalogLayout(("train", "test", "extra"), "{split}_{index:06d}"),
}


@dataclasses.dataclass(frozen=True)
class Plan:
  """A checked request: what `write` puts where.

  Attributes:
    name: the data set name.
    version: the version folder, the catalog's for catalog names, `USER_VERSION` otherwise.
    image_shape: (H, W, C) of every image.
    num_classes: the number of labels.
    splits: split name → (uint8 images (N, H, W, C), int64 labels (N,)).
  """

  name: str
  version: str
  image_shape: tuple[int, int, int]
  num_classes: int
  splits: dict[str, Arrays]

  @property
  def is_catalog(self) -> bool:
    return self.name in CATALOG


def check_name(name: str) -> None:
  """Raises PrepareError unless `name` is a catalog name or a valid name of the user's own."""
  if name in CATALOG:
    return
  if not isinstance(name, str) or not _NAME.fullmatch(name):
    raise PrepareError(f"invalid data set name {name!r}: use lower case letters, digits and '_', starting "
                       f"with a letter (or a catalog name: {', '.join(CATALOG)})")
  if name in _EMBEDDED:
    raise PrepareError(f"data set name {name!r} is an embedded deepvision set, prepared by deepvision itself; "
                       f"choose another name (catalog names accepted: {', '.join(CATALOG)})")
  if name in tfds.list_builders(with_community_datasets=False):
    raise PrepareError(f"data set name {name!r} is a TFDS catalog set that deepvision does not prepare; "
                       f"choose another name (catalog names accepted: {', '.join(CATALOG)})")


def _catalog_builder(name: str) -> tfds.core.DatasetBuilder:
  """The catalog's builder with its info as the catalog code defines it (not read from prepared files)."""
  with tempfile.TemporaryDirectory() as empty:
    builder = tfds.builder(name, data_dir=empty)
    _ = builder.info  # built now, while nothing is prepared in its data dir
  return builder


def plan(name: str, splits: Mapping[str, Arrays], *, num_classes: int | None = None) -> Plan:
  """Checks the name and every split's arrays; raises PrepareError naming the first bad value.

  Args:
    name: a catalog name (`CATALOG`) or a name of the user's own.
    splits: split name → (images, labels): uint8 images (N, H, W) or (N, H, W, C), integer labels (N,).
    num_classes: for a name of the user's own, the number of classes (default: largest label + 1);
      catalog sets have the catalog's.

  Returns:
    The checked `Plan`, images as (N, H, W, C) uint8, labels int64.
  """
  check_name(name)
  if not isinstance(splits, Mapping) or not splits:
    raise PrepareError(f"no splits to prepare for {name!r}: give at least one split of images and labels")
  catalog = name in CATALOG
  if catalog:
    if num_classes is not None:
      raise PrepareError(f"num_classes={num_classes} is fixed by the catalog for {name!r}; leave it unset")
    builder = _catalog_builder(name)
    features = builder.info.features
    expected_shape, num_classes = tuple(features["image"].shape), features["label"].num_classes
    version = str(builder.version)
    valid_splits = CATALOG[name].splits
  else:
    expected_shape, version, valid_splits = None, USER_VERSION, None
  checked: dict[str, Arrays] = {}
  for split, arrays in splits.items():
    if not isinstance(split, str) or not _SPLIT.fullmatch(split):
      raise PrepareError(f"invalid split name {split!r}: use lower case letters, digits and '_', starting "
                         "with a letter (e.g. train, test)")
    if valid_splits is not None and split not in valid_splits:
      raise PrepareError(f"split {split!r} is not a split of catalog set {name!r}; valid choices: "
                         f"{', '.join(valid_splits)}")
    images, labels = (np.asarray(a) for a in arrays)
    images = _check_images(name, split, images, expected_shape)
    if expected_shape is None:
      expected_shape = images.shape[1:]  # all splits of a user set share the first split's shape
    checked[split] = (images, _check_labels(split, labels, len(images)))
  largest = max(int(labels.max()) for _, labels in checked.values())
  if num_classes is None:
    num_classes = largest + 1
  elif not isinstance(num_classes, (int, np.integer)) or isinstance(num_classes, bool) or num_classes < 1:
    raise PrepareError(f"invalid num_classes {num_classes!r}: a positive integer (default: largest label + 1)")
  for split, (_, labels) in checked.items():
    bad = np.flatnonzero(labels >= num_classes)
    if bad.size:
      raise PrepareError(f"split {split!r}: label {int(labels[bad[0]])} at index {int(bad[0])} is out of range; "
                         f"{name!r} takes labels 0..{num_classes - 1} ({num_classes} classes)")
  return Plan(name, version, tuple(int(d) for d in expected_shape), int(num_classes), checked)


def _check_images(name: str, split: str, images: np.ndarray, expected: tuple[int, ...] | None) -> np.ndarray:
  if expected is None:
    takes = "(N, H, W) or (N, H, W, C)"
  else:
    takes = f"(N, {', '.join(map(str, expected))})"
    if expected[2] == 1:
      takes = f"(N, {expected[0]}, {expected[1]}) or {takes}"
  if images.ndim not in (3, 4):
    raise PrepareError(f"split {split!r}: images have shape {images.shape} ({images.ndim}-D) but {name!r} takes "
                       f"{takes} uint8 images")
  if images.dtype != np.uint8:
    raise PrepareError(f"split {split!r}: images have dtype {images.dtype} but {name!r} takes uint8 (0..255) "
                       "images; convert float images in [0, 1] with np.round(x * 255).astype(np.uint8)")
  if images.ndim == 3:
    images = images[..., None]
  if expected is not None and images.shape[1:] != tuple(expected):
    raise PrepareError(f"split {split!r}: images have shape {images.shape[1:]} each but {name!r} takes "
                       f"{takes} uint8 images")
  if 0 in images.shape:
    raise PrepareError(f"split {split!r}: images have shape {images.shape}; every split needs at least one "
                       "image of at least 1×1 pixels")
  return images


def _check_labels(split: str, labels: np.ndarray, count: int) -> np.ndarray:
  if labels.dtype == bool or not np.issubdtype(labels.dtype, np.integer):
    raise PrepareError(f"split {split!r}: labels have dtype {labels.dtype} but integer labels are required "
                       "(e.g. int64)")
  if labels.ndim != 1:
    raise PrepareError(f"split {split!r}: labels have shape {labels.shape}; a 1-D array (N,) is required")
  if len(labels) != count:
    raise PrepareError(f"split {split!r}: {count} images but {len(labels)} labels; the counts must be equal")
  negative = np.flatnonzero(labels < 0)
  if negative.size:
    raise PrepareError(f"split {split!r}: label {int(labels[negative[0]])} at index {int(negative[0])} is "
                       "negative; labels are 0..num_classes - 1")
  return labels.astype(np.int64)


def target_dir(name: str, version: str, data_dir: str | os.PathLike) -> str:
  """Where a prepared set lives: DATA_DIR/NAME/VERSION."""
  return os.path.join(os.fspath(data_dir), name, version)


@dataclasses.dataclass(frozen=True)
class Prepared:
  """What `prepare_arrays` wrote.

  Attributes:
    path: the version folder, DATA_DIR/NAME/VERSION.
    name: the data set name.
    image_shape: (H, W, C) of every image (uint8).
    num_classes: the number of labels.
    splits: split name → number of examples.
  """

  path: str
  name: str
  image_shape: tuple[int, int, int]
  num_classes: int
  splits: dict[str, int]

  def summary(self) -> str:
    counts = ", ".join(f"{split} {n:,}" for split, n in self.splits.items())
    return (f"prepared {self.name!r} in {self.path}: {counts} examples; images {self.image_shape} uint8, "
            f"{self.num_classes} classes")


def version_of(name: str) -> str:
  """The version folder `name` is written to: the catalog's version, or `USER_VERSION`."""
  check_name(name)
  if name in CATALOG:
    return str(_catalog_builder(name).version)
  return USER_VERSION


def check_target(name: str, data_dir: str | os.PathLike | None = None, *, overwrite: bool = False) -> str:
  """DATA_DIR/NAME/VERSION if it may be written; PrepareError if the set is there and not `overwrite`.

  Cheap: call it before reading large inputs, so a refused run fails at once.
  """
  data_dir = resolve_data_dir(data_dir)
  target = target_dir(name, version_of(name), data_dir)
  if os.path.exists(target) and not overwrite:
    raise PrepareError(f"data set {name!r} is already prepared in {target}; set overwrite=True (--overwrite) to "
                       "replace it")
  return target


def resolve_data_dir(data_dir: str | os.PathLike | None) -> str:
  """`data_dir` with `~` expanded, or the loader's default (`datasets.default_data_dir()`)."""
  return os.path.expanduser(os.fspath(data_dir)) if data_dir else datasets.default_data_dir()


def prepare_arrays(name: str, splits: Mapping[str, Arrays], data_dir: str | os.PathLike | None = None, *,
                   num_classes: int | None = None, overwrite: bool = False) -> Prepared:
  """Checks arrays and writes them as data set `name` into `data_dir`.

  Args:
    name: a catalog name (`mnist`, `fashion_mnist`, `cifar10`, `svhn_cropped`) or one of the user's own.
    splits: split name → (images, labels); see `plan`.
    data_dir: the TFDS data directory (default: `datasets.default_data_dir()`, where the loader looks).
    num_classes: the number of classes of a user set (default: largest label + 1).
    overwrite: replace the set if it is already prepared there (else PrepareError).

  Returns:
    What was written and where.

  Raises:
    PrepareError: a bad name, split, array, or an existing set without `overwrite`; nothing is written.
  """
  data_dir = resolve_data_dir(data_dir)
  check_target(name, data_dir, overwrite=overwrite)
  checked = plan(name, splits, num_classes=num_classes)
  write(checked, data_dir, overwrite=overwrite)
  return Prepared(target_dir(name, checked.version, data_dir), name, checked.image_shape, checked.num_classes,
                  {split: len(labels) for split, (_, labels) in checked.splits.items()})


def write(checked: Plan, data_dir: str, *, overwrite: bool = False) -> None:
  """Writes a checked plan into a temporary folder of `data_dir`, then renames it into place."""
  os.makedirs(data_dir, exist_ok=True)
  target = target_dir(checked.name, checked.version, data_dir)
  # os.mkdir, not tempfile.mkdtemp: the folder becomes the data and gets the umask's mode, not 0700.
  temporary = os.path.join(data_dir, f".{checked.name}-{checked.version}.incomplete-{uuid.uuid4().hex}")
  os.mkdir(temporary)
  try:
    info = _dataset_info(checked, data_dir)
    split_infos = [_write_split(checked, info.features, split, images, labels, temporary)
                   for split, (images, labels) in checked.splits.items()]
    info.set_splits(tfds.core.SplitDict(split_infos))
    info.set_file_format("array_record", override=True)
    info.write_to_directory(temporary)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    if overwrite and os.path.exists(target):
      old = tempfile.mkdtemp(prefix=f".{checked.version}.replaced-", dir=os.path.dirname(target))
      backup = os.path.join(old, "data")
      os.rename(target, backup)
      try:
        os.rename(temporary, target)
      except OSError:
        os.rename(backup, target)  # put the prepared set back
        os.rmdir(old)
        raise
      shutil.rmtree(old)
    else:
      os.rename(temporary, target)
  finally:
    if os.path.exists(temporary):
      shutil.rmtree(temporary)


def _dataset_info(checked: Plan, data_dir: str) -> tfds.core.DatasetInfo:
  if checked.is_catalog:
    info = _catalog_builder(checked.name).info
    names = CATALOG[checked.name].label_names
    if names is not None:
      info.features["label"].names = list(names)
    return info
  identity = tfds.core.DatasetIdentity(name=checked.name, version=tfds.core.Version(checked.version),
                                       data_dir=data_dir, module_name=__name__)
  return tfds.core.DatasetInfo(
      builder=identity,
      description=f"Arrays prepared with deepvision.data.prepare: {checked.image_shape} uint8 images, "
                  f"{checked.num_classes} classes.",
      features=tfds.features.FeaturesDict({
          "image": tfds.features.Tensor(shape=checked.image_shape, dtype=np.uint8),
          "label": tfds.features.ClassLabel(num_classes=checked.num_classes),
      }),
      supervised_keys=("image", "label"),
      disable_shuffling=True,
  )


def _write_split(checked: Plan, features, split: str, images: np.ndarray, labels: np.ndarray,
                 folder: str) -> tfds.core.SplitInfo:
  template = tfds.core.ShardedFileTemplate(data_dir=tfds.core.Path(folder), dataset_name=checked.name,
                                           split=split, filetype_suffix="array_record")
  num_shards = max(1, min(len(images), math.ceil(images.nbytes / _SHARD_BYTES)))
  paths = template.sharded_filepaths(num_shards)
  id_format = CATALOG[checked.name].id_format if checked.is_catalog else None
  shard_lengths, index = [], 0
  for path, block in zip(paths, np.array_split(np.arange(len(images)), num_shards)):
    writer = array_record_module.ArrayRecordWriter(os.fspath(path), "group_size:1")
    try:
      for i in block:
        example = {"image": _png(images[i]) if checked.is_catalog else images[i], "label": int(labels[i])}
        if id_format is not None:
          example["id"] = id_format.format(split=split, index=index)
        writer.write(features.serialize_example(features.encode_example(example)))
        index += 1
    finally:
      writer.close()
    shard_lengths.append(len(block))
  return tfds.core.SplitInfo(name=split, shard_lengths=shard_lengths,
                             num_bytes=sum(os.path.getsize(p) for p in paths), filename_template=template)


def _png(image: np.ndarray) -> bytes:
  """Lossless PNG of a uint8 (H, W, 1) or (H, W, 3) image, as the catalog's Image feature stores it."""
  buffer = io.BytesIO()
  Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(buffer, format="PNG")
  return buffer.getvalue()


def load_npz(path: str | os.PathLike, split: str | None = None) -> dict[str, Arrays]:
  """The splits held by an npz file.

  Two layouts are accepted: `<split>_images` and `<split>_labels` for one or more splits
  (e.g. `train_images`, `train_labels`, `test_images`, `test_labels`), or `images` and
  `labels` for the one split named by `split`.

  Raises:
    PrepareError: unreadable file, missing or unpaired arrays, or `split` given with the other layout.
  """
  path = os.fspath(path)
  try:
    with np.load(path, allow_pickle=False) as npz:
      arrays = {key: npz[key] for key in npz.files}
  except FileNotFoundError:
    raise PrepareError(f"arrays file {path!r} does not exist; give an .npz file made with np.savez") from None
  except (OSError, ValueError, zipfile.BadZipFile) as e:
    raise PrepareError(f"arrays file {path!r} is not a readable .npz file ({type(e).__name__}: "
                       f"{str(e).splitlines()[0][:120] if str(e) else ''}); give one made with np.savez") from None
  found = ", ".join(sorted(arrays)) or "none"
  layouts = ("'<split>_images' and '<split>_labels' (e.g. train_images, train_labels, test_images, test_labels), "
             "or 'images' and 'labels' with a split name")
  if "images" in arrays or "labels" in arrays:
    prefixed = sorted(k for k in arrays if k.endswith(("_images", "_labels")))
    if prefixed:
      raise PrepareError(f"arrays file {path!r} mixes the two layouts (arrays: {found}); use {layouts}")
    for key in ("images", "labels"):
      if key not in arrays:
        raise PrepareError(f"arrays file {path!r} has no {key!r} array (arrays: {found}); it needs {layouts}")
    if not split:
      raise PrepareError(f"arrays file {path!r} holds 'images' and 'labels': name their split (--split=train)")
    return {split: (arrays["images"], arrays["labels"])}
  if split:
    raise PrepareError(f"split {split!r} was given but arrays file {path!r} names its splits itself (arrays: "
                       f"{found}); a split name goes only with an npz holding 'images' and 'labels'")
  # in the order the file holds them (np.savez keeps the order of its arguments)
  splits = list(dict.fromkeys(k.rsplit("_", 1)[0] for k in arrays if k.endswith(("_images", "_labels"))))
  if not splits:
    raise PrepareError(f"arrays file {path!r} holds no image arrays (arrays: {found}); it needs {layouts}")
  for name in splits:
    for key in (f"{name}_images", f"{name}_labels"):
      if key not in arrays:
        raise PrepareError(f"arrays file {path!r} has no {key!r} array (arrays: {found}); every split needs "
                           f"both {name}_images and {name}_labels")
  return {name: (arrays[f"{name}_images"], arrays[f"{name}_labels"]) for name in splits}
