r"""A mean-covariance RBM on 8×8 PCA-whitened natural-image patches, trained as the original code does.

  python -m experiments.main --config=experiments/configs/mcrbm_patches.py --workdir=runs/mcrbm_patches

Ranzato & Hinton, "Modeling pixel means and covariances using factorized third-order Boltzmann machines",
CVPR 2010, with the recipe of their code (reference: Ranzato, Mnih, Susskind & Hinton, PAMI 2013):

* data: 40,000 random 8×8 patches of 14 embedded photographs (`dv_natural_images`), each patch's mean
  removed, PCA-whitened keeping 99% of the variance (K = 52 components; saved in `preprocessing.json`);
  validation and test patches come from two held-out photographs;
* model: 52 visible units, 64 factors on an 8×8 grid pooled by 3×3 windows with stride 2 into 16 = 4×4
  covariance units (the original code's topography at a quarter of its size), 32 mean units; the
  covariance branch sees x / sqrt(‖x‖²/D + 1/2) (`input_norm='original'`);
* negatives: persistent chains (PCD) advanced by one HMC trajectory of 20 leapfrog steps per update,
  the step size adapted towards 10% rejection;
* updates: base rate ε with per-parameter multipliers C 2ε, P 0.02ε, b_c 0.02ε, b_v 0.02ε, W 0.2ε,
  b_m 0.1ε; L1 weight cost 0.001 on C, P, W from epoch 10; P frozen for 10 epochs, then kept ≥ 0 under
  the topographic mask with unit-L1 columns; C's columns renormalised to a running common norm; the
  rate annealed as ε/max(1, epoch/20);
* evaluation: the held-out log-likelihood per patch (in the whitened space) by AIS from N(b_v, I)
  with HMC transitions, ±3σ, against the Gaussian (PCA) model fitted to the same whitened patches
  (`test/gaussian_log_likelihood`); figures of C, W and P in pixel space and of data, Gaussian and
  HMC samples.

Faces instead of photographs (8×8 patches of the embedded faces keep K = 53 components):

  python -m experiments.main --config=experiments/configs/mcrbm_patches.py --workdir=runs/mcrbm_faces \
      --config.dataset=dv_faces --config.train_split=train --config.eval_split=validation \
      --config.test_split=test --config.model_kwargs.n_visible=53

Cost on a 2-core CPU: about 40 s in all (30 epochs, 9,360 updates at ~450 per second, then AIS and the
figures); two to three times longer on a loaded machine. Measured: held-out (test photograph)
log-likelihood -11.0 ± 0.06 nats per patch, against -58.6 for the Gaussian (PCA) model of the same
whitened patches. `:smoke` (6×6 patches, 1,000 of them, a tiny model, two epochs, a short AIS) runs in
about 15 s.
"""

from experiments.configs import common

# Per-parameter learning-rate multipliers of the original mcRBM code (reference/gated-mrf.md).
MCRBM_RATES = {"C": 2.0, "P": 0.02, "b_c": 0.02, "b_v": 0.02, "W": 0.2, "b_m": 0.1}


def gated_mrf_config(model: str, rates: dict, smoke: bool):
  """The config shared by the gated MRFs on whitened natural-image patches (mcrbm_patches, mpot_patches)."""
  config = common.contrastive_config()
  config.model = model
  config.model_kwargs.n_visible = 52
  config.model_kwargs.n_factors = 64
  config.model_kwargs.n_cov = 16
  config.model_kwargs.n_mean = 32
  config.model_kwargs.pooling_init = "topographic"
  common.natural_image_patches(config)
  config.preprocess = "whiten"
  config.whiten = dict(variance=0.99, epsilon=0.0)
  config.batch_size = 128
  config.num_epochs = 30

  config.contrastive.method = "pcd"
  config.contrastive.sampler = "hmc"
  config.contrastive.sampler_options = dict(num_leapfrog=20, initial_step_size=0.01, target_rejection=0.1)

  config.optimizer.learning_rate = 0.01
  config.optimizer.schedule = "inverse_epoch"
  config.optimizer.anneal_epochs = 20
  config.optimizer.momentum = 0.9
  config.optimizer.weight_decay = 0.0
  config.optimizer.l1 = 0.001
  config.optimizer.l1_start_epoch = 10
  config.optimizer.lr_multipliers = dict(rates)

  config.gated_mrf = dict(pooling_frozen_epochs=10, project_pooling=True, pooling_mask="model",
                          normalize_factors=True, factor_norm_decay=0.95, sample_trajectories=200)

  config.log_likelihood.method = "ais"
  config.log_likelihood.ais_runs = 100
  config.log_likelihood.ais_temperatures = 3000
  config.log_likelihood.hmc_leapfrog = 10
  config.log_likelihood.hmc_trajectories = 1
  config.log_likelihood.hmc_step_size = 0.0  # 0: the step size the training chains adapted to
  config.linear_eval.enabled = False  # natural patches have no labels
  if smoke:
    config.model_kwargs.n_visible = 29
    config.model_kwargs.n_factors = 16
    config.model_kwargs.n_cov = 4
    config.model_kwargs.n_mean = 8
    config.patches.size = 6
    config.patches.num_train = 1000
    config.patches.num_eval = 200
    config.batch_size = 50
    config.num_epochs = 2
    config.optimizer.l1_start_epoch = 1
    config.optimizer.anneal_epochs = 1
    config.gated_mrf.pooling_frozen_epochs = 1
    config.gated_mrf.sample_trajectories = 10
    config.contrastive.sampler_options.num_leapfrog = 5
    config.log_likelihood.ais_runs = 16
    config.log_likelihood.ais_temperatures = 50
  return config


def get_config(arg: str | None = None):
  smoke = common.check_arg(arg, "mcrbm_patches")
  return common.locked(gated_mrf_config("mcrbm", MCRBM_RATES, smoke))
