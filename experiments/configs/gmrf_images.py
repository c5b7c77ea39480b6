r"""Whole-image models of the photographs, sampled at 64×64 and compared: the talk's high-resolution samples.

  python -m experiments.main --config=experiments/configs/gmrf_images.py --workdir=runs/gmrf_images
  python -m experiments.main --config=experiments/configs/gmrf_images.py:smoke --workdir=runs/gmrf_images_smoke

The trainer `gmrf_images` (experiments/gmrf_images.py; Ranzato, Mnih, Susskind & Hinton, PAMI 2013, §6):
on crops of the 14 training photographs of `dv_natural_images`, scaled by one scalar mean and standard
deviation,

* `stationary_gaussian` (ring-averaged power spectrum) and `wavelet_prior` (generalised-Gaussian subbands
  of a 3-level db2 pyramid) are fitted in closed form on 1,000 64×64 crops and sampled exactly;
* `pairwise_mrf` and `field_of_experts` (8 3×3 experts) are trained by PCD with one HMC trajectory of 20
  leapfrog steps per update, 10 epochs of 2,000 32×32 crops (400 updates), rate 3e-5 with momentum 0.5;
* `tiled_mcrbm` is `deep_gmrf_patches`'s tiled model (`config.tiled`: 8×8 tiles at stride 4, 64 factors,
  16 covariance and 32 mean units, the gated-MRF recipe) on 5,000 32×32 crops whitened at the image level
  by their stationary Gaussian (`images.tiled_whitening`) and scaled to a pixel std of 0.3, 30 epochs
  (3,000 updates); its samples are coloured back by the 64×64 crops' Gaussian;
* the learned models are sampled at 64×64 by 1,000 HMC trajectories from white noise; every model's 16
  samples are compared with 64 crops of the two held-out photographs (`image_stats` table) and drawn beside
  them (`high_res_samples.png`); 8 other held-out crops plus noise of σ = 25/255 are MAP-denoised under
  each prior (PSNR).

Cost on a 2-core CPU: about three to four minutes of wall time on an idle machine (the tiled mcRBM's 3,000
updates at ~35 per second, the two small MRFs' 400 updates each a few seconds, the samples and the
denoising the rest).
`:smoke` (16×16 samples of tiny models, a few updates and trajectories) runs in about half a minute, most of
it compiling.
"""

from deepvision import schema
from experiments import blocks
from experiments.configs import common
from experiments.configs.deep_gmrf_patches import tiled_block
from experiments.configs.mcrbm_patches import MCRBM_RATES, gated_mrf_config


def get_config(arg: str | None = None):
  smoke = common.check_arg(arg, "gmrf_images")
  config = gated_mrf_config("mcrbm", MCRBM_RATES, smoke)
  config.trainer = "gmrf_images"
  config.tiled = tiled_block(smoke)
  config.images = schema.defaults(blocks.ImageModels)
  config.images.num_samples = 16
  if not smoke:
    config.tiled.num_epochs = 30  # 3,000 updates: at 1,000 its derivative histogram was no closer than the FoE's
  if smoke:
    config.images.update(dict(size=16, num_fit_crops=50, crop_size=8, num_crops=100, batch_size=20,
                              num_epochs=1, num_reference=8, num_samples=4, sample_trajectories=10,
                              sample_leapfrog=5, num_denoise=2, denoise_steps=10))
  return common.locked(config)
