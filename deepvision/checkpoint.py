"""Checkpoints on orbax: the train state plus the data iterator's position, keep-N, never non-finite.

A checkpoint is labelled by the number of completed updates (`state.step`), holds two items:
`state` (parameters, optimiser state, step, the run's key as raw key data) and `data` (the input
iterator's JSON state), and is written synchronously with orbax's atomic rename, so a killed process
leaves either the whole checkpoint or an ignored temporary directory.
"""

from __future__ import annotations

import os
from typing import Any

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp


class NonFiniteStateError(FloatingPointError):
  """Raised instead of saving a state that holds NaN or Inf."""


def _is_key(x: Any) -> bool:
  return isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _to_saveable(state: Any) -> dict:
  """State dict with typed PRNG keys replaced by their raw uint32 data (orbax stores plain arrays)."""
  tree = flax.serialization.to_state_dict(state)
  return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, tree)


def _non_finite_leaves(tree: Any) -> list[str]:
  bad = []
  for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
    arr = np.asarray(leaf)
    if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
      bad.append(jax.tree_util.keystr(path))
  return bad


class Checkpointer:
  """Saves and restores `(train_state, data_state)` pairs in `directory`, keeping the newest `keep`.

  Args:
    directory: where the checkpoints live (created if missing).
    keep: how many checkpoints to keep (the newest ones).
  """

  def __init__(self, directory: str | os.PathLike, keep: int = 3):
    if keep < 1:
      raise ValueError(f"keep must be >= 1 checkpoint, got {keep!r}")
    self.directory = os.path.abspath(os.fspath(directory))
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, save_interval_steps=1, create=True,
                                           enable_async_checkpointing=False)
    self._manager = ocp.CheckpointManager(self.directory, options=options, item_names=("state", "data"))

  def latest_step(self) -> int | None:
    """The newest saved step, or None when there is none."""
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def save(self, state: Any, data_state: dict | None = None) -> None:
    """Saves `state` (labelled `state.step`) and the iterator state; refuses non-finite states.

    Raises:
      NonFiniteStateError: if any floating leaf of the state is NaN or Inf (nothing is written).
    """
    tree = _to_saveable(state)
    bad = _non_finite_leaves(tree)
    if bad:
      raise NonFiniteStateError(
          f"refusing to save step {int(state.step)}: non-finite values in {', '.join(bad[:5])}")
    step = int(jax.device_get(state.step))
    if step in self._manager.all_steps():
      return
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(tree), data=ocp.args.JsonSave(data_state or {})), force=True)
    self._manager.wait_until_finished()

  def restore(self, template: Any, step: int | None = None) -> tuple[Any, dict]:
    """Restores the checkpoint at `step` (default: newest) into the structure of `template`.

    Args:
      template: a state of the right structure (e.g. a freshly initialised `TrainState`).
      step: which checkpoint; None for the newest.

    Returns:
      `(state, data_state)`.
    """
    step = self.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"no checkpoint in {self.directory}")
    target = jax.tree.map(ocp.utils.to_shape_dtype_struct, _to_saveable(template))
    restored = self._manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(target), data=ocp.args.JsonRestore()))
    template_dict = flax.serialization.to_state_dict(template)
    tree = jax.tree.map(lambda t, r: jax.random.wrap_key_data(jnp.asarray(r), impl=jax.random.key_impl(t))
                        if _is_key(t) else jnp.asarray(r), template_dict, restored["state"])
    return flax.serialization.from_state_dict(template, tree), dict(restored["data"] or {})

  def close(self) -> None:
    self._manager.close()
