r"""A denoising autoencoder (Vincent et al. 2008) on the embedded 8×8 digits, features read out linearly.

  python -m experiments.main --config=experiments/configs/dae_digits.py --workdir=runs/dae_digits

64 inputs in [0, 1], 100 tied-weight sigmoid units, 25% masking noise, SGD with momentum 0.9 at rate 0.1 in
batches of 20 for 30 epochs; the final record has the test reconstruction loss and the accuracy of logistic
regression on the features against the pixels. Cost on a 2-core CPU: seconds; `:smoke` runs in seconds.
"""

from experiments.configs import common


def get_config(arg: str | None = None):
  return common.autoencoder_digits_config(arg, "dae_digits")
