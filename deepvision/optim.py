"""Optimisers of the talk: SGD with momentum, decaying learning rates, momentum ramps, L2 / L1 decay.

The talk's recipe (Ranzato 2013, "Tricks of the trade", and Bottou 2012 / Sutskever et al. 2013):
  * SGD with momentum, v ← μ v − η ∇L, θ ← θ + v (Nesterov optional);
  * the learning rate decays by a large factor (≈100× or more) by the end of training;
  * momentum may ramp up from a small value (0.5) to its final value (0.9–0.99);
  * weight decay: L2, ∂(λ/2‖W‖²) = λW, and L1, ∂(λ‖W‖₁) = λ sign(W), on weights (not biases).

Everything is an optax `GradientTransformation`; the momentum schedule goes through
`optax.inject_hyperparams(optax.sgd)` because `optax.sgd`'s momentum is a number.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax

from deepvision.registry import Registry

Schedule = Callable[[jax.Array | int], jax.Array]

SCHEDULES: Registry[Callable[..., Schedule]] = Registry("learning-rate schedule")


def _decay_factor(decay_factor: float) -> float:
  if not decay_factor >= 1.0:
    raise ValueError(f"decay_factor must be >= 1 (final rate = base / decay_factor), got {decay_factor!r}")
  return float(decay_factor)


@SCHEDULES.register("constant")
def constant(base: float, steps: int, decay_factor: float = 100.0, **_) -> Schedule:
  """η(t) = η₀ (decay_factor is ignored)."""
  del steps, decay_factor
  return optax.constant_schedule(base)


@SCHEDULES.register("cosine")
def cosine(base: float, steps: int, decay_factor: float = 100.0, **_) -> Schedule:
  """η(t) = η_end + (η₀ − η_end)(1 + cos(π t / T)) / 2 with η_end = η₀ / decay_factor."""
  return optax.cosine_decay_schedule(base, max(steps, 1), alpha=1.0 / _decay_factor(decay_factor))


@SCHEDULES.register("exponential")
def exponential(base: float, steps: int, decay_factor: float = 100.0, **_) -> Schedule:
  """η(t) = η₀ · decay_factor^(−t / T): smooth exponential decay reaching η₀ / decay_factor at T."""
  rate = 1.0 / _decay_factor(decay_factor)
  return optax.exponential_decay(base, transition_steps=max(steps, 1), decay_rate=rate, end_value=base * rate)


@SCHEDULES.register("step")
def step(base: float, steps: int, decay_factor: float = 100.0,
         boundaries: Sequence[float] = (0.5, 0.75), **_) -> Schedule:
  """Piecewise constant: divided by decay_factor^(1/k) at each of the k boundary fractions of the run."""
  if not boundaries or any(not 0.0 < b < 1.0 for b in boundaries) or list(boundaries) != sorted(boundaries):
    raise ValueError(f"step boundaries must be increasing fractions in (0, 1), got {tuple(boundaries)!r}")
  per_boundary = _decay_factor(decay_factor) ** (-1.0 / len(boundaries))
  return optax.piecewise_constant_schedule(
      base, {max(1, int(round(b * steps))): per_boundary for b in boundaries})


def learning_rate_schedule(config: ml_collections.ConfigDict, total_steps: int) -> Schedule:
  """The learning-rate schedule described by `config` (fields of `config.optimizer`).

  Fields: `learning_rate`, `schedule` (a name in `SCHEDULES`), `decay_factor` (≈100), `warmup_steps`
  (linear warm-up from 0), `boundaries` (fractions, `step` only).
  """
  opt = config.optimizer
  make = SCHEDULES.get(opt.schedule)
  warmup = int(opt.get("warmup_steps", 0))
  if warmup < 0 or warmup >= max(total_steps, 1):
    raise ValueError(f"optimizer.warmup_steps must be in [0, {total_steps}), got {warmup}")
  main = make(opt.learning_rate, total_steps - warmup, decay_factor=opt.get("decay_factor", 100.0),
              boundaries=tuple(opt.get("boundaries", (0.5, 0.75))))
  if warmup == 0:
    return main
  ramp = optax.linear_schedule(0.0, opt.learning_rate, warmup)
  return optax.join_schedules([ramp, main], [warmup])


def momentum_schedule(config: ml_collections.ConfigDict) -> Schedule:
  """μ(t): constant `momentum`, or a linear ramp from `momentum_start` over `momentum_ramp_steps`."""
  opt = config.optimizer
  final = float(opt.momentum)
  ramp_steps = int(opt.get("momentum_ramp_steps", 0))
  if not 0.0 <= final < 1.0:
    raise ValueError(f"optimizer.momentum must be in [0, 1), got {final!r}")
  if ramp_steps <= 0:
    return optax.constant_schedule(final)
  return optax.linear_schedule(float(opt.get("momentum_start", 0.5)), final, ramp_steps)


def weights_mask(params: Any) -> Any:
  """True for weight matrices / kernels (ndim ≥ 2), False for biases and gains: decay only weights."""
  return jax.tree.map(lambda p: p.ndim >= 2, params)


def add_l1_decay(strength: float, mask: Any = weights_mask) -> optax.GradientTransformation:
  """Adds λ·sign(θ) to the gradient: the subgradient of λ‖θ‖₁ (L1 weight decay / sparsity)."""

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError("add_l1_decay needs the parameters: call update(grads, state, params)")
    masks = mask(params) if callable(mask) else mask
    updates = jax.tree.map(lambda g, p, m: g + strength * jnp.sign(p) if m else g, updates, params, masks)
    return updates, state

  return optax.GradientTransformation(lambda _: optax.EmptyState(), update_fn)


def make_optimizer(config: ml_collections.ConfigDict, total_steps: int) -> optax.GradientTransformation:
  """SGD with (scheduled) momentum, a decaying learning rate and L2 / L1 weight decay.

  Args:
    config: experiment config with an `optimizer` block: `name` ('sgd'), `learning_rate`, `schedule`,
      `decay_factor`, `warmup_steps`, `momentum`, `momentum_start`, `momentum_ramp_steps`, `nesterov`,
      `weight_decay` (L2, λ in λW), `l1` (λ in λ sign W).
    total_steps: number of parameter updates in the run (the horizon of the schedule).

  Returns:
    An optax transformation whose state records the current `learning_rate` and `momentum`
    (`optax.inject_hyperparams`).
  """
  opt = config.optimizer
  if opt.name != "sgd":
    raise ValueError(f"unknown optimizer.name {opt.name!r}; valid choices: sgd")
  if not opt.learning_rate > 0:
    raise ValueError(f"optimizer.learning_rate must be > 0, got {opt.learning_rate!r}")
  for field in ("weight_decay", "l1"):
    if opt.get(field, 0.0) < 0:
      raise ValueError(f"optimizer.{field} must be >= 0, got {opt.get(field)!r}")
  parts = []
  if opt.get("l1", 0.0) > 0:
    parts.append(add_l1_decay(opt.l1))
  if opt.get("weight_decay", 0.0) > 0:
    parts.append(optax.add_decayed_weights(opt.weight_decay, mask=weights_mask))
  sgd = optax.inject_hyperparams(optax.sgd, static_args=("nesterov",))
  momentum = momentum_schedule(config)
  if float(opt.momentum) == 0.0 and int(opt.get("momentum_ramp_steps", 0)) <= 0:
    momentum = None  # Plain SGD: no trace to keep (a zero-decay trace is the same update, ~20% slower).
  parts.append(sgd(learning_rate=learning_rate_schedule(config, total_steps),
                   momentum=momentum, nesterov=bool(opt.get("nesterov", False))))
  return optax.chain(*parts)
