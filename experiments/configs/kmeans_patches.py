r"""Spherical k-means (Coates, Lee & Ng 2011; Coates & Ng 2012) of 8×8 whitened natural-image patches.

  python -m experiments.main --config=experiments/configs/kmeans_patches.py --workdir=runs/kmeans

The patches of `sparse_coding_patches.py`: 40,000 random 8×8 patches of 14 embedded photographs, each
patch's mean removed, PCA-whitened keeping 99% of the variance (K = 52 components, ε = 0.01 added to the
eigenvalues); validation and test patches come from two held-out photographs. 256 unit-norm centroids
from k-means++ seeds, 20 full-batch Lloyd iterations (one step each). The final record holds
the held-out distortion mean min_k ‖x − c_k‖² (`test/objective`), the fraction of empty centroids and the
localisation and orientation selectivity of the centroids and of the PCA components; `filters.png` shows
the centroids in pixel space. Cost on a 2-core CPU: about 20 seconds; `:smoke` runs in seconds.

The triangle features of a run: `python -m experiments.export_features --workdir=runs/kmeans --split=test
--out=f.npz` (of the test patches); of whole images, `deepvision.models.kmeans.convolutional_features`
with `deepvision.train.kmeans.patch_preprocessing`. For k-means on whole images see `kmeans_images.py`.
"""

from deepvision import schema
from deepvision.train import kmeans
from experiments.configs import common


def get_config(arg: str | None = None):
  smoke = common.check_arg(arg, "kmeans_patches")
  config = schema.defaults(kmeans.KMeansConfig)
  common.natural_image_patches(config)
  config.preprocess = "whiten"
  config.whiten.epsilon = 0.01  # as sparse_coding_patches: damps the directions of least variance
  config.model_kwargs.n_centroids = 256
  config.num_epochs = 20
  config.steps_per_dispatch = 5
  if smoke:
    config.model = "kmeans_tiny"
    config.patches.size = 4
    config.patches.num_train = 1024
    config.patches.num_eval = 256
    config.whiten.variance = 0.9
    config.model_kwargs.n_centroids = 12
    config.num_epochs = 4
    config.steps_per_dispatch = 2
  return common.locked(config)
