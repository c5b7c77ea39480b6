r"""A deep gated MRF on 8×8 whitened natural-image patches, and a tiled mcRBM that samples large images.

  python -m experiments.main --config=experiments/configs/deep_gmrf_patches.py --workdir=runs/deep_gmrf
  python -m experiments.main --config=experiments/configs/deep_gmrf_patches.py:smoke --workdir=runs/deep_smoke

Ranzato, Mnih, Susskind & Hinton, "Modeling natural images using gated MRFs", PAMI 2013, §4-§5
(trainer `deep_gmrf`, experiments/deep_gmrf.py):

* layer 1: the mcRBM of experiments/configs/mcrbm_patches.py, unchanged (40,000 8×8 patches of 14
  photographs, DC removed, PCA-whitened to K = 52; 64 factors, 16 topographic covariance units, 32 mean
  units; PCD with HMC negatives and the original recipe; AIS log-likelihood);
* layers 2 and 3: binary RBMs of 128 and 64 units trained by PCD-1 (Gibbs), the first on the layer-1
  codes z = [p(h_c = 1 | x), p(h_m = 1 | x)] (48 units in [0, 1]), the second on RBM 2's posterior
  means; rate 0.01, momentum 0.9, L2 2e-4, 10 epochs of batches of 100; AIS log-likelihood of the codes
  under each RBM (1,000 temperatures);
* sampling: 64 samples of each model; the deep model by 1,000 Gibbs steps in the top RBM, a binary
  top-down pass to the layer-1 codes, then 100 HMC trajectories on p(x | h) (50 adapting the step size);
  the gated MRF alone by 200 HMC trajectories on F(x) from Gaussian (PCA) samples;
* tiled model: a `TiledMCRBM` (8×8 tiles at stride 4, one shared bank of 64 factors, 16 topographic
  covariance units, 32 mean units, per-tile contrast normalisation) trained by PCD with HMC (20 leapfrog
  steps) on 5,000 32×32 crops of the same 14 photographs, each crop's mean removed and the pixels scaled
  by one scalar to a standard deviation of 0.3 (the model's precision I + C diag(P h_c) Cᵀ cannot give any
  direction a variance above 1; whitened patches have 1 in every direction, unwhitened pixels far more
  along the smooth ones); the same recipe as layer 1 (per-parameter rates, delayed L1, P frozen then
  projected, C renormalised) at a smaller base rate, because the energy sums over the 49 tiles of a crop;
  then 4 images of 64×64 sampled by 1,000 HMC trajectories from N(0, I) (`large_sample.png`, beside
  real 64×64 crops of the training photographs).

Cost on a loaded 2-core CPU: about 3 min 40 s in all (layer 1 ~40 s, the two RBMs ~15 s each with
their AIS, the tiled model 1,000 updates at ~11 per second, then the sampling and figures ~1 min); a
re-run finds everything finished in ~12 s. Measured: layer 1 test log-likelihood -11.0 nats per patch
(Gaussian -58.6); the p90/p10 spread of patch contrast is 30 for the data, 1.7 for the Gaussian, 2.9 for
the mcRBM's samples, 3.8 for the deep model's; the 64×64 tiled samples have the data's pixel contrast
(std 0.37 against 0.36) but are brighter (mean 0.76 against 0) and far rougher (neighbour correlation
0.41 against 0.95): 1,000 PCD updates on unwhitened pixels fall well short of the smooth structure of
the photographs, and base rates of 0.003 and above diverge. `:smoke` (6×6 patches, a tiny stack, a tiny
tiled model on 8×8 crops sampled at 12×12) runs in about 1 to 1.5 minutes, most of it compiling.
"""

import ml_collections

from deepvision import schema
from experiments import blocks
from experiments.configs import common
from experiments.configs.mcrbm_patches import MCRBM_RATES, gated_mrf_config


def tiled_block(smoke: bool) -> ml_collections.ConfigDict:
  """The tiled mcRBM trained on crops and sampled at a larger size (`tiled`; `blocks.Tiled`)."""
  tiled = schema.defaults(blocks.Tiled)
  tiled.optimizer.anneal_epochs = 5
  tiled.optimizer.l1_start_epoch = 3
  tiled.optimizer.lr_multipliers = dict(MCRBM_RATES)
  if smoke:
    tiled.model_kwargs.update(dict(patch_size=4, stride=2, n_factors=4, n_cov=4, n_mean=2,
                                   pooling_init="identity"))
    tiled.crop_size = 8
    tiled.num_crops = 200
    tiled.num_eval_crops = 50
    tiled.batch_size = 20
    tiled.num_epochs = 1
    tiled.optimizer.anneal_epochs = 1
    tiled.optimizer.l1_start_epoch = 1
    tiled.gated_mrf.pooling_frozen_epochs = 1
    tiled.contrastive.sampler_options.num_leapfrog = 5
    tiled.sample_shape = (12, 12)
    tiled.num_large = 2
    tiled.sample_trajectories = 20
    tiled.sample_leapfrog = 5
  return tiled


def get_config(arg: str | None = None):
  smoke = common.check_arg(arg, "deep_gmrf_patches")
  config = gated_mrf_config("mcrbm", MCRBM_RATES, smoke)
  config.trainer = "deep_gmrf"
  config.deep = schema.defaults(blocks.Deep)
  if smoke:
    config.deep.update(dict(hidden=(8, 6), num_samples=16, top_gibbs_steps=20, gmrf_trajectories=10,
                            hmc_steps=10, hmc_burn_in=5, hmc_leapfrog=5))
    config.deep.rbm.update(dict(batch_size=50, num_epochs=2))
    config.deep.rbm.log_likelihood.update(dict(ais_runs=16, ais_temperatures=50))
  config.tiled = tiled_block(smoke)
  return common.locked(config)
