"""deepvision.data.prepare: arrays written as catalog or user-named TFDS sets, read back by the loader."""

import contextlib
import importlib.abc
import json
import os
import sys
import traceback

import numpy as np
import pytest
import tensorflow_datasets as tfds

from deepvision.data import datasets, prepare
from deepvision.data.prepare import PrepareError
from deepvision.registry import UnknownNameError

CATALOG_SHAPES = {"mnist": (28, 28, 1), "fashion_mnist": (28, 28, 1), "cifar10": (32, 32, 3),
                  "svhn_cropped": (32, 32, 3)}


def _arrays(n, shape, seed=0, classes=10):
  rng = np.random.default_rng(seed)
  return rng.integers(0, 256, (n, *shape), dtype=np.uint8), rng.integers(0, classes, n)


def _as_uint8(images):
  return np.round(images * 255).astype(np.uint8)


def _snapshot(folder):
  """path → bytes of every file under `folder`."""
  files = {}
  for root, _, names in os.walk(folder):
    for name in names:
      path = os.path.join(root, name)
      with open(path, "rb") as f:
        files[os.path.relpath(path, folder)] = f.read()
  return files


# ----------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("name", sorted(CATALOG_SHAPES))
def test_catalog_set_reads_back_through_the_loader_with_the_catalogs_features(tmp_path, name):
  shape = CATALOG_SHAPES[name]
  splits = {"train": _arrays(7, shape, seed=1), "test": _arrays(3, shape, seed=2)}
  if name == "svhn_cropped":
    splits["extra"] = _arrays(2, shape, seed=3)
  prepared = prepare.prepare_arrays(name, splits, tmp_path)
  catalog = tfds.builder(name, data_dir=os.fspath(tmp_path / "unprepared"))
  assert prepared.path == os.path.join(tmp_path, name, str(catalog.version))
  assert prepared.splits == {split: len(labels) for split, (_, labels) in splits.items()}
  for split, (images, labels) in splits.items():
    read_images, read_labels = datasets.load_arrays(name, split, data_dir=tmp_path)
    np.testing.assert_array_equal(_as_uint8(read_images), images)
    np.testing.assert_array_equal(read_labels, labels)
  assert datasets.dataset_info(name, tmp_path) == datasets.DatasetInfo(
      name, shape, 10, {split: len(labels) for split, (_, labels) in splits.items()}, (0, 255))
  builder = tfds.builder(name, data_dir=os.fspath(tmp_path))  # what TFDS itself reads there
  assert builder.info.features.to_json() == catalog.info.features.to_json()
  assert builder.info.file_format.value == "array_record"


def test_mnist_takes_images_without_a_channel_axis(tmp_path):
  images, labels = _arrays(5, (28, 28))
  prepare.prepare_arrays("mnist", {"train": (images, labels)}, tmp_path)
  read_images, _ = datasets.load_arrays("mnist", "train", data_dir=tmp_path)
  assert read_images.shape == (5, 28, 28, 1)
  np.testing.assert_array_equal(_as_uint8(read_images)[..., 0], images)


def test_cifar10_keeps_the_catalogs_ids_and_class_names(tmp_path):
  images, labels = _arrays(3, (32, 32, 3))
  prepare.prepare_arrays("cifar10", {"test": (images, labels)}, tmp_path)
  source = datasets.get_source("cifar10", "test", tmp_path)
  assert [source[i]["id"] for i in range(3)] == [b"test_00000", b"test_00001", b"test_00002"]
  names = tfds.builder("cifar10", data_dir=os.fspath(tmp_path)).info.features["label"].names
  assert names[0] == "airplane" and names[9] == "truck"


@pytest.mark.parametrize("shape", [(6, 7, 2), (5, 4)])
def test_user_named_set_reads_back_by_its_name(tmp_path, shape):
  train, test = _arrays(6, shape, seed=4, classes=4), _arrays(2, shape, seed=5, classes=4)
  prepared = prepare.prepare_arrays("my_set", {"train": train, "test": test}, tmp_path, num_classes=5)
  assert prepared.path == os.path.join(tmp_path, "my_set", prepare.USER_VERSION)
  stored = shape if len(shape) == 3 else (*shape, 1)
  assert datasets.dataset_info("my_set", tmp_path) == datasets.DatasetInfo(
      "my_set", stored, 5, {"train": 6, "test": 2}, (0, 255))
  for split, (images, labels) in {"train": train, "test": test}.items():
    read_images, read_labels = datasets.load_arrays("my_set", split, data_dir=tmp_path)
    np.testing.assert_array_equal(_as_uint8(read_images), images.reshape(-1, *stored))
    np.testing.assert_array_equal(read_labels, labels)  # the order is kept


def test_user_set_classes_default_to_the_largest_label_plus_one(tmp_path):
  images, _ = _arrays(3, (4, 4))
  prepared = prepare.prepare_arrays("few", {"train": (images, np.array([0, 6, 2], np.uint8))}, tmp_path)
  assert prepared.num_classes == 7 == datasets.dataset_info("few", tmp_path).num_classes


def test_a_config_takes_a_user_named_set_as_its_dataset(tmp_path):
  from deepvision.train.supervised import plan_supervised  # pylint: disable=g-import-not-at-top
  from experiments.configs import lenet5_mnist  # pylint: disable=g-import-not-at-top
  prepare.prepare_arrays("my_digits", {"train": _arrays(80, (28, 28)), "test": _arrays(8, (28, 28), seed=1)},
                         tmp_path)
  config = lenet5_mnist.get_config("smoke")
  config.dataset, config.data_dir = "my_digits", os.fspath(tmp_path)
  planned = plan_supervised(config)
  assert planned.info.name == "my_digits" and planned.info.image_shape == (28, 28, 1)
  assert len(planned.test_source) == 8 and planned.steps_per_epoch == config.train_subset // config.batch_size


class _RecordTensorFlowImports(importlib.abc.MetaPathFinder):
  """Records `import tensorflow` statements (not `importlib.util.find_spec` probes, which etils makes
  to learn whether TensorFlow is installed, and which import nothing)."""

  def __init__(self):
    self.imports = []

  def find_spec(self, fullname, path=None, target=None):
    if fullname.split(".")[0] == "tensorflow":
      names = [frame.name for frame in traceback.extract_stack()]
      caller = names[len(names) - 1 - names[::-1].index("_find_spec") - 1]
      if caller == "_find_and_load_unlocked":  # an import statement, not a probe
        self.imports.append(fullname)


def test_preparing_and_reading_never_import_tensorflow(tmp_path, monkeypatch):
  finder = _RecordTensorFlowImports()
  monkeypatch.setattr(sys, "meta_path", [finder, *sys.meta_path])
  with contextlib.suppress(ImportError):  # the finder sees an import statement (TensorFlow need not be installed)
    import tensorflow  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  assert finder.imports == ["tensorflow"]
  finder.imports.clear()
  prepare.prepare_arrays("cifar10", {"train": _arrays(2, (32, 32, 3))}, tmp_path)
  prepare.prepare_arrays("own", {"train": _arrays(2, (3, 3))}, tmp_path)
  datasets.load_arrays("cifar10", "train", data_dir=tmp_path)
  datasets.load_arrays("own", "train", data_dir=tmp_path)
  assert finder.imports == []


# ----------------------------------------------------------------------------- bad input


def _mnist(n=3, shape=(28, 28)):
  return _arrays(n, shape)


BAD_INPUT = {
    "27x28 for mnist": ("mnist", lambda: {"train": _mnist(shape=(27, 28))}, {},
                        ("split 'train': images have shape (27, 28, 1) each but 'mnist' takes (N, 28, 28) or "
                         "(N, 28, 28, 1) uint8 images")),
    "2-D images": ("mine", lambda: {"train": (np.zeros((3, 5), np.uint8), np.zeros(3, int))}, {},
                   "split 'train': images have shape (3, 5) (2-D) but 'mine' takes (N, H, W) or (N, H, W, C)"),
    "5-D images": ("mine", lambda: {"train": (np.zeros((3, 2, 2, 1, 1), np.uint8), np.zeros(3, int))}, {},
                   "split 'train': images have shape (3, 2, 2, 1, 1) (5-D)"),
    "float images": ("mnist", lambda: {"train": (np.zeros((3, 28, 28), np.float32), np.zeros(3, int))}, {},
                     "split 'train': images have dtype float32 but 'mnist' takes uint8 (0..255) images"),
    "float labels": ("mnist", lambda: {"train": (_mnist()[0], np.zeros(3, np.float64))}, {},
                     "split 'train': labels have dtype float64 but integer labels are required"),
    "label 10 of 10 classes": ("mnist", lambda: {"train": (_mnist()[0], np.array([1, 10, 2]))}, {},
                               "split 'train': label 10 at index 1 is out of range; 'mnist' takes labels 0..9"),
    "negative label": ("mnist", lambda: {"train": (_mnist()[0], np.array([1, 2, -1]))}, {},
                       "split 'train': label -1 at index 2 is negative"),
    "label beyond num_classes": ("mine", lambda: {"train": (_mnist()[0], np.array([0, 3, 1]))},
                                 {"num_classes": 3}, ("split 'train': label 3 at index 1 is out of range; "
                                                      "'mine' takes labels 0..2 (3 classes)")),
    "length mismatch": ("mnist", lambda: {"train": (_mnist(4)[0], np.zeros(3, int))}, {},
                        "split 'train': 4 images but 3 labels"),
    "2-D labels": ("mnist", lambda: {"train": (_mnist()[0], np.zeros((3, 1), int))}, {},
                   "split 'train': labels have shape (3, 1); a 1-D array (N,) is required"),
    "no example": ("mine", lambda: {"train": (np.zeros((0, 4, 4), np.uint8), np.zeros(0, int))}, {},
                   "split 'train': images have shape (0, 4, 4, 1); every split needs at least one image"),
    "catalog split": ("mnist", lambda: {"validation": _mnist()}, {},
                      "split 'validation' is not a split of catalog set 'mnist'; valid choices: train, test"),
    "bad split name": ("mine", lambda: {"Train/1": _mnist()}, {}, "invalid split name 'Train/1'"),
    "no split": ("mine", dict, {}, "no splits to prepare for 'mine'"),
    "shapes differ across splits": ("mine", lambda: {"train": _arrays(2, (4, 4)), "test": _arrays(2, (4, 5))}, {},
                                    "split 'test': images have shape (4, 5, 1) each but 'mine' takes (N, 4, 4)"),
    "num_classes for a catalog set": ("mnist", lambda: {"train": _mnist()}, {"num_classes": 12},
                                      "num_classes=12 is fixed by the catalog for 'mnist'"),
    "bad user name": ("My-Set", lambda: {"train": _mnist()}, {}, "invalid data set name 'My-Set': use lower case"),
    "embedded name": ("dv_digits", lambda: {"train": _mnist()}, {},
                      "data set name 'dv_digits' is an embedded deepvision set"),
    "other catalog name": ("kmnist", lambda: {"train": _mnist()}, {},
                           "data set name 'kmnist' is a TFDS catalog set that deepvision does not prepare"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_is_refused_naming_the_value_before_anything_is_written(tmp_path, case):
  name, splits, kwargs, message = BAD_INPUT[case]
  data_dir = tmp_path / "data"
  with pytest.raises(PrepareError) as error:
    prepare.prepare_arrays(name, splits(), data_dir, **kwargs)
  assert str(error.value).startswith(message), str(error.value)
  assert "\n" not in str(error.value)
  assert not data_dir.exists()


def test_prepared_data_are_not_overwritten_unless_asked(tmp_path):
  prepare.prepare_arrays("mnist", {"train": _arrays(4, (28, 28), seed=1)}, tmp_path)
  before = _snapshot(tmp_path)
  new_images, new_labels = _arrays(6, (28, 28), seed=2)
  with pytest.raises(PrepareError, match=r"data set 'mnist' is already prepared in .*mnist/3\.0\.1; set "
                                         r"overwrite=True \(--overwrite\) to replace it"):
    prepare.prepare_arrays("mnist", {"train": (new_images, new_labels), "test": (new_images, new_labels)},
                           tmp_path)
  assert _snapshot(tmp_path) == before  # byte-identical, nothing added
  prepare.prepare_arrays("mnist", {"train": (new_images, new_labels)}, tmp_path, overwrite=True)
  images, labels = datasets.load_arrays("mnist", "train", data_dir=tmp_path)
  np.testing.assert_array_equal(_as_uint8(images)[..., 0], new_images)
  np.testing.assert_array_equal(labels, new_labels)
  assert sorted(os.listdir(tmp_path)) == ["mnist"] and os.listdir(tmp_path / "mnist") == ["3.0.1"]


def test_a_bad_input_with_overwrite_leaves_the_prepared_set_as_it_was(tmp_path):
  prepare.prepare_arrays("own", {"train": _arrays(4, (3, 3))}, tmp_path)
  before = _snapshot(tmp_path)
  with pytest.raises(PrepareError, match="label 10 at index 0 is out of range"):
    prepare.prepare_arrays("own", {"train": (_arrays(1, (3, 3))[0], [10])}, tmp_path, num_classes=10,
                           overwrite=True)
  assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("existing", [False, True])
def test_a_run_failing_mid_write_leaves_nothing_half_written(tmp_path, monkeypatch, existing):
  if existing:
    prepare.prepare_arrays("mnist", {"train": _arrays(4, (28, 28), seed=1)}, tmp_path)
  before = _snapshot(tmp_path)
  write_split = prepare._write_split

  def fail_on_test(checked, features, split, *args):
    if split == "test":
      raise OSError(28, "No space left on device")
    return write_split(checked, features, split, *args)

  monkeypatch.setattr(prepare, "_write_split", fail_on_test)
  with pytest.raises(OSError, match="No space left"):
    prepare.prepare_arrays("mnist", {"train": _mnist(), "test": _mnist()}, tmp_path, overwrite=True)
  assert _snapshot(tmp_path) == before
  assert sorted(os.listdir(tmp_path)) == (["mnist"] if existing else [])  # no temporary folder left


def test_a_failed_swap_puts_the_prepared_set_back(tmp_path, monkeypatch):
  prepare.prepare_arrays("own", {"train": _arrays(4, (3, 3))}, tmp_path)
  before = _snapshot(tmp_path)
  rename = os.rename

  def rename_but_not_the_new_set(source, destination):
    if ".incomplete-" in os.fspath(source):
      raise OSError(18, "Invalid cross-device link")
    rename(source, destination)

  monkeypatch.setattr(os, "rename", rename_but_not_the_new_set)
  with pytest.raises(OSError, match="Invalid cross-device link"):
    prepare.prepare_arrays("own", {"train": _arrays(2, (3, 3), seed=1)}, tmp_path, overwrite=True)
  assert _snapshot(tmp_path) == before
  assert os.listdir(tmp_path) == ["own"] and os.listdir(tmp_path / "own") == ["1.0.0"]


# ----------------------------------------------------------------------------- the loader's look-up


def test_unknown_name_says_where_prepared_sets_are_looked_for(tmp_path):
  with pytest.raises(UnknownNameError) as error:
    datasets.load_arrays("my_set", "train", data_dir=tmp_path)
  message = str(error.value)
  assert message.startswith("unknown data set 'my_set'. Valid choices: cifar10, dv_digits")
  assert message.endswith(f"or the name of a set prepared in data directory {os.fspath(tmp_path)!r} with "
                          "python -m experiments.prepare_data (none there is named 'my_set')")


def test_the_newest_version_folder_with_dataset_info_is_read(tmp_path):
  prepare.prepare_arrays("own", {"train": _arrays(2, (3, 3))}, tmp_path)
  os.makedirs(tmp_path / "own" / "9.0.0")  # no dataset_info.json: not a prepared version
  os.makedirs(tmp_path / "own" / ".1.0.0.replaced-x")
  assert datasets.prepared_path("own", tmp_path) == os.path.join(tmp_path, "own", "1.0.0")
  assert datasets.prepared_path("../own", tmp_path) is None  # never a path outside the data dir
  assert datasets.prepared_path("absent", tmp_path) is None


@pytest.mark.parametrize("name, shape, fix", [
    ("own", (3, 3), "prepare it again: python -m experiments.prepare_data --name=own --arrays=... --overwrite"),
    ("mnist", (28, 28), ("or without TensorFlow: python -m experiments.prepare_data --name=mnist "
                         "--source_dir=... --overwrite")),
])
def test_a_damaged_prepared_set_says_how_to_prepare_it_again(tmp_path, name, shape, fix):
  prepared = prepare.prepare_arrays(name, {"train": _arrays(50, shape)}, tmp_path)
  (record_file,) = [os.path.join(prepared.path, f) for f in os.listdir(prepared.path) if "train.array_record" in f]
  with open(record_file, "r+b") as f:
    f.truncate(os.path.getsize(record_file) // 2)
  with pytest.raises(datasets.DatasetCorruptedError) as error:
    datasets.load_arrays(name, "train", data_dir=tmp_path)
  assert str(error.value).startswith(f"data set {name!r} (split 'train') in {prepared.path} cannot be read")
  assert str(error.value).endswith(fix)


def test_written_metadata_is_tfds_json(tmp_path):
  prepared = prepare.prepare_arrays("own", {"train": _arrays(3, (2, 2, 3))}, tmp_path)
  umask = os.umask(0)
  os.umask(umask)
  assert os.stat(prepared.path).st_mode & 0o777 == 0o777 & ~umask  # like any folder made there, not 0700
  with open(os.path.join(prepared.path, "dataset_info.json")) as f:
    info = json.load(f)
  assert info["name"] == "own" and info["version"] == "1.0.0" and info["fileFormat"] == "array_record"
  assert [(s["name"], s["shardLengths"]) for s in info["splits"]] == [("train", ["3"])]
  assert tfds.builder_from_directory(prepared.path).info.features["image"].shape == (2, 2, 3)


# ----------------------------------------------------------------------------- npz layouts


def test_npz_with_split_prefixed_arrays(tmp_path):
  (a, b), (c, d) = _arrays(3, (4, 4)), _arrays(2, (4, 4), seed=1)
  np.savez(tmp_path / "x.npz", train_images=a, train_labels=b, test_images=c, test_labels=d)
  splits = prepare.load_npz(tmp_path / "x.npz")
  assert list(splits) == ["train", "test"]  # the file's order
  np.testing.assert_array_equal(splits["test"][0], c)
  np.testing.assert_array_equal(splits["train"][1], b)


def test_npz_with_images_and_labels_takes_the_split_name(tmp_path):
  a, b = _arrays(3, (4, 4))
  np.savez(tmp_path / "x.npz", images=a, labels=b)
  splits = prepare.load_npz(tmp_path / "x.npz", "train")
  assert list(splits) == ["train"]
  np.testing.assert_array_equal(splits["train"][0], a)


NPZ_ERRORS = {
    "missing labels": ({"train_images": 1, "test_images": 1, "test_labels": 1}, None,
                       "has no 'train_labels' array (arrays: test_images, test_labels, train_images)"),
    "no split for images": ({"images": 1, "labels": 1}, None,
                            "holds 'images' and 'labels': name their split (--split=train)"),
    "split with prefixed layout": ({"train_images": 1, "train_labels": 1}, "train",
                                   "split 'train' was given but arrays file"),
    "mixed layouts": ({"images": 1, "labels": 1, "train_images": 1}, "train", "mixes the two layouts"),
    "only labels": ({"labels": 1}, "train", "has no 'images' array (arrays: labels)"),
    "no image arrays": ({"x": 1}, None, "holds no image arrays (arrays: x)"),
}


@pytest.mark.parametrize("case", sorted(NPZ_ERRORS))
def test_npz_layout_errors_name_the_arrays_found(tmp_path, case):
  arrays, split, message = NPZ_ERRORS[case]
  np.savez(tmp_path / "x.npz", **{k: np.zeros(v) for k, v in arrays.items()})
  with pytest.raises(PrepareError, match="^arrays file|^split") as error:
    prepare.load_npz(tmp_path / "x.npz", split)
  assert message in str(error.value)


def test_unreadable_npz_files(tmp_path):
  with pytest.raises(PrepareError, match=r"arrays file '.*absent\.npz' does not exist"):
    prepare.load_npz(tmp_path / "absent.npz")
  (tmp_path / "bad.npz").write_bytes(b"not a zip")
  with pytest.raises(PrepareError, match=r"arrays file '.*bad\.npz' is not a readable \.npz file"):
    prepare.load_npz(tmp_path / "bad.npz")
