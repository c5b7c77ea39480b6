r"""LeNet-5 exactly as LeCun et al. (1998) on MNIST (28×28 digits padded to the net's 32×32 input).

Needs MNIST prepared in a TFDS data dir (see BUILD.md, "Data"); deepvision never downloads.

  python -m experiments.main --config=experiments/configs/lenet5_mnist.py --workdir=runs/lenet5_mnist \
      --config.data_dir=~/tensorflow_datasets

Reference: 0.95% test error (LeCun et al. 1998, no distortions). Cost on a 2-core CPU: about 20 minutes
(20 epochs of 60,000 images); `:smoke` runs in seconds.
"""

from experiments.configs import common


def get_config(arg: str | None = None):
  smoke = common.check_arg(arg, "lenet5_mnist")
  config = common.supervised_config()
  config.model = "lenet5_1998"
  config.model_kwargs.input_shape = (28, 28, 1)  # MNIST digits, padded by 2 to the net's 32×32
  config.model_kwargs.pad = 2
  config.dataset = "mnist"
  config.eval_split = ""  # MNIST has train and test only
  config.batch_size = 64
  config.num_epochs = 20
  # The RBF logits span hundreds: rates of 1e-2 and above diverge.
  config.optimizer.learning_rate = 1e-3
  config.optimizer.weight_decay = 0.0
  config.augment.standardize = False
  config.log_every_steps = 100
  config.checkpoint_every_steps = 1000
  if smoke:
    config.num_epochs = 1
    config.train_subset = 64
    config.batch_size = 16
    config.checkpoint_every_steps = 0
  return common.locked(config)
