r"""A Gaussian-Bernoulli RBM on 8×8 natural-image patches, standardised per pixel (σ = 1).

  python -m experiments.main --config=experiments/configs/grbm_patches.py --workdir=runs/grbm_patches

40,000 random 8×8 patches of 14 of the embedded photographs (`dv_natural_images`), each patch's mean removed,
then every pixel standardised on the training patches (the standardisation is saved in
`preprocessing.json`). 64 visible, 256 hidden units, CD-1 with a small rate (Gaussian visibles need
one: Hinton's guide §13.2), momentum 0.9 after a ramp, a sparsity target of 0.1. Without whitening the
1/f spectrum of natural images dominates: the filters come out smooth, mostly low-frequency blobs and
broad edges (PCA whitening, as for the gated MRFs, gives localised oriented ones). Held-out
log-likelihood by AIS at the end.
Cost on a 2-core CPU: about 35 s; `:smoke` runs in seconds.
"""

from experiments.configs import common


def get_config(arg: str | None = None):
  smoke = common.check_arg(arg, "grbm_patches")
  config = common.contrastive_config()
  config.model = "grbm"
  config.model_kwargs.n_visible = 64
  config.model_kwargs.n_hidden = 256
  common.natural_image_patches(config)
  config.preprocess = "standardize"
  config.batch_size = 100
  config.num_epochs = 20
  config.contrastive.method = "cd"
  config.contrastive.sparsity_target = 0.1
  config.contrastive.sparsity_cost = 0.1
  config.optimizer.learning_rate = 0.005
  config.optimizer.momentum_ramp_steps = 2000
  config.optimizer.schedule = "cosine"
  config.optimizer.decay_factor = 10.0
  config.optimizer.weight_decay = 1e-4
  if smoke:
    config.model_kwargs.n_hidden = 12
    config.patches.num_train = 1000
    config.patches.num_eval = 200
    config.num_epochs = 2
    config.optimizer.momentum_ramp_steps = 0
  return common.locked(config)
