"""Short training runs on a subset: the measuring instrument of the learning-rate search, the overfit
check and the doctor.

A probe trains the configured model with the configured optimiser (at a constant learning rate) on the
first examples of a fixed permutation of the training split, and records the loss of every step.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import jax
import ml_collections
import numpy as np

from deepvision import optim
from deepvision.data import pipeline
from deepvision.schema import override_config
from deepvision.train import supervised
from deepvision.train.state import TrainState, create_train_state
from deepvision.train.supervised import Plan, plan_supervised


@dataclasses.dataclass(frozen=True)
class ProbeRun:
  """The record of a probe.

  Attributes:
    learning_rate: the constant rate used.
    losses: training loss of every step that ran (float64).
    diverged: the loss became non-finite, or did not fall by `min_decrease` (mean of the last
      tenth of the steps against the loss of the initial parameters, measured by the first step).
    steps_per_second: measured speed (compilation excluded).
    state: the final train state.
  """

  learning_rate: float
  losses: np.ndarray
  diverged: bool
  steps_per_second: float
  state: TrainState

  @property
  def start_loss(self) -> float:
    return float(self.losses[0])

  @property
  def end_loss(self) -> float:
    return float(np.mean(self.losses[-max(1, len(self.losses) // 10):]))


def make_plan(config: ml_collections.ConfigDict, subset: int, model=None, **overrides) -> Plan:
  """The config's plan restricted to `subset` training examples (0: all), optionally another model."""
  config = override_config(config, {"train_subset": subset, **overrides})
  plan = plan_supervised(config)
  return plan if model is None else dataclasses.replace(plan, model=model)


class Prober:
  """Probes of one plan at any constant learning rate, all through one compiled step.

  The rate lives in the optimiser's state (`optim.make_optimizer(..., rate_in_state=True)`), so the
  halving search of `lr_search` and the doctor's probes compile the train step once, not once per rate;
  the updates are those of a constant-rate optimiser built with that rate.

  Args:
    config: the experiment config (its optimiser settings other than the schedule are used).
    plan: from `make_plan`.
  """

  def __init__(self, config: ml_collections.ConfigDict, plan: Plan):
    self.config = override_config(config, {"optimizer.schedule": "constant", "optimizer.warmup_steps": 0})
    self.plan = plan
    self.tx = optim.make_optimizer(self.config, 1, rate_in_state=True)
    self._step = jax.jit(supervised.make_train_step(plan.preprocess, curvature=optim.curvature_of(self.config)),
                         donate_argnums=0)

  def run(self, learning_rate: float, steps: int, seed: int = 0, min_decrease: float = 0.1,
          on_epoch: Callable[[int, TrainState], bool] | None = None) -> ProbeRun:
    """Trains `plan.model` for `steps` steps at the constant `learning_rate`.

    Args:
      learning_rate: constant rate of the probe.
      steps: number of updates.
      seed: seed of the initialisation and the data order.
      min_decrease: relative fall of the loss required not to count as diverged.
      on_epoch: called as `on_epoch(step, state)` after each epoch; returning True stops the probe.
    """
    plan = self.plan
    state = create_train_state(plan.model, self.tx, jax.random.key(seed), plan.info.image_shape)
    state = state.replace(opt_state=optim.with_learning_rate(state.opt_state, float(learning_rate)))
    batches = pipeline.train_batches(plan.train_source, self.config.batch_size, seed=seed)
    losses, start = [], None
    for step in range(1, steps + 1):
      state, metrics = self._step(state, next(batches))
      losses.append(metrics["train/loss"])
      if step == 1:
        jax.block_until_ready(state)
        start = time.perf_counter()
      if step % plan.steps_per_epoch == 0 or step == steps:
        if not np.isfinite(float(metrics["train/loss"])):
          break
        if on_epoch is not None and on_epoch(step, state):
          break
    jax.block_until_ready(state)
    rate = (len(losses) - 1) / max(time.perf_counter() - start, 1e-9)
    losses = np.asarray(jax.device_get(losses), np.float64)
    run = ProbeRun(float(learning_rate), losses, False, rate, state)
    diverged = (not np.all(np.isfinite(losses))) or run.end_loss > (1.0 - min_decrease) * run.start_loss
    return dataclasses.replace(run, diverged=bool(diverged))


def probe(config: ml_collections.ConfigDict, plan: Plan, learning_rate: float, steps: int,
          seed: int = 0, min_decrease: float = 0.1,
          on_epoch: Callable[[int, TrainState], bool] | None = None) -> ProbeRun:
  """One probe (`Prober.run`): `plan.model` trained for `steps` steps at a constant `learning_rate`."""
  return Prober(config, plan).run(learning_rate, steps, seed, min_decrease, on_epoch)
