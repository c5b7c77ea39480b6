"""`dv_faces`: scikit-image's 25×25 face / non-face patches as a TFDS data set.

200 grey 25×25 patches shipped with scikit-image (`skimage.data.lfw_subset`): the first
100 are faces cropped from Labeled Faces in the Wild (Huang et al. 2007), the last 100
are non-face patches cut from other images. Labels: 0 = `non_face`, 1 = `face`. Pixels
are float32 in [0, 1]. The fixed, class-stratified split is
train / validation / test = 120 / 40 / 40.
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

from deepvision.data.builders import common

SPLIT_SIZES = {"train": 120, "validation": 40, "test": 40}
LABEL_NAMES = ("non_face", "face")


def load_raw() -> tuple[np.ndarray, np.ndarray]:
  """The patches as shipped: images float32 (200, 25, 25, 1) in [0, 1], labels int64 (200,)."""
  from skimage.data import lfw_subset  # Imported lazily: only needed to prepare.

  images = lfw_subset().astype(np.float32)[..., None]
  labels = np.repeat(np.array([1, 0], dtype=np.int64), 100)  # faces first
  return images, labels


def split_indices() -> dict[str, np.ndarray]:
  """Split name → indices into `load_raw()`; fixed forever."""
  _, labels = load_raw()
  return common.split_indices(labels, SPLIT_SIZES, salt="dv_faces")


class DvFaces(common.EmbeddedBuilder):
  """LFW face / non-face patches, 25×25×1 float32 in [0, 1], 2 classes, fixed 120/40/40 split."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release."}

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(shape=(25, 25, 1), dtype=np.float32),
            "label": tfds.features.ClassLabel(names=list(LABEL_NAMES)),
        }),
        supervised_keys=("image", "label"),
        disable_shuffling=True,
        homepage="https://vis-www.cs.umass.edu/lfw/",
        citation=(
            "G. B. Huang, M. Ramesh, T. Berg, E. Learned-Miller. Labeled Faces in the Wild: "
            "A Database for Studying Face Recognition in Unconstrained Environments. 2007."
        ),
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
