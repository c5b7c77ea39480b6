r"""Inpainting held-out faces with a mean-covariance RBM, against the Gaussian (PCA) conditional.

  python -m experiments.main --config=experiments/configs/gmrf_faces.py --workdir=runs/gmrf_faces

The experiment of `experiments.inpainting` (the `inpainting` trainer; Ranzato, Mnih, Susskind &
Hinton, PAMI 2013, inpainting of occluded faces) at the scale of the embedded faces:

* data: the 80 faces of dv_faces' train and validation splits, cropped to 24×24 and average-pooled to
  12×12, augmented by the four 1-pixel crop shifts and mirroring (640 training images); the 20 faces of
  the test split are held out. PCA whitening fitted on the training faces keeps 99% of the variance
  (K = 99 of 144 directions);
* model: an mcRBM in its original form (`input_norm='original'`) with 256 factors pooled
  topographically into 64 covariance units and 32 mean units, trained as in `mcrbm_patches` (PCD, one
  HMC trajectory of 20 leapfrog steps per update, the per-parameter rates, delayed L1, P frozen then
  projected, C renormalised) for 100 epochs at a base rate of 0.03;
* inpainting: a central 6×6 square, the bottom half and a random 6×6 square of every held-out face
  are filled with the posterior mean of the missing pixels by pixel-space HMC (300 transitions, the
  first 100 discarded), started at the Gaussian's fill; baselines: the PCA-residual Gaussian of the
  same whitening and the full-covariance Gaussian of the same training pixels.

Measured (seed 0; MSE per missing pixel, pixels in [0, 1], mean ± standard error over the 20 held-out
faces; gain: the paired difference, better Gaussian minus mcRBM):

  mask            mcRBM            Gaussian (PCA)   Gaussian (full)  training mean    gain
  central 6×6     0.0107 ± 0.0013  0.0110 ± 0.0014  0.0108 ± 0.0014  0.0177 ± 0.0026  0.0002 ± 0.0003
  bottom half     0.0205 ± 0.0030  0.0208 ± 0.0028  0.0209 ± 0.0028  0.0242 ± 0.0023  0.0004 ± 0.0005
  random 6×6      0.0089 ± 0.0009  0.0092 ± 0.0010  0.0091 ± 0.0010  0.0186 ± 0.0026  0.0002 ± 0.0003

The mcRBM is ahead on every mask, by 1-3% and about one standard error or less each: a small gain, not a
significant one per mask (with seed 1: ahead on the bottom half and the random square, behind on the
central square). An mPoT filled by HMC, and other rates, whitening
levels and training lengths did no better overall.

Cost on a 2-core CPU: about 40 s of CPU time (1,000 updates, then 3 × 300 HMC transitions of 20 faces,
then figures); about a minute of wall time on a loaded machine. `:smoke` (4×4 faces, a tiny model, two
epochs, short chains) runs in seconds of CPU time.
"""

from deepvision import schema
from deepvision.data import face_data
from experiments.configs import common, mcrbm_patches


def get_config(arg: str | None = None):
  smoke = common.check_arg(arg, "gmrf_faces")
  config = mcrbm_patches.gated_mrf_config("mcrbm", mcrbm_patches.MCRBM_RATES, smoke=False)
  config.trainer = "inpainting"
  config.dataset = "dv_faces"
  config.train_split = "train+validation"  # recorded for the run; the faces block selects the faces
  config.eval_split = ""
  config.test_split = "test"
  config.patches.size = 0
  config.whiten = dict(variance=0.99, epsilon=0.0)
  config.faces = schema.defaults(face_data.FaceSettings)  # 24×24 crops pooled to 12×12, shifted, mirrored
  config.model_kwargs.n_visible = 99
  config.model_kwargs.n_factors = 256
  config.model_kwargs.n_cov = 64
  config.model_kwargs.n_mean = 32
  config.batch_size = 64
  config.num_epochs = 100
  config.optimizer.learning_rate = 0.03  # 0.01 (mcrbm_patches) learned less; 0.1 diverged from the data
  config.optimizer.anneal_epochs = 50
  config.log_likelihood.method = "none"
  config.gated_mrf.sample_trajectories = 200
  config.inpainting = schema.defaults(face_data.InpaintSettings)  # three masks, 300 HMC transitions
  if smoke:
    config.faces.update(crop=16, pool=4, shifts=0, flips=True)  # 4×4 faces
    config.whiten.variance = 0.95
    config.model_kwargs.update(n_visible=10, n_factors=8, n_cov=8, n_mean=4)
    config.model_kwargs.pooling_init = "identity"
    config.gated_mrf.pooling_mask = "none"
    config.batch_size = 40
    config.num_epochs = 2
    config.optimizer.l1_start_epoch = 1
    config.optimizer.anneal_epochs = 1
    config.gated_mrf.pooling_frozen_epochs = 1
    config.gated_mrf.sample_trajectories = 5
    config.contrastive.sampler_options.num_leapfrog = 5
    config.inpainting.update(masks=("central_square", "random_square"), square_size=2, num_steps=20,
                             burn_in=5, num_leapfrog=5, num_shown=4)
  return common.locked(config)
