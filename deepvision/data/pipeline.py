"""Input pipeline on grain: seeded per-epoch shuffling, batching, checkpointable iterators.

Batches are dicts `{'image': float32 (B, H, W, C) in [0, 1], 'label': int32 (B,)}`
(`eval_batches` adds a boolean `mask`). uint8 images are divided by 255.

Training order. Epoch e visits the examples in the permutation

  argsort(Philox(key=(seed, e)).random_raw(N)),

cut into N // B batches, the last N mod B examples dropped (`epoch_permutation`, `BatchIterator`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import grain
import numpy as np

from deepvision.data.datasets import to_unit_float

Batch = dict[str, np.ndarray]

# One background thread overlaps reading the next batches with the training step; a small
# buffer keeps memory bounded for large images.
_READ_OPTIONS = grain.ReadOptions(num_threads=1, prefetch_buffer_size=4)


def epoch_permutation(num_examples: int, seed: int, epoch: int) -> np.ndarray:
  """The order in which epoch `epoch` of a training run with `seed` visits the examples.

  A stable sort of the raw output of numpy's Philox counter-based generator, whose bit stream numpy
  keeps fixed across releases: the order is the same for the same seed and different for every epoch.
  """
  keys = np.random.Philox(key=[seed, epoch]).random_raw(num_examples)
  return np.argsort(keys, kind="stable")


def read_batch(source: Sequence[dict[str, Any]], indices: np.ndarray) -> Batch:
  """Reads examples `indices` of `source` as `{'image': float32 in [0, 1], 'label': int32}`."""
  if hasattr(source, "read_batch"):
    raw = source.read_batch(indices)
    images, labels = raw["image"], raw["label"]
  else:
    records = [source[int(i)] for i in indices]
    images = np.stack([record["image"] for record in records])
    labels = np.asarray([record["label"] for record in records])
  return {"image": to_unit_float(images), "label": np.asarray(labels, dtype=np.int32)}


class Selection:
  """The examples `indices` of `source`, in that order: a random-access source itself (e.g. a training
  subset, or the labelled examples of a semi-supervised run)."""

  def __init__(self, source: Sequence[dict[str, Any]], indices: np.ndarray):
    self._source, self.indices = source, np.asarray(indices)

  def __len__(self) -> int:
    return len(self.indices)

  def __getitem__(self, i):
    return self._source[int(self.indices[i])]

  def read_batch(self, indices: np.ndarray) -> Batch:
    return read_batch(self._source, self.indices[indices])


class BatchIterator(Iterator[Batch]):
  """An iterator over training batches whose position can be saved and restored.

  `get_state()` returns a JSON-serialisable dict; `set_state(state)` moves this iterator
  (or a fresh one made with the same source, batch size and seed) to that position.

  Each epoch is cut into N // B batches of `epoch_permutation`; the last N mod B examples are dropped,
  so every batch has the same shape and each example appears at most once per epoch. grain iterates
  over *batch numbers* (its `MapDataset.range(...).repeat(...)`, prefetching in one background thread
  and giving the checkpointable iterator state) rather than using grain's `shuffle` and `batch`, which
  work one element at a time in Python, slower than a training step on small images (measurements in
  benchmarks/README.md). Each batch is read with one vectorised gather when the source has
  `read_batch(indices)` (as `datasets.ArraySource` has), or record by record otherwise (TFDS sources).

  The state is the number of batches already produced (plus the settings, checked on restore), so a
  restored iterator yields exactly the batches the original would have.
  """

  def __init__(self, source, batch_size: int, seed: int, num_epochs: int | None,
               shard: tuple[int, int] = (0, 1)):
    self.num_examples = len(source)
    self.batch_size = batch_size
    self.shard = shard
    self.seed = seed
    self.num_epochs = num_epochs
    self.steps_per_epoch = self.num_examples // batch_size
    self._cached_permutation = (-1, np.empty(0, np.int64))  # (epoch, its permutation)
    self._source = source
    self._bulk_position = None  # the position after `next_many`, until `__next__` moves grain's iterator there
    steps = grain.MapDataset.range(self.steps_per_epoch).repeat(num_epochs)
    batches = steps.map_with_index(lambda step, _: self._batch(source, step))
    self._iterator = batches.to_iter_dataset(_READ_OPTIONS).__iter__()

  def _permutation(self, epoch: int) -> np.ndarray:
    cached_epoch, permutation = self._cached_permutation
    if cached_epoch != epoch:
      permutation = epoch_permutation(self.num_examples, self.seed, epoch)
      self._cached_permutation = (epoch, permutation)
    return permutation

  def _indices(self, step: int) -> np.ndarray:
    """The rows of `source` that batch `step` reads (this process's block of the global batch)."""
    epoch, index_in_epoch = divmod(step, self.steps_per_epoch)
    start = index_in_epoch * self.batch_size
    indices = self._permutation(epoch)[start:start + self.batch_size]
    index, count = self.shard
    if count > 1:
      per_shard = self.batch_size // count
      indices = indices[index * per_shard:(index + 1) * per_shard]
    return indices

  def _batch(self, source, step: int) -> Batch:
    return read_batch(source, self._indices(step))

  def __next__(self) -> Batch:
    if self._bulk_position is not None:
      self._iterator.set_state({"next_index": self._bulk_position})
      self._bulk_position = None
    return next(self._iterator)

  def next_many(self, n: int) -> Batch:
    """The next `n` batches stacked along a new leading axis (`(n, B, ...)`), read with one gather.

    The same batches as `n` calls of `next` (and the same position afterwards), without grain's
    per-batch cost (about 0.1 ms, more than a small model's step): for K steps per dispatch.

    Raises:
      StopIteration: fewer than `n` batches are left.
    """
    start = self._bulk_position if self._bulk_position is not None else self.get_state()["next_step"]
    if self.num_epochs is not None and start + n > self.num_epochs * self.steps_per_epoch:
      raise StopIteration
    indices = np.stack([self._indices(step) for step in range(start, start + n)])
    batch = read_batch(self._source, indices.reshape(-1))
    self._bulk_position = start + n
    return {k: v.reshape(n, -1, *v.shape[1:]) for k, v in batch.items()}

  def _settings(self) -> dict[str, Any]:
    return {"num_examples": self.num_examples, "batch_size": self.batch_size, "seed": self.seed}

  def get_state(self) -> dict[str, Any]:
    """{'next_step': batches produced so far, plus the settings}, JSON-serialisable."""
    position = self._bulk_position
    if position is None:
      position = self._iterator.get_state()["next_index"]
    return {"next_step": int(position), **self._settings()}

  def set_state(self, state: dict[str, Any]) -> None:
    """Continues from `state` (from `get_state`); the settings must match this iterator's."""
    mismatched = {k: (state.get(k), v) for k, v in self._settings().items() if state.get(k) != v}
    if mismatched:
      details = ", ".join(f"{k}: saved {saved!r}, here {here!r}" for k, (saved, here) in mismatched.items())
      raise ValueError(f"iterator state does not match this pipeline ({details})")
    self._iterator.set_state({"next_index": int(state["next_step"])})
    self._bulk_position = None


def train_batches(
    source: Sequence[dict[str, Any]], batch_size: int, seed: int, *, num_epochs: int | None = None,
    shard: tuple[int, int] = (0, 1)) -> BatchIterator:
  """Shuffled training batches, reshuffled every epoch, remainder dropped.

  Args:
    source: a random-access source (`datasets.get_source`; pass `in_memory=True` for small
      sets, see benchmarks/README.md for the speed difference).
    batch_size: examples per batch, at most `len(source)`.
    seed: a non-negative integer; the same seed gives the same batches.
    num_epochs: number of passes; None for an endless iterator.
    shard: `(index, count)`: read only block `index` of `count` equal blocks of every global batch of
      `batch_size` (each process of a multi-process run reads its own rows; the order of the global
      batches, and so the iterator's saved position, is the same in every process).

  Returns:
    A `BatchIterator` of `{'image': float32 (B, H, W, C) in [0, 1], 'label': int32 (B,)}`.
  """
  _check_batch_size(batch_size, len(source))
  if not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**64:
    raise ValueError(f"seed must be an integer in [0, 2**64), got {seed!r}")
  if num_epochs is not None and (not isinstance(num_epochs, (int, np.integer)) or num_epochs < 1):
    raise ValueError(f"num_epochs must be a positive integer or None, got {num_epochs!r}")
  index, count = shard
  if not (isinstance(count, (int, np.integer)) and count >= 1 and isinstance(index, (int, np.integer))
          and 0 <= index < count and batch_size % count == 0):
    raise ValueError(f"shard must be (index, count) with 0 <= index < count and count dividing the batch_size "
                     f"{batch_size}, got {shard!r}")
  return BatchIterator(source, batch_size, int(seed), num_epochs, (int(index), int(count)))


def eval_batches(source: Sequence[dict[str, Any]], batch_size: int) -> Iterator[Batch]:
  """All examples of `source` in order, in batches of one shape.

  The last batch is padded to `batch_size` with zero images and label 0; the boolean `mask`
  is True for real examples, so a jitted evaluation step compiles once and weighs metrics by
  `mask` (sum over mask / mask.sum()).

  Returns:
    A finite iterator of `{'image', 'label', 'mask': bool (B,)}`, `ceil(N / B)` batches.
  """
  num_examples = len(source)
  if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
    raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")

  def padded_batch(step: int, _) -> Batch:
    indices = np.arange(step * batch_size, min((step + 1) * batch_size, num_examples))
    batch = read_batch(source, indices)
    pad = batch_size - len(indices)
    batch = {k: np.concatenate([v, np.zeros((pad, *v.shape[1:]), v.dtype)]) for k, v in batch.items()}
    batch["mask"] = np.arange(batch_size) < len(indices)
    return batch

  num_batches = -(-num_examples // batch_size)
  batches = grain.MapDataset.range(num_batches).map_with_index(padded_batch)
  return batches.to_iter_dataset(_READ_OPTIONS).__iter__()


def _check_batch_size(batch_size: int, num_examples: int) -> None:
  if not isinstance(batch_size, (int, np.integer)) or not 1 <= batch_size <= num_examples:
    raise ValueError(
        f"batch_size must be an integer in [1, {num_examples}] (the number of examples), got {batch_size!r}"
    )
