"""Optimisers of the talk: SGD with momentum, decaying learning rates, momentum ramps, L2 / L1 decay.

The talk's recipe (Ranzato 2013, "Tricks of the trade", and Bottou 2012 / Sutskever et al. 2013):
  * SGD with momentum, v ← μ v − η ∇L, θ ← θ + v (Nesterov optional);
  * the learning rate decays by a large factor (≈100× or more) by the end of training;
  * momentum may ramp up from a small value (0.5) to its final value (0.9–0.99);
  * weight decay: L2, ∂(λ/2‖W‖²) = λW, and L1, ∂(λ‖W‖₁) = λ sign(W), on weights (not biases); the L1
    term may start only after a number of epochs (`l1_start_epoch`, the gated-MRF recipe);
  * per-parameter learning rates: ε_p = m_p·ε for named parameters (`lr_multipliers`; the gated MRFs of
    Ranzato & Hinton 2010 train C at 2ε, P, b_c and b_v at 0.02ε, W at 0.2ε and b_m at 0.1ε);
  * LeCun et al.'s (1998) stochastic diagonal Levenberg–Marquardt rates η / (μ + h_kk) in place of
    one rate for all (`optimizer.name = 'sdlm'`, `deepvision.sdlm`);
  * annealing variants of the gated-MRF code (Ranzato et al., PAMI 2013): ε/max(1, epoch/T),
    ε·min(1, T/(t+1)) and ε·epoch^(−p).

Everything is an optax `GradientTransformation`; the momentum schedule goes through
`optax.inject_hyperparams(optax.sgd)` because `optax.sgd`'s momentum is a number.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import optax

from deepvision import sdlm
from deepvision.registry import Registry

Schedule = Callable[[jax.Array | int], jax.Array]
OPTIMIZERS = ("sgd", "sdlm")  # 'sdlm': LeCun et al. 1998's per-parameter rates (`deepvision.sdlm`)

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


def _steps_per_epoch(what: str, steps_per_epoch: int | None) -> int:
  if steps_per_epoch is None or isinstance(steps_per_epoch, bool) or int(steps_per_epoch) < 1:
    raise ValueError(f"{what} counts epochs and needs the trainer's steps_per_epoch (an int >= 1), got "
                     f"{steps_per_epoch!r}; this trainer gives none: use another schedule or l1_start_epoch=0")
  return int(steps_per_epoch)


def _positive(name: str, value: Any) -> float:
  if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
    raise ValueError(f"optimizer.{name} must be a number > 0, got {value!r}")
  return float(value)


@SCHEDULES.register("inverse_epoch")
def inverse_epoch(base: float, steps: int, anneal_epochs: float = 20.0, steps_per_epoch: int | None = None,
                  **_) -> Schedule:
  """η(t) = η₀ / max(1, e/T), e = ⌊t/S⌋ the (0-based) epoch of update t, S steps per epoch, T =
  `anneal_epochs` (20 in the gated-MRF code): constant for T epochs, then ∝ 1/epoch."""
  del steps
  per_epoch = _steps_per_epoch("the 'inverse_epoch' schedule", steps_per_epoch)
  horizon = _positive("anneal_epochs", anneal_epochs)
  return lambda t: base / jnp.maximum(1.0, (jnp.asarray(t) // per_epoch) / horizon)


@SCHEDULES.register("inverse_step")
def inverse_step(base: float, steps: int, anneal_steps: float = 2000.0, **_) -> Schedule:
  """η(t) = η₀ · min(1, T/(t+1)), T = `anneal_steps` (2000): constant for T updates, then ∝ 1/t."""
  del steps
  horizon = _positive("anneal_steps", anneal_steps)
  return lambda t: base * jnp.minimum(1.0, horizon / (jnp.asarray(t) + 1.0))


@SCHEDULES.register("epoch_power")
def epoch_power(base: float, steps: int, anneal_power: float = 0.25, steps_per_epoch: int | None = None,
                **_) -> Schedule:
  """η(t) = η₀ · (e + 1)^(−p), e = ⌊t/S⌋ the 0-based epoch (so the first epoch runs at η₀), p =
  `anneal_power` (0.25)."""
  del steps
  per_epoch = _steps_per_epoch("the 'epoch_power' schedule", steps_per_epoch)
  power = _positive("anneal_power", anneal_power)
  return lambda t: base * (jnp.asarray(t) // per_epoch + 1.0) ** (-power)


def learning_rate_schedule(config: ml_collections.ConfigDict, total_steps: int,
                           steps_per_epoch: int | None = None) -> Schedule:
  """The learning-rate schedule described by `config` (fields of `config.optimizer`).

  Fields: `learning_rate`, `schedule` (a name in `SCHEDULES`), `decay_factor` (≈100), `warmup_steps`
  (linear warm-up from 0), `boundaries` (fractions, `step` only), `anneal_epochs` (`inverse_epoch`),
  `anneal_steps` (`inverse_step`), `anneal_power` (`epoch_power`). The epoch-based schedules need
  `steps_per_epoch`.
  """
  opt = config.optimizer
  make = SCHEDULES.get(opt.schedule)
  warmup = int(opt.get("warmup_steps", 0))
  if warmup < 0 or warmup >= max(total_steps, 1):
    raise ValueError(f"optimizer.warmup_steps must be in [0, {total_steps}), got {warmup}")
  main = make(opt.learning_rate, total_steps - warmup, decay_factor=opt.get("decay_factor", 100.0),
              boundaries=tuple(opt.get("boundaries", (0.5, 0.75))),
              anneal_epochs=opt.get("anneal_epochs", 20.0), anneal_steps=opt.get("anneal_steps", 2000.0),
              anneal_power=opt.get("anneal_power", 0.25), steps_per_epoch=steps_per_epoch)
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


def with_learning_rate(opt_state: Any, learning_rate: float) -> Any:
  """`opt_state` of a `make_optimizer(..., rate_in_state=True)` optimiser, its rate set to `learning_rate`."""
  def set_rate(node: Any) -> Any:
    if isinstance(node, optax.InjectStatefulHyperparamsState) and "learning_rate" in node.hyperparams:
      rate = node.hyperparams["learning_rate"]
      return node._replace(hyperparams={**node.hyperparams,
                                        "learning_rate": jnp.asarray(learning_rate, rate.dtype)})
    return node
  return jax.tree.map(set_rate, opt_state,
                      is_leaf=lambda node: isinstance(node, optax.InjectStatefulHyperparamsState))


def weights_mask(params: Any) -> Any:
  """True for weight matrices / kernels (ndim ≥ 2), False for biases and gains: decay only weights."""
  return jax.tree.map(lambda p: p.ndim >= 2, params)


class DelayedL1State(NamedTuple):
  """count: the number of updates done so far (int32 scalar)."""

  count: jax.Array


def add_l1_decay(strength: float, mask: Any = weights_mask,
                 start_step: int = 0) -> optax.GradientTransformation:
  """Adds λ·sign(θ) to the gradient: the subgradient of λ‖θ‖₁ (L1 weight decay / sparsity).

  With `start_step` = s > 0 the term is added from update s on (updates 0 … s − 1 get none): the
  delayed weight cost of the gated-MRF recipe (Ranzato & Hinton 2010: L1 after 10 epochs). The
  update counter is the transformation's state.
  """
  if isinstance(start_step, bool) or not isinstance(start_step, int) or start_step < 0:
    raise ValueError(f"the L1 start step must be an int >= 0, got {start_step!r}")

  def init_fn(_):
    return DelayedL1State(jnp.zeros((), jnp.int32)) if start_step else optax.EmptyState()

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError("add_l1_decay needs the parameters: call update(grads, state, params)")
    masks = mask(params) if callable(mask) else mask
    weight = strength
    if start_step:
      weight = jnp.where(state.count >= start_step, strength, 0.0)
      state = DelayedL1State(state.count + 1)
    updates = jax.tree.map(lambda g, p, m: g + weight * jnp.sign(p) if m else g, updates, params, masks)
    return updates, state

  return optax.GradientTransformation(init_fn, update_fn)


def _path_name(path: tuple) -> str:
  """'Conv_0/kernel' for the key path of a nested parameter dict."""
  return "/".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path)


def check_lr_multipliers(multipliers: Mapping[str, float] | None) -> dict[str, float]:
  """The multipliers as a dict of floats; ValueError unless each is a finite number >= 0."""
  out = {}
  for name, value in dict(multipliers or {}).items():
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
        or value < 0):
      raise ValueError(f"optimizer.lr_multipliers[{name!r}] must be a finite number >= 0, got {value!r}")
    out[str(name)] = float(value)
  return out


def parameter_multipliers(params: Any, multipliers: Mapping[str, float]) -> Any:
  """The multiplier of every leaf of `params` (a pytree of floats, 1 where none is named).

  A name matches a parameter whose path ('C', 'Conv_0/kernel') equals it or starts with it followed
  by '/' (so 'Conv_0' covers the layer's kernel and bias); the longest matching name wins.

  Raises:
    ValueError: a name that matches no parameter (the valid names are listed).
  """
  multipliers = check_lr_multipliers(multipliers)
  paths = [_path_name(path) for path, _ in jax.tree_util.tree_leaves_with_path(params)]

  def matches(name: str, path: str) -> bool:
    return path == name or path.startswith(name + "/")

  unknown = [name for name in multipliers if not any(matches(name, path) for path in paths)]
  if unknown:
    raise ValueError(f"optimizer.lr_multipliers names {unknown}, which are not parameters; valid: "
                     f"{', '.join(paths)} (or a prefix ending before a '/')")

  def multiplier(path, _):
    path = _path_name(path)
    named = [name for name in multipliers if matches(name, path)]
    return multipliers[max(named, key=len)] if named else 1.0

  return jax.tree_util.tree_map_with_path(multiplier, params)


def scale_by_multipliers(multipliers: Mapping[str, float]) -> optax.GradientTransformation:
  """Multiplies the update of each named parameter by its multiplier m_p (`parameter_multipliers`).

  Placed after SGD (with momentum) it turns the base rate ε into a per-parameter rate m_p·ε: the
  momentum trace is linear in the gradient, so scaling the update equals scaling that parameter's rate.
  The names are checked against the parameters at `init` (ValueError for unknown ones).
  """
  multipliers = check_lr_multipliers(multipliers)

  def init_fn(params):
    parameter_multipliers(params, multipliers)
    return optax.EmptyState()

  def update_fn(updates, state, params=None):
    del params
    scale = parameter_multipliers(updates, multipliers)
    return jax.tree.map(lambda u, m: u if m == 1.0 else u * jnp.asarray(m, u.dtype), updates, scale), state

  return optax.GradientTransformation(init_fn, update_fn)


def curvature_of(config: ml_collections.ConfigDict) -> str | None:
  """The Gauss–Newton estimate (`sdlm.CURVATURES`) `make_optimizer(config)`'s update takes as `curvature=`:
  SDLM's `optimizer.sdlm_curvature`; None for SGD."""
  if config.optimizer.get("name", "sgd") != "sdlm":
    return None
  return config.optimizer.get("sdlm_curvature", sdlm.CURVATURES[0])


def make_optimizer(config: ml_collections.ConfigDict, total_steps: int,
                   steps_per_epoch: int | None = None, *,
                   rate_in_state: bool = False) -> optax.GradientTransformation:
  """SGD with (scheduled) momentum, a decaying learning rate, L2 / L1 weight decay, per-parameter rates.

  Args:
    config: experiment config with an `optimizer` block: `name` ('sgd'), `learning_rate`, `schedule`,
      `decay_factor`, `warmup_steps`, `momentum`, `momentum_start`, `momentum_ramp_steps`, `nesterov`,
      `weight_decay` (L2, λ in λW), `l1` (λ in λ sign W), optionally `l1_start_epoch` (L1 from that
      epoch on; needs `steps_per_epoch`) and `lr_multipliers` (parameter name → m_p, rate m_p·ε).
    total_steps: number of parameter updates in the run (the horizon of the schedule).
    steps_per_epoch: updates per epoch, for the epoch-based schedules and `l1_start_epoch`.
    rate_in_state: a constant rate (schedule 'constant', no warm-up) held as a value of the optimiser's
      state instead of a constant of the program: `with_learning_rate` changes it without recompiling
      the step (the probes of a learning-rate search share one compiled step).

  Returns:
    An optax transformation whose state records the current `learning_rate` and `momentum`
    (`optax.inject_hyperparams`).
  """
  opt = config.optimizer
  if opt.name not in OPTIMIZERS:
    raise ValueError(f"unknown optimizer.name {opt.name!r}; valid choices: {', '.join(OPTIMIZERS)}")
  if not opt.learning_rate > 0:
    raise ValueError(f"optimizer.learning_rate must be > 0, got {opt.learning_rate!r}")
  for field in ("weight_decay", "l1"):
    if opt.get(field, 0.0) < 0:
      raise ValueError(f"optimizer.{field} must be >= 0, got {opt.get(field)!r}")
  multipliers = check_lr_multipliers(opt.get("lr_multipliers", None))
  l1_start_epoch = opt.get("l1_start_epoch", 0)
  if isinstance(l1_start_epoch, bool) or not isinstance(l1_start_epoch, int) or l1_start_epoch < 0:
    raise ValueError(f"optimizer.l1_start_epoch must be an int >= 0, got {l1_start_epoch!r}")
  parts = []
  if opt.get("l1", 0.0) > 0:
    start = 0
    if l1_start_epoch:
      start = l1_start_epoch * _steps_per_epoch("optimizer.l1_start_epoch", steps_per_epoch)
    parts.append(add_l1_decay(opt.l1, start_step=start))
  if opt.get("weight_decay", 0.0) > 0:
    parts.append(optax.add_decayed_weights(opt.weight_decay, mask=weights_mask))
  momentum = momentum_schedule(config)
  if float(opt.momentum) == 0.0 and int(opt.get("momentum_ramp_steps", 0)) <= 0:
    momentum = None  # Plain SGD: no trace to keep (a zero-decay trace is the same update, ~20% slower).
  if rate_in_state and (opt.schedule != "constant" or int(opt.get("warmup_steps", 0))):
    raise ValueError(f"rate_in_state needs optimizer.schedule 'constant' without warm-up, got "
                     f"{opt.schedule!r} with warmup_steps={opt.get('warmup_steps', 0)}")
  rate = float(opt.learning_rate) if rate_in_state else learning_rate_schedule(config, total_steps,
                                                                               steps_per_epoch)
  if opt.name == "sdlm":
    if opt.get("nesterov", False) or int(opt.get("momentum_ramp_steps", 0)):
      raise ValueError("optimizer.name 'sdlm' takes a constant momentum (0 in the paper), without "
                       "nesterov or momentum_ramp_steps")
    step = optax.inject_hyperparams(sdlm.sdlm, static_args=("damping", "decay", "momentum"))
    parts.append(step(learning_rate=rate, damping=float(opt.get("sdlm_damping", sdlm.PAPER_DAMPING)),
                      decay=float(opt.get("sdlm_decay", sdlm.DEFAULT_DECAY)), momentum=float(opt.momentum) or None))
  else:
    sgd = optax.inject_hyperparams(optax.sgd, static_args=("nesterov",))
    parts.append(sgd(learning_rate=rate, momentum=momentum, nesterov=bool(opt.get("nesterov", False))))
  if multipliers:
    parts.append(scale_by_multipliers(multipliers))
  return optax.chain(*parts)
