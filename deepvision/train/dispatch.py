"""K training steps per dispatch: one jitted `lax.scan` over K minibatches staged to the device together.

A small model's step takes less time than Python takes to dispatch it, so `fit` runs up to K steps per call:
the next K host batches are stacked (`(K, B, ...)`), sent to the device at once, and scanned over with the
guarded step; the per-step metrics stay on the device until the next log boundary. Every step still draws
its randomness from `fold_in(key, step)`, so the numbers are those of K = 1. Chunks shorter than K (up to a
log, evaluation or checkpoint boundary) run as the largest power of two that fits, so at most
log2(K) + 2 programs are ever compiled.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import jax
import numpy as np

from deepvision import parallel

Guarded = Callable[[Any, jax.Array, Any], tuple[Any, jax.Array, dict[str, Any]]]


def scan_steps(guarded_step: Guarded) -> Guarded:
  """`multi(state, fault, batches) -> (state, fault, metrics)`: `guarded_step` over the leading axis of
  `batches`; each metric comes back stacked, one value per step."""

  def multi(state, fault, batches):
    def body(carry, batch):
      state, fault, metrics = guarded_step(*carry, batch)
      return (state, fault), metrics

    (state, fault), metrics = jax.lax.scan(body, (state, fault), batches)
    return state, fault, metrics

  return multi


def chunk_size(remaining: int, steps_per_dispatch: int) -> int:
  """Steps in the next dispatch: K, or the largest power of two ≤ `remaining` when fewer than K remain."""
  if remaining >= steps_per_dispatch:
    return steps_per_dispatch
  return 1 << (remaining.bit_length() - 1)


class Dispatcher:
  """Runs the guarded step on `train_iter`'s batches, up to `steps_per_dispatch` steps per jitted call.

  It owns the iterator the run reads (`get_state` is the position a checkpoint records): with one step per
  dispatch it is exactly the old per-step path (device prefetch included when data-parallel).
  """

  def __init__(self, guarded_step: Guarded, replicas: parallel.Replicas, steps_per_dispatch: int,
               train_iter: Iterator):
    if not isinstance(steps_per_dispatch, int) or steps_per_dispatch < 1:
      raise ValueError(f"steps_per_dispatch must be an int >= 1, got {steps_per_dispatch!r}")
    self.replicas = replicas
    self.steps_per_dispatch = steps_per_dispatch
    self.host = train_iter
    self._single = replicas.compile(guarded_step)
    self._batches = replicas.batches(train_iter) if steps_per_dispatch == 1 else train_iter
    if not replicas.parallel:
      self._multi = jax.jit(scan_steps(guarded_step), donate_argnums=0)
    else:
      devices = None if jax.process_count() > 1 else jax.local_devices()[:replicas.num_local_devices]
      self._multi = jax.pmap(scan_steps(guarded_step), axis_name=parallel.AXIS, devices=devices,
                             donate_argnums=(0,))

  def get_state(self) -> dict[str, Any]:
    return self._batches.get_state()

  def run(self, state: Any, fault: jax.Array, max_steps: int) -> tuple[Any, jax.Array, Any, int]:
    """At most `max_steps` steps; returns `(state, fault, metrics, steps run)`."""
    n = chunk_size(max_steps, self.steps_per_dispatch)
    if n == 1:
      state, fault, metrics = self._single(state, fault, next(self._batches))
      return state, fault, metrics, 1
    if hasattr(self._batches, "next_many"):  # one gather for the n batches (`pipeline.BatchIterator`)
      stacked = self._batches.next_many(n)
    else:
      stacked = jax.tree.map(lambda *xs: np.stack(xs), *[next(self._batches) for _ in range(n)])
    if self.replicas.parallel:
      local = self.replicas.num_local_devices
      # (n, B, ...) → (devices, n, B / devices, ...): each device scans over its own rows of every batch.
      stacked = parallel.shard_batch(jax.tree.map(
          lambda x: x.reshape(n, local, -1, *x.shape[2:]).swapaxes(0, 1).reshape(local * n, -1, *x.shape[2:]),
          stacked), local)
      state, fault, metrics = self._multi(state, fault, stacked)
      return state, fault, parallel.unreplicate(metrics), n
    state, fault, metrics = self._multi(state, fault, stacked)
    return state, fault, metrics, n


def per_step_metrics(pending: list[dict[str, Any]]) -> list[dict[str, Any]]:
  """Host copies of pending metrics, one dict per step (stacked dispatches split into their steps)."""
  out = []
  for metrics in jax.device_get(pending):
    first = next(iter(metrics.values()), None)
    if first is None or np.ndim(first) == 0:
      out.append(metrics)
    else:
      out.extend({k: v[i] for k, v in metrics.items()} for i in range(len(first)))
  return out
