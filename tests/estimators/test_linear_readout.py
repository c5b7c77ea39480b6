"""The linear read-out: balanced label budgets and the validation-selected logistic regression."""

import numpy as np
import pytest

from deepvision.estimators import linear_readout


def test_balanced_subset_takes_an_equal_share_of_every_class_and_is_seeded():
  labels = np.repeat(np.arange(10), 30)
  indices = linear_readout.balanced_subset(labels, 100, seed=3)
  assert len(indices) == 100 and len(np.unique(indices)) == 100
  np.testing.assert_array_equal(np.bincount(labels[indices]), np.full(10, 10))
  np.testing.assert_array_equal(indices, linear_readout.balanced_subset(labels, 100, seed=3))
  assert not np.array_equal(indices, linear_readout.balanced_subset(labels, 100, seed=4))
  # The remainder of 95 / 10 goes to five classes, one each.
  counts = np.bincount(labels[linear_readout.balanced_subset(labels, 95, seed=0)])
  assert sorted(counts) == [9] * 5 + [10] * 5


def test_balanced_subset_fills_from_other_classes_when_one_runs_out():
  labels = np.array([0] * 3 + [1] * 20)
  counts = np.bincount(labels[linear_readout.balanced_subset(labels, 10, seed=0)])
  np.testing.assert_array_equal(counts, [3, 7])
  np.testing.assert_array_equal(linear_readout.balanced_subset(labels, 23, seed=1), np.arange(23))


@pytest.mark.parametrize("n", [0, 24, 2.5, True])
def test_balanced_subset_refuses_a_budget_outside_the_training_set(n):
  with pytest.raises(ValueError, match=r"label budget must be an int in \[1, 23\]"):
    linear_readout.balanced_subset(np.zeros(23, int), n, seed=0)


def _blobs(n, seed, scale=1.0):
  rng = np.random.default_rng(seed)
  labels = np.arange(n) % 3
  centres = np.array([[4.0, 0.0], [0.0, 4.0], [-4.0, -4.0]])
  return (centres[labels] + rng.normal(size=(n, 2))) * np.array([1.0, scale]), labels


def test_readout_selects_the_weight_with_the_best_validation_accuracy():
  (train, ytr), (val, yva), (test, yte) = _blobs(300, 0), _blobs(60, 1), _blobs(60, 2)
  keep = (ytr == 0) | (np.arange(300) % 5 == 0)  # class 0 five times as frequent in training
  train, ytr = train[keep], ytr[keep]
  features, labels = {"train": train, "val": val, "test": test}, {"train": ytr, "val": yva, "test": yte}
  # λ = 1e4 shrinks the weights to almost nothing, so the unpenalised bias (the class frequencies) decides:
  # class 0 everywhere; λ = 1e-3 separates the blobs.
  result = linear_readout.readout(features, labels, l2_grid=(1e4, 1e-3))
  assert result.l2 == 1e-3 and result.test_accuracy > 0.95
  assert result.val_accuracy_per_l2[1e4] < 0.5 < result.val_accuracy == result.val_accuracy_per_l2[1e-3]
  # Without a validation split only the first weight is fitted.
  no_val = linear_readout.readout({"train": train, "test": test}, {"train": ytr, "test": yte}, (1e4, 1e-3))
  assert no_val.l2 == 1e4 and list(no_val.val_accuracy_per_l2) == [1e4]


def test_readout_with_standardisation_ignores_the_scale_of_a_feature():
  splits = {role: _blobs(60, seed) for role, seed in (("train", 0), ("val", 1), ("test", 2))}
  scaled = {role: _blobs(60, seed, scale=1000.0) for role, seed in (("train", 0), ("val", 1), ("test", 2))}
  labels = {role: y for role, (_, y) in splits.items()}
  grid = (10.0, 1e-2)
  plain = linear_readout.readout({r: x for r, (x, _) in splits.items()}, labels, grid, standardize=True)
  big = linear_readout.readout({r: x for r, (x, _) in scaled.items()}, labels, grid, standardize=True)
  assert plain.val_accuracy_per_l2 == pytest.approx(big.val_accuracy_per_l2, abs=1 / 60 + 1e-9)
  assert plain.test_accuracy == pytest.approx(big.test_accuracy, abs=1 / 60 + 1e-9)


def test_readout_on_a_label_budget_uses_only_those_examples():
  (train, ytr), (val, yva), (test, yte) = _blobs(90, 0), _blobs(60, 1), _blobs(60, 2)
  ytr_noisy = ytr.copy()
  ytr_noisy[30:] = 0  # every example past the first 30 mislabelled as class 0 (or already 0)
  budget = np.arange(30)
  result = linear_readout.readout({"train": train, "val": val, "test": test},
                                  {"train": ytr_noisy, "val": yva, "test": yte}, (1e-3,), train_indices=budget)
  assert result.test_accuracy > 0.95  # the mislabelled rows were not used


def test_standardisation_uses_every_training_image_even_with_a_label_budget():
  splits = {role: _blobs(60, seed) for role, seed in (("train", 0), ("val", 1), ("test", 2))}
  features = {role: x for role, (x, _) in splits.items()}
  labels = {role: y for role, (_, y) in splits.items()}
  mean, std = features["train"].mean(0), features["train"].std(0)
  by_hand = {role: (x - mean) / std for role, x in features.items()}
  budget = np.arange(12)
  a = linear_readout.readout(features, labels, (1.0, 1e-3), train_indices=budget, standardize=True)
  b = linear_readout.readout(by_hand, labels, (1.0, 1e-3), train_indices=budget)
  assert a == b
