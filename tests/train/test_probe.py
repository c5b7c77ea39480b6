"""The probes of a learning-rate search: one compiled step for every rate, the updates of a constant rate."""

from __future__ import annotations

import jax
import numpy as np

from deepvision import optim
from deepvision.data import pipeline
from deepvision.schema import override_config
from deepvision.train import probe, supervised
from deepvision.train.state import create_train_state
from experiments.configs import lcn_convnet_digits


def _constant_rate_losses(config, plan, rate, steps):
  """The loss of every step of the optimiser built with `rate` as a constant of the program."""
  config = override_config(config, {"optimizer.learning_rate": rate, "optimizer.schedule": "constant",
                                    "optimizer.warmup_steps": 0})
  state = create_train_state(plan.model, optim.make_optimizer(config, steps), jax.random.key(0),
                             plan.info.image_shape)
  step = jax.jit(supervised.make_train_step(plan.preprocess, curvature=optim.curvature_of(config)))
  batches = pipeline.train_batches(plan.train_source, config.batch_size, seed=0)
  losses = []
  for _ in range(steps):
    state, metrics = step(state, next(batches))
    losses.append(float(metrics["train/loss"]))
  return np.asarray(losses), state


def test_every_rate_runs_through_one_compiled_step_with_the_constant_rate_updates():
  config = lcn_convnet_digits.get_config("smoke")
  plan = probe.make_plan(config, 64)
  prober = probe.Prober(config, plan)
  for rate in (0.2, 0.05):
    run = prober.run(rate, 12, seed=0)
    expected, state = _constant_rate_losses(config, plan, rate, 12)
    np.testing.assert_array_equal(run.losses, expected)  # bitwise
    for got, want in zip(jax.tree.leaves(run.state.params), jax.tree.leaves(state.params)):
      np.testing.assert_array_equal(got, want)
  assert prober._step._cache_size() == 1  # pylint: disable=protected-access


def test_an_sdlm_config_probes_with_its_curvature_estimate():
  """The rate search of an SDLM run (`optimizer.name = 'sdlm'`) feeds the step's Gauss–Newton estimate to
  the optimiser, and its probes make the constant-rate updates bit for bit."""
  config = override_config(lcn_convnet_digits.get_config("smoke"), {
      "optimizer.name": "sdlm", "optimizer.momentum": 0.0, "optimizer.nesterov": False})
  plan = probe.make_plan(config, 64)
  run = probe.Prober(config, plan).run(0.01, 6, seed=0)
  expected, _ = _constant_rate_losses(config, plan, 0.01, 6)
  np.testing.assert_array_equal(run.losses, expected)
  assert np.all(np.isfinite(run.losses))
