"""Data: embedded and catalog data sets, the grain input pipeline, augmentations.

`datasets` loads any registered data set by name (`get_source`, `load_arrays`,
`dataset_info`); `pipeline` turns a source into training and evaluation batches;
`augment` holds jittable augmentations; `builders` the TFDS builders of the embedded sets.
"""

from deepvision.data.datasets import (
    DATASETS,
    ArraySource,
    DatasetCorruptedError,
    DatasetInfo,
    DatasetNotFoundError,
    dataset_info,
    default_data_dir,
    get_source,
    load_arrays,
)
from deepvision.data.pipeline import BatchIterator, eval_batches, train_batches

__all__ = [
    "DATASETS",
    "ArraySource",
    "BatchIterator",
    "DatasetCorruptedError",
    "DatasetInfo",
    "DatasetNotFoundError",
    "dataset_info",
    "default_data_dir",
    "eval_batches",
    "get_source",
    "load_arrays",
    "train_batches",
]
