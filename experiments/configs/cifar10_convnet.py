r"""A Krizhevsky (cuda-convnet "layers-18pct") style convnet on CIFAR-10 with translations and flips.

Needs CIFAR-10 prepared in a TFDS data dir (see BUILD.md, "Data"); deepvision never downloads.

  python -m experiments.main --config=experiments/configs/cifar10_convnet.py --workdir=runs/cifar10 \
      --config.data_dir=~/tensorflow_datasets

Reference: about 18% test error without augmentation, 13% with translations and flips (cuda-convnet).
Cost on a 2-core CPU: about an hour and a half (40 epochs); on one GPU, minutes. `:smoke` runs in seconds.
"""

from experiments.configs import common


def get_config(arg: str | None = None):
  smoke = common.check_arg(arg, "cifar10_convnet")
  config = common.supervised_config()
  config.model = "cifar_convnet"
  config.dataset = "cifar10"
  config.eval_split = ""  # CIFAR-10 has train and test only
  config.batch_size = 128
  config.num_epochs = 40
  config.optimizer.learning_rate = 0.02
  config.optimizer.weight_decay = 4e-3
  config.augment.translate = 2
  config.augment.flip = True
  config.log_every_steps = 100
  config.checkpoint_every_steps = 1000
  if smoke:
    config.model = "cifar_convnet_tiny"
    config.model_kwargs.input_shape = (32, 32, 3)
    config.num_epochs = 1
    config.train_subset = 32
    config.batch_size = 16
    config.checkpoint_every_steps = 0
  return common.locked(config)
