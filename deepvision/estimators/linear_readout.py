r"""How good are fixed features for classification: a logistic regression read-out, L2 chosen on validation.

The measure of Coates, Lee & Ng (AISTATS 2011) and of the talk's question "which feature learner?": features
of the training split (all of its labels, or a budget of n labels drawn evenly over the classes) train a
multinomial logistic regression (`models.logistic`, L-BFGS) for every weight λ of (λ/2)‖A‖² in a grid; the
λ with the best validation accuracy (the first of equals) is scored on the test split. With `standardize`,
each feature is centred and scaled by its mean and standard deviation over the training images first, so
that one λ grid means the same for features of any scale.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from deepvision.models.logistic import fit_logistic_regression


@dataclasses.dataclass(frozen=True)
class Readout:
  """The selected classifier's scores: test and validation accuracy, its λ, and every λ's validation score."""

  test_accuracy: float
  val_accuracy: float
  l2: float
  val_accuracy_per_l2: dict[float, float]


def balanced_subset(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
  """Sorted indices of `n` examples drawn without replacement, as evenly over the classes as they allow.

  Each class gives ⌊n / C⌋ examples (fewer when it has fewer: the rest come from the other classes), and
  the remainder goes to classes in a seeded random order; within a class the examples are a seeded
  permutation's first ones. The same (labels, n, seed) always gives the same indices.

  Raises:
    ValueError: n is not in [1, len(labels)].
  """
  labels = np.asarray(labels).reshape(-1)
  if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= len(labels):
    raise ValueError(f"the label budget must be an int in [1, {len(labels)}] (the training examples), got {n!r}")
  rng = np.random.default_rng(seed)
  pools = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
  taken = [0] * len(pools)
  remaining = n
  while remaining:
    open_classes = [c for c, pool in enumerate(pools) if taken[c] < len(pool)]
    share = max(remaining // len(open_classes), 1)
    for c in rng.permutation(open_classes):
      give = min(share, len(pools[c]) - taken[c], remaining)
      taken[c] += give
      remaining -= give
      if not remaining:
        break
  return np.sort(np.concatenate([pool[:k] for pool, k in zip(pools, taken)]))


def readout(features: dict[str, np.ndarray], labels: dict[str, np.ndarray], l2_grid: Sequence[float],
            train_indices: np.ndarray | None = None, standardize: bool = False,
            num_classes: int | None = None) -> Readout:
  """Fits the read-out on `features['train']` (rows `train_indices` only, if given) for each λ in `l2_grid`.

  Args:
    features: 'train', 'test' and optionally 'val' → (N, D) features (flattened if more axes).
    labels: the same roles → (N,) int labels.
    l2_grid: the candidate λ (without a 'val' split only the first is fitted).
    train_indices: the labelled training examples (e.g. `balanced_subset`); None: all of them.
    standardize: centre and scale every feature by its mean and standard deviation over all the training
      examples, labelled or not (the images are there even when their labels are not: with a budget of
      a few labels, statistics of those alone would blow up features that are rarely non-zero).
    num_classes: C (default: from all labels, so a small budget still knows every class).

  Returns:
    The `Readout` of the selected λ.
  """
  if not len(l2_grid):
    raise ValueError("l2_grid must hold at least one weight")
  flat = {role: np.asarray(x, np.float32).reshape(len(x), -1) for role, x in features.items()}
  if standardize:
    mean, std = flat["train"].mean(0), flat["train"].std(0)
    std = np.where(std > 1e-6, std, 1.0)
    flat = {role: (x - mean) / std for role, x in flat.items()}
  train_x, train_y = flat["train"], np.asarray(labels["train"])
  if train_indices is not None:
    train_x, train_y = train_x[train_indices], train_y[train_indices]
  classes = num_classes or int(max(np.max(y) for y in labels.values())) + 1
  grid = [float(w) for w in (l2_grid if "val" in flat else l2_grid[:1])]
  fits = [fit_logistic_regression(train_x, train_y, l2=w, num_classes=classes) for w in grid]
  scores = [fit.accuracy(flat["val"], labels["val"]) if "val" in flat else 0.0 for fit in fits]
  best = int(np.argmax(scores))
  return Readout(test_accuracy=fits[best].accuracy(flat["test"], labels["test"]), val_accuracy=scores[best],
                 l2=grid[best], val_accuracy_per_l2=dict(zip(grid, scores)))
