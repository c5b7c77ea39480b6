"""deepvision.data.original_files: tiny files in the catalogs' original formats, prepared and read back."""

import gzip
import os
import pickle
import struct
from collections import Counter

import numpy as np
import pytest
from scipy import io as scipy_io

from deepvision.data import datasets, original_files, prepare
from deepvision.data.prepare import PrepareError


def _as_uint8(images):
  return np.round(images * 255).astype(np.uint8)


def _write_idx(path, array, magic, compress):
  data = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape) + array.tobytes()
  with (gzip.open(path, "wb") if compress else open(path, "wb")) as f:
    f.write(data)


def _write_mnist(folder, splits, compress=("train",)):
  os.makedirs(folder, exist_ok=True)
  for split, (images, labels) in splits.items():
    prefix = {"train": "train", "test": "t10k"}[split]
    suffix = ".gz" if split in compress else ""
    _write_idx(os.path.join(folder, f"{prefix}-images-idx3-ubyte{suffix}"), images, 0x803, split in compress)
    _write_idx(os.path.join(folder, f"{prefix}-labels-idx1-ubyte{suffix}"), labels, 0x801, split in compress)


def _digits(n, seed):
  rng = np.random.default_rng(seed)
  return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n).astype(np.uint8)


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_idx_files_plain_and_gzipped_read_back_through_the_loader(tmp_path, name):
  splits = {"train": _digits(5, 0), "test": _digits(3, 1)}
  _write_mnist(tmp_path / "src", splits)  # train gzipped, test plain
  prepared = prepare.prepare_arrays(name, original_files.read_original(name, tmp_path / "src"), tmp_path / "data")
  assert prepared.splits == {"train": 5, "test": 3}
  for split, (images, labels) in splits.items():
    read_images, read_labels = datasets.load_arrays(name, split, data_dir=tmp_path / "data")
    np.testing.assert_array_equal(_as_uint8(read_images)[..., 0], images)
    np.testing.assert_array_equal(read_labels, labels)


def test_idx_errors_name_the_file_and_what_is_expected(tmp_path):
  _write_mnist(tmp_path, {"train": _digits(2, 0)})
  with pytest.raises(PrepareError, match=r"^t10k-images-idx3-ubyte\[\.gz\] is missing from source folder "
                                         r".*; the IDX files needed are train-images-idx3-ubyte, "):
    original_files.read_original("mnist", tmp_path)
  _write_mnist(tmp_path, {"test": _digits(2, 1)}, compress=())
  _write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(3, np.uint8), 0x801, False)  # 2 images, 3 labels
  with pytest.raises(PrepareError, match=r"t10k-images-idx3-ubyte holds 2 images but .*t10k-labels-idx1-ubyte 3"):
    original_files.read_original("mnist", tmp_path)
  _write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(2, np.uint8), 0x803, False)  # wrong magic
  with pytest.raises(PrepareError, match=r"t10k-labels-idx1-ubyte is not an IDX label \(idx1\) file of unsigned "
                                         r"bytes: magic number 0x803, expected 0x00000801"):
    original_files.read_original("mnist", tmp_path)
  with open(tmp_path / "t10k-images-idx3-ubyte", "r+b") as f:
    f.truncate(16 + 28 * 28 + 5)  # one image and 5 bytes of the second
  with pytest.raises(PrepareError, match=r"holds 789 bytes of data but its header promises \(2, 28, 28\) = 1568"):
    original_files.read_original("mnist", tmp_path)


def _write_cifar(folder, batches):
  os.makedirs(folder, exist_ok=True)
  for name, (data, labels) in batches.items():
    with open(os.path.join(folder, name), "wb") as f:
      pickle.dump({b"batch_label": name.encode(), b"labels": list(labels), b"data": data,
                   b"filenames": [b"x.png"] * len(labels)}, f, protocol=2)


def test_cifar10_python_batches_read_back_with_the_planes_as_channels(tmp_path):
  rng = np.random.default_rng(0)
  names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
  batches = {name: (rng.integers(0, 256, (2, 3072), dtype=np.uint8), rng.integers(0, 10, 2)) for name in names}
  _write_cifar(tmp_path / "src" / "cifar-10-batches-py", batches)
  splits = original_files.read_original("cifar10", tmp_path / "src")  # the parent of cifar-10-batches-py
  prepare.prepare_arrays("cifar10", splits, tmp_path / "data")
  images, labels = datasets.load_arrays("cifar10", "train", data_dir=tmp_path / "data")
  assert images.shape == (10, 32, 32, 3)
  np.testing.assert_array_equal(labels, np.concatenate([batches[n][1] for n in names[:5]]))
  data = batches["data_batch_2"][0][1]  # the fourth training image
  pixels = _as_uint8(images)[3]
  assert pixels[0, 0, 0] == data[0] and pixels[0, 0, 1] == data[1024] and pixels[0, 0, 2] == data[2048]
  assert pixels[1, 2, 0] == data[32 + 2] and pixels[31, 31, 2] == data[3071]
  np.testing.assert_array_equal(pixels, data.reshape(3, 32, 32).transpose(1, 2, 0))
  test_images, test_labels = datasets.load_arrays("cifar10", "test", data_dir=tmp_path / "data")
  np.testing.assert_array_equal(_as_uint8(test_images), batches["test_batch"][0].reshape(-1, 3, 32, 32)
                                .transpose(0, 2, 3, 1))
  np.testing.assert_array_equal(test_labels, batches["test_batch"][1])


def test_cifar10_errors_and_pickles_that_hold_other_objects(tmp_path):
  _write_cifar(tmp_path, {"data_batch_1": (np.zeros((1, 3072), np.uint8), [0])})
  with pytest.raises(PrepareError, match=r"^data_batch_2, data_batch_3, data_batch_4, data_batch_5, test_batch "
                                         r"missing from"):
    original_files.read_original("cifar10", tmp_path)
  names = [f"data_batch_{i}" for i in range(2, 6)] + ["test_batch"]
  _write_cifar(tmp_path, {name: (np.zeros((1, 3072), np.uint8), [0]) for name in names})
  with open(tmp_path / "test_batch", "wb") as f:
    pickle.dump(Counter(a=1), f)  # any class but numpy arrays is refused, never constructed
  with pytest.raises(PrepareError, match=r"test_batch is not a CIFAR-10 python batch \(UnpicklingError: refusing "
                                         r"to unpickle collections.Counter\)"):
    original_files.read_original("cifar10", tmp_path)
  _write_cifar(tmp_path, {"test_batch": (np.zeros((1, 1024), np.uint8), [0])})
  with pytest.raises(PrepareError, match=r"test_batch: b'data' is uint8 \(1, 1024\), expected uint8 \(N, 3072\)"):
    original_files.read_original("cifar10", tmp_path)


def _write_svhn(folder, splits):
  os.makedirs(folder, exist_ok=True)
  for split, (images, labels) in splits.items():
    scipy_io.savemat(os.path.join(folder, f"{split}_32x32.mat"),
                     {"X": np.moveaxis(images, 0, -1), "y": labels.reshape(-1, 1).astype(np.uint8)})


def test_svhn_mat_files_read_back_with_label_10_as_digit_0(tmp_path):
  rng = np.random.default_rng(0)
  images = {s: rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8) for s, n in [("train", 4), ("test", 3),
                                                                                  ("extra", 2)]}
  labels = {"train": np.array([10, 1, 9, 10]), "test": np.array([3, 10, 5]), "extra": np.array([10, 2])}
  _write_svhn(tmp_path / "src", {s: (images[s], labels[s]) for s in images})
  prepared = prepare.prepare_arrays("svhn_cropped", original_files.read_original("svhn_cropped", tmp_path / "src"),
                                    tmp_path / "data")
  assert prepared.splits == {"train": 4, "test": 3, "extra": 2}
  for split, split_images in images.items():
    read_images, read_labels = datasets.load_arrays("svhn_cropped", split, data_dir=tmp_path / "data")
    np.testing.assert_array_equal(_as_uint8(read_images), split_images)
    np.testing.assert_array_equal(read_labels, labels[split] % 10)
  assert list(datasets.load_arrays("svhn_cropped", "train", data_dir=tmp_path / "data")[1]) == [0, 1, 9, 0]


def test_svhn_extra_is_optional_and_labels_outside_1_to_10_are_refused(tmp_path):
  images = np.zeros((2, 32, 32, 3), np.uint8)
  _write_svhn(tmp_path, {"train": (images, np.array([1, 2])), "test": (images, np.array([10, 10]))})
  assert sorted(original_files.read_original("svhn_cropped", tmp_path)) == ["test", "train"]
  _write_svhn(tmp_path, {"test": (images, np.array([0, 10]))})
  with pytest.raises(PrepareError, match=r"test_32x32.mat: label 0 at index 0 is out of range; SVHN labels are "
                                         r"1..10 \(10 is the digit 0\)"):
    original_files.read_original("svhn_cropped", tmp_path)
  os.remove(tmp_path / "train_32x32.mat")
  with pytest.raises(PrepareError, match=r"^train_32x32.mat missing from"):
    original_files.read_original("svhn_cropped", tmp_path)


def test_original_files_only_for_catalog_sets_and_existing_folders(tmp_path):
  with pytest.raises(PrepareError, match=r"^no reader of original files for data set 'my_set'; original files "
                                         r"are read for: mnist, fashion_mnist, cifar10, svhn_cropped"):
    original_files.read_original("my_set", tmp_path)
  with pytest.raises(PrepareError, match=r"^source folder '.*absent' does not exist or is not a folder"):
    original_files.read_original("mnist", tmp_path / "absent")
