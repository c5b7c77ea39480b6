r"""The default experiment: a convnet with local contrast normalisation on the embedded digits.

Three [conv → ReLU → LCN → pool] stages (Jarrett et al. 2009) on the 8×8 scikit-learn digits,
±1-pixel translation jitter, dropout, SGD with Nesterov momentum and a cosine decay of the
learning rate by 100×.

  python -m experiments.main --config=experiments/configs/lcn_convnet_digits.py --workdir=runs/lcn_digits

Cost on a 2-core CPU: about a minute; `:smoke` runs in seconds.
"""

from experiments.configs import common


def get_config(arg: str | None = None):
  smoke = common.check_arg(arg, "lcn_convnet_digits")
  config = common.supervised_config()
  config.model = "lcn_convnet_digits"
  config.dataset = "dv_digits"
  config.batch_size = 32
  config.num_epochs = 60
  config.optimizer.learning_rate = 0.05
  config.optimizer.schedule = "cosine"
  config.optimizer.weight_decay = 5e-4
  config.augment.translate = 1
  config.checkpoint_every_steps = 500
  if smoke:
    config.model = "lcn_convnet_digits_tiny"
    config.num_epochs = 2
    config.train_subset = 128
    config.checkpoint_every_steps = 0
  return config
