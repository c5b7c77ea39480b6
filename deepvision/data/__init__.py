"""Data: embedded and catalog data sets, the grain input pipeline, augmentations.

`datasets` loads any registered data set by name (`get_source`, `load_arrays`,
`dataset_info`); `pipeline` turns a source into training and evaluation batches;
`augment` holds jittable augmentations; `builders` the TFDS builders of the embedded sets;
`prepare` writes arrays (and `original_files` reads the catalog sets' original files) into a TFDS
data dir without TensorFlow.

The names below are imported on first use (PEP 562), so that `deepvision.data.augment`, which
the train steps use, does not pull in tensorflow_datasets and grain: a machine that only runs
train steps on synthetic arrays (a GPU benchmark) needs neither.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "DATASETS": "datasets",
    "ArraySource": "datasets",
    "DatasetCorruptedError": "datasets",
    "DatasetInfo": "datasets",
    "DatasetNotFoundError": "datasets",
    "dataset_info": "datasets",
    "default_data_dir": "datasets",
    "get_source": "datasets",
    "load_arrays": "datasets",
    "BatchIterator": "pipeline",
    "eval_batches": "pipeline",
    "train_batches": "pipeline",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
  if name not in _LAZY:
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
  value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
  globals()[name] = value  # Later look-ups skip this function.
  return value


def __dir__() -> list[str]:
  return sorted(set(globals()) | set(_LAZY))
