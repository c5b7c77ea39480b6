"""Tests for the embedded TFDS builders and the loader in deepvision.data.datasets."""

import hashlib
import json
import os
import time

import numpy as np
import pytest
import skimage.color
import skimage.data
import tensorflow_datasets as tfds
from sklearn.datasets import load_digits, load_sample_images

from deepvision import data
from deepvision.data import builders
from deepvision.data.builders import common, digits, faces, natural_images
from deepvision.registry import UnknownNameError
from mock_catalog import write_catalog_metadata


def _fingerprint(indices):
  return hashlib.sha256(np.asarray(indices, dtype="<i8").tobytes()).hexdigest()[:16]


# ----------------------------------------------------------------------------- splits


def test_stratified_split_sizes_balance_and_coverage():
  labels = np.repeat(np.arange(3), [50, 30, 20])
  splits = common.split_indices(labels, {"a": 60, "b": 20, "c": 20}, salt="t")
  assert [len(v) for v in splits.values()] == [60, 20, 20]
  everything = np.concatenate(list(splits.values()))
  np.testing.assert_array_equal(np.sort(everything), np.arange(100))  # disjoint, complete
  np.testing.assert_array_equal(np.bincount(labels[splits["b"]]), [10, 6, 4])  # exact proportions
  with pytest.raises(ValueError, match="do not add up to 100"):
    common.split_indices(labels, {"a": 60, "b": 20}, salt="t")


def test_digits_split_is_fixed_stratified_and_complete():
  _, labels = digits.load_raw()
  splits = digits.split_indices()
  assert {k: len(v) for k, v in splits.items()} == {"train": 1077, "validation": 360, "test": 360}
  np.testing.assert_array_equal(np.sort(np.concatenate(list(splits.values()))), np.arange(1797))
  class_counts = np.bincount(labels, minlength=10)
  for name, indices in splits.items():
    expected = class_counts * len(indices) / 1797
    assert np.all(np.abs(np.bincount(labels[indices], minlength=10) - expected) < 1), name
  # Pinned: the split must never change (it decides every reported test accuracy).
  assert splits["test"][:8].tolist() == [8, 9, 10, 11, 14, 17, 20, 24]
  assert {k: _fingerprint(v) for k, v in splits.items()} == {
      "train": "83c22b6f2ce2d2e6", "validation": "c20233a688ac9318", "test": "c748f4f970d85ab8"}


def test_faces_split_is_fixed_and_balanced():
  _, labels = faces.load_raw()
  splits = faces.split_indices()
  assert {k: np.bincount(labels[v]).tolist() for k, v in splits.items()} == {
      "train": [60, 60], "validation": [20, 20], "test": [20, 20]}
  assert {k: _fingerprint(v) for k, v in splits.items()} == {
      "train": "f9c1302b76501e54", "validation": "fb5658e185141d03", "test": "2d00ff177ce07f8b"}


# ----------------------------------------------------------------------------- embedded sets


def test_digits_records_match_scikit_learn(prepared_data_dir):
  raw = load_digits()
  for split, indices in digits.split_indices().items():
    images, labels = data.load_arrays("dv_digits", split, prepared_data_dir)
    assert images.shape == (len(indices), 8, 8, 1) and images.dtype == np.float32
    assert labels.dtype == np.int32
    np.testing.assert_array_equal(images[..., 0], raw.images[indices] / 16.0)
    np.testing.assert_array_equal(labels, raw.target[indices])
  assert images.min() == 0.0 and images.max() == 1.0


def test_faces_records_match_scikit_image_and_faces_are_label_1(prepared_data_dir):
  raw = skimage.data.lfw_subset()
  builder = builders.DvFaces(data_dir=prepared_data_dir)
  assert builder.info.features["label"].names == ["non_face", "face"]
  for split, indices in faces.split_indices().items():
    images, labels = data.load_arrays("dv_faces", split, prepared_data_dir)
    np.testing.assert_array_equal(images[..., 0], raw[indices].astype(np.float32))
    np.testing.assert_array_equal(labels, (indices < 100).astype(np.int32))  # first 100 are faces


def test_natural_images_are_exact_grey_uint8_with_names(prepared_data_dir):
  source = data.get_source("dv_natural_images", "train", prepared_data_dir)
  records = [source[i] for i in range(len(source))]
  names = [r["name"].decode() if isinstance(r["name"], bytes) else r["name"] for r in records]
  assert names == list(natural_images.NAMES) and len(names) == 16
  by_name = dict(zip(names, (r["image"] for r in records)))
  assert all(im.dtype == np.uint8 and im.ndim == 3 and im.shape[2] == 1 for im in by_name.values())
  np.testing.assert_array_equal(by_name["camera"][..., 0], skimage.data.camera())  # grey: as is
  astronaut = np.round(skimage.color.rgb2gray(skimage.data.astronaut()) * 255).astype(np.uint8)
  np.testing.assert_array_equal(by_name["astronaut"][..., 0], astronaut)
  samples = load_sample_images()
  flower = samples.images[[f.endswith("flower.jpg") for f in samples.filenames].index(True)]
  assert by_name["flower"].shape == (*flower.shape[:2], 1)
  assert by_name["hubble_deep_field"].shape == (872, 1000, 1)


def test_dataset_info_of_embedded_sets(prepared_data_dir):
  assert data.dataset_info("dv_digits", prepared_data_dir) == data.DatasetInfo(
      "dv_digits", (8, 8, 1), 10, {"train": 1077, "validation": 360, "test": 360}, (0.0, 1.0))
  assert data.dataset_info("dv_faces", prepared_data_dir) == data.DatasetInfo(
      "dv_faces", (25, 25, 1), 2, {"train": 120, "validation": 40, "test": 40}, (0.0, 1.0))
  assert data.dataset_info("dv_natural_images", prepared_data_dir) == data.DatasetInfo(
      "dv_natural_images", None, None, {"train": 16}, (0, 255))


def test_in_memory_source_equals_tfds_source(prepared_data_dir):
  on_disk = data.get_source("dv_faces", "validation", prepared_data_dir)
  in_memory = data.get_source("dv_faces", "validation", prepared_data_dir, in_memory=True)
  assert isinstance(in_memory, data.ArraySource) and len(in_memory) == len(on_disk) == 40
  for i in (0, 17, 39):
    np.testing.assert_array_equal(in_memory[i]["image"], on_disk[i]["image"])
    assert in_memory[i]["label"] == on_disk[i]["label"]


def test_sliced_split(prepared_data_dir):
  assert len(data.get_source("dv_digits", "train[:100]", prepared_data_dir)) == 100


def test_embedded_set_is_prepared_once_into_the_env_data_dir(tmp_path, monkeypatch):
  monkeypatch.setenv("DEEPVISION_DATA_DIR", str(tmp_path))
  assert len(data.get_source("dv_faces", "test")) == 40
  info_file = tmp_path / "dv_faces" / "1.0.0" / "dataset_info.json"
  assert info_file.exists()
  monkeypatch.setattr(builders.DvFaces, "download_and_prepare", lambda *a, **k: pytest.fail("re-prepared"))
  assert len(data.get_source("dv_faces", "train")) == 120


def test_concurrent_preparation_loser_reads_the_winners_data(tmp_path, monkeypatch):
  """Another process finishes preparing while this one generates: both end up reading."""
  original = builders.DvFaces._split_generators

  def split_generators_after_rival(self, dl_manager):
    monkeypatch.setattr(builders.DvFaces, "_split_generators", original)
    builders.DvFaces(data_dir=tmp_path).download_and_prepare(file_format="array_record")  # wins
    return original(self, dl_manager)

  monkeypatch.setattr(builders.DvFaces, "_split_generators", split_generators_after_rival)
  images, labels = data.load_arrays("dv_faces", "test", tmp_path)
  assert images.shape == (40, 25, 25, 1) and labels.sum() == 20
  assert os.listdir(tmp_path / "dv_faces") == ["1.0.0"]  # no half-written folder left


# ----------------------------------------------------------------------------- errors


def test_unknown_name_and_split_list_the_choices(prepared_data_dir):
  with pytest.raises(UnknownNameError, match="Did you mean 'dv_digits'.*dv_faces.*mnist"):
    data.get_source("dv_digit", "train", prepared_data_dir)
  with pytest.raises(ValueError, match="invalid split 'valid'.*train, validation, test"):
    data.get_source("dv_digits", "valid", prepared_data_dir)
  with pytest.raises(ValueError, match="varying size: use get_source"):
    data.load_arrays("dv_natural_images", "train", prepared_data_dir)


def test_registry_names():
  assert data.DATASETS.names() == sorted([
      "dv_digits", "dv_faces", "dv_natural_images", "mnist", "fashion_mnist", "cifar10", "svhn_cropped"])


@pytest.mark.parametrize("name", ["mnist", "svhn_cropped"])
def test_catalog_set_not_prepared_fails_fast_with_instructions(tmp_path, name):
  start = time.monotonic()
  with pytest.raises(data.DatasetNotFoundError) as error:
    data.get_source(name, "train", tmp_path)
  assert time.monotonic() - start < 10
  message = str(error.value)
  assert f"data set {name!r} is not prepared" in message
  assert str(tmp_path) in message
  assert f"tfds build {name} --file_format=array_record --data_dir={tmp_path}" in message
  assert isinstance(error.value, FileNotFoundError)


def test_catalog_set_prepared_as_tfrecord_is_refused_with_a_fix(tmp_path):
  write_catalog_metadata(tmp_path, "mnist", {"train": 60000, "test": 10000}, file_format="tfrecord")
  with pytest.raises(data.DatasetNotFoundError, match="tfrecord.*convert_format"):
    data.get_source("mnist", "train", tmp_path)


# ----------------------------------------------------------------------------- catalog (mocked)


@pytest.mark.parametrize("name, shape", [("mnist", (28, 28, 1)), ("cifar10", (32, 32, 3))])
def test_catalog_set_read_through_the_same_loader(tmp_path, name, shape):
  write_catalog_metadata(tmp_path, name, {"train": 50000, "test": 10000})
  assert data.dataset_info(name, tmp_path) == data.DatasetInfo(
      name, shape, 10, {"train": 50000, "test": 10000}, (0, 255))
  with tfds.testing.mock_data(num_examples=6, data_dir=os.fspath(tmp_path)):
    source = data.get_source(name, "test", tmp_path)
    assert len(source) == 6
    assert source[0]["image"].shape == shape and source[0]["image"].dtype == np.uint8
    images, labels = data.load_arrays(name, "train", tmp_path)
    raw = np.stack([source[i]["image"] for i in range(6)])
    np.testing.assert_array_equal(images, raw.astype(np.float32) / 255)  # uint8 → [0, 1]
    assert images.shape == (6, *shape) and labels.dtype == np.int32 and set(labels) <= set(range(10))
    with pytest.raises(ValueError, match="valid choices: train, test"):
      data.get_source(name, "validation", tmp_path)


def test_dataset_info_is_a_frozen_json_friendly_record(prepared_data_dir):
  info = data.dataset_info("dv_digits", prepared_data_dir)
  with pytest.raises(AttributeError):
    info.num_classes = 3
  assert json.loads(json.dumps(info.splits)) == info.splits
