"""`fit(task, config, workdir)`: the one run skeleton every training kind shares.

A `Task` says what differs between training kinds (its state, batches, pure step, evaluations, figures);
`fit` owns the rest: the work dir, verified checkpoints and bitwise resume, the one "finished" rule,
`metrics.jsonl` / TensorBoard, the progress line, SIGTERM, the non-finite guard, replicas, and K steps per
dispatch (`dispatch.py`: one jitted loop over up to K staged minibatches, the host touched only at log,
evaluation and checkpoint boundaries).

The finished rule: a run is finished when the last record of `metrics.jsonl` is the final one (`"final":
true`, written after the final evaluation) and its newest valid checkpoint is at that record's step: the
last step, or the step where early stopping (`early_stopping.py`) ended it.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

import ml_collections

from deepvision import config_blocks, distributed, parallel, schema
from deepvision.checkpoint import Checkpointer, read_state
from deepvision.train import dispatch, early_stopping, runner
from deepvision.train import workdir as workdirs
from deepvision.train.errors import ConfigError, TrainingPreempted
from deepvision.train.writers import (
  MetricsWriter,
  Progress,
  closing_summary,
  read_metrics,
)

Metrics = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Schedule:
  """When the host acts, in steps (the last step always logs, evaluates and saves).

  Attributes:
    total_steps: the run's last step.
    log_every: steps per `metrics.jsonl` training record.
    eval_every: steps between calls of `Task.evaluate` (0: only at the last step).
    checkpoint_every: steps between checkpoints.
    steps_per_dispatch: K, the most steps one jitted call runs (a loop over up to K staged minibatches).
  """

  total_steps: int
  log_every: int
  eval_every: int
  checkpoint_every: int
  steps_per_dispatch: int = 1

  def next_boundary(self, step: int) -> int:
    """The first step after `step` at which the host must log, evaluate, save or stop."""
    ends = [self.total_steps]
    for every in (self.log_every, self.eval_every, self.checkpoint_every):
      if every:
        ends.append((step // every + 1) * every)
    return min(ends)


class Task:
  """What a training kind supplies to `fit`; subclasses override the methods below.

  Attributes:
    identity: config fields that shape the state or the data order: a resumed run cannot change them.
    schedule: the run's length and intervals.
    replicas: where the step runs (`parallel.Replicas`).
    progress_keys: metrics shown on the progress line.
    advice: appended to the divergence error (e.g. "lower the learning rate").
    quiet: no progress line, no opening and closing summary.
  """

  identity: tuple[str, ...] = ()
  schedule: Schedule
  replicas: parallel.Replicas
  progress_keys: tuple[str, ...] = ()
  advice: str = ""
  quiet: bool = False

  def start(self, workdir: str, resuming: bool) -> None:
    """Called once the work dir is checked, before anything else (e.g. checking files the run keeps)."""

  def init_state(self) -> Any:
    """The state before the first step, in host layout."""
    raise NotImplementedError

  def train_batches(self) -> Iterator:
    """Host batches in training order, resumable (`get_state` / `set_state`)."""
    raise NotImplementedError

  def make_step(self, axis_name: str | None) -> Callable[[Any, Any], tuple[Any, Metrics]]:
    """The pure `step(state, batch) -> (state, metrics)` whose metrics carry `runner.finite_flags`."""
    raise NotImplementedError

  def began(self, workdir: str, state: Any, start: int) -> None:
    """Called after resuming, before the first step (e.g. an opening line, files the run keeps)."""

  def evaluate(self, state: Any, step: int) -> Metrics | None:
    """The periodic evaluation of the host-layout `state` after `step` (None: nothing to record)."""
    return None

  def final_evaluation(self, state: Any) -> Metrics:
    """The final record's metrics (e.g. the test split)."""
    return {}

  def save_figures(self, state: Any, workdir: str) -> None:
    """Figures of the finished run into `workdir` (process 0 only)."""

  def finished(self, workdir: str, record: Metrics, state: Any) -> None:
    """Called at the end of a run that trained (not when it was already finished): prints the summary."""
    print(closing_summary(workdir, record))


def is_finished(records: list[Metrics], checkpoint_step: int | None, total_steps: int) -> bool:
  """The one "finished" rule (module docstring)."""
  if not (records and records[-1].get("final")):
    return False
  end = records[-1]["step"] if "early_stopping/stopped_at" in records[-1] else total_steps
  return records[-1]["step"] == end and (checkpoint_step or 0) >= end


def _early_stopping(config: ml_collections.ConfigDict, task: Task) -> config_blocks.EarlyStopping | None:
  """The run's early-stopping settings (None: off), checked before any compute."""
  settings = schema.load(config_blocks.EarlyStopping, config.get("early_stopping", {}), "config.early_stopping")
  if not settings.metric:
    return None
  if not config.get("eval_split", "") or type(task).evaluate is Task.evaluate:
    raise ConfigError(f"config.early_stopping.metric={settings.metric!r} needs periodic evaluations on a "
                      "validation split: set --config.eval_split (a split not trained on)")
  return settings


def fit(task: Task, config: ml_collections.ConfigDict, workdir: str) -> tuple[Metrics, Any]:
  """Trains `task` in `workdir`, resuming from its newest valid checkpoint; returns `(record, state)`.

  `record` is the final metrics record; `state` the final host-layout state (None when the work dir
  already held the finished run: `checkpoint.read_state` reads it).

  Raises:
    TrainingDivergedError: a step's loss, gradients or parameters were not finite (named with the step).
    TrainingPreempted: SIGTERM / SIGINT arrived; a checkpoint of the current step was saved.
    ConfigError / CheckpointCorruptedError: a work dir of another run, or no checkpoint verifies.
  """
  primary = distributed.is_primary()
  quiet = task.quiet or not primary  # only process 0 talks
  stopping = _early_stopping(config, task)
  workdir = workdirs.prepare(config, workdir, task.identity, write=primary)
  schedule = task.schedule
  checkpointer = Checkpointer(os.path.join(workdir, "checkpoints"), keep=config.keep_checkpoints,
                              metadata={"config_hash": workdirs.config_hash(config)})
  writer = stopper = None
  try:
    task.start(workdir, resuming=bool(checkpointer.all_steps()))
    records = read_metrics(workdir)
    if is_finished(records, checkpointer.latest_valid_step(), schedule.total_steps):
      if not quiet:
        print(f"{workdir} already holds the finished run ({schedule.total_steps} steps); nothing to do.")
      return records[-1], None
    state = task.init_state()
    train_iter = task.train_batches()
    state, start, pending = runner.resume(checkpointer, state, train_iter)
    if start and not quiet:
      print(f"Resuming from step {start} of {schedule.total_steps} ({checkpointer.directory}).")
    writer = MetricsWriter(workdir, resume_step=start if start else None, enabled=primary)
    if stopping is not None:
      stopper = early_stopping.EarlyStopping(stopping, workdir, read_metrics(workdir), start)
    task.began(workdir, state, start)
    state, stopped_at = _train(task, state, train_iter, start, pending, checkpointer, writer, config,
                               None if quiet else Progress(schedule.total_steps, start_step=start), stopper)
    summary = {}
    if stopper is not None:
      state, summary = stopper.best_state(state), stopper.summary(stopped_at)
    record = writer.write(stopped_at or schedule.total_steps,
                          {**task.final_evaluation(state), **summary, "final": True})
  finally:
    if writer is not None:
      writer.close()
    if stopper is not None:
      stopper.close()
    checkpointer.close()
  if config.get("figures", True) and primary:
    task.save_figures(state, workdir)
  if distributed.process_count() > 1:  # a collective: every process checks, process 0 reports
    digest = distributed.check_replicas_agree(state.params)
    if not quiet:
      print(f"parameters agree across {distributed.process_count()} processes: sha256 {digest}")
  if not quiet:
    task.finished(workdir, record, state)
  return record, state


def fit_params(task: Task, config: ml_collections.ConfigDict, workdir: str) -> tuple[Metrics, Any]:
  """`fit`, returning `(record, trained parameters)`; for a run that had already finished, the parameters of
  its newest checkpoint."""
  record, state = fit(task, config, workdir)
  if state is None:
    workdir = os.path.abspath(os.path.expanduser(workdir))
    state, _ = read_state(early_stopping.selected_checkpoints(config, workdir))
    return record, state["params"]
  return record, state.params


def _train(task: Task, state: Any, train_iter: Iterator, start: int, pending: list[Metrics],
           checkpointer: Checkpointer, writer: MetricsWriter, config: ml_collections.ConfigDict,
           progress: Progress | None, stopper: early_stopping.EarlyStopping | None) -> tuple[Any, int | None]:
  """Steps `start + 1 … total_steps` in dispatches of at most K steps; returns the host-layout state and
  the step where early stopping ended the run (None: it ran to the end)."""
  schedule, replicas = task.schedule, task.replicas
  steps = dispatch.Dispatcher(runner.guard_step(task.make_step(replicas.axis_name)), replicas,
                              schedule.steps_per_dispatch, train_iter)
  fault = replicas.initial_fault(runner.initial_fault())
  pending_device: list[Any] = []
  pending_host: list[Metrics] = list(pending)
  debug_step = task.make_step(None) if config.get("debug_nans", False) else None
  state = replicas.place_state(state)

  def check() -> None:
    runner.raise_if_diverged(fault, writer, checkpointer, task.advice, debug_step, replicas.host_state(state),
                             train_iter)

  def save() -> None:
    check()
    metrics = pending_host + [{k: float(v) for k, v in m.items()}
                              for m in dispatch.per_step_metrics(pending_device)]
    checkpointer.save(replicas.host_state(state), {**steps.get_state(), "pending_metrics": metrics})

  step = start
  with runner.Preemption() as preemption:
    while step < schedule.total_steps:
      state, fault, metrics, n = steps.run(state, fault, schedule.next_boundary(step) - step)
      pending_device.append(metrics)
      step += n
      last = step == schedule.total_steps
      checkpoint_now = step % schedule.checkpoint_every == 0 or last
      if step % schedule.log_every == 0 or last or checkpoint_now:
        check()
        means = runner.mean_metrics(pending_host + dispatch.per_step_metrics(pending_device))
        pending_host, pending_device = [], []
        means["steps_per_second"] = progress.rate(step) if progress else 0.0
        writer.write(step, means)
        if progress:
          progress.update(step, {k: means[k] for k in task.progress_keys if k in means})
      if last or (schedule.eval_every and step % schedule.eval_every == 0):
        record = task.evaluate(replicas.host_state(state), step)
        if record:
          check()
          writer.write(step, record)
          if stopper is not None and stopper.update(record, step, replicas.host_state(state)) and not last:
            save()
            if progress:
              print(f"\nearly stopping at step {step}: {stopper.metric} has not improved for "
                    f"{stopper.since_best} evaluations (best {stopper.best:.4g} at step {stopper.best_step})")
            return replicas.host_state(state), step
      if checkpoint_now:
        save()
      elif distributed.any_process(preemption.requested is not None):  # all processes stop at the same step
        save()
        writer.close()
        message = (f"{preemption.requested or 'a stop request of another process'} received: saved the "
                   f"checkpoint of step {step} of {schedule.total_steps} in {checkpointer.directory}; run "
                   "the same command again to resume")
        print(message, file=sys.stderr)
        raise TrainingPreempted(message, step)
  return replicas.host_state(state), None


def default_schedule(config: ml_collections.ConfigDict, total_steps: int, steps_per_epoch: int,
                     eval_every: int | None = None, log_every: int | None = None) -> Schedule:
  """The schedule of the run fields every config has (0 means once per epoch, or only at the end)."""
  return Schedule(
      total_steps=total_steps,
      log_every=log_every or config.log_every_steps or steps_per_epoch,
      eval_every=(config.eval_every_steps or steps_per_epoch) if eval_every is None else eval_every,
      checkpoint_every=config.checkpoint_every_steps or total_steps,
      steps_per_dispatch=int(config.get("steps_per_dispatch", 1)))

