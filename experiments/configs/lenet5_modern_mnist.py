r"""The modern LeNet-5 on MNIST: ReLU, max pooling, cross-entropy, SGD with momentum and a cosine rate.

Needs MNIST prepared in a TFDS data dir (BUILD.md, "Preparing data without TensorFlow"); nothing is downloaded.

  python -m experiments.main --config=lenet5_modern_mnist --workdir=runs/lenet5_modern_mnist \
      --config.data_dir=DATA_DIR

The zoo's `lenet5` (61,706 parameters) trained as a plain PyTorch loop trains it today: batch 64, 20 epochs,
SGD momentum 0.9, rate 0.05 decaying by a cosine to 0.0005, no weight decay, pixels in [0, 1] as they are
(the same run as `benchmarks/lenet5_time_to_accuracy.py`'s PyTorch loop). The 1998 network beside it is
`lenet5_mnist`. Cost on a 2-core CPU: under a minute for 8,000 digits, about 4 minutes for 60,000;
`:smoke` runs in seconds.
"""

from experiments.configs import common


def get_config(arg: str | None = None):
  smoke = common.check_arg(arg, "lenet5_modern_mnist")
  config = common.supervised_config()
  config.model = "lenet5"
  config.dataset = "mnist"
  config.eval_split = ""  # MNIST has train and test only
  config.batch_size = 64
  config.num_epochs = 20
  config.steps_per_dispatch = 1
  config.optimizer.learning_rate = 0.05
  config.optimizer.schedule = "cosine"
  config.optimizer.decay_factor = 100.0
  config.optimizer.momentum = 0.9
  config.optimizer.nesterov = False
  config.optimizer.weight_decay = 0.0
  config.augment.standardize = False
  if smoke:
    config.num_epochs = 1
    config.train_subset = 64
    config.batch_size = 16
  return common.locked(config)
