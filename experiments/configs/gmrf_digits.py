r"""Recognition under occlusion on the embedded 8×8 digits with a gated MRF's fill-in and features.

  python -m experiments.main --config=experiments/configs/gmrf_digits.py --workdir=runs/gmrf_digits
  python -m experiments.main --config=experiments/configs/gmrf_digits.py:mpot --workdir=runs/gmrf_digits_mpot

The talk's expression-recognition-under-occlusion experiment (Ranzato, Susskind, Mnih & Hinton, CVPR
2011; Ranzato, Mnih, Susskind & Hinton, PAMI 2013) at digits scale, run by the `occlusion` trainer
(`experiments/occlusion.py`):

* model: an mcRBM (`:mpot` for an mPoT, γ = 1) on the digits PCA-whitened to the K = 41 components that
  hold 99% of the pixel variance (pixels in [0, 1], not standardised per pixel: the border pixels
  barely vary); 64 factors, each its own covariance unit (P starts at the identity), 64 mean units;
  PCD with one 20-step HMC trajectory per update and the per-parameter rates, delayed L1, P freezing
  and C renormalisation of `mcrbm_patches`; batch 100, 200 epochs (2,000 updates), the rate annealed
  as ε/max(1, epoch/66);
* classifiers: L-BFGS logistic regression on clean training images, on pixels, on the posterior means
  [h_c, h_m] (mcRBM: [σ_c, σ_m]) and on both; L2 weight chosen on the clean validation split;
* test: no occlusion, the left half, and a random 4×4 square per image; the occluded pixels filled
  with the training mean (the baseline's view: the raw occluded pixels), the Gaussian conditional
  mean, or the gated MRF's E[x_m | x_o] (300 pixel-space HMC transitions of 20 leapfrog steps from
  the Gaussian fill, the first 100 discarded).

Cost on a 2-core CPU: about 75 s of wall time on a loaded machine (2,000 updates at ~150 per second,
then the classifiers, three fills of the 360 test digits and the figures); `:smoke` (a tiny model, two
epochs, 40 HMC transitions of 5 leapfrog steps, the first 10 discarded) about 35 s, mostly compilation.
The smoke fill averages 30 transitions: with 4 (6 transitions, 2 discarded) the Monte Carlo error of the
average, about a quarter of the conditional variance per pixel, made the fill of the left half worse than
the training mean (squared error 0.069 against 0.067); with 30 it is 0.055 (left half) and 0.069 (random
square) against 0.067 and 0.101, which tests/experiments/test_occlusion_pipeline.py asserts with a margin.

Measured (seeds 0, 1, 2; test accuracy, mean ± std): the raw occluded pixels 0.772 (left half) and
0.787 ± 0.008 (random square); the mcRBM fill with [latent, pixels] 0.888 ± 0.002 and 0.916 ± 0.008,
latent features alone 0.844 ± 0.005 and 0.865 ± 0.010. The Gaussian conditional-mean fill is about as
good (0.900 ± 0.022, 0.920 ± 0.007 with [latent, pixels]); the mcRBM's fill has the lower squared
error (0.040 vs 0.042, 0.052 vs 0.055). The README's occlusion table has every cell.
"""

from deepvision import schema
from experiments import blocks
from experiments.configs import common, mcrbm_patches, mpot_patches

VARIANTS = ("smoke", "mpot")


def get_config(arg: str | None = None):
  """`arg`: '' (mcRBM), 'mpot', 'smoke' or 'mpot,smoke'."""
  tokens = tuple(t for t in (arg or "").split(",") if t)
  if any(t not in VARIANTS for t in tokens):
    raise ValueError(f"unknown argument {arg!r} for config gmrf_digits; valid: '' or a comma-separated "
                     f"combination of {', '.join(map(repr, VARIANTS))}")
  smoke, mpot = "smoke" in tokens, "mpot" in tokens
  config = mcrbm_patches.gated_mrf_config("mpot" if mpot else "mcrbm",
                                          mpot_patches.MPOT_RATES if mpot else mcrbm_patches.MCRBM_RATES, smoke)
  config.trainer = "occlusion"
  if mpot:
    config.model_kwargs.gamma = 1.0
  config.dataset = "dv_digits"
  config.train_split = "train"
  config.eval_split = "validation"
  config.test_split = "test"
  config.patches.size = 0
  config.patches.remove_dc = False
  config.whiten.variance = 0.99
  config.model_kwargs.n_visible = 41
  config.model_kwargs.n_factors = 64
  config.model_kwargs.n_cov = 64
  config.model_kwargs.n_mean = 64
  config.model_kwargs.pooling_init = "identity"
  config.batch_size = 100
  config.num_epochs = 200
  config.optimizer.anneal_epochs = 66
  config.optimizer.l1_start_epoch = 10
  config.gated_mrf.pooling_frozen_epochs = 10
  config.log_likelihood.method = "none"

  config.occlusion = schema.defaults(blocks.Occlusion)
  if smoke:
    config.model_kwargs.n_factors = 8
    config.model_kwargs.n_cov = 8
    config.model_kwargs.n_mean = 8
    config.num_epochs = 2
    config.optimizer.anneal_epochs = 1
    config.occlusion.num_steps = 40  # an average of 30 transitions: see the docstring
    config.occlusion.burn_in = 10
    config.occlusion.num_leapfrog = 5
    config.occlusion.l2 = (1e-3,)
    config.occlusion.num_shown = 4
    config.occlusion.model_figures = False  # the filters and HMC samples of workdir/model: seconds more
  return common.locked(config)
