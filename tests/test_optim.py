"""Schedules, momentum ramps and weight decay against their closed forms."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from deepvision import optim


def _config(**fields):
  opt = dict(name="sgd", learning_rate=0.1, schedule="cosine", decay_factor=100.0, warmup_steps=0,
             boundaries=(0.5, 0.75), momentum=0.9, momentum_start=0.5, momentum_ramp_steps=0,
             nesterov=False, weight_decay=0.0, l1=0.0)
  opt.update(fields)
  return ml_collections.ConfigDict({"optimizer": opt})


@pytest.mark.parametrize("schedule", ["cosine", "exponential", "step"])
def test_schedules_decay_by_the_factor(schedule):
  fn = optim.learning_rate_schedule(_config(schedule=schedule, decay_factor=100.0), 1000)
  assert float(fn(0)) == pytest.approx(0.1)
  assert float(fn(1000)) == pytest.approx(0.001, rel=1e-4)
  values = np.array([float(fn(t)) for t in range(0, 1001, 50)])
  assert np.all(np.diff(values) <= 1e-12)  # never increases


def test_cosine_midpoint_and_exponential_midpoint_closed_form():
  cos = optim.learning_rate_schedule(_config(schedule="cosine"), 1000)
  assert float(cos(500)) == pytest.approx(0.001 + (0.1 - 0.001) / 2, rel=1e-5)
  exp = optim.learning_rate_schedule(_config(schedule="exponential"), 1000)
  assert float(exp(500)) == pytest.approx(0.1 * 100 ** -0.5, rel=1e-5)


def test_step_schedule_divides_at_boundaries():
  fn = optim.learning_rate_schedule(_config(schedule="step", boundaries=(0.5, 0.75)), 100)
  assert float(fn(49)) == pytest.approx(0.1)
  assert float(fn(51)) == pytest.approx(0.01, rel=1e-5)
  assert float(fn(76)) == pytest.approx(0.001, rel=1e-5)


def test_warmup_is_linear_then_joins_the_schedule():
  fn = optim.learning_rate_schedule(_config(schedule="constant", warmup_steps=10), 100)
  assert float(fn(0)) == 0.0
  assert float(fn(5)) == pytest.approx(0.05)
  assert float(fn(10)) == pytest.approx(0.1)
  assert float(fn(90)) == pytest.approx(0.1)


def test_momentum_ramp():
  fn = optim.momentum_schedule(_config(momentum=0.9, momentum_start=0.5, momentum_ramp_steps=100))
  assert float(fn(0)) == pytest.approx(0.5)
  assert float(fn(50)) == pytest.approx(0.7)
  assert float(fn(500)) == pytest.approx(0.9)


def test_sgd_momentum_matches_hand_computed_updates():
  """v ← μv + g, θ ← θ − η v with a ramped μ (optax's heavy-ball form), checked for 3 steps."""
  config = _config(schedule="constant", momentum=0.9, momentum_start=0.5, momentum_ramp_steps=2)
  tx = optim.make_optimizer(config, 10)
  params = {"w": jnp.array([1.0, -2.0])}
  state = tx.init(params)
  grad = {"w": jnp.array([0.5, 1.0])}
  theta, v = np.array([1.0, -2.0]), np.zeros(2)
  for t in range(3):
    mu = [0.5, 0.7, 0.9][t]
    updates, state = tx.update(grad, state, params)
    params = optax.apply_updates(params, updates)
    v = mu * v + np.array([0.5, 1.0])
    theta = theta - 0.1 * v
    np.testing.assert_allclose(params["w"], theta, rtol=1e-6)


def test_l2_and_l1_decay_touch_weights_not_biases():
  config = _config(schedule="constant", momentum=0.0, weight_decay=0.1, l1=0.01)
  tx = optim.make_optimizer(config, 10)
  params = {"kernel": jnp.array([[2.0, -3.0]]), "bias": jnp.array([4.0])}
  zero = jax.tree.map(jnp.zeros_like, params)
  updates, _ = tx.update(zero, tx.init(params), params)
  np.testing.assert_allclose(updates["kernel"], -0.1 * (0.1 * np.array([[2.0, -3.0]]) + 0.01 * np.array([[1, -1]])),
                             rtol=1e-6)
  np.testing.assert_allclose(updates["bias"], [0.0])


@pytest.mark.parametrize("field,value,match", [
    ("learning_rate", -1.0, "learning_rate"),
    ("schedule", "cosinus", "cosine"),
    ("decay_factor", 0.5, "decay_factor"),
    ("momentum", 1.5, "momentum"),
    ("weight_decay", -1e-4, "weight_decay"),
    ("name", "adamw", "sgd"),
    ("boundaries", (0.8, 0.2), "boundaries"),
])
def test_bad_values_name_the_field(field, value, match):
  config = _config(**{field: value}, **({"schedule": "step"} if field == "boundaries" else {}))
  with pytest.raises(Exception, match=match):
    optim.make_optimizer(config, 100)
