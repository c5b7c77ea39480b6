"""A folder of image files (one folder per class) prepared as a data set and read back exactly."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from deepvision.data import datasets, image_folder, prepare


def _write(path, array):
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(array).save(path)


def test_split_and_class_folders_become_labelled_splits(tmp_path):
  rng = np.random.default_rng(0)
  expected = {}
  for split, counts in (("train", {"cat": 2, "dog": 3}), ("test", {"dog": 1})):
    for label, (name, count) in enumerate(sorted(counts.items())):
      for i in range(count):
        image = rng.integers(0, 256, (6, 5), dtype=np.uint8)
        _write(tmp_path / "images" / split / name / f"{i}.png", image)
        expected.setdefault(split, []).append((image, {"cat": 0, "dog": 1}[name]))
  splits, classes = image_folder.read_image_folder(tmp_path / "images")
  assert classes == ["cat", "dog"]
  for split, items in expected.items():
    images, labels = splits[split]
    np.testing.assert_array_equal(images, np.stack([i for i, _ in items]))
    np.testing.assert_array_equal(labels, [label for _, label in items])  # 'dog' is 1 in test too
  prepare.prepare_arrays("pets", splits, tmp_path / "data")
  images, labels = datasets.load_arrays("pets", "train", data_dir=tmp_path / "data")
  np.testing.assert_array_equal(np.round(images[..., 0] * 255).astype(np.uint8), splits["train"][0])
  np.testing.assert_array_equal(labels, splits["train"][1])


def test_a_class_folder_with_a_split_and_colour_images(tmp_path):
  red = np.zeros((4, 4, 3), np.uint8)
  red[..., 0] = 200
  _write(tmp_path / "a" / "x.png", red)
  _write(tmp_path / "b" / "y.png", np.full((4, 4), 7, np.uint8))  # grey, converted with the colour ones
  splits, classes = image_folder.read_image_folder(tmp_path, split="train")
  images, labels = splits["train"]
  assert classes == ["a", "b"] and images.shape == (2, 4, 4, 3) and list(labels) == [0, 1]
  np.testing.assert_array_equal(images[0], red)
  np.testing.assert_array_equal(images[1], np.full((4, 4, 3), 7))


def test_bad_folders_are_named(tmp_path):
  with pytest.raises(prepare.PrepareError, match="does not exist"):
    image_folder.read_image_folder(tmp_path / "none")
  _write(tmp_path / "f" / "train" / "a" / "0.png", np.zeros((4, 4), np.uint8))
  _write(tmp_path / "f" / "train" / "b" / "1.png", np.zeros((5, 4), np.uint8))
  with pytest.raises(prepare.PrepareError, match=r"1.png is 4×5 pixels but .*0.png is 4×4"):
    image_folder.read_image_folder(tmp_path / "f")
  (tmp_path / "g" / "train" / "a").mkdir(parents=True)
  (tmp_path / "g" / "train" / "a" / "0.png").write_bytes(b"not a png")
  with pytest.raises(prepare.PrepareError, match=r"0.png is not an image PIL can read"):
    image_folder.read_image_folder(tmp_path / "g")
  (tmp_path / "h" / "train" / "a").mkdir(parents=True)
  with pytest.raises(prepare.PrepareError, match=r"split\(s\) train hold no image files"):
    image_folder.read_image_folder(tmp_path / "h")
