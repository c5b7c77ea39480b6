"""Tests for deepvision.data.pipeline: per-epoch shuffling, batching, checkpointable state."""

import itertools
import json
import time

import numpy as np
import pytest

from deepvision import data
from deepvision.data import pipeline


def _indexed_source(num_examples, dtype=np.float32):
  """Image i is filled with i / 100 (or i for uint8); label i is i, so batches reveal their indices."""
  values = np.arange(num_examples)
  scale = 1 if dtype == np.uint8 else 100
  images = np.broadcast_to((values / scale).astype(dtype)[:, None, None, None], (num_examples, 2, 3, 1))
  return data.ArraySource(np.array(images), values)


class _RecordOnlySource:
  """A source without `read_batch`: the pipeline must read it record by record."""

  def __init__(self, source):
    self._source = source

  def __len__(self):
    return len(self._source)

  def __getitem__(self, index):
    return self._source[index]


def test_each_epoch_is_a_fresh_permutation_with_the_remainder_dropped():
  source = _indexed_source(10)
  batches = list(data.train_batches(source, 3, seed=7, num_epochs=3))
  assert len(batches) == 9  # 3 full batches per epoch, the 10th example of each epoch dropped
  epochs = [np.concatenate([b["label"] for b in batches[3 * e:3 * e + 3]]) for e in range(3)]
  for e, labels in enumerate(epochs):
    assert len(set(labels)) == 9  # no repeats within an epoch
    np.testing.assert_array_equal(labels, pipeline.epoch_permutation(10, 7, e)[:9])
  assert len({tuple(labels) for labels in epochs}) == 3  # reshuffled every epoch


def test_batches_have_the_documented_types_and_match_the_labels():
  batch = next(data.train_batches(_indexed_source(50), 8, seed=0))
  assert batch["image"].shape == (8, 2, 3, 1) and batch["image"].dtype == np.float32
  assert batch["label"].shape == (8,) and batch["label"].dtype == np.int32
  np.testing.assert_allclose(batch["image"][:, 0, 0, 0], batch["label"] / 100, rtol=1e-6)


def test_process_shards_partition_every_global_batch_in_order():
  source = _indexed_source(50)
  whole = list(data.train_batches(source, 12, seed=5, num_epochs=2))
  shards = [list(data.train_batches(source, 12, seed=5, num_epochs=2, shard=(p, 3))) for p in range(3)]
  assert all(len(s) == len(whole) for s in shards)
  for step, batch in enumerate(whole):
    parts = [shards[p][step]["label"] for p in range(3)]
    assert all(len(part) == 4 for part in parts)
    np.testing.assert_array_equal(np.concatenate(parts), batch["label"])
  # The saved position does not depend on the shard: any process count can resume it.
  iterator = data.train_batches(source, 12, seed=5, shard=(1, 3))
  next(iterator)
  assert iterator.get_state() == (lambda it: (next(it), it.get_state())[1])(data.train_batches(source, 12, seed=5))


@pytest.mark.parametrize("shard", [(3, 3), (-1, 2), (0, 5), (0, 0)])
def test_bad_shards_are_refused(shard):
  with pytest.raises(ValueError, match=r"shard must be \(index, count\)"):
    data.train_batches(_indexed_source(50), 12, seed=5, shard=shard)


def test_same_seed_same_order_other_seed_other_order():
  take = lambda seed: np.stack([b["label"] for b in itertools.islice(data.train_batches(_indexed_source(100), 10, seed), 25)])
  np.testing.assert_array_equal(take(3), take(3))
  assert not np.array_equal(take(3), take(4))


def test_restored_iterator_continues_exactly():
  source = _indexed_source(23)
  original = data.train_batches(source, 5, seed=11)  # 4 batches per epoch
  for _ in range(6):
    next(original)
  state = json.loads(json.dumps(original.get_state()))
  assert state["next_step"] == 6
  expected = [next(original)["label"] for _ in range(7)]  # crosses two epoch boundaries
  restored = data.train_batches(source, 5, seed=11)
  restored.set_state(state)
  for want in expected:
    np.testing.assert_array_equal(next(restored)["label"], want)


@pytest.mark.parametrize("shard", [(0, 1), (1, 2)])
def test_next_many_reads_the_batches_of_next_in_any_interleaving(shard):
  source = _indexed_source(23)
  make = lambda: data.train_batches(source, 4, seed=11, num_epochs=3, shard=shard)  # 5 batches per epoch
  expected = [b["label"] for b in make()]
  iterator, got = make(), []
  for how, n in [("next", 2), ("many", 4), ("next", 1), ("many", 6), ("state", 0), ("many", 1), ("next", 1)]:
    if how == "next":
      got += [next(iterator)["label"] for _ in range(n)]
    elif how == "many":
      stacked = iterator.next_many(n)
      assert stacked["image"].shape == (n, 4 // shard[1], 2, 3, 1) and stacked["label"].dtype == np.int32
      np.testing.assert_allclose(stacked["image"][:, :, 0, 0, 0], stacked["label"] / 100, rtol=1e-6)
      got += list(stacked["label"])
    else:  # the saved position counts the bulk reads, and a restored iterator continues from it
      assert iterator.get_state()["next_step"] == len(got)
      restored = make()
      restored.set_state(iterator.get_state())
      np.testing.assert_array_equal(restored.next_many(2)["label"], expected[len(got):len(got) + 2])
  assert len(got) == 15
  for want, have in zip(expected, got):
    np.testing.assert_array_equal(have, want)
  with pytest.raises(StopIteration):  # 15 of 15 read
    iterator.next_many(1)


def test_state_from_another_pipeline_is_refused():
  state = data.train_batches(_indexed_source(23), 5, seed=11).get_state()
  with pytest.raises(ValueError, match="seed: saved 11, here 12"):
    data.train_batches(_indexed_source(23), 5, seed=12).set_state(state)


def test_record_by_record_source_gives_the_same_batches():
  source = _indexed_source(40)
  fast = data.train_batches(source, 6, seed=2, num_epochs=2)
  slow = data.train_batches(_RecordOnlySource(source), 6, seed=2, num_epochs=2)
  for a, b in itertools.zip_longest(fast, slow):
    np.testing.assert_array_equal(a["image"], b["image"])
    np.testing.assert_array_equal(a["label"], b["label"])


def test_uint8_images_become_floats_in_unit_range():
  batch = next(data.train_batches(_indexed_source(256, np.uint8), 256, seed=0))
  np.testing.assert_array_equal(batch["image"][:, 0, 0, 0], batch["label"].astype(np.float32) / 255)


def test_eval_batches_cover_the_split_in_order_with_a_padded_masked_last_batch():
  batches = list(data.eval_batches(_indexed_source(10), 4))
  assert len(batches) == 3
  assert all(b["image"].shape == (4, 2, 3, 1) for b in batches)
  np.testing.assert_array_equal(np.concatenate([b["label"] for b in batches]), [*range(10), 0, 0])
  np.testing.assert_array_equal(batches[-1]["mask"], [True, True, False, False])
  assert batches[0]["mask"].all() and batches[-1]["image"][2:].sum() == 0
  with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
    data.eval_batches(_indexed_source(10), 0)


def test_pipeline_reads_an_embedded_tfds_source(prepared_data_dir):
  source = data.get_source("dv_digits", "validation", prepared_data_dir)
  batches = list(data.eval_batches(source, 128))
  images, labels = data.load_arrays("dv_digits", "validation", prepared_data_dir)
  got = np.concatenate([b["image"][b["mask"]] for b in batches])
  np.testing.assert_array_equal(got, images)
  np.testing.assert_array_equal(np.concatenate([b["label"][b["mask"]] for b in batches]), labels)


def test_in_memory_batches_are_cheap(prepared_data_dir):
  """The default experiment reads ~2,000 batches of 128 digits; they must cost far less than training."""
  iterator = data.train_batches(data.get_source("dv_digits", "train", prepared_data_dir, in_memory=True), 128, 0)
  next(iterator)
  start = time.perf_counter()
  for _ in range(500):
    next(iterator)
  assert (time.perf_counter() - start) / 500 < 0.005  # measured ~0.3 ms per batch


@pytest.mark.parametrize("kwargs, message", [
    (dict(batch_size=11, seed=0), r"batch_size must be an integer in \[1, 10\]"),
    (dict(batch_size=0, seed=0), "batch_size"),
    (dict(batch_size=2, seed=-1), "seed must be"),
    (dict(batch_size=2, seed=0, num_epochs=0), "num_epochs must be"),
])
def test_bad_arguments_are_refused(kwargs, message):
  with pytest.raises(ValueError, match=message):
    data.train_batches(_indexed_source(10), **kwargs)
