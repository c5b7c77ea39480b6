r"""A binary RBM with 500 hidden units on MNIST (Salakhutdinov & Murray 2008), for users with MNIST in a TFDS dir.

  python -m experiments.main --config=experiments/configs/rbm_mnist.py --workdir=runs/rbm_mnist \
      --config.data_dir=~/tensorflow_datasets
  python -m experiments.main --config=experiments/configs/rbm_mnist.py:cd1 --workdir=runs/rbm_mnist_cd1 \
      --config.data_dir=~/tensorflow_datasets
  python -m experiments.main --config=experiments/configs/rbm_mnist.py:cd25 --workdir=runs/rbm_mnist_cd25 \
      --config.data_dir=~/tensorflow_datasets

MNIST is not embedded: prepare it once where you have a network (`tfds build mnist --data_dir=DIR`), or from
arrays with `python -m experiments.prepare_data`; nothing is downloaded here. Pixels are binarised at 0.5,
784 × 500, batch 100, 20 epochs, AIS log Z with 100 runs of Salakhutdinov's 14,501 temperatures at the end
(Salakhutdinov & Murray report −86.34 nats for CD-25 with 500 hidden units on the full training set).

The training method is the config's argument: `pcd` (the default: persistent chains, Tieleman 2008, 100
of them) or `cdK` for CD-K (chains restart at the data, K Gibbs steps: `cd1`, `cd10`, `cd25`, ...);
`smoke` combines with either (`:cd25,smoke`). The same fields stay overridable
(`--config.contrastive.method=cd --config.contrastive.k=25`). Validation is the last 10% of the training
split (`train[90%:]`), so the config runs on any set with a train and a test split: 54,000 / 6,000 digits
of MNIST's 60,000. The momentum ramps 0.5 → 0.9 over `optimizer.momentum_ramp_steps` = 2,700 updates,
5 epochs of 540: on a smaller training set pass 5 × (its size × 0.9 // 100).

Cost on a 2-core CPU: about 30 minutes with PCD; CD-25 takes longer (25 Gibbs steps per update); `:smoke`
runs in seconds on a mock data set.

Measured on an 8,004-digit subset of the MNIST training set (6,004 train, of which 5,404 train here and 600
validate, and 2,000 test; `--config.optimizer.momentum_ramp_steps=270`; results/mnist_subset/), seed 0,
20 epochs, test log-likelihood in nats with its AIS interval: CD-1 −118.3 [−118.6, −117.9] (2.5 min),
CD-25 −86.9 [−87.5, −85.6] (4 min), 7 nats below the training digits' for both. PCD at this rate
oscillated on the subset and its AIS interval is unbounded (log Z's lower bound −inf): that estimate
(−55) is not usable; at rate 0.001 AIS is tight but 1,080 updates leave the model undertrained (−170.5).
PCD needs a lower rate and more updates there: `--config.optimizer.learning_rate=0.003
--config.num_epochs=150` (8,100 updates, 6.5 min) reaches −96.7 [−97.1, −96.1], with CD-10's −96.5.
"""

import re

from experiments.configs import common

METHOD = re.compile(r"pcd|cd([1-9][0-9]*)")


def get_config(arg: str | None = None):
  """`arg`: '' (PCD), 'pcd', 'cdK' (CD-K, K ≥ 1), 'smoke', or a method and 'smoke' joined by a comma."""
  tokens = tuple(t for t in (arg or "").split(",") if t)
  methods = [t for t in tokens if METHOD.fullmatch(t)]
  if any(t != "smoke" and not METHOD.fullmatch(t) for t in tokens) or len(methods) > 1 or len(
      set(tokens)) < len(tokens):
    raise ValueError(f"unknown argument {arg!r} for config rbm_mnist; valid: '', 'smoke', a method ('pcd', "
                     "or 'cdK' for CD-K with K >= 1, e.g. 'cd1', 'cd25'), or a method and 'smoke' joined by "
                     "a comma ('cd25,smoke')")
  smoke = "smoke" in tokens
  method = methods[0] if methods else "pcd"
  config = common.contrastive_config()
  config.steps_per_dispatch = 16  # benchmarks/results/steps_per_dispatch.json: fastest with compilation
  config.model = "rbm"
  common.binarized_mnist(config)
  config.model_kwargs.n_hidden = 500
  if method == "pcd":
    config.contrastive.method = "pcd"
  else:
    config.contrastive.method = "cd"
    config.contrastive.k = int(METHOD.fullmatch(method).group(1))
  config.optimizer.learning_rate = 0.05
  config.optimizer.momentum_ramp_steps = 5 * 540
  config.optimizer.schedule = "cosine"
  config.optimizer.decay_factor = 10.0
  config.optimizer.weight_decay = 2e-4
  if smoke:
    config.model_kwargs.n_hidden = 16
    config.batch_size = 10
    config.num_epochs = 1
    config.optimizer.momentum_ramp_steps = 0
    config.log_likelihood.ais_runs = 4
  return common.locked(config)
