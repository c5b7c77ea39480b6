r"""A contractive autoencoder on the embedded 8×8 digits: the encoder's Jacobian is penalised.

  python -m experiments.main --config=experiments/configs/contractive_ae_digits.py --workdir=runs/cae_digits

64 inputs in [0, 1], 100 tied-weight sigmoid units, no corruption; the objective adds λ ‖∂h/∂x‖²_F with
λ = 0.1, in closed form for sigmoid units, Σ_j (h_j(1 − h_j))² Σ_i W_ij² (Rifai et al. 2011;
`models.autoencoder.contraction`). SGD with momentum 0.9 at rate 0.1 in batches of 20 for 30 epochs; the
final record has the test reconstruction loss and the linear read-out of the features. Cost on a 2-core CPU:
seconds; `:smoke` runs in seconds.
"""

from experiments.configs import common


def get_config(arg: str | None = None):
  return common.autoencoder_digits_config(arg, "contractive_ae_digits", "contractive_ae",
                                          corruption=0.0, contraction_weight=0.1)
