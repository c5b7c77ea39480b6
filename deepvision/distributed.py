"""Multi-process runs: joining `jax.distributed`, process roles and rows, and stopping when a peer is lost.

With P processes of L devices, each process drives its local devices, reads its own block of rows of every
global batch (`process_rows`), and `jax.pmap`'s collectives span all P·L devices, so the run trains like one
process with P·L devices. Process 0 writes the logs (`is_primary`); `barrier` keeps the processes in step.
A lost process ends the others at once with a clear message (`exit_on_lost_peer`) or, when it stops answering,
after a timeout (`initialize_distributed`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import sys
from collections.abc import Iterator
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils

# Seconds. Heartbeat and shutdown: `jax.distributed.initialize`'s; collective: XLA:CPU's limit on one
# cross-process collective (gloo), `--xla_cpu_collective_timeout_seconds` (XLA's own default is 1800).
DEFAULT_HEARTBEAT_TIMEOUT = 100
DEFAULT_COLLECTIVE_TIMEOUT = 600
DEFAULT_SHUTDOWN_TIMEOUT = 60
# Exit status of a process that stopped because another process of the run was lost (EX_TEMPFAIL: rerunning
# every process resumes from the newest checkpoint).
LOST_PEER_EXIT_CODE = 75
_COLLECTIVE_TIMEOUT_FLAG = "--xla_cpu_collective_timeout_seconds"


def _check_seconds(name: str, value: Any) -> int:
  if not isinstance(value, int) or isinstance(value, bool) or value < 1:
    raise ValueError(f"{name} must be an int >= 1 (seconds), got {value!r}")
  return value


def _set_collective_timeout(seconds: int) -> None:
  """Puts `--xla_cpu_collective_timeout_seconds=seconds` in XLA_FLAGS (read when the backend starts)."""
  flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if not f.startswith(_COLLECTIVE_TIMEOUT_FLAG)]
  os.environ["XLA_FLAGS"] = " ".join([*flags, f"{_COLLECTIVE_TIMEOUT_FLAG}={seconds}"])


def initialize_distributed(coordinator_address: str | None = None, num_processes: int | None = None,
                           process_id: int | None = None, *, initialization_timeout: int = 300,
                           heartbeat_timeout: int = DEFAULT_HEARTBEAT_TIMEOUT,
                           collective_timeout: int = DEFAULT_COLLECTIVE_TIMEOUT,
                           shutdown_timeout: int = DEFAULT_SHUTDOWN_TIMEOUT) -> None:
  """Joins this process to a multi-process JAX run (`jax.distributed.initialize`).

  Call it before anything else touches JAX. With all three arguments None, JAX detects the cluster itself
  (SLURM, Open MPI, Cloud TPU pods); otherwise give all three. The coordinator (process 0) listens on
  `coordinator_address` ("host:port"): keep that port inside the cluster's private network, since the
  coordination service has no authentication.

  Once joined, the processes run one tiny collective together: it creates the CPU collectives' (gloo's)
  connections while the processes are in step, since creating them later waits only 30 s for a process
  that is slower to reach its first collective (then the run would fail for nothing).

  Args:
    coordinator_address: process 0's "host:port".
    num_processes: the number of processes in the run.
    process_id: this process's index in [0, num_processes).
    initialization_timeout: seconds to wait for every process to join.
    heartbeat_timeout: seconds without a heartbeat after which the coordination service declares a process
      dead; JAX then terminates every other process (SIGABRT, "... stopped sending heartbeats").
    collective_timeout: seconds a cross-process collective on CPU waits for the other processes before it
      fails (`--xla_cpu_collective_timeout_seconds`): it bounds the wait for a process that is alive but
      stuck, and must exceed the longest time one process may legitimately reach a collective after another.
    shutdown_timeout: seconds a finishing process waits at JAX's shutdown barrier for the others; past it
      JAX terminates them all.

  Raises:
    ValueError: arguments given partly, a process id outside [0, num_processes), an address that is not
      "host:port", or a timeout that is not an int >= 1 (before any connection is attempted).
  """
  given = [a is not None for a in (coordinator_address, num_processes, process_id)]
  if any(given) and not all(given):
    raise ValueError("give coordinator_address, num_processes and process_id together (or none of them, "
                     f"to auto-detect); got {coordinator_address!r}, {num_processes!r}, {process_id!r}")
  if all(given):
    host, _, port = str(coordinator_address).rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
      raise ValueError(f"coordinator_address must be 'host:port', got {coordinator_address!r}")
    if not isinstance(num_processes, int) or num_processes < 1:
      raise ValueError(f"num_processes must be an int >= 1, got {num_processes!r}")
    if not isinstance(process_id, int) or not 0 <= process_id < num_processes:
      raise ValueError(f"process_id must be an int in [0, {num_processes}), got {process_id!r}")
  for name, value in (("initialization_timeout", initialization_timeout), ("heartbeat_timeout", heartbeat_timeout),
                      ("collective_timeout", collective_timeout), ("shutdown_timeout", shutdown_timeout)):
    _check_seconds(name, value)
  _set_collective_timeout(collective_timeout)
  jax.distributed.initialize(coordinator_address, num_processes, process_id,
                             initialization_timeout=initialization_timeout,
                             heartbeat_timeout_seconds=heartbeat_timeout,
                             shutdown_timeout_seconds=shutdown_timeout)
  barrier("deepvision-distributed-start")


_TIMEOUT_FIELDS = {"heartbeat_timeout": ("distributed_heartbeat_timeout_s", DEFAULT_HEARTBEAT_TIMEOUT),
                   "collective_timeout": ("distributed_collective_timeout_s", DEFAULT_COLLECTIVE_TIMEOUT),
                   "shutdown_timeout": ("distributed_shutdown_timeout_s", DEFAULT_SHUTDOWN_TIMEOUT)}


def distributed_timeouts(config: Any) -> dict[str, int]:
  """`initialize_distributed`'s timeouts from a run config, as keyword arguments.

  The fields are `distributed_heartbeat_timeout_s`, `distributed_collective_timeout_s` and
  `distributed_shutdown_timeout_s` (seconds; the defaults above where a config lacks them).

  Raises:
    ValueError: a value that is not an int >= 1, naming the field.
  """
  return {arg: _check_seconds(f"config.{field}", config.get(field, default))
          for arg, (field, default) in _TIMEOUT_FIELDS.items()}


# How JAX reports a cross-process collective or the coordination service failing for lack of a peer: gloo's
# "Gloo AllReduce failed: ... Connection reset by peer" or "... Timed out waiting" (a JaxRuntimeError, or a
# ValueError when an input of the next computation already holds the error), "Gloo context initialization
# failed", the coordination service's heartbeat and RPC errors.
_LOST_PEER = re.compile(r"Gloo [\w -]+ failed|Connection (reset|closed) by peer|heartbeat timeout|"
                        r"stopped sending heartbeats|Failed to send RPC to coordination service")


def lost_peer_message(error: BaseException) -> str | None:
  """What to tell the user when `error` means another process of the run was lost; None when it does not.

  It does when this process is part of a multi-process run and `error`, or an exception it was raised from
  or while handling, is JAX's report of a cross-process collective or the coordination service failing.
  """
  if not jax.distributed.is_initialized() or jax.process_count() == 1:
    return None
  seen, cause = set(), None
  while error is not None and id(error) not in seen and cause is None:
    seen.add(id(error))
    if _LOST_PEER.search(str(error)):
      cause = error
    error = error.__cause__ or error.__context__
  if cause is None:
    return None
  me, count = jax.process_index(), jax.process_count()
  others = [p for p in range(count) if p != me]
  who = f"process {others[0]}" if len(others) == 1 else f"one of processes {others}"
  detail = str(cause).strip().splitlines()[0][:300]
  return (f"lost contact with {who} of this {count}-process run (killed, crashed, unreachable or stuck): "
          f"{detail}. Process {me} stops too (exit status {LOST_PEER_EXIT_CODE}). Rerun all {count} processes "
          "with the same command to resume from the newest checkpoint in the work dir.")


@contextlib.contextmanager
def exit_on_lost_peer() -> Iterator[None]:
  """The launcher's guard around a multi-process run: a lost peer ends this process at once, clearly.

  Inside the block, an error for which `lost_peer_message` has a message prints it to stderr and ends the
  process with status `LOST_PEER_EXIT_CODE` (`os._exit`: JAX's shutdown at exit would wait for the dead
  process until a timeout and then abort). Other errors pass through. When the block ends normally in a
  multi-process run, every process waits for the others (`barrier`), so they reach JAX's shutdown barrier
  together and `shutdown_timeout` need not cover work that only process 0 does at the end.
  """
  try:
    yield
    barrier("deepvision-run-end")
  except Exception as e:  # pylint: disable=broad-except
    message = lost_peer_message(e)
    if message is None:
      raise
    sys.stdout.flush()
    print(f"error: {message}", file=sys.stderr, flush=True)
    os._exit(LOST_PEER_EXIT_CODE)  # pylint: disable=protected-access


def process_index() -> int:
  """This process's index among the run's processes (0 without `jax.distributed`)."""
  return jax.process_index()


def process_count() -> int:
  """The number of processes in the run (1 without `jax.distributed`)."""
  return jax.process_count()


def is_primary() -> bool:
  """True in process 0, the one that writes logs, figures and checkpoint manifests."""
  return jax.process_index() == 0


def barrier(name: str) -> None:
  """Waits until every process reaches the barrier called `name` (nothing with one process)."""
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)


def any_process(flag: bool) -> bool:
  """True when `flag` is True in at least one process (a collective: every process must call it)."""
  if jax.process_count() == 1:
    return bool(flag)
  return bool(np.any(multihost_utils.process_allgather(np.asarray(flag, np.int32))))


def process_rows(num_rows: int) -> slice:
  """The rows of a global batch of `num_rows` that this process reads: the p-th of P equal blocks.

  Raises:
    ValueError: when the number of processes does not divide `num_rows`.
  """
  count = jax.process_count()
  if num_rows % count:
    raise ValueError(f"a global batch of {num_rows} rows does not split evenly over {count} processes")
  per_process = num_rows // count
  return slice(jax.process_index() * per_process, (jax.process_index() + 1) * per_process)


def gather_rows(x: Any) -> np.ndarray:
  """Inverse of `process_rows`: every process's block, concatenated in process order (collective)."""
  if jax.process_count() == 1:
    return np.asarray(jax.device_get(x))
  return np.asarray(multihost_utils.process_allgather(np.asarray(jax.device_get(x)), tiled=True))


def tree_digest(tree: Any) -> str:
  """sha256 of a pytree's leaves (shapes, dtypes and bytes, in tree order), as hex."""
  digest = hashlib.sha256()
  for leaf in jax.tree.leaves(jax.device_get(tree)):
    leaf = np.asarray(leaf)
    digest.update(f"{leaf.shape}{leaf.dtype}".encode())
    digest.update(np.ascontiguousarray(leaf).tobytes())
  return digest.hexdigest()


def check_replicas_agree(tree: Any) -> str:
  """`tree_digest(tree)`, after checking that every process holds the same tree (collective).

  Raises:
    RuntimeError: when the processes' trees differ (the replicas of a data-parallel run diverged).
  """
  digest = tree_digest(tree)
  if jax.process_count() > 1:
    mine = np.frombuffer(bytes.fromhex(digest), np.uint8)
    every = np.asarray(multihost_utils.process_allgather(mine)).reshape(jax.process_count(), -1)
    differing = [p for p in range(len(every)) if not np.array_equal(every[p], mine)]
    if differing:
      raise RuntimeError(f"process {jax.process_index()} holds parameters (sha256 {digest}) that differ from "
                         f"those of processes {differing}: the data-parallel replicas diverged")
  return digest
