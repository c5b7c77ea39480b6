r"""A denoising autoencoder (Vincent et al. 2008) on 28×28 MNIST from a TFDS data dir: the paper's filters.

  python -m experiments.main --config=experiments/configs/dae_mnist.py --workdir=runs/dae_mnist \
      --config.data_dir=~/tensorflow_datasets
  python -m experiments.dae_corruption --config=dae_mnist --data_dir=~/tensorflow_datasets --seeds=1 \
      --workdir=runs/dae_corruption_mnist --out=results/dae_corruption_mnist

784 inputs in [0, 1], 500 tied-weight sigmoid units, 25% masking noise, cross-entropy, SGD with momentum 0.9
at rate 0.1 (cosine) in batches of 20 for 15 epochs; the last 10% of `train` validates. At 8×8
(`dae_digits`) a digit is a few strokes across the whole image and the filters stay digit-sized templates; at
28×28 Vincent et al. show them turning from noise into stroke detectors as the masking grows. MNIST is not
embedded: prepare it with `python -m experiments.prepare_data`. Cost on a 2-core CPU: about a minute on
6,000 digits; `:smoke` runs in seconds on a mock data set.
"""

from experiments.configs import common


def get_config(arg: str | None = None):
  smoke = common.check_arg(arg, "dae_mnist")
  config = common.autoencoder_digits_config("smoke" if smoke else None, "dae_mnist",
                                            n_visible=784, n_hidden=500)
  config.dataset = "mnist"
  config.train_split = "train[:90%]"
  config.eval_split = "train[90%:]"
  config.test_split = "test"
  config.num_epochs = 2 if smoke else 15
  if smoke:
    config.model_kwargs.n_visible = 784
    config.model_kwargs.n_hidden = 8
  return config
