"""TFDS builders for the data sets shipped inside installed packages.

Importing this package registers `dv_digits`, `dv_faces` and `dv_natural_images` with
TFDS. They prepare offline, in seconds, into array_record files with a fixed record order,
and are read with random access (`builder.as_data_source()`) without TensorFlow. Users go
through `deepvision.data.get_source`, which prepares them on first use.
"""

from deepvision.data.builders.digits import DvDigits
from deepvision.data.builders.faces import DvFaces
from deepvision.data.builders.natural_images import DvNaturalImages

__all__ = ["DvDigits", "DvFaces", "DvNaturalImages"]
