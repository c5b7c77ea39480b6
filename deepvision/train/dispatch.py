"""K training steps per dispatch: one jitted loop over up to K minibatches staged to the device together.

A small model's step takes less time than Python takes to dispatch it, so `fit` runs up to K steps per call:
the next n ≤ K host batches are read with one gather (`BatchIterator.next_many`), padded to K rows, sent to
the device at once and stepped through by a loop whose trip count n is an argument, so one program serves
every chunk (a chunk ends early at a log, evaluation or checkpoint boundary). The per-step metrics stay on the
device until the next log boundary. Every step still draws its randomness from `fold_in(key, step)`, so the
numbers are those of K = 1.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from deepvision import parallel

Guarded = Callable[[Any, jax.Array, Any], tuple[Any, jax.Array, dict[str, Any]]]


def loop_steps(guarded_step: Guarded) -> Callable[..., tuple[Any, jax.Array, dict[str, Any]]]:
  """`multi(state, fault, batches, n) -> (state, fault, metrics)`: `guarded_step` over the first n rows of
  the leading axis of `batches` (n ≤ its length K, a traced integer); each metric comes back as K values,
  the first n of them the steps'."""

  def multi(state, fault, batches, n):
    rows = jax.tree.leaves(batches)[0].shape[0]
    first = jax.tree.map(lambda x: x[0], batches)
    shapes = jax.eval_shape(guarded_step, state, fault, first)[2]
    metrics = jax.tree.map(lambda s: jnp.zeros((rows, *s.shape), s.dtype), shapes)

    def body(i, carry):
      state, fault, metrics = carry
      batch = jax.tree.map(lambda x: jax.lax.dynamic_index_in_dim(x, i, keepdims=False), batches)
      state, fault, step_metrics = guarded_step(state, fault, batch)
      metrics = jax.tree.map(lambda m, v: jax.lax.dynamic_update_index_in_dim(m, v, i, 0), metrics, step_metrics)
      return state, fault, metrics

    return jax.lax.fori_loop(0, n, body, (state, fault, metrics))

  return multi


class Dispatcher:
  """Runs the guarded step on `train_iter`'s batches, up to `steps_per_dispatch` steps per jitted call.

  It owns the iterator the run reads (`get_state` is the position a checkpoint records): with one step per
  dispatch it is exactly the per-step path (device prefetch included when data-parallel); with K > 1 one
  program runs every chunk of 1 … K steps.
  """

  def __init__(self, guarded_step: Guarded, replicas: parallel.Replicas, steps_per_dispatch: int,
               train_iter: Iterator):
    if not isinstance(steps_per_dispatch, int) or steps_per_dispatch < 1:
      raise ValueError(f"steps_per_dispatch must be an int >= 1, got {steps_per_dispatch!r}")
    self.replicas = replicas
    self.steps_per_dispatch = steps_per_dispatch
    self.host = train_iter
    if steps_per_dispatch == 1:
      self._single = replicas.compile(guarded_step)
      self._batches = replicas.batches(train_iter)
      return
    self._batches = train_iter
    if not replicas.parallel:
      self._multi = jax.jit(loop_steps(guarded_step), donate_argnums=0)
    else:
      devices = None if jax.process_count() > 1 else jax.local_devices()[:replicas.num_local_devices]
      self._multi = jax.pmap(loop_steps(guarded_step), axis_name=parallel.AXIS, devices=devices,
                             in_axes=(0, 0, 0, None), donate_argnums=(0,))

  def get_state(self) -> dict[str, Any]:
    return self._batches.get_state()

  def _stage(self, n: int) -> Any:
    """The next n host batches stacked and padded with zeros to K rows."""
    if hasattr(self._batches, "next_many"):  # one gather for the n batches (`pipeline.BatchIterator`)
      stacked = self._batches.next_many(n)
    else:
      stacked = jax.tree.map(lambda *xs: np.stack(xs), *[next(self._batches) for _ in range(n)])
    pad = self.steps_per_dispatch - n
    return jax.tree.map(lambda x: np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)]) if pad else x,
                        stacked)

  def run(self, state: Any, fault: jax.Array, max_steps: int) -> tuple[Any, jax.Array, Any, int]:
    """At most `max_steps` steps; returns `(state, fault, metrics, steps run)` (the metrics of a chunk as
    `(stacked metrics, steps)`, which `per_step_metrics` unstacks)."""
    if self.steps_per_dispatch == 1:
      state, fault, metrics = self._single(state, fault, next(self._batches))
      return state, fault, metrics, 1
    n = min(max_steps, self.steps_per_dispatch)
    stacked = self._stage(n)
    if self.replicas.parallel:
      local, k = self.replicas.num_local_devices, self.steps_per_dispatch
      # (K, B, ...) → (devices, K, B / devices, ...): each device steps through its own rows of every batch.
      stacked = parallel.shard_batch(jax.tree.map(
          lambda x: x.reshape(k, local, -1, *x.shape[2:]).swapaxes(0, 1).reshape(local * k, -1, *x.shape[2:]),
          stacked), local)
      state, fault, metrics = self._multi(state, fault, stacked, n)
      return state, fault, (parallel.unreplicate(metrics), n), n
    state, fault, metrics = self._multi(state, fault, stacked, n)
    return state, fault, (metrics, n), n


def per_step_metrics(pending: list[Any]) -> list[dict[str, Any]]:
  """Host copies of pending metrics, one dict per step: a dispatch of one step left a dict, a chunk a pair
  `(metrics stacked over K rows, steps run)`."""
  out = []
  for entry in jax.device_get(pending):
    if isinstance(entry, dict):
      out.append(entry)
    else:
      metrics, n = entry
      out.extend({k: v[i] for k, v in metrics.items()} for i in range(n))
  return out
