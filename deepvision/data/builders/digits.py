"""`dv_digits`: scikit-learn's 8×8 handwritten digits as a TFDS data set.

1,797 grey images of the digits 0-9 (UCI "Optical Recognition of Handwritten Digits",
Alpaydin & Kaynak 1998), shipped with scikit-learn (`sklearn.datasets.load_digits`).
Pixels count the set bits of a 4×4 block of a 32×32 bitmap, 0..16; they are stored as
float32 value / 16 in [0, 1]. The fixed, class-stratified split is
train / validation / test = 1077 / 360 / 360 (see `common.split_indices`).
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

from deepvision.data.builders import common

SPLIT_SIZES = {"train": 1077, "validation": 360, "test": 360}


def load_raw() -> tuple[np.ndarray, np.ndarray]:
  """The digits as shipped: images float32 (1797, 8, 8, 1) in [0, 1], labels int64 (1797,)."""
  from sklearn.datasets import load_digits  # Imported lazily: only needed to prepare.

  digits = load_digits()
  images = (digits.images / 16.0).astype(np.float32)[..., None]
  return images, digits.target.astype(np.int64)


def split_indices() -> dict[str, np.ndarray]:
  """Split name → indices into `load_raw()`; fixed forever."""
  _, labels = load_raw()
  return common.split_indices(labels, SPLIT_SIZES, salt="dv_digits")


class DvDigits(common.EmbeddedBuilder):
  """scikit-learn digits, 8×8×1 float32 in [0, 1], 10 classes, fixed 1077/360/360 split."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release."}

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(shape=(8, 8, 1), dtype=np.float32),
            "label": tfds.features.ClassLabel(num_classes=10),
        }),
        supervised_keys=("image", "label"),
        disable_shuffling=True,
        homepage="https://archive.ics.uci.edu/dataset/80",
        citation="E. Alpaydin, C. Kaynak. Optical Recognition of Handwritten Digits. UCI, 1998.",
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download.
    images, labels = load_raw()
    return {
        name: self._generate_examples(images[indices], labels[indices])
        for name, indices in split_indices().items()
    }

  def _generate_examples(self, images, labels):
    for key, (image, label) in enumerate(zip(images, labels)):
      yield key, {"image": image, "label": int(label)}
