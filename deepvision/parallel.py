r"""Synchronous data parallelism over devices with `jax.pmap` (Krizhevsky 2014; Goyal et al. 2017).

The global batch of B examples is split into D per-device batches of B/D; every device holds a replica of the
parameters, and the replicas average their gradients (`lax.pmean` over `AXIS`) before the update. Since

  (1/D) Σ_d ∇ (D/B) Σ_{i ∈ shard d} ℓ_i(θ) = ∇ (1/B) Σ_i ℓ_i(θ),

D devices train like one device on the global batch. A device-resident tree has a leading axis of length D:
replicated leaves hold D equal copies (`replicate`), sharded leaves (batches, PCD chains) D slices
(`shard_batch`). Runs over several processes: `deepvision.distributed`.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from deepvision import distributed

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
    local = {name: jax.tree.map(lambda x: np.asarray(x)[distributed.process_rows(x.shape[0])], value)
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
    return host.replace(**{name: jax.tree.map(distributed.gather_rows, unshard(value))
                           for name, value in sharded.items()})


def _host_leaf(x: Any) -> Any:
  """A host copy (numpy) of a device array; typed PRNG keys stay keys (on the first device)."""
  if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
    return jax.device_put(x, jax.local_devices()[0])
  return np.asarray(jax.device_get(x))
