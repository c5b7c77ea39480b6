r"""Multi-task learning on the embedded digits: few labels plus a reconstruction task on every image.

The default experiment's LCN convnet with a decoder from its first stage (after LCN) back to the 8×8 digit
(`lcn_convnet_digits_recon`), trained on N labelled digits (a class-balanced selection drawn with the seed)
and all 1,077 training digits unlabelled: loss = cross-entropy + λ · mean squared reconstruction error
(`deepvision.train.multitask`). Validation is the `validation` split, the test split is reported at the end.

  python -m experiments.main --config=experiments/configs/multitask_digits.py:50 --workdir=runs/mt50
  python -m experiments.main --config=multitask_digits:100 --workdir=runs/mt100
  python -m experiments.main --config=multitask_digits:50 --workdir=runs/mt50_plain \
      --config.reconstruction_weight=0      # the ablation's "without": the classifier on its 50 labels

The argument is the label count (`50`, `100` or any N >= 10; default 100), `smoke`, or both joined by a comma
(`50,smoke`). `experiments/multitask_ablation.py` runs 5 seeds × {50, 100} × {with, without} and writes
results/multitask_digits.json. λ = 1 and the stage (stage1/lcn) were chosen on the validation split (the
ablation script's docstring has the figures). Measured (test accuracy, mean ± std over seeds 0-4): 50 labels
89.9% ± 4.1 with the reconstruction, 90.0% ± 4.3 without; 100 labels 93.8% ± 1.7 with, 94.4% ± 1.3 without:
the reconstruction loss does not beat seed noise here (paired t = −0.19 and −1.10, 4 degrees of freedom).

Cost on a 2-core CPU: about 35 s per run with the reconstruction (990 steps of 10 labelled + 32
unlabelled digits), about 20 s without, measured with other jobs on the cores; `:smoke` runs in seconds.
"""

from deepvision import schema
from deepvision.train import multitask
from experiments.configs import common


def get_config(arg: str | None = None):
  """`arg`: '' (100 labels), a label count N >= 10, 'smoke', or a count and 'smoke' joined by a comma."""
  tokens = tuple(t for t in (arg or "").split(",") if t)
  counts = [t for t in tokens if t.isdigit()]
  if (any(t != "smoke" and not t.isdigit() for t in tokens) or len(counts) > 1
      or len(set(tokens)) < len(tokens) or any(int(c) < 10 for c in counts)):
    raise ValueError(f"unknown argument {arg!r} for config multitask_digits; valid: '', 'smoke', a label count "
                     ">= 10 (e.g. '50', '100'), or a count and 'smoke' joined by a comma ('50,smoke')")
  smoke = "smoke" in tokens
  config = schema.defaults(multitask.MultitaskConfig)
  config.model = "lcn_convnet_digits_recon"
  config.model_kwargs.stage = "stage1/lcn"
  config.dataset = "dv_digits"
  config.train_split, config.eval_split, config.test_split = "train", "validation", "test"
  config.num_labelled = int(counts[0]) if counts else 100
  config.batch_size = 10
  config.unlabelled_batch_size = 32
  config.reconstruction_weight = 1.0
  config.num_epochs = 30
  config.optimizer.learning_rate = 0.01
  config.optimizer.schedule = "cosine"
  config.optimizer.nesterov = True
  config.optimizer.weight_decay = 2e-3
  config.augment.translate = 0
  config.augment.standardize = False
  if smoke:
    config.model = "lcn_convnet_digits_recon_tiny"
    config.num_epochs = 1
    config.unlabelled_batch_size = 64
  return common.locked(config)
