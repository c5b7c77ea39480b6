r"""Data parallelism over devices and processes: the only module that calls `jax.pmap` or `jax.distributed`.

Synchronous data-parallel SGD (the scheme of Krizhevsky 2014, "One weird trick"; Goyal et al. 2017): the
global batch of B examples is split into D equal per-device batches of B/D. Every device holds a replica of
the parameters, computes the gradient of the mean loss over its B/D examples, and the replicas average them
with an all-reduce (`lax.pmean` over the axis `AXIS`) before the optimiser update. Since the shards are equal,

  (1/D) Σ_d ∇ (D/B) Σ_{i ∈ shard d} ℓ_i(θ) = ∇ (1/B) Σ_i ℓ_i(θ),

the update equals single-device training on the global batch (up to the order of floating-point sums), and
the replicas stay identical. Batch statistics (e.g. the mean hidden activity of a sparsity penalty) are
averaged the same way inside the step.

The step functions take `axis_name`: `make_train_step(..., axis_name=AXIS)` returns the same math with the
all-reduces inserted and per-device randomness from `fold_in(fold_in(state.key, state.step), axis_index)`.
`data_parallel` builds such a step and pmaps it, donating the state's buffers (the pattern of flax's
`examples/imagenet/train.py`).

Batch size: a config's `batch_size` is the GLOBAL batch; the per-device batch is derived,
`per_device_batch(batch_size, num_devices)`, and must divide exactly.

Trainers use `Replicas` (`Replicas.from_config(num_devices)`): it compiles the guarded step with plain
`jax.jit` on one device, or with `jax.pmap` over D > 1 devices, places a host-layout state on the devices
and brings it back (`place_state` / `host_state`) for checkpoints and evaluation, so checkpoints are
always in the host layout and a run may resume on another number of devices.

Many processes (multi-host): `initialize_distributed` starts `jax.distributed`; each process then drives
its local devices, `jax.pmap`'s collectives span every device of every process, and each process reads its
own rows of every global batch (`process_rows`). With P processes of L devices the per-device batch is
B / (P·L) and device d of process p is replica p·L + d, so the result equals one process with P·L devices.
Only process 0 writes logs, figures and checkpoint manifests (`is_primary`); orbax writes checkpoints from
all processes; `barrier` keeps the processes in step around file operations.

A lost process never leaves the others hanging. A process killed outright closes its connections, so the
next cross-process collective of every other process (each training step has some) fails at once (gloo:
"Connection reset by peer"); `exit_on_lost_peer` turns that error into a clear message and exit status
`LOST_PEER_EXIT_CODE` without waiting at JAX's shutdown barrier for the dead process. A process that stops
without closing its connections (frozen, or its host unreachable) misses the coordination service's
heartbeats: after `heartbeat_timeout` seconds JAX itself terminates every other process (SIGABRT, "Terminating
process because the JAX distributed service detected fatal errors ... stopped sending heartbeats: N"). A
process alive but stuck outside the collectives leaves the others waiting in one for at most
`collective_timeout` seconds (then the same message and exit status). Either way, rerunning all processes
resumes from the newest checkpoint.

Layout: a device-resident tree has a leading axis of length D. Replicated leaves (parameters, optimiser
state, step, key) hold D equal copies (`replicate` / `unreplicate`); sharded leaves (data batches, the
persistent chains of PCD) hold D different slices (`shard_batch` / `unshard`).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import hashlib
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils

AXIS = "batch"

# Fields of a train state that hold one slice per device rather than a replica.
SHARDED_STATE_FIELDS = ("chains",)


def local_device_count() -> int:
  """The number of devices attached to this process."""
  return jax.local_device_count()


def _devices(num_devices: int | None) -> list[jax.Device]:
  available = jax.local_devices()
  if num_devices is None:
    return available
  if (not isinstance(num_devices, int) or isinstance(num_devices, bool)
      or not 1 <= num_devices <= len(available)):
    raise ValueError(f"num_devices must be an int in [1, {len(available)}] (the local devices), got "
                     f"{num_devices!r}")
  return available[:num_devices]


def per_device_batch(global_batch: int, num_devices: int) -> int:
  """B / D, the examples each device sees per step, for a global batch B over D devices.

  Raises:
    ValueError: when B or D is < 1 or D does not divide B.
  """
  if num_devices < 1 or global_batch < 1 or global_batch % num_devices:
    raise ValueError(f"the global batch_size {global_batch!r} must be a positive multiple of the number of "
                     f"devices {num_devices!r} (itself >= 1)")
  return global_batch // num_devices


def _sharding(devices: Sequence[jax.Device]) -> jax.sharding.NamedSharding:
  """The layout `jax.pmap` gives its outputs: leading axis split over a 1-D mesh named `AXIS`."""
  mesh = jax.sharding.Mesh(np.array(devices), (AXIS,))
  return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(AXIS))


def _split_leading(x: Any, num_devices: int) -> Any:
  per_device = per_device_batch(x.shape[0], num_devices)
  return x.reshape(num_devices, per_device, *x.shape[1:])


def shard_batch(batch: Any, num_devices: int | None = None) -> Any:
  """Host pytree with leading axis B → device arrays (D, B/D, ...), slice d on device d.

  Raises:
    ValueError: when a leaf's leading axis is not a multiple of D (before anything is copied).
  """
  devices = _devices(num_devices)
  as_array = lambda x: x if isinstance(x, jax.Array) else np.asarray(x)  # noqa: E731
  split = jax.tree.map(lambda x: _split_leading(as_array(x), len(devices)), batch)
  return jax.device_put(split, _sharding(devices))


def unshard(tree: Any) -> Any:
  """Inverse of `shard_batch`: (D, B/D, ...) → (B, ...), slices concatenated in device order."""
  return jax.tree.map(lambda x: x.reshape(x.shape[0] * x.shape[1], *x.shape[2:]), tree)


def replicate(tree: Any, num_devices: int | None = None) -> Any:
  """One copy of every leaf per device: leaf (...) → (D, ...)."""
  devices = _devices(num_devices)
  stacked = jax.tree.map(lambda x: jnp.broadcast_to(x, (len(devices), *jnp.shape(x))), tree)
  return jax.device_put(stacked, _sharding(devices))


def unreplicate(tree: Any) -> Any:
  """Device 0's copy of every leaf: (D, ...) → (...)."""
  return jax.tree.map(lambda x: x[0], tree)


def _split_state(state: Any, fields: Sequence[str]) -> tuple[Any, dict[str, Any]]:
  sharded = {name: getattr(state, name) for name in fields if getattr(state, name, None) is not None}
  return state.replace(**{name: None for name in sharded}), sharded


def shard_state(state: Any, num_devices: int | None = None,
                sharded_fields: Sequence[str] = SHARDED_STATE_FIELDS) -> Any:
  """A host train state → device layout: `sharded_fields` (e.g. PCD chains) split, the rest replicated.

  With C persistent chains over D devices, device d advances chains [d·C/D, (d+1)·C/D).
  """
  replicated, sharded = _split_state(state, sharded_fields)
  return replicate(replicated, num_devices).replace(
      **{name: shard_batch(value, num_devices) for name, value in sharded.items()})


def unshard_state(state: Any, sharded_fields: Sequence[str] = SHARDED_STATE_FIELDS) -> Any:
  """Inverse of `shard_state`: one host-layout state (for checkpoints, evaluation)."""
  replicated, sharded = _split_state(state, sharded_fields)
  return unreplicate(replicated).replace(**{name: unshard(value) for name, value in sharded.items()})


def prefetch_to_devices(iterator: Iterable[Any], num_devices: int | None = None,
                        size: int = 2) -> Iterator[Any]:
  """Yields `shard_batch(b)` for the host batches b, keeping `size` batches in flight.

  `jax.device_put` is asynchronous, so the copies of the next batches overlap the current step.
  """
  if not isinstance(size, int) or size < 1:
    raise ValueError(f"prefetch size must be an int >= 1, got {size!r}")
  queue = collections.deque()
  iterator = iter(iterator)

  def enqueue(n):
    for batch in iterator:
      queue.append(shard_batch(batch, num_devices))
      n -= 1
      if n == 0:
        return

  enqueue(size)
  while queue:
    yield queue.popleft()
    enqueue(1)


class DevicePrefetch:
  """Host batches split over the local devices (`shard_batch`), `size` of them in flight ahead of the step.

  `jax.device_put` is asynchronous, so copying the next batches overlaps the current step. The wrapper keeps
  the host iterator's resumable position: `get_state()` is the host state from before the oldest batch not
  yet handed out, so a checkpoint never skips the batches waiting in the queue; `set_state` empties the queue.

  Attributes:
    host: the wrapped iterator of host batches.
  """

  def __init__(self, iterator: Any, num_devices: int | None = None, size: int = 2):
    if not isinstance(size, int) or size < 1:
      raise ValueError(f"prefetch size must be an int >= 1, got {size!r}")
    self.host = iterator
    self._num_devices = num_devices
    self._size = size
    self._queue: collections.deque = collections.deque()  # (host state before the batch, device batch)

  def __iter__(self) -> DevicePrefetch:
    return self

  def __next__(self) -> Any:
    while len(self._queue) < self._size:
      before = self.host.get_state() if hasattr(self.host, "get_state") else None
      try:
        batch = next(self.host)
      except StopIteration:
        break
      self._queue.append((before, shard_batch(batch, self._num_devices)))
    if not self._queue:
      raise StopIteration
    return self._queue.popleft()[1]

  def get_state(self) -> Any:
    return self._queue[0][0] if self._queue else self.host.get_state()

  def set_state(self, state: Any) -> None:
    self._queue.clear()
    self.host.set_state(state)


def pmap_train_step(step_fn: Callable[..., tuple[Any, Any]], num_devices: int | None = None,
                    donate_state: bool = True) -> Callable[..., tuple[Any, Any]]:
  """pmaps `step_fn(state, batch, ...) -> (state, metrics)` built with `axis_name=AXIS`.

  Every argument and output has the device axis in front (`shard_state`, `shard_batch`; the metrics come
  back replicated: take `unreplicate(metrics)`). The state's buffers are donated, so the caller must use
  the returned state and drop the one passed in. Any extra arguments (e.g. the fault record of
  `runner.guard_step`) are mapped too: pass them replicated.
  """
  return jax.pmap(step_fn, axis_name=AXIS, devices=_devices(num_devices),
                  donate_argnums=(0,) if donate_state else ())


def data_parallel(make_step: Callable[..., Callable[..., tuple[Any, Any]]], *args: Any,
                  num_devices: int | None = None, donate_state: bool = True, **kwargs: Any
                  ) -> Callable[..., tuple[Any, Any]]:
  """`pmap_train_step(make_step(*args, axis_name=AXIS, **kwargs))`.

  Example:
    step = data_parallel(supervised.make_train_step, preprocess, lr_fn, ema_decay)
    state, metrics = step(shard_state(state), shard_batch(batch))
  """
  return pmap_train_step(make_step(*args, axis_name=AXIS, **kwargs), num_devices=num_devices,
                         donate_state=donate_state)


# ----------------------------------------------------------------------------- processes (multi-host)


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
      dead; JAX then terminates every other process (see the module docstring).
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


# ----------------------------------------------------------------------------- the trainers' view


@dataclasses.dataclass(frozen=True)
class Replicas:
  """Where a trainer's step runs: one device (plain `jax.jit`) or every replica of a data-parallel run.

  Attributes:
    num_local_devices: devices this process drives.
    num_devices: replicas over all processes (`num_local_devices × process_count()`); > 1 means pmap.
  """

  num_local_devices: int

  @classmethod
  def from_config(cls, num_devices: int) -> Replicas:
    """`num_devices` local devices per process; 0 means all of them.

    Raises:
      ValueError: a value outside [0, local devices], or fewer than all local devices in a multi-process
        run (`jax.pmap` across processes spans every device).
    """
    available = jax.local_device_count()
    if (not isinstance(num_devices, (int, np.integer)) or isinstance(num_devices, bool)
        or not 0 <= num_devices <= available):
      raise ValueError(f"num_devices must be an int in [0, {available}] (0: all {available} local devices), "
                       f"got {num_devices!r}")
    num_devices = int(num_devices) or available
    if jax.process_count() > 1 and num_devices != available:
      raise ValueError(f"num_devices={num_devices}: a multi-process run uses all {available} local devices "
                       "of every process (set num_devices to 0)")
    return cls(num_devices)

  @property
  def num_devices(self) -> int:
    return self.num_local_devices * jax.process_count()

  @property
  def parallel(self) -> bool:
    return self.num_devices > 1

  @property
  def axis_name(self) -> str | None:
    """`AXIS` for the step builders' `axis_name` when data-parallel, else None (the one-device step)."""
    return AXIS if self.parallel else None

  def per_device_batch(self, global_batch: int) -> int:
    """The examples each replica sees per step (raises ValueError when the replicas do not divide it)."""
    return per_device_batch(global_batch, self.num_devices)

  def _devices(self) -> list[jax.Device] | None:
    return None if jax.process_count() > 1 else _devices(self.num_local_devices)

  def compile(self, guarded_step: Callable[..., tuple[Any, Any, Any]]) -> Callable[..., tuple[Any, Any, Any]]:
    """`step(state, fault, batch) -> (state, fault, metrics)` from `runner.guard_step(step_fn)`.

    One device: `jax.jit`, state donated. Data-parallel: `jax.pmap` over the replicas, state donated; the
    batch is this process's host rows (split here over the local devices) and the metrics come back as
    one copy (they were averaged over the replicas inside the step).
    """
    if not self.parallel:
      return jax.jit(guarded_step, donate_argnums=0)
    mapped = jax.pmap(guarded_step, axis_name=AXIS, devices=self._devices(), donate_argnums=(0,))
    local = self.num_local_devices
    placed = _sharding(_devices(local))

    def step(state, fault, batch):
      on_devices = all(isinstance(x, jax.Array) and x.sharding == placed for x in jax.tree.leaves(batch))
      state, fault, metrics = mapped(state, fault, batch if on_devices else shard_batch(batch, local))
      return state, fault, unreplicate(metrics)

    return step

  def batches(self, iterator: Any, size: int = 2) -> Any:
    """The training batches as the compiled step takes them: `DevicePrefetch` when data-parallel."""
    return DevicePrefetch(iterator, self.num_local_devices, size) if self.parallel else iterator

  def initial_fault(self, fault: Any) -> Any:
    """The guard's initial record, replicated when data-parallel."""
    return replicate(fault, self.num_local_devices) if self.parallel else fault

  def place_state(self, state: Any) -> Any:
    """A host-layout train state onto the replicas (PCD chains: this process's rows, split by device)."""
    if not self.parallel:
      return state
    replicated, sharded = _split_state(state, SHARDED_STATE_FIELDS)
    local = {name: jax.tree.map(lambda x: np.asarray(x)[process_rows(x.shape[0])], value)
             for name, value in sharded.items()}
    return replicate(replicated, self.num_local_devices).replace(
        **{name: shard_batch(value, self.num_local_devices) for name, value in local.items()})

  def host_state(self, state: Any) -> Any:
    """Inverse of `place_state`: one host-layout state, equal in every process (collective when multi-process)."""
    if not self.parallel:
      return state
    if jax.process_count() == 1:
      return jax.tree.map(_host_leaf, unshard_state(state))
    replicated, sharded = _split_state(state, SHARDED_STATE_FIELDS)
    host = jax.tree.map(_host_leaf, unreplicate(replicated))
    return host.replace(**{name: jax.tree.map(gather_rows, unshard(value)) for name, value in sharded.items()})


def _host_leaf(x: Any) -> Any:
  """A host copy (numpy) of a device array; typed PRNG keys stay keys (on the first device)."""
  if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
    return jax.device_put(x, jax.local_devices()[0])
  return np.asarray(jax.device_get(x))


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
