r"""A tied-weight autoencoder with a linear decoder on PCA-whitened 8×8 natural-image patches.

  python -m experiments.main --config=experiments/configs/ae_patches.py --workdir=runs/ae_patches

40,000 random 8×8 patches of 14 of the embedded photographs (`dv_natural_images`), each patch's mean removed,
PCA-whitened on the training patches to the K components holding 99% of the variance (n_visible = K, set
from the data); 100 sigmoid units, x̂ = h Wᵀ + b_v and the squared error ½‖x − x̂‖² (whitened values are
not in [0, 1]: a sigmoid decoder and cross-entropy do not apply), Gaussian corruption of σ = 0.3. SGD with
momentum 0.9 at rate 0.01 in batches of 100 for 10 epochs; `filters.png` shows the receptive fields in pixel
space. The patches are unlabelled: no linear read-out. Cost on a 2-core CPU: about half a minute; `:smoke`
runs in seconds.
"""

import ml_collections

from deepvision import schema
from deepvision.train import autoencoder
from experiments.configs import common


def get_config(arg: str | None = None):
  smoke = common.check_arg(arg, "ae_patches")
  config = schema.defaults(autoencoder.AutoencoderConfig)
  config.model = "ae_linear"
  common.natural_image_patches(config)
  config.preprocess = "whiten"
  config.whiten = ml_collections.ConfigDict({"variance": 0.99, "epsilon": 0.0})
  config.corruption = 0.0
  config.noise_std = 0.3
  config.batch_size = 100
  config.num_epochs = 10
  config.optimizer.learning_rate = 0.01
  config.optimizer.schedule = "cosine"
  config.linear_eval.enabled = False
  config.steps_per_dispatch = 16
  if smoke:
    config.model = "ae_linear_tiny"
    config.patches.num_train = 1000
    config.patches.num_eval = 200
    config.num_epochs = 2
  return common.locked(config)
