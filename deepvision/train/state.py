"""Train state: parameters, optimiser state, step counter and the run's base PRNG key."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax.training import train_state


class TrainState(train_state.TrainState):
  """`flax.training.train_state.TrainState` plus the key every step's randomness derives from.

  `step` counts completed updates. Step t draws its dropout / augmentation randomness from
  `jax.random.fold_in(key, t)`, so a run resumed at step t draws exactly the numbers an
  uninterrupted run would have drawn.

  `ema_params`, when not None, is the exponential moving average of the parameters (Polyak
  averaging), θ̄ ← d·θ̄ + (1 − d)·θ after every update; evaluation then uses θ̄.
  """

  key: jax.Array
  ema_params: Any = None

  @property
  def eval_params(self) -> Any:
    """The parameters to evaluate with: the moving average when it is kept, else the current ones."""
    return self.params if self.ema_params is None else self.ema_params


def create_train_state(model: nn.Module, tx: optax.GradientTransformation, key: jax.Array,
                       input_shape: tuple[int, ...], ema: bool = False) -> TrainState:
  """Initialises `model` on a zero batch of `input_shape` (H, W, C) and wraps it with `tx`.

  Args:
    model: a Linen module taking `(x, train=...)`.
    tx: the optimiser.
    key: the run's root key; split here into `init` and `step` keys.
    input_shape: shape of one example.
    ema: also keep a moving average of the parameters (starting at the initial ones).
  """
  init_key, step_key = jax.random.split(key)
  variables = model.init(init_key, jnp.zeros((1, *input_shape), jnp.float32), train=False)
  params = variables["params"]
  state = TrainState.create(apply_fn=model.apply, params=params, tx=tx, key=step_key,
                            ema_params=jax.tree.map(jnp.copy, params) if ema else None)
  # An int32 array step (not TrainState.create's Python 0): the first and later steps then have
  # the same signature and the jitted step compiles once.
  return state.replace(step=jnp.zeros((), jnp.int32))

