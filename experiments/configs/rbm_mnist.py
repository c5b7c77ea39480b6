r"""A binary RBM with 500 hidden units on MNIST (Salakhutdinov & Murray 2008), for users with MNIST in a TFDS dir.

  python -m experiments.main --config=experiments/configs/rbm_mnist.py --workdir=runs/rbm_mnist \
      --config.data_dir=~/tensorflow_datasets

MNIST is not embedded: prepare it once where you have a network (`tfds build mnist --data_dir=DIR`); nothing
is downloaded here. Pixels are binarised at 0.5, 784 × 500, PCD with 100 chains, 20 epochs, AIS log Z with
100 runs at the end (Salakhutdinov & Murray report about −86 nats for CD-25 with 500 hidden units).
Cost on a 2-core CPU: about 30 minutes; `:smoke` runs in seconds on a mock data set.
"""

from experiments.configs import common


def get_config(arg: str | None = None):
  smoke = common.check_arg(arg, "rbm_mnist")
  config = common.contrastive_config()
  config.steps_per_dispatch = 16  # benchmarks/results/steps_per_dispatch.json: fastest with compilation
  config.model = "rbm"
  config.model_kwargs.n_visible = 784
  config.model_kwargs.n_hidden = 500
  config.dataset = "mnist"
  config.train_split = "train[:50000]"
  config.eval_split = "train[50000:]"
  config.test_split = "test"
  config.preprocess = "binarize"
  config.batch_size = 100
  config.num_epochs = 20
  config.contrastive.method = "pcd"
  config.optimizer.learning_rate = 0.05
  config.optimizer.momentum_ramp_steps = 5 * 500
  config.optimizer.schedule = "cosine"
  config.optimizer.decay_factor = 10.0
  config.optimizer.weight_decay = 2e-4
  if smoke:
    config.model_kwargs.n_hidden = 16
    config.train_split, config.eval_split, config.test_split = "train", "", "test"
    config.batch_size = 10
    config.num_epochs = 1
    config.optimizer.momentum_ramp_steps = 0
    config.log_likelihood.ais_runs = 4
  return common.locked(config)
