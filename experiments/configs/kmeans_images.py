r"""Spherical k-means of whole images (the embedded digits or faces), for their triangle features.

  python -m experiments.main --config=experiments/configs/kmeans_images.py --workdir=runs/kmeans_digits
  python -m experiments.main --config=experiments/configs/kmeans_images.py:faces --workdir=runs/kmeans_faces
  python -m experiments.export_features --workdir=runs/kmeans_digits --split=test --out=digits_test.npz

Whole 8×8 `dv_digits` images (1,077 in `train`; `validation` evaluates, `test` is held out), PCA-whitened
keeping 99% of the variance (ε = 0.01), 128 unit-norm centroids from k-means++ seeds, 20 full-batch Lloyd
iterations; `:faces` takes the 25×25 `dv_faces` images instead (120 in `train`) with 32 centroids, fewer than the examples.
`export_features` then writes `features/hidden_probs`, the triangle features of the split's images (N × K:
360 × 128 for the digits' test split, 40 × 32 for the faces'), and their `labels`. The same run through
`kmeans_patches.py`: `--config=kmeans_patches --config.dataset=dv_digits --config.patches.size=0
--config.train_split=train --config.eval_split=validation --config.test_split=test`. Cost on a 2-core CPU:
about 10 seconds; `:smoke` runs in seconds.
"""

from deepvision import schema
from deepvision.train import kmeans
from experiments.configs import common

ARGUMENTS = ("", "faces", "smoke")


def get_config(arg: str | None = None):
  if arg not in (None, *ARGUMENTS):
    raise ValueError(f"unknown argument {arg!r} for config kmeans_images; valid: "
                     f"{', '.join(repr(a) for a in ARGUMENTS)}")
  config = schema.defaults(kmeans.KMeansConfig)
  config.dataset = "dv_faces" if arg == "faces" else "dv_digits"
  config.train_split, config.eval_split, config.test_split = "train", "validation", "test"
  config.preprocess = "whiten"
  config.whiten.epsilon = 0.01
  config.model_kwargs.n_centroids = 32 if arg == "faces" else 128
  config.num_epochs = 20
  config.steps_per_dispatch = 5
  if arg == "smoke":
    config.model = "kmeans_tiny"
    config.model_kwargs.n_centroids = 8
    config.num_epochs = 3
    config.steps_per_dispatch = 1
  return common.locked(config)
