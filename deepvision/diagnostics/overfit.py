"""The overfit check: "test on a small subset of the data and check the error goes to 0" (Ranzato 2013).

A model that cannot memorise a few hundred examples has a bug, too little capacity or a learning
rate that is off. Augmentation and weight decay are switched off (they fight memorisation), and so is
dropout when the model has it.
"""

from __future__ import annotations

import dataclasses

import jax
import ml_collections

from deepvision import zoo
from deepvision.train import probe as probe_lib
from deepvision.train import supervised
from deepvision.schema import override_config
from deepvision.train.supervised import evaluate_split


@dataclasses.dataclass(frozen=True)
class OverfitResult:
  """Whether the training error on the subset reached 0, when, and the error after each epoch."""

  reached_zero: bool
  step: int | None
  epochs: int
  errors: tuple[float, ...]
  subset: int

  def format(self) -> str:
    trail = ", ".join(f"{e:.3f}" for e in self.errors) or "none (the loss became non-finite first)"
    if self.reached_zero:
      verdict = f"training error reached 0 after {self.epochs} epochs ({self.step} steps)"
    elif self.errors:
      verdict = f"training error still {self.errors[-1]:.3f} after {self.epochs} epochs"
    else:
      verdict = "training diverged before the first epoch ended"
    return f"overfit check on {self.subset} examples: {verdict}\n  error per epoch: {trail}"


def overfit_check(config: ml_collections.ConfigDict, subset: int = 256, max_epochs: int = 50,
                  learning_rate: float | None = None, model=None) -> OverfitResult:
  """Trains on `subset` examples until the (eval-mode) training error is 0 or `max_epochs` pass.

  Args:
    config: the experiment config.
    subset: number of training examples.
    max_epochs: give up after this many passes.
    learning_rate: constant rate (default: the config's).
    model: another Linen module to check instead of the config's.
  """
  overrides = {"augment.translate": 0, "augment.flip": False, "augment.noise_std": 0.0,
               "optimizer.weight_decay": 0.0, "optimizer.l1": 0.0}
  if model is None and "dropout_rate" in (zoo.fields(config.model) or ()):
    overrides["model_kwargs.dropout_rate"] = 0.0
  config = override_config(config, overrides)
  plan = probe_lib.make_plan(config, subset, model=model)
  eval_step = jax.jit(supervised.make_eval_step(plan.preprocess))
  errors: list[float] = []
  reached: list[int] = []

  def on_epoch(step, state):
    error = 1.0 - evaluate_split(eval_step, state, plan.train_source, 512, "train")["train/accuracy"]
    errors.append(error)
    if error == 0.0:
      reached.append(step)
      return True
    return False

  rate = config.optimizer.learning_rate if learning_rate is None else learning_rate
  probe_lib.probe(config, plan, rate, max_epochs * plan.steps_per_epoch, seed=config.seed,
                  on_epoch=on_epoch)
  return OverfitResult(bool(reached), reached[0] if reached else None, len(errors), tuple(errors),
                       len(plan.train_source))
