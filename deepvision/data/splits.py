"""Which examples a TFDS split expression selects, whether two expressions share any, and a held-out split.

Split expressions are TFDS's: split names joined by '+', each optionally sliced by example index or by
percent ('train+validation', 'train[:80%]', 'train[50%:]', 'train[14:15]', 'train[-2:]'). They are parsed
by `tfds.core.ReadInstruction` and resolved against the splits' sizes exactly as TFDS resolves them when it
reads (percentages rounded to the closest example), so two expressions overlap here exactly when the
readers would return a common example.

Example:
  >>> sizes = {"train": 1077, "validation": 360, "test": 360}
  >>> shared_examples("train+validation", "validation", sizes)
  360
  >>> shared_examples("train[:50%]", "train[50%:]", sizes)
  0
  >>> held_out_splits("train+validation", sizes, test_split="test")
  ('train', 'validation')
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import tensorflow_datasets as tfds

#: Split names tried first, in this order, when a held-out split is suggested.
VALIDATION_NAMES = ("validation", "valid", "val", "dev")


@dataclasses.dataclass(frozen=True)
class _SplitSize:
  """The part of a `tfds.core.SplitInfo` that resolving an instruction reads."""

  num_examples: int
  shard_lengths: tuple[int, ...] | None = None


def split_ranges(split: str, sizes: Mapping[str, int]) -> dict[str, list[tuple[int, int]]]:
  """The examples `split` selects, as {split name: sorted disjoint [start, stop) index ranges}.

  Args:
    split: a TFDS split expression.
    sizes: number of examples of every split of the data set.

  Raises:
    ValueError: a malformed expression, an unknown split name (the message lists the valid ones) or a
      slice outside the split.
  """
  if not isinstance(split, str) or not split.strip():
    raise ValueError(f"a split expression must be a non-empty string, got {split!r}")
  parts = [part.strip() for part in split.split("+")]
  ranges: dict[str, list[tuple[int, int]]] = {}
  for part in parts:
    name = part.split("[", 1)[0].strip()
    if name not in sizes:
      raise ValueError(f"unknown split {name!r} in {split!r}; valid choices: {', '.join(sizes)}")
    if "shard" in part:  # shard slices need the shard lengths: count the whole split (never misses overlap)
      ranges.setdefault(name, []).append((0, int(sizes[name])))
      continue
    infos = {name: _SplitSize(int(sizes[name]))}
    try:
      absolute = tfds.core.ReadInstruction.from_spec(part).to_absolute(infos)
    except (AssertionError, AttributeError, TypeError) as e:  # tfds raises AssertionError on some bad specs
      raise ValueError(f"malformed split expression {split!r}: {e}") from None
    for instruction in absolute:
      start = instruction.from_ or 0
      stop = int(sizes[name]) if instruction.to is None else instruction.to
      if stop > start:
        ranges.setdefault(name, []).append((start, stop))
  return {name: _merged(spans) for name, spans in ranges.items()}


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
  out: list[tuple[int, int]] = []
  for start, stop in sorted(spans):
    if out and start <= out[-1][1]:
      out[-1] = (out[-1][0], max(out[-1][1], stop))
    else:
      out.append((start, stop))
  return out


def shared_examples(a: str, b: str, sizes: Mapping[str, int]) -> int:
  """How many examples the split expressions `a` and `b` both select (0: disjoint)."""
  ranges_a, ranges_b = split_ranges(a, sizes), split_ranges(b, sizes)
  shared = 0
  for name in set(ranges_a) & set(ranges_b):
    for start_a, stop_a in ranges_a[name]:
      for start_b, stop_b in ranges_b[name]:
        shared += max(0, min(stop_a, stop_b) - max(start_a, start_b))
  return shared


def splits_overlap(a: str, b: str, sizes: Mapping[str, int]) -> bool:
  """Whether some example is selected by both split expressions."""
  return shared_examples(a, b, sizes) > 0


def held_out_splits(train_split: str, sizes: Mapping[str, int],
                    test_split: str | None = None) -> tuple[str, str] | None:
  """A (train split, evaluation split) pair to validate on data the training never sees.

  The evaluation split shares no example with the returned training split nor with `test_split`, and
  the training split is `train_split` itself whenever possible. In order: a validation-like split that
  `train_split` does not touch; one that it contains as a '+' term, dropped from it ('train+validation'
  → ('train', 'validation')); the last 10% of the first term's split ('train' → ('train[:90%]',
  'train[90%:]')).

  Args:
    train_split: the configured training split expression.
    sizes: number of examples of every split of the data set.
    test_split: the configured test split ('' or None: none), never proposed for validation.

  Returns:
    The pair, or None when no such split exists (e.g. a training split of one example).
  """
  test = test_split or None
  avoid = (lambda s: test is not None and splits_overlap(s, test, sizes))
  names = [n for n in VALIDATION_NAMES if n in sizes] + [n for n in sizes if n not in VALIDATION_NAMES]
  terms = [term.strip() for term in train_split.split("+")]
  for name in names:
    if avoid(name) or sizes[name] == 0:
      continue
    if not splits_overlap(train_split, name, sizes):
      return train_split, name
    kept = [term for term in terms if not splits_overlap(term, name, sizes)]
    if kept and len(kept) < len(terms):
      return "+".join(kept), name
  base = terms[0].split("[", 1)[0].strip()
  pair = (f"{base}[:90%]", f"{base}[90%:]")
  if sizes.get(base, 0) >= 2 and not splits_overlap(*pair, sizes) and not avoid(pair[1]):
    return pair
  return None
