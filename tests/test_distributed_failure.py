"""A lost process stops the others, and rerunning every process resumes bitwise.

Two processes of the launcher (`python -m experiments.main`, one CPU device each, on 127.0.0.1) train the
smoke convnet; once checkpoint 8 is verified, process 1 is killed with SIGKILL. Process 0 must exit with
status 75 and a message naming process 1 and how to resume, within the configured heartbeat timeout (in
practice at once: its next collective fails). Rerunning both processes on the same work dir must end with
the metrics and the final checkpoint of a two-process run never interrupted, bit for bit. In the slow tier,
process 1 is frozen (SIGSTOP) instead: process 0 must stop within the heartbeat timeout (JAX aborts it) or,
when process 1's heartbeats go on, within the collective timeout (the same message as above). Every child
runs under a timeout and is reaped whatever happens.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from deepvision import distributed
from deepvision.train.writers import read_metrics

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = "experiments/configs/lcn_convnet_digits.py:smoke"
HEARTBEAT_S = 15
SETTINGS = ["--config.figures=False", "--config.eval_split=", "--config.test_split=", "--config.num_epochs=3",
            "--config.checkpoint_every_steps=4", f"--config.distributed_heartbeat_timeout_s={HEARTBEAT_S}",
            "--config.distributed_shutdown_timeout_s=30"]
KILL_AFTER_CHECKPOINT = 8  # of 12 steps
TIMEOUT_S = 240


def _free_port() -> int:
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
  """The children's environment: one CPU device each, a compilation cache shared by all the runs."""
  cache = jax.config.jax_compilation_cache_dir or str(tmp_path_factory.mktemp("jax_cache"))
  return {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONUNBUFFERED": "1", "JAX_COMPILATION_CACHE_DIR": cache,
          "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0", "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}


class _Run:
  """The processes of one two-process run, their output in files (a full pipe cannot block them)."""

  def __init__(self, workdir, env, name, settings=()):
    port = _free_port()
    self.logs = [workdir.parent / f"{name}.{p}.{kind}" for p in range(2) for kind in ("out", "err")]
    self.processes = []
    for p in range(2):
      with open(self.logs[2 * p], "w") as out, open(self.logs[2 * p + 1], "w") as err:
        self.processes.append(subprocess.Popen(
            [sys.executable, "-m", "experiments.main", f"--config={CONFIG}", f"--workdir={workdir}",
             f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2", f"--process_id={p}", *SETTINGS,
             *settings],
            cwd=ROOT, env=env, stdout=out, stderr=err))

  def output(self, p: int) -> tuple[str, str]:
    return self.logs[2 * p].read_text(), self.logs[2 * p + 1].read_text()

  def wait(self, p: int, timeout: float) -> int:
    return self.processes[p].wait(timeout=timeout)

  def wait_for_checkpoint(self, workdir, step: int) -> None:
    """Returns once process 0 has verified checkpoint `step` (its manifest is written)."""
    manifest = workdir / "checkpoints" / str(step) / "deepvision_manifest.json"
    deadline = time.monotonic() + TIMEOUT_S
    while not manifest.exists() and self.processes[0].poll() is None and time.monotonic() < deadline:
      time.sleep(0.05)
    assert manifest.exists(), f"checkpoint {step} never appeared:\n" + "\n".join(self.output(0))[-3000:]

  def reap(self) -> None:
    for process in self.processes:
      if process.poll() is None:
        process.kill()
      process.wait()


def _finish(run: _Run, name: str) -> list[tuple[str, str]]:
  """Waits for both processes of `run` to end with status 0; returns their (stdout, stderr)."""
  try:
    codes = [run.wait(p, TIMEOUT_S) for p in range(2)]
  finally:
    run.reap()
  for p, code in enumerate(codes):
    assert code == 0, f"{name}: process {p} exited {code}:\n" + "\n".join(run.output(p))[-3000:]
  return [run.output(p) for p in range(2)]


def _final_state(workdir) -> dict:
  last = read_metrics(str(workdir))[-1]["step"]
  return ocp.PyTreeCheckpointer().restore(str(workdir / "checkpoints" / str(last) / "state"))


@pytest.mark.slow  # four two-process runs (~90 s); the default tier keeps the lost-peer guard's unit tests below
# and the two-process training run of tests/test_scale_out.py
def test_a_killed_process_stops_the_other_and_rerunning_both_resumes_bitwise(tmp_path, env):
  reference, interrupted = tmp_path / "reference" / "run", tmp_path / "interrupted" / "run"
  reference.parent.mkdir(), interrupted.parent.mkdir()
  # The uninterrupted run goes on beside the one that is killed (the 2 cores are rarely both busy).
  uninterrupted, run = _Run(reference, env, "reference"), _Run(interrupted, env, "killed")
  try:
    run.wait_for_checkpoint(interrupted, KILL_AFTER_CHECKPOINT)
    run.processes[1].send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    code = run.wait(0, HEARTBEAT_S + 30)
    waited = time.monotonic() - killed_at
  except BaseException:
    uninterrupted.reap()
    raise
  finally:
    run.reap()
  _finish(uninterrupted, "reference")
  out, err = run.output(0)
  assert code == distributed.LOST_PEER_EXIT_CODE, f"exit {code}:\n{out}\n{err[-3000:]}"
  assert waited < HEARTBEAT_S + 5, waited
  assert "error: lost contact with process 1 of this 2-process run" in err, err[-3000:]
  assert "Rerun all 2 processes with the same command to resume from the newest checkpoint" in err
  assert "Done:" not in out

  outputs = _finish(_Run(interrupted, env, "resumed"), "resumed")
  assert f"Resuming from step {KILL_AFTER_CHECKPOINT} of 12" in outputs[0][0]
  def metrics(workdir):  # all but the timing
    return [{k: v for k, v in r.items() if k != "steps_per_second"} for r in read_metrics(str(workdir))]

  assert metrics(interrupted) == metrics(reference)
  expected, got = _final_state(reference), _final_state(interrupted)
  assert jax.tree.structure(expected) == jax.tree.structure(got)
  for x, y in zip(jax.tree.leaves(expected), jax.tree.leaves(got)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.slow  # two two-process runs: ~1 minute
@pytest.mark.parametrize("bound, settings, code, message", [
    # Frozen: no heartbeats, so the coordination service declares it dead and JAX aborts the others.
    pytest.param("heartbeat", ["--config.distributed_heartbeat_timeout_s=10"], -signal.SIGABRT,
                 "The following tasks are unhealthy (stopped sending heartbeats):\n1", id="heartbeat"),
    # Alive but stuck (its heartbeats go on): the collective waiting for it times out.
    pytest.param("collective", ["--config.distributed_heartbeat_timeout_s=300",
                                "--config.distributed_collective_timeout_s=20"],
                 distributed.LOST_PEER_EXIT_CODE, "error: lost contact with process 1 of this 2-process run",
                 id="collective"),
])
def test_a_frozen_process_stops_the_other_within_the_configured_timeout(tmp_path, env, bound, settings, code,
                                                                         message):
  limit = 10 if bound == "heartbeat" else 20
  run = _Run(tmp_path / "run", env, bound, settings)
  try:
    run.wait_for_checkpoint(tmp_path / "run", 4)
    run.processes[1].send_signal(signal.SIGSTOP)
    stopped_at = time.monotonic()
    got = run.wait(0, limit + 60)
    waited = time.monotonic() - stopped_at
  finally:
    run.reap()
  out, err = run.output(0)
  assert got == code, f"exit {got}:\n{out}\n{err[-3000:]}"
  assert message in err, err[-3000:]
  assert waited < limit + 15, waited


def test_the_timeouts_come_from_the_config_and_bad_ones_are_errors_naming_the_field():
  from experiments.configs import lcn_convnet_digits  # pylint: disable=g-import-not-at-top
  config = lcn_convnet_digits.get_config("smoke")
  assert distributed.distributed_timeouts(config) == {"heartbeat_timeout": 100, "collective_timeout": 600,
                                                   "shutdown_timeout": 60}
  config.distributed_collective_timeout_s = 30
  assert distributed.distributed_timeouts(config)["collective_timeout"] == 30
  for field, value in (("distributed_heartbeat_timeout_s", 0), ("distributed_collective_timeout_s", True),
                       ("distributed_shutdown_timeout_s", -5), ("distributed_shutdown_timeout_s", 1.5)):
    with pytest.raises(ValueError, match=rf"config.{field} must be an int >= 1 \(seconds\), got {value}"):
      distributed.distributed_timeouts({field: value})


def test_the_launcher_refuses_a_bad_timeout_with_exit_2(tmp_path):
  result = subprocess.run(
      [sys.executable, "-m", "experiments.main", f"--config={CONFIG}", f"--workdir={tmp_path / 'w'}",
       "--config.distributed_heartbeat_timeout_s=0"],
      cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
  assert result.returncode == 2, result.stderr
  assert "config.distributed_heartbeat_timeout_s must be an int >= 1 (seconds), got 0" in result.stderr
  assert not (tmp_path / "w").exists()


def _gloo_error() -> Exception:
  return jax.errors.JaxRuntimeError(
      "UNKNOWN: Gloo AllGather failed: [external/gloo/gloo/transport/tcp/pair.cc:538] Read error "
      "[127.0.0.1]:24479: Connection reset by peer")


@pytest.fixture
def two_processes(monkeypatch):
  """This process seen as process 0 of a two-process run."""
  monkeypatch.setattr(jax.distributed, "is_initialized", lambda: True)
  monkeypatch.setattr(jax, "process_count", lambda: 2)
  monkeypatch.setattr(jax, "process_index", lambda: 0)


def test_a_failed_collective_is_a_lost_peer_even_when_another_error_follows(two_processes):
  del two_processes
  message = distributed.lost_peer_message(_gloo_error())
  assert message.startswith("lost contact with process 1 of this 2-process run")
  assert "Connection reset by peer" in message and "Rerun all 2 processes" in message
  # JAX reports it as a ValueError when an input of the next computation already holds the error.
  later = ValueError("UNKNOWN: Gloo AllReduce failed: [pair.cc:547] Connection closed by peer [127.0.0.1]:1")
  assert "Connection closed by peer" in distributed.lost_peer_message(later)
  try:  # a clean-up step failing in turn while the collective's error propagates
    try:
      raise _gloo_error()
    finally:
      raise RuntimeError("could not close the writer")
  except RuntimeError as e:
    assert "Connection reset by peer" in distributed.lost_peer_message(e)
  try:
    try:
      raise _gloo_error()
    except jax.errors.JaxRuntimeError as e:
      raise RuntimeError("saving failed") from e
  except RuntimeError as e:
    assert "Connection reset by peer" in distributed.lost_peer_message(e)


def test_other_errors_and_single_process_runs_are_not_lost_peers(two_processes, monkeypatch):
  del two_processes
  assert distributed.lost_peer_message(ValueError("config.batch_size must be positive")) is None
  assert distributed.lost_peer_message(jax.errors.JaxRuntimeError("RESOURCE_EXHAUSTED: out of memory")) is None
  monkeypatch.setattr(jax.distributed, "is_initialized", lambda: False)
  assert distributed.lost_peer_message(_gloo_error()) is None


def test_the_guard_passes_other_errors_through_and_returns_normally(two_processes, monkeypatch):
  del two_processes
  monkeypatch.setattr(distributed, "barrier", lambda name: None)
  with distributed.exit_on_lost_peer():
    pass
  with pytest.raises(KeyError), distributed.exit_on_lost_peer():
    raise KeyError("not a peer")
