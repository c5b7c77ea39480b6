"""`dv_natural_images`: the photographs shipped with scikit-image and scikit-learn, in grey.

Sixteen images of varied size (172×448 up to 872×1000) that load without a download: 14
from `skimage.data` (camera man, astronaut, brick, grass, gravel, moon, coffee, the cat
Chelsea, coins, page, text, rocket launch, Hubble deep field, immunohistochemistry) and
scikit-learn's two sample images (china, flower). Colour images are turned grey with the
ITU-R BT.709 luma, Y = 0.2125 R + 0.7154 G + 0.0721 B (`skimage.color.rgb2gray`), then
rounded to uint8 and stored losslessly as PNG. Read back they are uint8 (H, W, 1); divide by
255 for [0, 1]. Features: `image`, `name`. One split, `train`, in the order listed above.
Meant as a pool of natural-image patches (whitening, RBM and gated-MRF training).
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

from deepvision.data.builders import common

SKIMAGE_NAMES = (
    "camera", "astronaut", "brick", "grass", "gravel", "moon", "coffee", "chelsea",
    "coins", "page", "text", "rocket", "hubble_deep_field", "immunohistochemistry",
)
SKLEARN_NAMES = ("china", "flower")
NAMES = SKIMAGE_NAMES + SKLEARN_NAMES


def to_grey_uint8(image: np.ndarray) -> np.ndarray:
  """uint8 (H, W) grey image from a uint8 grey (H, W) or RGB (H, W, 3) image."""
  from skimage.color import rgb2gray  # Imported lazily: only needed to prepare.

  image = np.asarray(image)
  if image.ndim == 2:
    return image.astype(np.uint8)
  return np.round(rgb2gray(image) * 255.0).astype(np.uint8)


def load_raw() -> list[tuple[str, np.ndarray]]:
  """(name, uint8 (H, W) grey image) for every image, in the stored order."""
  import skimage.data  # Imported lazily: only needed to prepare.
  from sklearn.datasets import load_sample_images

  images = [(name, to_grey_uint8(getattr(skimage.data, name)())) for name in SKIMAGE_NAMES]
  samples = load_sample_images()
  by_file = dict(zip((f.rsplit("/", 1)[-1].split(".")[0] for f in samples.filenames), samples.images))
  images += [(name, to_grey_uint8(by_file[name])) for name in SKLEARN_NAMES]
  return images


class DvNaturalImages(common.EmbeddedBuilder):
  """Grey natural photographs of varied size, uint8 (H, W, 1), with their names."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release."}

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(None, None, 1), dtype=np.uint8, encoding_format="png"),
            "name": tfds.features.Text(),
        }),
        disable_shuffling=True,
        homepage="https://scikit-image.org/docs/stable/api/skimage.data.html",
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download.
    return {"train": self._generate_examples(load_raw())}

  def _generate_examples(self, images):
    for key, (name, image) in enumerate(images):
      # PNG bytes: tfds can encode numpy images only with TensorFlow.
      yield key, {"image": common.png_bytes(image), "name": name}
