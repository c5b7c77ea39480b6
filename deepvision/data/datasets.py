"""One loader for every data set: embedded ones (prepared on first use) and TFDS catalog ones.

Data sets are chosen by name from `DATASETS`: the embedded `dv_digits` (8×8×1, 10 classes), `dv_faces`
(25×25×1, 2 classes) and `dv_natural_images` (unlabelled), built from data shipped in scikit-learn and
scikit-image (`deepvision.data.builders`) and prepared offline into the data directory the first time they
are asked for; and the catalog sets `mnist`, `fashion_mnist`, `cifar10`, `svhn_cropped`, read from the
data directory where the user prepared them (nothing is ever downloaded: `tfds build` where TensorFlow and
internet are at hand, or `deepvision.data.prepare` from the original files or arrays, without either). A
name that is not registered is looked up in the data directory: a set prepared there under a name of the
user's own (`prepare.prepare_arrays`) reads like any other. All are read with random access
(`tfds` array_record data sources), without TensorFlow. The data directory is the `data_dir` argument,
else `$DEEPVISION_DATA_DIR`, else TFDS's default (`$TFDS_DATA_DIR` or `~/tensorflow_datasets`).

Example:
  >>> images, labels = load_arrays("dv_digits", "test")   # float32 NHWC in [0, 1], int32
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from deepvision.data import builders
from deepvision.registry import Registry, UnknownNameError

_PREPARE_COMMAND = "python -m experiments.prepare_data"


class DatasetNotFoundError(FileNotFoundError):
  """A catalog data set is not prepared in the data directory (nothing is downloaded)."""


class DatasetCorruptedError(RuntimeError):
  """A prepared data set's files cannot be read (truncated or damaged); the message says how to rebuild."""


def _corrupted(name: str, builder, split: str, error: Exception) -> DatasetCorruptedError:
  spec = DATASETS.get(name) if name in DATASETS else PreparedSet()
  if isinstance(spec, EmbeddedSet):
    fix = f"delete {builder.data_path} and it will be prepared again on next use"
  elif isinstance(spec, CatalogSet):
    fix = (f"rebuild it: tfds build {name} --data_dir={builder.data_dir} (where the data can be downloaded), "
           f"or without TensorFlow: {_PREPARE_COMMAND} --name={name} --source_dir=... --overwrite")
  else:
    fix = f"prepare it again: {_PREPARE_COMMAND} --name={name} --arrays=... --overwrite"
  return DatasetCorruptedError(f"data set {name!r} (split {split!r}) in {builder.data_path} cannot be read "
                               f"({type(error).__name__}: {str(error).splitlines()[0][:200]}); {fix}")


def default_data_dir() -> str:
  """`$DEEPVISION_DATA_DIR` if set, else TFDS's default data directory."""
  return os.path.expanduser(
      os.environ.get("DEEPVISION_DATA_DIR") or tfds.core.constants.DATA_DIR
  )


@dataclasses.dataclass(frozen=True)
class EmbeddedSet:
  """A data set built by a builder of this package from data in installed packages."""

  builder_cls: type[tfds.core.DatasetBuilder]

  def ready_builder(self, name: str, data_dir: str) -> tfds.core.DatasetBuilder:
    """The builder, prepared into `data_dir` first if it is not there yet."""
    del name
    builder = self.builder_cls(data_dir=data_dir)
    if _is_prepared(builder):
      return builder
    try:
      # TFDS writes into a uniquely named temporary folder and renames it into place,
      # so a reader never sees half-written files.
      builder.download_and_prepare(file_format="array_record")
    except OSError:
      # Another process finished the same preparation first and its rename won: the
      # data are complete, ours were thrown away. Anything else is a real error.
      if not _is_prepared(self.builder_cls(data_dir=data_dir)):
        raise
    return self.builder_cls(data_dir=data_dir)


@dataclasses.dataclass(frozen=True)
class CatalogSet:
  """A TFDS catalog data set, read only if the user has prepared it in the data directory."""

  tfds_name: str

  def ready_builder(self, name: str, data_dir: str) -> tfds.core.DatasetBuilder:
    """The builder if the data are prepared in `data_dir`; else `DatasetNotFoundError`.

    The check is made here, on the files, because TFDS itself would try to download the
    data for minutes before failing on a machine without internet.
    """
    builder = tfds.builder(self.tfds_name, data_dir=data_dir)
    if not _is_prepared(builder):
      raise DatasetNotFoundError(self._not_prepared_message(name, builder, data_dir))
    formats = {f.value for f in builder.info.available_file_formats()}
    if "array_record" not in formats:
      raise DatasetNotFoundError(
          f"data set {name!r} is prepared in {builder.data_path} as {sorted(formats)}, but "
          "deepvision reads array_record files (random access without TensorFlow). Convert "
          f"it with: tfds convert_format --dataset_version_dir={builder.data_path} "
          f"--out_file_format=array_record (needs TensorFlow), or prepare it again with: "
          f"{self._build_command(data_dir)}"
      )
    return builder

  def _build_command(self, data_dir: str) -> str:
    return f"tfds build {self.tfds_name} --file_format=array_record --data_dir={data_dir}"

  def _not_prepared_message(self, name: str, builder, data_dir: str) -> str:
    dataset_dir = os.path.join(data_dir, self.tfds_name)
    found = sorted(os.listdir(dataset_dir)) if os.path.isdir(dataset_dir) else []
    found_note = (
        f" (found only version(s) {', '.join(found)}, which this TFDS does not read)" if found else ""
    )
    return (
        f"data set {name!r} is not prepared in data directory {data_dir!r}: "
        f"{builder.data_path} has no dataset_info.json{found_note}. deepvision never "
        "downloads. To prepare it, on a machine with internet access and TensorFlow run\n"
        f"  {self._build_command(data_dir)}\n"
        f"or copy a prepared '{self.tfds_name}/{builder.version}' folder (array_record files) "
        f"into {data_dir!r}, or write it from the original files (or arrays) without TensorFlow:\n"
        f"  {_PREPARE_COMMAND} --name={self.tfds_name} --source_dir=DIR --data_dir={data_dir}\n"
        "Set the directory with --config.data_dir=DIR (data_dir=DIR from Python) or $DEEPVISION_DATA_DIR."
    )


@dataclasses.dataclass(frozen=True)
class PreparedSet:
  """A set under a name of the user's own, prepared in the data directory (`deepvision.data.prepare`).

  It is read from DATA_DIR/NAME/VERSION, the newest version folder holding a dataset_info.json;
  any TFDS set prepared there in array_record files with an `image` feature reads the same way.
  """

  def ready_builder(self, name: str, data_dir: str) -> tfds.core.DatasetBuilder:
    """The read-only builder of the prepared set; `DatasetNotFoundError` if it cannot be read."""
    path = prepared_path(name, data_dir)
    if path is None:
      raise DatasetNotFoundError(f"data set {name!r} is not prepared in data directory {data_dir!r}")
    builder = tfds.builder_from_directory(path)
    formats = {f.value for f in builder.info.available_file_formats()} or {builder.info.file_format.value}
    if "array_record" not in formats:
      raise DatasetNotFoundError(f"data set {name!r} is prepared in {path} as {sorted(formats)}, but deepvision "
                                 "reads array_record files (random access without TensorFlow)")
    if "image" not in builder.info.features:
      raise DatasetNotFoundError(f"data set {name!r} in {path} has features {sorted(builder.info.features)}; "
                                 "deepvision reads sets with an 'image' feature (and 'label')")
    return builder


def prepared_path(name: str, data_dir: str | os.PathLike) -> str | None:
  """DATA_DIR/NAME/VERSION of the newest version of `name` prepared in `data_dir`, or None."""
  if not isinstance(name, str) or not _PREPARED_NAME.fullmatch(name):
    return None
  folder = os.path.join(os.fspath(data_dir), name)
  if not os.path.isdir(folder):
    return None
  versions = []
  for entry in os.listdir(folder):
    try:
      version = tfds.core.Version(entry)
    except ValueError:
      continue  # not a version folder (e.g. a temporary one)
    if os.path.exists(os.path.join(folder, entry, "dataset_info.json")):
      versions.append(version)
  return os.path.join(folder, str(max(versions))) if versions else None


DATASETS: Registry[EmbeddedSet | CatalogSet] = Registry("data set")
DATASETS.register("dv_digits", EmbeddedSet(builders.DvDigits))
DATASETS.register("dv_faces", EmbeddedSet(builders.DvFaces))
DATASETS.register("dv_natural_images", EmbeddedSet(builders.DvNaturalImages))
for _name in ("mnist", "fashion_mnist", "cifar10", "svhn_cropped"):
  DATASETS.register(_name, CatalogSet(_name))


_PREPARED_NAME = re.compile(r"[a-z][a-z0-9_]*")


def _is_prepared(builder: tfds.core.DatasetBuilder) -> bool:
  return (builder.data_path / "dataset_info.json").exists()


def _ready_builder(name: str, data_dir: str | os.PathLike | None) -> tfds.core.DatasetBuilder:
  data_dir = os.path.expanduser(os.fspath(data_dir)) if data_dir is not None else default_data_dir()
  try:
    spec = DATASETS.get(name)
  except UnknownNameError as e:
    if prepared_path(name, data_dir) is None:  # Unknown names fail here, listing the valid ones.
      raise UnknownNameError(f"{e}; or the name of a set prepared in data directory {data_dir!r} with "
                             f"{_PREPARE_COMMAND} (none there is named {name!r})") from None
    spec = PreparedSet()
  return spec.ready_builder(name, data_dir)


def _check_split(name: str, builder, split: str) -> None:
  """Accepts split names, optionally sliced or added TFDS-style ('train[:1000]', 'train+validation')."""
  valid = list(builder.info.splits)
  parts = split.split("+") if isinstance(split, str) else [split]
  if not all(isinstance(p, str) and p.split("[", 1)[0].strip() in valid for p in parts):
    raise ValueError(f"invalid split {split!r} for data set {name!r}; valid choices: {', '.join(valid)}")


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  """What a model and a training loop need to know about a data set.

  Attributes:
    name: the registered name.
    image_shape: (H, W, C) of every image, or None if the size varies.
    num_classes: number of labels, or None for an unlabelled set.
    splits: split name → number of examples.
    value_range: (low, high) of the stored pixel values: (0.0, 1.0) for float images,
      (0, 255) for uint8 ones. `load_arrays` and the pipeline map both to [0, 1].
  """

  name: str
  image_shape: tuple[int, int, int] | None
  num_classes: int | None
  splits: dict[str, int]
  value_range: tuple[float, float]


def dataset_info(name: str, data_dir: str | os.PathLike | None = None) -> DatasetInfo:
  """Facts about data set `name` (embedded sets are prepared first if needed)."""
  builder = _ready_builder(name, data_dir)
  features = builder.info.features
  image = features["image"]
  shape = tuple(image.shape)
  label = features["label"] if "label" in features else None
  return DatasetInfo(
      name=name,
      image_shape=None if None in shape else shape,
      num_classes=label.num_classes if label is not None else None,
      splits={split: info.num_examples for split, info in builder.info.splits.items()},
      value_range=(0, 255) if np.dtype(image.np_dtype) == np.uint8 else (0.0, 1.0),
  )


def get_source(
    name: str, split: str, data_dir: str | os.PathLike | None = None, *, in_memory: bool = False
) -> Sequence[dict[str, Any]]:
  """A random-access source of the examples of one split.

  | name                | images            | classes | splits (examples)                      |
  |---------------------|-------------------|---------|----------------------------------------|
  | `dv_digits`         | 8×8×1 float [0,1] | 10      | train 1077, validation 360, test 360   |
  | `dv_faces`          | 25×25×1 float     | 2       | train 120, validation 40, test 40      |
  | `dv_natural_images` | H×W×1 uint8       | none    | train 16                               |
  | `mnist`             | 28×28×1 uint8     | 10      | train 60000, test 10000                |
  | `fashion_mnist`     | 28×28×1 uint8     | 10      | train 60000, test 10000                |
  | `cifar10`           | 32×32×3 uint8     | 10      | train 50000, test 10000                |
  | `svhn_cropped`      | 32×32×3 uint8     | 10      | train 73257, test 26032, extra 531131  |

  An embedded set is prepared in about a second on first use.

  Example:
    >>> source = get_source("dv_digits", "train")
    >>> len(source), source[0]["image"].shape
    (1077, (8, 8, 1))

  Args:
    name: a registered data set name (`DATASETS.names()`), or one prepared in the data directory.
    split: a split name, e.g. 'train'; TFDS slices such as 'train[:1000]' are accepted.
    data_dir: the data directory (see the module docstring for the default).
    in_memory: read the whole split into an `ArraySource` (fast vectorised batches for
      small sets; needs fixed-size images). The pixel dtype is kept (uint8 stays uint8).

  Returns:
    A sequence (`len`, `source[i]`) of dicts with `image` (H, W, C) as stored (float32 in
    [0, 1] or uint8) and `label` (int) when the set is labelled; `dv_natural_images` has
    `name` (bytes) instead of `label`.

  Raises:
    UnknownNameError: unknown data set name (the message lists the valid names).
    ValueError: unknown split (the message lists the valid splits).
    DatasetNotFoundError: a catalog set not prepared in the data directory.
    DatasetCorruptedError: the prepared files cannot be read.
  """
  builder = _ready_builder(name, data_dir)
  _check_split(name, builder, split)
  try:
    source = builder.as_data_source(split=split)
    if not in_memory:
      if len(source):  # read the first and last records: damaged files fail here, not mid-training
        _check_record(source[0])
        _check_record(source[len(source) - 1])
      return source
    images, labels = _read_all(name, source)
  except (RuntimeError, OSError) as e:
    raise _corrupted(name, builder, split, e) from e
  return ArraySource(images, labels)


def load_arrays(
    name: str, split: str, data_dir: str | os.PathLike | None = None
) -> tuple[np.ndarray, np.ndarray]:
  """A whole split as arrays: images float32 (N, H, W, C) in [0, 1], labels int32 (N,).

  Meant for the small sets; uint8 images are divided by 255. Sets with images of varying
  size (`dv_natural_images`) are refused: use `get_source`.
  """
  source = get_source(name, split, data_dir, in_memory=True)
  return to_unit_float(source.images), source.labels


def _check_record(record: dict[str, Any]) -> dict[str, Any]:
  """The record, or RuntimeError if a feature came back empty (a file cut short can read as empty records)."""
  empty = sorted(key for key, value in record.items() if value is None)
  if empty:
    raise RuntimeError(f"a record has no value for {', '.join(empty)}")
  return record


def _read_all(name: str, source) -> tuple[np.ndarray, np.ndarray]:
  if len(source) == 0:
    raise ValueError(f"data set {name!r}: the requested split is empty")
  if "label" not in source[0]:
    raise ValueError(f"data set {name!r} has no labels and images of varying size: use get_source")
  records = [_check_record(source[i]) for i in range(len(source))]
  images = np.stack([record["image"] for record in records])
  labels = np.asarray([record["label"] for record in records], dtype=np.int32)
  return images, labels


def to_unit_float(images: np.ndarray) -> np.ndarray:
  """float32 pixels in [0, 1]: uint8 values are divided by 255, float values are kept."""
  images = np.asarray(images)
  if images.dtype == np.uint8:
    return images.astype(np.float32) / np.float32(255.0)
  if np.issubdtype(images.dtype, np.floating):
    return images.astype(np.float32, copy=False)
  raise TypeError(f"images must be uint8 or floating point, got dtype {images.dtype}")


class ArraySource:
  """An in-memory random-access source over arrays, with a vectorised `read_batch`.

  Args:
    images: (N, H, W, C) array, any dtype the pipeline accepts (uint8 or float).
    labels: (N,) integer labels.
  """

  def __init__(self, images: np.ndarray, labels: np.ndarray):
    images, labels = np.asarray(images), np.asarray(labels)
    if images.ndim != 4:
      raise ValueError(f"images must be (N, H, W, C), got shape {images.shape}")
    if labels.shape != images.shape[:1]:
      raise ValueError(f"labels must have shape ({images.shape[0]},), got {labels.shape}")
    self.images, self.labels = images, labels

  def __len__(self) -> int:
    return len(self.labels)

  def __getitem__(self, index: int) -> dict[str, Any]:
    return {"image": self.images[index], "label": int(self.labels[index])}

  def read_batch(self, indices: np.ndarray) -> dict[str, np.ndarray]:
    """{'image': images[indices], 'label': labels[indices]} in one indexing operation."""
    return {"image": self.images[indices], "label": self.labels[indices]}

  def __repr__(self) -> str:
    return f"ArraySource(images={self.images.shape} {self.images.dtype}, labels={self.labels.shape})"
