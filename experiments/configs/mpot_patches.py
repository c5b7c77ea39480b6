r"""A mean-product of Student-t experts (mPoT) on 8×8 PCA-whitened natural-image patches.

  python -m experiments.main --config=experiments/configs/mpot_patches.py --workdir=runs/mpot_patches

Ranzato, Mnih & Hinton, "Generating more realistic images using gated MRF's", NIPS 2010 (and PAMI 2013):
the mcRBM's binary covariance units become Gamma-distributed ones (shape γ = 1), so the covariance term
of the free energy is Σ_k γ log(1 + ½ Σ_f P_fk (C_fᵀx)²), a product of Student-t-like experts, and the
input is not normalised. Data, sizes (52 whitened components, 64 factors pooled topographically into
16 covariance units, 32 mean units), PCD with HMC negatives and the update recipe are those of
`mcrbm_patches` (which this config imports), with the same per-parameter rates minus b_c, which the
mPoT does not have. The held-out log-likelihood by AIS (HMC transitions) is compared with the Gaussian
(PCA) model of the same whitened patches.

Cost on a 2-core CPU: about 35 s in all (two to three times longer on a loaded machine). Measured:
held-out log-likelihood -36.3 ± 0.03 nats per patch, against -58.6 for the Gaussian (PCA) model (the
mcRBM reaches -11.0). `:smoke` runs in about 15 s.
"""

from experiments.configs import common, mcrbm_patches

# The mcRBM's multipliers without b_c (the mPoT has no covariance biases).
MPOT_RATES = {name: rate for name, rate in mcrbm_patches.MCRBM_RATES.items() if name != "b_c"}


def get_config(arg: str | None = None):
  smoke = common.check_arg(arg, "mpot_patches")
  config = mcrbm_patches.gated_mrf_config("mpot", MPOT_RATES, smoke)
  config.model_kwargs.gamma = 1.0
  return common.locked(config)
