r"""A denoising autoencoder (Vincent et al. 2008) on the embedded 8×8 digits, features read out linearly.

  python -m experiments.main --config=experiments/configs/dae_digits.py --workdir=runs/dae_digits

64 inputs in [0, 1], 100 tied-weight sigmoid units, 25% masking noise, SGD with momentum 0.9 at rate 0.1 in
batches of 20 for 30 epochs; the final record has the test reconstruction loss and the accuracy of logistic
regression on the features against the pixels. Cost on a 2-core CPU: seconds; `:smoke` runs in seconds.
"""

from deepvision import schema
from deepvision.train import autoencoder
from experiments.configs import common


def get_config(arg: str | None = None):
  smoke = common.check_arg(arg, "dae_digits")
  config = schema.defaults(autoencoder.AutoencoderConfig)
  config.dataset = "dv_digits"
  config.batch_size = 20
  config.num_epochs = 30
  config.optimizer.schedule = "cosine"
  config.steps_per_dispatch = 16
  if smoke:
    config.model = "dae_tiny"
    config.model_kwargs.n_visible = 64
    config.num_epochs = 2
    config.linear_eval.l2 = (1e-3,)
  return common.locked(config)
