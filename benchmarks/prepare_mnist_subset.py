r"""Prepares the 8,004-digit MNIST training subset as the catalog set `mnist`: 6,004 `train`, 2,000 `test`.

The subset (`images` uint8 (8004, 28, 28), `labels`, stored sorted by class) is shuffled by the seed-0
permutation of NumPy's default generator and split 6,004 / 2,000, then written by `experiments.prepare_data`
as `tfds build mnist` would lay it out, so the MNIST configs read it unchanged (`--config.data_dir=DATA_DIR`).
The records under results/mnist_subset/ and the MNIST benchmarks use this split.

Usage:
  python benchmarks/prepare_mnist_subset.py --subset=mnist_train_subset.npz --data_dir=DATA_DIR
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # the library, from a checkout
  sys.path.insert(0, str(ROOT))

TRAIN = 6004


def split(images: np.ndarray, labels: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """The seed-0 permutation, the first 6,004 digits as `train` and the rest as `test`."""
  order = np.random.default_rng(0).permutation(len(labels))
  images, labels = images[order], labels[order]
  return {"train": (images[:TRAIN], labels[:TRAIN]), "test": (images[TRAIN:], labels[TRAIN:])}


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--subset", required=True, help=".npz with `images` (N, 28, 28) uint8 and `labels`")
  parser.add_argument("--data_dir", required=True)
  parser.add_argument("--overwrite", action="store_true")
  args = parser.parse_args(argv)
  from deepvision.data import prepare  # pylint: disable=g-import-not-at-top
  with np.load(args.subset) as arrays:
    splits = split(arrays["images"], arrays["labels"])
  try:
    print(prepare.prepare_arrays("mnist", splits, args.data_dir, overwrite=args.overwrite).summary())
  except prepare.PrepareError as e:
    sys.exit(f"error: {e}")


if __name__ == "__main__":
  main()
