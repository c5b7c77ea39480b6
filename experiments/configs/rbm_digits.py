r"""A binary RBM on the embedded 8×8 digits (pixels in [0, 1] used as probabilities), trained with PCD.

  python -m experiments.main --config=experiments/configs/rbm_digits.py --workdir=runs/rbm_digits

64 visible, 256 hidden units; persistent contrastive divergence (Tieleman 2008), momentum ramping
0.5 → 0.9, L2 weight cost, 60 epochs. Held-out log-likelihood by AIS (Salakhutdinov & Murray 2008) at
the end. Cost on a 2-core CPU: about a minute; `:smoke` runs in seconds (64 × 12, exact log Z).
"""

from experiments.configs import common


def get_config(arg: str | None = None):
  smoke = common.check_arg(arg, "rbm_digits")
  config = common.contrastive_config()
  config.steps_per_dispatch = 16  # benchmarks/results/steps_per_dispatch.json: fastest with compilation
  config.model = "rbm"
  config.model_kwargs.n_visible = 64
  config.model_kwargs.n_hidden = 256
  config.dataset = "dv_digits"
  config.batch_size = 20
  config.num_epochs = 60
  config.contrastive.method = "pcd"
  config.optimizer.learning_rate = 0.05
  config.optimizer.momentum_ramp_steps = 5 * (1077 // 20)
  config.optimizer.schedule = "cosine"
  config.optimizer.decay_factor = 10.0
  config.optimizer.weight_decay = 2e-4
  if smoke:
    config.model_kwargs.n_hidden = 12
    config.num_epochs = 2
    config.optimizer.momentum_ramp_steps = 0
    config.linear_eval.l2 = (1e-3,)
  return common.locked(config)
