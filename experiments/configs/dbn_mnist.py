r"""A deep belief net on MNIST: two RBMs (784-500-500) stacked greedily, then fine-tuned as a classifier.

  python -m experiments.main --config=experiments/configs/dbn_mnist.py --workdir=runs/dbn_mnist \
      --config.data_dir=~/tensorflow_datasets

Hinton, Osindero & Teh 2006 / Hinton & Salakhutdinov 2006 on MNIST from a TFDS data dir (prepare it with
`tfds build mnist --data_dir=DIR` where there is a network, or from arrays with
`python -m experiments.prepare_data`): pixels binarised at 0.5 as in `rbm_mnist`; RBM 1 (784 × 500) and
RBM 2 (500 × 500, on RBM 1's posterior means), each trained with CD-1 for 20 epochs of 100; then a
784-500-500-10 sigmoid MLP initialised from the stack and fine-tuned with SGD (the `dbn_digits` settings:
50 epochs of 32, rate 0.1, Nesterov, cosine decay), beside the same MLP trained from random weights
(`test/accuracy` vs `test/accuracy_scratch` in metrics.jsonl). Validation is the last 10% of the training
split, as in `rbm_mnist`. Held-out log-likelihood of each layer by AIS at the end. The momentum ramps
over 5 epochs of 540 updates (54,000 digits): on a smaller training set pass
`--config.optimizer.momentum_ramp_steps` = 5 × (its size × 0.9 // 100).

Hinton et al. 2006 report 1.25% test error for their 784-500-500-2000 DBN on the full MNIST (fine-tuned
generatively with the up-down algorithm; here the fine-tuning is discriminative, with back-propagation).
Cost on a 2-core CPU: a few minutes per 6,000 training digits (both RBMs with their AIS, then the two
fine-tunings); `:smoke` runs in seconds on a mock data set (784 × 12 × 8, exact log Z).

Measured on an 8,004-digit subset of the MNIST training set (5,404 train, 600 validation, 2,000 test;
`--config.optimizer.momentum_ramp_steps=270`; results/mnist_subset/dbn_mnist.json), seeds 0, 1, 2, about
5 minutes each: test error 3.60 / 3.45 / 3.30% fine-tuned from the DBN, 6.75 / 6.95 / 6.75% from random
weights; validation accuracy 94.8 / 95.0 / 95.8% vs 92.3 / 92.0 / 92.3%.
"""

from deepvision import schema
from experiments import blocks
from experiments.configs import common


def get_config(arg: str | None = None):
  smoke = common.check_arg(arg, "dbn_mnist")
  config = common.contrastive_config()
  config.trainer = "dbn"
  config.model = "rbm"
  common.binarized_mnist(config)
  config.contrastive.method = "cd"  # CD-1, as in Hinton et al. 2006
  config.optimizer.learning_rate = 0.05
  config.optimizer.momentum_ramp_steps = 5 * 540
  config.optimizer.schedule = "cosine"
  config.optimizer.decay_factor = 10.0
  config.optimizer.weight_decay = 2e-4
  config.log_likelihood.method = "ais"

  config.dbn = schema.defaults(blocks.Dbn, hidden=(500, 500))  # samples: 100 of 1,000 Gibbs steps
  config.finetune = schema.defaults(blocks.Finetune)  # 50 epochs of 32, rate 0.1, from the stack and random

  if smoke:
    config.dbn.hidden = (12, 8)
    config.batch_size = 10
    config.num_epochs = 1
    config.optimizer.momentum_ramp_steps = 0
    config.log_likelihood.method = "auto"
    config.dbn.num_samples = 16
    config.dbn.sample_gibbs_steps = 20
    config.finetune.num_epochs = 2
    config.finetune.batch_size = 16
  return common.locked(config)
