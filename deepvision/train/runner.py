"""The step loop every trainer shares: logging, evaluation, checkpoints, preemption and the non-finite guard.

A trainer builds its state, data iterator and jitted step, then hands them to `run_steps`, which

* runs the steps `start + 1 … total_steps`, averaging each step's metrics over a logging interval (a record is
  also written at every checkpoint, so `metrics.jsonl` is the same whether or not a run was resumed);
* checks, inside the jitted step, that the loss, the gradients and the new parameters are finite
  (`guard_step`): the first non-finite step freezes the state at its last good value and is recorded as
  (step, quantity); the loop raises `TrainingDivergedError` naming them at the next log or checkpoint, and
  never writes a non-finite checkpoint;
* saves a checkpoint every `checkpoint_every` steps and at the end, with the iterator's position and the
  not-yet-logged metrics, so a resumed run continues bitwise;
* on SIGTERM or SIGINT (`Preemption`), finishes the current step, saves a checkpoint and raises
  `TrainingPreempted`: re-running the same command resumes from it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from deepvision import parallel
from deepvision.checkpoint import Checkpointer
from deepvision.train.errors import TrainingDivergedError, TrainingPreempted
from deepvision.train.writers import MetricsWriter, Progress

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


@dataclasses.dataclass
class StepLoop:
  """What `run_steps` needs from a trainer.

  Attributes:
    train_step: `replicas.compile(guard_step(step_fn))`: jitted (or pmapped), state donated.
    total_steps: the run's last step.
    log_every, checkpoint_every: intervals in steps (the last step always logs and saves).
    evaluate: `evaluate(state, step) -> record or None`, called after every step (e.g. every epoch).
    progress_keys: metrics shown on the progress line.
    advice: appended to divergence errors (e.g. "lower the learning rate").
    replicas: where the state lives (`parallel.Replicas`): checkpoints and the returned state are
      brought back to the host layout; `evaluate` receives the state as it lives on the devices.
  """

  train_step: Callable[[Any, Array, Any], tuple[Any, Array, Metrics]]
  total_steps: int
  log_every: int
  checkpoint_every: int
  evaluate: Callable[[Any, int], dict | None] | None = None
  progress_keys: tuple[str, ...] = ()
  advice: str = ""
  replicas: parallel.Replicas = dataclasses.field(default_factory=lambda: parallel.Replicas(1))


def _mean_metrics(pending: list[Metrics]) -> dict[str, float]:
  values = jax.device_get(pending)
  means = {k: float(np.mean([m[k] for m in values])) for k in values[0]}
  if "learning_rate" in values[-1]:
    means["learning_rate"] = float(values[-1]["learning_rate"])
  return means


def run_steps(loop: StepLoop, state: Any, train_iter: Iterator, start: int, checkpointer: Checkpointer,
              writer: MetricsWriter, progress: Progress | None = None,
              pending: list[dict[str, float]] | None = None,
              debug_step: Callable[[Any, Any], tuple[Any, Metrics]] | None = None) -> Any:
  """Runs steps `start + 1 … loop.total_steps` (see the module docstring) and returns the final state.

  Args:
    loop: the trainer's step function and intervals.
    state: the state after `start` steps.
    train_iter: the training batches from position `start` (with `get_state`).
    start: steps already done.
    checkpointer, writer, progress: where checkpoints, records and the progress line go.
    pending: metrics of steps after the last record, restored from the checkpoint (`resume`).
    debug_step: the unguarded step function; given, a non-finite step is replayed from the newest
      checkpoint under `jax.debug_nans` / `jax.debug_infs` to name the operation that produced it.

  Raises:
    TrainingDivergedError: a step's loss, gradients or parameters were not finite (named with the step);
      the newest checkpoint is the last one saved before it.
    TrainingPreempted: SIGTERM / SIGINT arrived; a checkpoint of the current step was saved.
  """
  fault = loop.replicas.initial_fault(initial_fault())
  pending_device: list[Metrics] = []
  pending_host: list[dict[str, float]] = list(pending or [])

  def check(step: int) -> None:
    bad_step, quantity = (int(x) for x in np.asarray(jax.device_get(fault)).reshape(-1, 2)[0])
    if bad_step >= 0:
      writer.close()
      kept = checkpointer.latest_valid_step()
      where = ("set --config.debug_nans=True to name the operation" if debug_step is None else
               replay_with_debug_nans(debug_step, loop.replicas.host_state(state), train_iter, checkpointer,
                                      bad_step))
      raise TrainingDivergedError(
          f"the {GUARDED[quantity]} became non-finite (NaN or Inf) at step {bad_step}"
          + (f"; {loop.advice}" if loop.advice else "")
          + (f"; the checkpoint of step {kept} is kept" if kept else "; no checkpoint was saved")
          + f" ({where})")
    del step

  def save(step: int) -> None:
    check(step)
    host = jax.device_get(pending_device)
    data_state = {**train_iter.get_state(),
                  "pending_metrics": pending_host + [{k: float(v) for k, v in m.items()} for m in host]}
    checkpointer.save(loop.replicas.host_state(state), data_state)

  with Preemption() as preemption:
    for step in range(start + 1, loop.total_steps + 1):
      state, fault, metrics = loop.train_step(state, fault, next(train_iter))
      pending_device.append(metrics)
      last = step == loop.total_steps
      checkpoint_now = step % loop.checkpoint_every == 0 or last
      if step % loop.log_every == 0 or last or checkpoint_now:
        check(step)
        means = _mean_metrics(pending_host + jax.device_get(pending_device))
        pending_host, pending_device = [], []
        means["steps_per_second"] = progress.rate(step) if progress else 0.0
        writer.write(step, means)
        if progress:
          progress.update(step, {k: means[k] for k in loop.progress_keys if k in means})
      if loop.evaluate is not None:
        record = loop.evaluate(state, step)
        if record:
          check(step)
          writer.write(step, record)
      if checkpoint_now:
        save(step)
      elif parallel.any_process(preemption.requested is not None):  # all processes stop at the same step
        save(step)
        writer.close()
        message = (f"{preemption.requested or 'a stop request of another process'} received: saved the checkpoint of step {step} of "
                   f"{loop.total_steps} in {checkpointer.directory}; run the same command again to resume")
        print(message, file=sys.stderr)
        raise TrainingPreempted(message, step)
  return loop.replicas.host_state(state)


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
