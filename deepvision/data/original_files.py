"""Readers for the catalog sets' original distribution files, without TensorFlow.

* `mnist`, `fashion_mnist`: the four IDX files `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
  `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`, each plain or gzipped (`.gz`) as distributed;
  splits train and test.
* `cifar10`: the "python version", `cifar-10-batches-py/` with `data_batch_1` … `data_batch_5` (train)
  and `test_batch` (test); the folder itself or its parent may be given.
* `svhn_cropped`: `train_32x32.mat`, `test_32x32.mat`, and `extra_32x32.mat` if present (split extra).

Each reader returns split → (uint8 images (N, H, W, C), int64 labels (N,)) in the files' order, as
TFDS's own builders decode them: CIFAR-10 rows of 3072 bytes are the R, G, B planes of a 32×32 image;
SVHN's `X` is (32, 32, 3, N) and its label 10 stands for the digit 0 (stored as 0, as TFDS does).
CIFAR-10's batches are Python pickles; only numpy arrays, lists and dicts are unpickled from them.

Example:
  >>> splits = read_original("mnist", "downloads/mnist")
  >>> prepare.prepare_arrays("mnist", splits, "data")
"""

from __future__ import annotations

import gzip
import os
import pickle
from collections.abc import Callable
from typing import ClassVar

import numpy as np
from scipy import io as scipy_io  # scipy comes with scikit-learn

from deepvision.data.prepare import Arrays, PrepareError

_IDX_SPLITS = {"train": "train", "test": "t10k"}
_IMAGES_MAGIC, _LABELS_MAGIC = 0x00000803, 0x00000801


def read_original(name: str, source_dir: str | os.PathLike) -> dict[str, Arrays]:
  """Reads catalog set `name` from its original files in `source_dir` (see the module docstring).

  Raises:
    PrepareError: an unknown name, a missing file, or a file that is not in the expected format.
  """
  if name not in READERS:
    raise PrepareError(f"no reader of original files for data set {name!r}; original files are read for: "
                       f"{', '.join(READERS)} (give other sets as arrays)")
  source_dir = os.path.expanduser(os.fspath(source_dir))
  if not os.path.isdir(source_dir):
    raise PrepareError(f"source folder {source_dir!r} does not exist or is not a folder")
  return READERS[name](source_dir)


def _find(source_dir: str, stem: str) -> str:
  for candidate in (stem, stem + ".gz"):
    if os.path.isfile(os.path.join(source_dir, candidate)):
      return os.path.join(source_dir, candidate)
  raise PrepareError(f"{stem}[.gz] is missing from source folder {source_dir!r}; the IDX files needed are "
                     f"{', '.join(f'{p}-images-idx3-ubyte, {p}-labels-idx1-ubyte' for p in _IDX_SPLITS.values())}"
                     " (plain or .gz)")


def _read_bytes(path: str) -> bytes:
  try:
    with (gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")) as f:
      return f.read()
  except (OSError, EOFError) as e:
    raise PrepareError(f"cannot read {path}: {type(e).__name__}: {e}") from None


def read_idx(path: str, magic: int) -> np.ndarray:
  """An IDX file of unsigned bytes (LeCun's MNIST format): the big-endian header, then the data.

  Args:
    path: the file, plain or gzipped (`.gz`).
    magic: 0x00000803 for an image file (N, rows, cols), 0x00000801 for a label file (N,).

  Returns:
    uint8 array of the shape the header gives.
  """
  data = _read_bytes(path)
  ndim = magic & 0xFF
  header = 4 + 4 * ndim
  found = int.from_bytes(data[:4], "big") if len(data) >= 4 else None
  if found != magic or len(data) < header:
    kind = "image (idx3)" if ndim == 3 else "label (idx1)"
    raise PrepareError(f"{path} is not an IDX {kind} file of unsigned bytes: magic number "
                       f"{'none' if found is None else hex(found)}, expected {magic:#010x}")
  shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
  size = int(np.prod(shape))
  if len(data) - header != size:
    raise PrepareError(f"{path} holds {len(data) - header} bytes of data but its header promises {shape} = {size}")
  return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def read_mnist_idx(source_dir: str) -> dict[str, Arrays]:
  """MNIST or Fashion-MNIST from the four IDX files (train-…, t10k-…), plain or gzipped."""
  splits = {}
  for split, prefix in _IDX_SPLITS.items():
    images_path = _find(source_dir, f"{prefix}-images-idx3-ubyte")
    labels_path = _find(source_dir, f"{prefix}-labels-idx1-ubyte")
    images = read_idx(images_path, _IMAGES_MAGIC)
    labels = read_idx(labels_path, _LABELS_MAGIC)
    if len(images) != len(labels):
      raise PrepareError(f"{images_path} holds {len(images)} images but {labels_path} {len(labels)} labels")
    splits[split] = (images[..., None], labels.astype(np.int64))
  return splits


class _ArraysOnlyUnpickler(pickle.Unpickler):
  """Unpickles dicts, lists, strings, numbers and numpy arrays; refuses any other class."""

  _ALLOWED: ClassVar[set[tuple[str, str]]] = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
              ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
              ("numpy", "ndarray"), ("numpy", "dtype"),
              ("_codecs", "encode")}  # how pickle protocol 2 writes bytes under Python 3

  def find_class(self, module, name):
    if (module, name) not in self._ALLOWED:
      raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")
    return super().find_class(module, name)


def _cifar_batch(path: str) -> Arrays:
  try:
    with open(path, "rb") as f:
      batch = _ArraysOnlyUnpickler(f, encoding="bytes").load()
  except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError) as e:
    raise PrepareError(f"{path} is not a CIFAR-10 python batch ({type(e).__name__}: {e})") from None
  if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
    keys = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
    raise PrepareError(f"{path} is not a CIFAR-10 python batch: expected a dict with b'data' and b'labels', "
                       f"got {keys}")
  data, labels = np.asarray(batch[b"data"]), np.asarray(batch[b"labels"])
  if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
    raise PrepareError(f"{path}: b'data' is {data.dtype} {data.shape}, expected uint8 (N, 3072)")
  if labels.shape != (len(data),) or not np.issubdtype(labels.dtype, np.integer):
    raise PrepareError(f"{path}: b'labels' is {labels.dtype} {labels.shape}, expected {len(data)} integers")
  images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # R, G, B planes → (32, 32, 3)
  return np.ascontiguousarray(images), labels.astype(np.int64)


def read_cifar10_python(source_dir: str) -> dict[str, Arrays]:
  """CIFAR-10's python batches: `cifar-10-batches-py/` or the folder that holds it."""
  folder = source_dir
  if os.path.isdir(os.path.join(source_dir, "cifar-10-batches-py")):
    folder = os.path.join(source_dir, "cifar-10-batches-py")
  files = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
  missing = [f for names in files.values() for f in names if not os.path.isfile(os.path.join(folder, f))]
  if missing:
    raise PrepareError(f"{', '.join(missing)} missing from {folder!r}; give the cifar-10-batches-py folder of "
                       "the CIFAR-10 python version (data_batch_1 … data_batch_5, test_batch), or its parent")
  splits = {}
  for split, names in files.items():
    batches = [_cifar_batch(os.path.join(folder, f)) for f in names]
    splits[split] = (np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches]))
  return splits


def _svhn_mat(path: str) -> Arrays:
  try:
    mat = scipy_io.loadmat(path, variable_names=["X", "y"])
  except (OSError, ValueError, TypeError, NotImplementedError) as e:  # NotImplementedError: a v7.3 (HDF5) file
    raise PrepareError(f"{path} is not a .mat file scipy reads (SVHN's are MATLAB v5; {type(e).__name__}: "
                       f"{e})") from None
  if "X" not in mat or "y" not in mat:
    raise PrepareError(f"{path} lacks {'X' if 'X' not in mat else 'y'}: expected X (32, 32, 3, N) uint8, y (N, 1)")
  x, y = mat["X"], mat["y"]
  if x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != (32, 32, 3):
    raise PrepareError(f"{path}: X is {x.dtype} {x.shape}, expected uint8 (32, 32, 3, N)")
  if y.size != x.shape[3] or not np.issubdtype(y.dtype, np.integer) and not np.all(y == np.round(y)):
    raise PrepareError(f"{path}: y is {y.dtype} {y.shape}, expected {x.shape[3]} integer labels 1..10")
  y = y.reshape(-1).astype(np.int64)
  bad = np.flatnonzero((y < 1) | (y > 10))
  if bad.size:
    raise PrepareError(f"{path}: label {y[bad[0]]} at index {bad[0]} is out of range; SVHN labels are 1..10 "
                       "(10 is the digit 0)")
  return np.ascontiguousarray(np.moveaxis(x, -1, 0)), y % 10  # the digit 0 is labelled 10: store 0, as TFDS


def read_svhn_mat(source_dir: str) -> dict[str, Arrays]:
  """SVHN cropped digits: `train_32x32.mat`, `test_32x32.mat`, and `extra_32x32.mat` if present."""
  missing = [f"{s}_32x32.mat" for s in ("train", "test") if not os.path.isfile(os.path.join(source_dir, f"{s}_32x32.mat"))]
  if missing:
    raise PrepareError(f"{', '.join(missing)} missing from {source_dir!r}; give the folder holding "
                       "train_32x32.mat, test_32x32.mat (and optionally extra_32x32.mat)")
  splits = {s: _svhn_mat(os.path.join(source_dir, f"{s}_32x32.mat")) for s in ("train", "test")}
  if os.path.isfile(os.path.join(source_dir, "extra_32x32.mat")):
    splits["extra"] = _svhn_mat(os.path.join(source_dir, "extra_32x32.mat"))
  return splits


READERS: dict[str, Callable[[str], dict[str, Arrays]]] = {
    "mnist": read_mnist_idx,
    "fashion_mnist": read_mnist_idx,
    "cifar10": read_cifar10_python,
    "svhn_cropped": read_svhn_mat,
}
