"""What every step of a run relies on: the non-finite guard, SIGTERM handling, resuming, metric means.

`guard_step` checks, inside the jitted step, that the loss, the gradients and the new parameters are finite:
the first non-finite step freezes the state at its last good value and is recorded as (step, quantity), which
`raise_if_diverged` turns into `TrainingDivergedError` at the next log or checkpoint (nothing non-finite is
ever saved). `Preemption` turns SIGTERM / SIGINT into a request the skeleton (`fit.py`) honours by saving a
checkpoint and stopping.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import traceback
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from deepvision.checkpoint import Checkpointer
from deepvision.train.errors import TrainingDivergedError
from deepvision.train.writers import MetricsWriter

Array = jax.Array
Metrics = dict[str, Any]

# The quantities the guard checks, in the order they are reported.
GUARDED = ("loss", "gradients", "parameters")
NO_FAULT = (-1, -1)


def finite_flags(loss: Array, grads: Any, params: Any) -> dict[str, Array]:
  """`finite/loss`, `finite/gradients`, `finite/parameters`: booleans for a step's metrics."""
  all_finite = lambda tree: jnp.all(jnp.stack(  # noqa: E731
      [jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(tree)]))
  return {"finite/loss": jnp.all(jnp.isfinite(loss)), "finite/gradients": all_finite(grads),
          "finite/parameters": all_finite(params)}


def initial_fault() -> Array:
  """The guard's record before any fault: (step, quantity index) = (−1, −1)."""
  return jnp.asarray(NO_FAULT, jnp.int32)


def guard_step(step_fn: Callable[[Any, Any], tuple[Any, Metrics]]
               ) -> Callable[[Any, Array, Any], tuple[Any, Array, Metrics]]:
  """Wraps `step_fn(state, batch) -> (state, metrics)` whose metrics carry `finite_flags`.

  The wrapped `step(state, fault, batch) -> (state, fault, metrics)` keeps the old state when this step is
  not finite or an earlier one was not (the state stays at its last good value), and records the first
  faulty step in `fault` = (step number, index into GUARDED). The `finite/*` entries leave the metrics.
  """

  def guarded(state, fault: Array, batch) -> tuple[Any, Array, Metrics]:
    new_state, metrics = step_fn(state, batch)
    flags = jnp.stack([metrics.pop(f"finite/{name}") for name in GUARDED])
    bad_now = ~jnp.all(flags)
    first_bad = jnp.argmin(flags).astype(jnp.int32)  # the first quantity that is not finite
    step = jnp.asarray(new_state.step, jnp.int32)
    fault = jnp.where((fault[0] < 0) & bad_now, jnp.stack([step, first_bad]), fault)
    frozen = fault[0] >= 0
    state = jax.tree.map(lambda new, old: jnp.where(frozen, old, new), new_state, state)
    return state, fault, metrics

  return guarded


class Preemption(contextlib.AbstractContextManager):
  """Within the block, SIGTERM and SIGINT set `requested` (the signal's name) instead of killing the process.

  A second SIGINT while one is pending raises KeyboardInterrupt (a user pressing Ctrl-C twice). Outside the
  main thread (where handlers cannot be installed) it does nothing.
  """

  SIGNALS = (signal.SIGTERM, signal.SIGINT)

  def __init__(self):
    self.requested: str | None = None
    self._previous: dict[int, Any] = {}

  def _handle(self, signum, frame):
    del frame
    if self.requested is not None and signum == signal.SIGINT:
      raise KeyboardInterrupt
    self.requested = signal.Signals(signum).name

  def __enter__(self) -> Preemption:
    if threading.current_thread() is threading.main_thread():
      for signum in self.SIGNALS:
        self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def __exit__(self, *exc) -> None:
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
    self._previous.clear()


def mean_metrics(per_step: list[Metrics]) -> dict[str, float]:
  """The mean of each metric over the steps of a logging interval; `learning_rate` is the last step's."""
  means = {k: float(np.mean([m[k] for m in per_step])) for k in per_step[0]}
  if "learning_rate" in per_step[-1]:
    means["learning_rate"] = float(per_step[-1]["learning_rate"])
  return means


def raise_if_diverged(fault: Array, writer: MetricsWriter, checkpointer: Checkpointer, advice: str,
                      debug_step: Callable[[Any, Any], tuple[Any, Metrics]] | None, host_state: Any,
                      train_iter: Any) -> None:
  """TrainingDivergedError naming the first non-finite step and quantity, if the guard recorded one.

  With `debug_step` (the unguarded step) the failing step is replayed from the newest checkpoint under
  `jax_debug_nans` to name the operation; the newest checkpoint stays the last good one.
  """
  bad_step, quantity = (int(x) for x in np.asarray(jax.device_get(fault)).reshape(-1, 2)[0])
  if bad_step < 0:
    return
  writer.close()
  kept = checkpointer.latest_valid_step()
  where = ("set --config.debug_nans=True to name the operation" if debug_step is None else
           replay_with_debug_nans(debug_step, host_state, train_iter, checkpointer, bad_step))
  raise TrainingDivergedError(
      f"the {GUARDED[quantity]} became non-finite (NaN or Inf) at step {bad_step}"
      + (f"; {advice}" if advice else "")
      + (f"; the checkpoint of step {kept} is kept" if kept else "; no checkpoint was saved")
      + f" ({where})")


def resume(checkpointer: Checkpointer, state: Any, train_iter: Any) -> tuple[Any, int, list[dict[str, float]]]:
  """The newest valid checkpoint restored into `state`'s structure, the iterator moved to its position.

  Returns:
    `(state, start, pending)`: the restored state (or `state` itself when there is no checkpoint), the
    number of steps it has done, and the not-yet-logged metrics saved with it.
  """
  if not checkpointer.all_steps():
    return state, 0, []
  state, data_state, step = checkpointer.restore_latest_valid(state)
  train_iter.set_state(data_state)
  return state, int(step), [dict(m) for m in data_state.get("pending_metrics", [])]


def replay_with_debug_nans(step_fn: Callable[[Any, Any], tuple[Any, Metrics]], template: Any,
                           train_iter: Any, checkpointer: Checkpointer, bad_step: int) -> str:
  """Re-runs steps from the newest valid checkpoint to `bad_step` under `jax.debug_nans` / `debug_infs`.

  JAX then re-executes the failing computation operation by operation and raises at the first one that
  produces a NaN or Inf; its message is returned (or a note that the replay did not reproduce the fault).
  The iterator is left wherever the replay stopped: the run is over anyway.
  """
  if not checkpointer.all_steps():
    return "no checkpoint to replay from; set --config.checkpoint_every_steps to replay the failing step"
  train_iter = getattr(train_iter, "host", train_iter)  # host batches (not device-prefetched) for one device
  state, data_state, start = checkpointer.restore_latest_valid(template)
  train_iter.set_state(data_state)
  step = jax.jit(step_fn)
  try:
    with jax.debug_nans(True), jax.debug_infs(True):
      for _ in range(int(start), bad_step):
        state, _ = step(state, next(train_iter))
  except FloatingPointError as e:
    first_line = str(e).strip().splitlines()[0] if str(e).strip() else repr(e)
    # The innermost frame of this package's code (not the loop's own) shows where the operation was written.
    frames = [f for f in traceback.extract_tb(e.__traceback__)
              if f"{os.sep}deepvision{os.sep}" in f.filename and not f.filename.endswith("runner.py")]
    where = f", at {os.path.relpath(frames[-1].filename)}:{frames[-1].lineno} ({frames[-1].name})" if frames else ""
    return f"replayed from step {start} with jax_debug_nans: {first_line}{where}"
  return f"replayed from step {start} with jax_debug_nans: no NaN or Inf reproduced"
