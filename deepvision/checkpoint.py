"""Verified checkpoints on orbax: the train state plus the data iterator's position, keep-N, never non-finite.

A checkpoint is labelled by the number of completed updates (`state.step`) and holds two items: `state`
(parameters, optimiser state, step, the run's key as raw key data) and `data` (the input iterator's JSON
state). Orbax writes `N.orbax-checkpoint-tmp` and renames it to `N` when complete; after each committed
save a manifest of sizes and SHA-256 digests is written into `N/` (`deepvision.checkpoint_manifest`).
`restore(template)` restores the newest step that verifies against its manifest, falling back step by step
and announcing each rejected step (`CheckpointIntegrityWarning`); nothing is ever deleted (a damaged step
that must be overwritten is renamed `N.damaged-<UTC time>`). One process writes to a directory at a time.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import shutil
import sys
import warnings
from typing import Any

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from deepvision import distributed
from deepvision.checkpoint_manifest import (MANIFEST_NAME, MANIFEST_TMP, ORBAX_TMP_DIR, STEP_DIR, fsync,
                                            library_versions, verify_step, write_manifest)

__all__ = ["MANIFEST_NAME", "Checkpointer", "CheckpointCorruptedError", "CheckpointIntegrityWarning",
           "CheckpointRestoreError", "NonFiniteStateError", "library_versions", "read_state"]

_log = logging.getLogger(__name__)


class NonFiniteStateError(FloatingPointError):
  """Raised instead of saving a state that holds NaN or Inf."""


class CheckpointIntegrityWarning(UserWarning):
  """A checkpoint step failed verification against its manifest and was skipped."""


class CheckpointCorruptedError(RuntimeError):
  """No checkpoint step (or not the one asked for) verifies against its manifest.

  Attributes:
    directory: the checkpoint directory.
    rejected: `{step: reason}` for every step that was rejected.
  """

  def __init__(self, directory: str, rejected: dict[int, str], hint: str = ""):
    self.directory = directory
    self.rejected = dict(rejected)
    lines = "\n".join(f"  step {step}: {reason}" for step, reason in sorted(rejected.items(), reverse=True))
    super().__init__(f"no valid checkpoint in {directory}; rejected steps (nothing was deleted):\n{lines}"
                     + (f"\n{hint}" if hint else ""))


class CheckpointRestoreError(RuntimeError):
  """A step verified against its manifest, but orbax could not restore it into the template."""


def read_state(directory: str | os.PathLike) -> tuple[dict[str, Any], int]:
  """`(state, step)`: the train state of the newest step of `directory` that verifies, as nested dicts of
  numpy arrays, read without a template (so any trainer's state, e.g. to take its parameters).

  Raises:
    FileNotFoundError: no checkpoint in `directory`.
    CheckpointCorruptedError: none of its steps verifies.
  """
  if not os.path.isdir(directory):  # reading must not create the directory (Checkpointer would)
    raise FileNotFoundError(f"no checkpoint in {os.path.abspath(directory)}")
  checkpointer = Checkpointer(directory)
  try:
    steps = checkpointer.all_steps()
    if not steps:
      raise FileNotFoundError(f"no checkpoint in {checkpointer.directory}")
    step = checkpointer.latest_valid_step()
    if step is None:
      raise CheckpointCorruptedError(checkpointer.directory, {s: checkpointer.verify(s) for s in steps})
    path = os.path.join(checkpointer.step_directory(step), "state")
  finally:
    checkpointer.close()
  with ocp.StandardCheckpointer() as reader:
    return reader.restore(path), step


def _is_key(x: Any) -> bool:
  return isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _to_saveable(state: Any) -> dict:
  """State dict with typed PRNG keys replaced by their raw uint32 data (orbax stores plain arrays)."""
  tree = flax.serialization.to_state_dict(state)
  return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, tree)


def _non_finite_leaves(tree: Any) -> list[str]:
  bad = []
  for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
    arr = np.asarray(leaf)
    if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
      bad.append(jax.tree_util.keystr(path))
  return bad


class Checkpointer:
  """Saves, verifies and restores `(train_state, data_state)` pairs in `directory`, keeping the newest `keep`.

  Args:
    directory: where the checkpoints live (created if missing).
    keep: how many checkpoints to keep (the newest ones; damaged steps count until moved aside).
    metadata: JSON-serialisable facts about the run recorded in every manifest, e.g.
      `{"config_hash": ..., "versions": {...}}`; library versions are recorded in any case.

  Construction removes what interrupted saves leave behind (directories named exactly like orbax's
  temporaries, `<N>.orbax-checkpoint-tmp[-<digits>]`, and temporary manifests inside committed steps),
  logging each removal; do not construct one on a directory another process is saving into.

  Attributes:
    directory: absolute path of the checkpoint directory.
    restored_step: the step the last `restore` returned (None before any).
    removed_temporaries: paths removed at construction (leftovers of interrupted saves).
  """

  def __init__(self, directory: str | os.PathLike, keep: int = 3, metadata: dict | None = None):
    if isinstance(keep, bool) or not isinstance(keep, (int, np.integer)) or keep < 1:
      raise ValueError(f"keep must be an integer >= 1 checkpoint, got {keep!r}")
    if metadata is not None:
      if not isinstance(metadata, dict):
        raise ValueError(f"metadata must be a dict or None, got {type(metadata).__name__}")
      try:
        json.dumps(metadata, allow_nan=False)
      except (TypeError, ValueError) as e:
        raise ValueError(f"metadata must be JSON-serialisable (plain dicts, lists, strings, finite numbers): {e}") \
            from e
    self.directory = os.path.abspath(os.fspath(directory))
    self.metadata = metadata
    self.restored_step: int | None = None
    self._announced: set[tuple[int, str]] = set()
    os.makedirs(self.directory, exist_ok=True)
    # Several processes (multi-host): process 0 does the file operations, orbax writes from all of them.
    self.removed_temporaries = self._remove_temporaries() if distributed.is_primary() else []
    distributed.barrier("deepvision-checkpointer-init")
    options = ocp.CheckpointManagerOptions(max_to_keep=int(keep), save_interval_steps=1, create=True,
                                           enable_async_checkpointing=False)
    self._manager = ocp.CheckpointManager(self.directory, options=options, item_names=("state", "data"))

  # Steps and their verification.

  def latest_step(self) -> int | None:
    """The newest step orbax lists, verified or not (None when there is none); see `latest_valid_step`."""
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    """Every step orbax lists, oldest first, verified or not."""
    return list(self._manager.all_steps())

  def step_directory(self, step: int) -> str:
    return os.path.join(self.directory, str(int(step)))

  def manifest_path(self, step: int) -> str:
    return os.path.join(self.step_directory(step), MANIFEST_NAME)

  def read_manifest(self, step: int) -> dict:
    """The manifest of `step` as written (raises FileNotFoundError or ValueError when absent or not JSON)."""
    with open(self.manifest_path(step), encoding="utf-8") as f:
      return json.load(f)

  def verify(self, step: int) -> str | None:
    """Checks `step` against its manifest: None when every listed file has its size and SHA-256, else why not.

    Reads every file of the step (the cost of one read of the checkpoint).
    """
    return verify_step(self.step_directory(step), step)

  def latest_valid_step(self) -> int | None:
    """The newest step that verifies against its manifest (None when none does); announces rejected steps."""
    for step in sorted(self.all_steps(), reverse=True):
      reason = self.verify(step)
      if reason is None:
        return step
      self._announce(step, reason)
    return None

  def _announce(self, step: int, reason: str, action: str = "skipping it") -> None:
    """Warns (CheckpointIntegrityWarning) and prints one stderr line, once per (step, reason) per instance."""
    if (step, reason) in self._announced:
      return
    self._announced.add((step, reason))
    message = f"checkpoint step {step} in {self.directory} failed verification: {reason}; {action}"
    print(message, file=sys.stderr)
    warnings.warn(message, CheckpointIntegrityWarning, stacklevel=3)

  # Saving.

  def save(self, state: Any, data_state: dict | None = None) -> None:
    """Saves `state` (labelled `state.step`) and the iterator state, then writes the step's manifest.

    An existing step of the same number is kept if it verifies (nothing is written) and moved aside to
    `<step>.damaged-<time>` if it does not; damaged steps newer than `state.step` are moved aside too, so
    that keep-N retention never retires valid steps in favour of damaged newer ones.

    Raises:
      NonFiniteStateError: if any floating leaf of the state is NaN or Inf (nothing is written).
    """
    tree = _to_saveable(state)
    if distributed.process_count() > 1:  # host copies, equal in every process: orbax writes them from process 0
      tree = jax.tree.map(lambda x: np.asarray(jax.device_get(x)), tree)
    bad = _non_finite_leaves(tree)
    if bad:
      raise NonFiniteStateError(
          f"refusing to save step {int(state.step)}: non-finite values in {', '.join(bad[:5])}")
    step = int(jax.device_get(state.step))
    moved = False
    for existing in sorted(s for s in self.all_steps() if s >= step):
      reason = self.verify(existing)
      if reason is None:
        if existing == step:
          return  # already saved and intact
        continue
      if distributed.is_primary():
        self._move_aside(existing, reason, saving=step)
      moved = True
    if moved:
      distributed.barrier(f"deepvision-move-aside-{step}")
      self._manager.reload()
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(tree), data=ocp.args.JsonSave(data_state or {})), force=True)
    self._manager.wait_until_finished()
    if not os.path.isdir(self.step_directory(step)):
      raise RuntimeError(f"orbax reported saving step {step} but {self.step_directory(step)} does not exist")
    if distributed.is_primary():
      self._write_manifest(step)
    distributed.barrier(f"deepvision-manifest-{step}")

  def _move_aside(self, step: int, reason: str, saving: int) -> str:
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    target = os.path.join(self.directory, f"{step}.damaged-{stamp}")
    suffix = 1
    while os.path.exists(target):
      target = os.path.join(self.directory, f"{step}.damaged-{stamp}-{suffix}")
      suffix += 1
    os.rename(self.step_directory(step), target)
    fsync(self.directory, directory=True)
    self._announced = {(s, r) for s, r in self._announced if s != step}
    self._announce(step, reason, action=f"moved it aside to {os.path.basename(target)} before saving step {saving}")
    return target

  def _write_manifest(self, step: int) -> None:
    """Hashes and fsyncs every file of the committed step, then writes its manifest atomically."""
    write_manifest(self.step_directory(step), step, self.metadata)

  def _remove_temporaries(self) -> list[str]:
    """Removes orbax temporary step directories and temporary manifests left by interrupted saves."""
    removed = []
    with os.scandir(self.directory) as entries:
      entries = sorted(entries, key=lambda e: e.name)
    for entry in entries:
      if ORBAX_TMP_DIR.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False):
        shutil.rmtree(entry.path)
        removed.append(entry.path)
        _log.warning("removed %s, the temporary directory of an interrupted checkpoint save", entry.path)
      elif STEP_DIR.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False):
        with os.scandir(entry.path) as inner:
          stale = [e for e in inner if MANIFEST_TMP.fullmatch(e.name) and e.is_file(follow_symlinks=False)]
        for e in stale:
          os.remove(e.path)
          removed.append(e.path)
          _log.warning("removed %s, a manifest left unfinished by an interrupted save", e.path)
    return removed

  # Restoring.

  def restore(self, template: Any, step: int | None = None, *, verify: bool = True) -> tuple[Any, dict]:
    """Restores a verified checkpoint into the structure of `template`; sets `restored_step`.

    Args:
      template: a state of the right structure (e.g. a freshly initialised `TrainState`).
      step: which checkpoint; None for the newest step that verifies, falling back past damaged
        ones (each announced with a CheckpointIntegrityWarning and a stderr line).
      verify: check the step against its manifest first; False restores `step` (or the newest step)
        as it is, e.g. one saved before manifests existed.

    Returns:
      `(state, data_state)`.

    Raises:
      FileNotFoundError: no checkpoint at all, or none of number `step`.
      CheckpointCorruptedError: no step verifies (or `step` does not).
      CheckpointRestoreError: the chosen step verified but orbax could not restore it into `template`.
    """
    steps = self.all_steps()
    if not steps:
      raise FileNotFoundError(f"no checkpoint in {self.directory}")
    if step is not None:
      step = int(step)
      if step not in steps:
        raise FileNotFoundError(f"no checkpoint of step {step} in {self.directory}; its steps are {steps}")
      reason = self.verify(step) if verify else None
      if reason is not None:
        raise CheckpointCorruptedError(self.directory, {step: reason}, hint=(
            f"To restore step {step} as it is, pass verify=False; restore(template) falls back to the "
            "newest step that verifies."))
      return self._restore_step(template, step)
    if not verify:
      return self._restore_step(template, steps[-1])
    rejected = {}
    for candidate in sorted(steps, reverse=True):
      reason = self.verify(candidate)
      if reason is None:
        return self._restore_step(template, candidate)
      rejected[candidate] = reason
      older = [s for s in steps if s < candidate]
      self._announce(candidate, reason, action=f"trying step {older[-1]}" if older else "no older step")
    raise CheckpointCorruptedError(self.directory, rejected, hint=(
        "To restore a step as it is (e.g. one saved before manifests existed), pass step=N, verify=False."))

  def restore_latest_valid(self, template: Any) -> tuple[Any, dict, int]:
    """`restore(template)` that also returns the step it restored: `(state, data_state, step)`."""
    state, data_state = self.restore(template)
    return state, data_state, self.restored_step

  def _restore_step(self, template: Any, step: int) -> tuple[Any, dict]:
    if distributed.process_count() > 1:  # restore host copies in every process (see `save`)
      target = jax.tree.map(lambda x: np.zeros(x.shape, x.dtype), _to_saveable(template))
    else:
      target = jax.tree.map(ocp.utils.to_shape_dtype_struct, _to_saveable(template))
    try:
      restored = self._manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(target), data=ocp.args.JsonRestore()))
      template_dict = flax.serialization.to_state_dict(template)
      tree = jax.tree.map(lambda t, r: jax.random.wrap_key_data(jnp.asarray(r), impl=jax.random.key_impl(t))
                          if _is_key(t) else jnp.asarray(r), template_dict, restored["state"])
      state = flax.serialization.from_state_dict(template, tree)
    except Exception as e:  # pylint: disable=broad-except
      raise CheckpointRestoreError(
          f"checkpoint step {step} in {self.directory} could not be restored into the template "
          f"({type(e).__name__}: {e}); the step passed verification (or verification was off), so the "
          "template's structure, shapes or dtypes likely differ from the saved state's") from e
    self.restored_step = step
    return state, dict(restored["data"] or {})

  def close(self) -> None:
    self._manager.close()
