"""Split expressions: the examples they select, their overlap and the held-out split suggested."""

import pytest

from deepvision.data import datasets, splits

SIZES = {"train": 1077, "validation": 360, "test": 360}


@pytest.mark.parametrize("a, b, shared", [
    ("train+validation", "validation", 360),
    ("train", "validation", 0),
    ("train", "train", 1077),
    ("train[:50%]", "train[40%:]", 538 - 431),  # TFDS rounds 538.5 to 538 (half to even), 430.8 to 431
    ("train[:50%]", "train[50%:]", 0),
    ("train[:1000]", "train[999:]", 1),
    ("train[-2:]", "train[:1075]", 0),
    ("validation[:10]+train[:5]", "train[4:]+test", 1),
])
def test_shared_examples(a, b, shared):
  assert splits.shared_examples(a, b, SIZES) == shared
  assert splits.shared_examples(b, a, SIZES) == shared
  assert splits.splits_overlap(a, b, SIZES) == (shared > 0)


def test_split_ranges_resolve_percent_and_negative_slices():
  assert splits.split_ranges("train[90%:]+validation[-10:]", SIZES) == {
      "train": [(969, 1077)], "validation": [(350, 360)]}
  assert splits.split_ranges("train[:10]+train[5:20]", SIZES) == {"train": [(0, 20)]}


@pytest.mark.parametrize("split", ["train[:50%]", "train[40%:]", "validation[-7:]+train[3:9]"])
def test_ranges_select_what_the_reader_reads(prepared_data_dir, split):
  """The ranges count exactly the examples that TFDS reads for the expression (percent rounding included)."""
  info = datasets.dataset_info("dv_digits", prepared_data_dir)
  source = datasets.get_source("dv_digits", split, data_dir=prepared_data_dir)
  ranges = splits.split_ranges(split, info.splits)
  assert sum(stop - start for spans in ranges.values() for start, stop in spans) == len(source)


@pytest.mark.parametrize("bad, message", [
    ("bogus", "unknown split 'bogus' in 'bogus'; valid choices: train, validation, test"),
    ("", "a split expression must be a non-empty string"),
    ("train[:x]", "Unrecognized split format"),
])
def test_bad_expressions_are_named(bad, message):
  with pytest.raises(ValueError, match=message.replace("[", r"\[")):
    splits.split_ranges(bad, SIZES)


@pytest.mark.parametrize("train, sizes, expected", [
    ("train+validation", SIZES, ("train", "validation")),
    ("train", SIZES, ("train", "validation")),
    ("train", {"train": 100, "test": 10}, ("train[:90%]", "train[90%:]")),
    ("validation+train", SIZES, ("train", "validation")),
])
def test_held_out_splits_never_overlap_training_or_test(train, sizes, expected):
  pair = splits.held_out_splits(train, sizes, test_split="test")
  assert pair == expected
  assert not splits.splits_overlap(*pair, sizes)
  assert not splits.splits_overlap(pair[1], "test", sizes)


def test_no_held_out_split_of_a_single_example():
  assert splits.held_out_splits("train", {"train": 1, "test": 3}, test_split="test") is None
