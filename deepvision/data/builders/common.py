"""What the embedded data-set builders share: array_record output and a fixed split.

The splits of the embedded sets must never change, whatever the numpy version, so the
order is not drawn from a random generator (numpy does not promise that
`Generator.permutation` keeps its stream across releases). Each example gets the key
SHA-256("<salt>:<index>"); within each class the examples are ranked by key, and all
examples are then sorted by their relative rank in their class, (rank + 1/2) / count.
Cutting that order into consecutive blocks gives splits of exact sizes whose class
proportions match the whole set to within one example per class.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image


class EmbeddedBuilder(tfds.core.GeneratorBasedBuilder):
  """A builder for data shipped inside an installed package: offline, array_record, fixed order.

  Subclasses define `_info`, `_split_generators` and `_generate_examples` as usual; this
  base only makes array_record the default file format, so that the prepared data can be
  read with random access (`as_data_source`) without TensorFlow.
  """

  def __init__(self, *, file_format: str | None = None, **kwargs):
    super().__init__(file_format=file_format or "array_record", **kwargs)


def _hash_key(salt: str, index: int) -> bytes:
  return hashlib.sha256(f"{salt}:{index}".encode()).digest()


def stratified_order(labels: np.ndarray, salt: str) -> np.ndarray:
  """A fixed permutation of `range(len(labels))` that interleaves the classes evenly.

  Args:
    labels: integer class labels, shape (N,).
    salt: a string that makes the order specific to one data set.

  Returns:
    int64 indices of shape (N,): any prefix or block of consecutive entries holds each
    class in proportion to its frequency, to within one example.
  """
  labels = np.asarray(labels)
  position = np.empty(len(labels), dtype=np.float64)
  for label in np.unique(labels):
    members = np.flatnonzero(labels == label)
    ranked = sorted(members, key=lambda i: _hash_key(salt, int(i)))
    position[ranked] = (np.arange(len(members)) + 0.5) / len(members)
  # Ties (same relative rank in classes of equal size) are broken by label.
  return np.lexsort((labels, position)).astype(np.int64)


def split_indices(
    labels: np.ndarray, sizes: Mapping[str, int], salt: str
) -> dict[str, np.ndarray]:
  """Cuts `stratified_order(labels, salt)` into consecutive blocks of the given sizes.

  Args:
    labels: integer class labels, shape (N,).
    sizes: split name → number of examples, in the order the blocks are cut; the
      sizes must add up to N.
    salt: see `stratified_order`.

  Returns:
    split name → sorted int64 indices into `labels`.
  """
  if sum(sizes.values()) != len(labels):
    raise ValueError(f"split sizes {dict(sizes)} do not add up to {len(labels)} examples")
  order = stratified_order(labels, salt)
  splits, start = {}, 0
  for name, size in sizes.items():
    splits[name] = np.sort(order[start:start + size])
    start += size
  return splits


def png_bytes(image: np.ndarray) -> bytes:
  """Lossless PNG encoding of a uint8 (H, W) or (H, W, 1) image (no TensorFlow needed)."""
  image = np.asarray(image)
  if image.dtype != np.uint8:
    raise ValueError(f"png_bytes expects uint8 pixels, got {image.dtype}")
  buffer = io.BytesIO()
  Image.fromarray(image.reshape(image.shape[:2])).save(buffer, format="PNG")
  return buffer.getvalue()
