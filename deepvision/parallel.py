r"""Data parallelism over the local devices: the only module that calls `jax.pmap`.

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

Layout: a device-resident tree has a leading axis of length D. Replicated leaves (parameters, optimiser
state, step, key) hold D equal copies (`replicate` / `unreplicate`); sharded leaves (data batches, the
persistent chains of PCD) hold D different slices (`shard_batch` / `unshard`).
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

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
