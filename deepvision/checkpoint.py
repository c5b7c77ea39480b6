"""Verified checkpoints on orbax: the train state plus the data iterator's position, keep-N, never non-finite.

A checkpoint is labelled by the number of completed updates (`state.step`) and holds two items:
`state` (parameters, optimiser state, step, the run's key as raw key data) and `data` (the input
iterator's JSON state). Orbax writes it synchronously into `N.orbax-checkpoint-tmp` and renames that
to `N` when complete, so a killed process leaves either the whole step or a temporary directory.

Orbax does not detect damage after that: a flipped byte may restore silently with wrong values, a
truncated file fails with a generic error, and `all_steps()` still lists the damaged step. So, after
each committed save, `Checkpointer` writes a manifest into the step directory,

    <directory>/<N>/deepvision_manifest.json
    {"format": "deepvision-checkpoint-manifest", "format_version": 1, "step": N,
     "created": ISO-8601 UTC time, "algorithm": "sha256",
     "files": {relative path: {"size": bytes, "sha256": hex digest}, ...},
     "metadata": the `metadata` given to the Checkpointer (or null),
     "versions": {"python", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy"}}

covering every file orbax wrote under `<N>/`. The manifest is written to a temporary file, flushed and
fsynced, then renamed over the final name (and the directory fsynced); the checkpoint's own files are
fsynced before the manifest is written, so a manifest on disk never vouches for data that is not.
Orbax tolerates the extra file on restore, and deletes it with the step when `keep` retires the step,
so retention needs no bookkeeping.

Verification (`verify`) rejects a step when: its manifest is missing (a kill between orbax's commit
and the manifest write, or a step saved before manifests existed), unreadable or not JSON, malformed,
or for another step; or when a listed file is missing, has another size (truncated or extended), or
another SHA-256 (flipped bytes). Files present but not listed are tolerated: orbax reads only files
that the listed (and checked) metadata and OCDBT manifests name, so an extra file cannot change what
is restored, and rejecting it would discard good checkpoints because of a stray file.

`restore(template)` restores the newest step that verifies, falling back step by step; every
rejected step is announced once per `Checkpointer` with a `CheckpointIntegrityWarning` and a line on
stderr naming the step and the reason. Nothing is deleted. When no step verifies,
`CheckpointCorruptedError` lists every step and its reason. A step that verifies but that orbax cannot
restore into the template (e.g. a structure mismatch) is a real error, raised as
`CheckpointRestoreError`, never a reason to fall back.

Saving step N when a step N already exists: if it verifies, the save is skipped (as before); if it
does not (a run resumed from an older valid step K and re-trained up to N), the damaged step is moved
aside to `N.damaged-<UTC time>` (a rename, not a deletion, which orbax no longer lists as a step) and
N is saved afresh. Damaged steps newer than N are moved aside the same way, so that keep-N retention
never retires valid steps in favour of damaged newer ones.

Construction removes what interrupted saves leave behind: directories named exactly like orbax's
temporaries (`<N>.orbax-checkpoint-tmp` or `<N>.orbax-checkpoint-tmp-<digits>`), and temporary
manifest files inside committed steps; each removal is logged. One process writes to a directory at a
time (as orbax itself assumes); do not construct a `Checkpointer` on a directory another process is
saving into.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import importlib.metadata
import json
import logging
import os
import platform
import re
import shutil
import sys
import warnings
from typing import Any

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from deepvision import parallel

MANIFEST_NAME = "deepvision_manifest.json"
MANIFEST_FORMAT = "deepvision-checkpoint-manifest"
MANIFEST_FORMAT_VERSION = 1
VERSIONED_PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy")

# Orbax's temporary step directories: `<step>.orbax-checkpoint-tmp`, older versions add `-<timestamp>`.
_ORBAX_TMP_DIR = re.compile(r"\d+\.orbax-checkpoint-tmp(-\d+)?")
_MANIFEST_TMP = re.compile(re.escape(MANIFEST_NAME) + r"\.tmp-\d+")
_STEP_DIR = re.compile(r"\d+")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_HASH_CHUNK = 1 << 20

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


def library_versions() -> dict[str, str | None]:
  """Versions of Python and of the libraries a checkpoint's contents depend on (None: not installed)."""
  versions: dict[str, str | None] = {"python": platform.python_version()}
  for name in VERSIONED_PACKAGES:
    try:
      versions[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      versions[name] = None
  return versions


def _fsync(path: str, directory: bool = False) -> None:
  """Flushes `path` to disk where the platform allows it (directories cannot be opened on Windows)."""
  try:
    fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0))
  except OSError:
    return
  try:
    with contextlib.suppress(OSError):  # some file systems cannot fsync a directory: nothing to flush
      os.fsync(fd)
  finally:
    os.close(fd)


def _sha256(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    while chunk := f.read(_HASH_CHUNK):
      digest.update(chunk)
  return digest.hexdigest()


def _step_files(step_dir: str) -> list[str]:
  """Relative POSIX paths of the files under `step_dir`, manifest files excluded, sorted."""
  files = []
  for root, _, names in os.walk(step_dir):
    for name in names:
      if name == MANIFEST_NAME or _MANIFEST_TMP.fullmatch(name):
        continue
      files.append(os.path.relpath(os.path.join(root, name), step_dir).replace(os.sep, "/"))
  return sorted(files)


def _check_manifest(manifest: Any, step: int) -> str | None:
  """Why `manifest` is not a well-formed manifest for `step` (None when it is)."""
  if not isinstance(manifest, dict):
    return f"manifest malformed: a JSON {type(manifest).__name__}, not an object"
  if manifest.get("format") != MANIFEST_FORMAT or manifest.get("format_version") != MANIFEST_FORMAT_VERSION:
    return (f"manifest malformed: format {manifest.get('format')!r} version {manifest.get('format_version')!r}, "
            f"expected {MANIFEST_FORMAT!r} version {MANIFEST_FORMAT_VERSION}")
  if manifest.get("step") != step or isinstance(manifest.get("step"), bool):
    return f"manifest is for step {manifest.get('step')!r}, not step {step}"
  files = manifest.get("files")
  if not isinstance(files, dict) or not files:
    return "manifest malformed: no file list"
  for rel, entry in files.items():
    parts = rel.split("/")
    if not rel or rel.startswith("/") or ".." in parts or "" in parts:
      return f"manifest malformed: file path {rel!r} is not relative to the step directory"
    if (not isinstance(entry, dict) or not isinstance(entry.get("size"), int) or isinstance(entry.get("size"), bool)
        or entry["size"] < 0 or not isinstance(entry.get("sha256"), str) or not _SHA256_HEX.fullmatch(entry["sha256"])):
      return f"manifest malformed: entry for {rel!r} is not {{'size': bytes, 'sha256': 64 hex digits}}"
  return None


class Checkpointer:
  """Saves, verifies and restores `(train_state, data_state)` pairs in `directory`, keeping the newest `keep`.

  Args:
    directory: where the checkpoints live (created if missing).
    keep: how many checkpoints to keep (the newest ones; damaged steps count until moved aside).
    metadata: JSON-serialisable facts about the run recorded in every manifest, e.g.
      `{"config_hash": ..., "versions": {...}}`; library versions are recorded in any case.

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
    self.removed_temporaries = self._remove_temporaries() if parallel.is_primary() else []
    parallel.barrier("deepvision-checkpointer-init")
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
    step_dir = self.step_directory(step)
    if not os.path.isdir(step_dir):
      return "step directory is missing"
    try:
      with open(self.manifest_path(step), encoding="utf-8") as f:
        manifest = json.load(f)
    except FileNotFoundError:
      return (f"no manifest ({MANIFEST_NAME}): the save was interrupted before it was verified, "
              "or the step predates manifests")
    except (OSError, UnicodeDecodeError, ValueError) as e:
      return f"manifest unreadable: {type(e).__name__}: {e}"
    problem = _check_manifest(manifest, step)
    if problem:
      return problem
    problems = []
    for rel, entry in sorted(manifest["files"].items()):
      path = os.path.join(step_dir, *rel.split("/"))
      if not os.path.isfile(path):
        problems.append(f"file missing: {rel}")
        continue
      size = os.path.getsize(path)
      if size != entry["size"]:
        problems.append(f"size mismatch: {rel} has {size} bytes, the manifest says {entry['size']}"
                        + (" (truncated)" if size < entry["size"] else ""))
      elif _sha256(path) != entry["sha256"]:
        problems.append(f"sha256 mismatch: {rel} (contents changed since the save)")
    if not problems:
      return None
    more = f"; and {len(problems) - 3} more" if len(problems) > 3 else ""
    return "; ".join(problems[:3]) + more

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
    `<step>.damaged-<time>` if it does not; damaged steps newer than `state.step` are moved aside too.

    Raises:
      NonFiniteStateError: if any floating leaf of the state is NaN or Inf (nothing is written).
    """
    tree = _to_saveable(state)
    if parallel.process_count() > 1:  # host copies, equal in every process: orbax writes them from process 0
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
      if parallel.is_primary():
        self._move_aside(existing, reason, saving=step)
      moved = True
    if moved:
      parallel.barrier(f"deepvision-move-aside-{step}")
      self._manager.reload()
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(tree), data=ocp.args.JsonSave(data_state or {})), force=True)
    self._manager.wait_until_finished()
    if not os.path.isdir(self.step_directory(step)):
      raise RuntimeError(f"orbax reported saving step {step} but {self.step_directory(step)} does not exist")
    if parallel.is_primary():
      self._write_manifest(step)
    parallel.barrier(f"deepvision-manifest-{step}")

  def _move_aside(self, step: int, reason: str, saving: int) -> str:
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    target = os.path.join(self.directory, f"{step}.damaged-{stamp}")
    suffix = 1
    while os.path.exists(target):
      target = os.path.join(self.directory, f"{step}.damaged-{stamp}-{suffix}")
      suffix += 1
    os.rename(self.step_directory(step), target)
    _fsync(self.directory, directory=True)
    self._announced = {(s, r) for s, r in self._announced if s != step}
    self._announce(step, reason, action=f"moved it aside to {os.path.basename(target)} before saving step {saving}")
    return target

  def _write_manifest(self, step: int) -> None:
    """Hashes and fsyncs every file of the committed step, then writes its manifest atomically."""
    step_dir = self.step_directory(step)
    files = {}
    for rel in _step_files(step_dir):
      path = os.path.join(step_dir, *rel.split("/"))
      _fsync(path)
      files[rel] = {"size": os.path.getsize(path), "sha256": _sha256(path)}
    for root, _, _ in os.walk(step_dir):
      _fsync(root, directory=True)
    manifest = {
        "format": MANIFEST_FORMAT,
        "format_version": MANIFEST_FORMAT_VERSION,
        "step": step,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "algorithm": "sha256",
        "files": files,
        "metadata": self.metadata,
        "versions": library_versions(),
    }
    tmp = os.path.join(step_dir, f"{MANIFEST_NAME}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
      json.dump(manifest, f, indent=1, sort_keys=True, allow_nan=False)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, self.manifest_path(step))
    _fsync(step_dir, directory=True)

  def _remove_temporaries(self) -> list[str]:
    """Removes orbax temporary step directories and temporary manifests left by interrupted saves."""
    removed = []
    with os.scandir(self.directory) as entries:
      entries = sorted(entries, key=lambda e: e.name)
    for entry in entries:
      if _ORBAX_TMP_DIR.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False):
        shutil.rmtree(entry.path)
        removed.append(entry.path)
        _log.warning("removed %s, the temporary directory of an interrupted checkpoint save", entry.path)
      elif _STEP_DIR.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False):
        with os.scandir(entry.path) as inner:
          stale = [e for e in inner if _MANIFEST_TMP.fullmatch(e.name) and e.is_file(follow_symlinks=False)]
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
    if parallel.process_count() > 1:  # restore host copies in every process (see `save`)
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
