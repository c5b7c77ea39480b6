r"""A sparse autoencoder on the embedded 8×8 digits: a KL penalty pulls each unit's mean activation to ρ.

  python -m experiments.main --config=experiments/configs/sparse_ae_digits.py --workdir=runs/sparse_ae_digits

64 inputs in [0, 1], 100 tied-weight sigmoid units, no corruption; the objective adds β Σ_j KL(ρ ‖ ρ̂_j)
with ρ = 0.05, β = 0.1 (ρ̂_j the batch mean of unit j; `models.autoencoder.kl_sparsity`). SGD with momentum
0.9 at rate 0.1 in batches of 20 for 30 epochs; the final record has the test reconstruction loss and the
accuracy of logistic regression on the features against the pixels. Cost on a 2-core CPU: seconds;
`:smoke` runs in seconds.
"""

from experiments.configs import common


def get_config(arg: str | None = None):
  return common.autoencoder_digits_config(arg, "sparse_ae_digits", "sparse_ae", corruption=0.0,
                                          sparsity_target=0.05, sparsity_weight=0.1)
