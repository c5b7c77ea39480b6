"""Checkpoint manifests: the size and SHA-256 of every file of a committed step, and their verification.

Orbax commits a step atomically but detects no damage afterwards (a flipped byte may restore silently,
`all_steps()` still lists a truncated step), so each committed step `<directory>/<N>/` gets a manifest:

    <N>/deepvision_manifest.json
    {"format": "deepvision-checkpoint-manifest", "format_version": 1, "step": N,
     "created": ISO-8601 UTC time, "algorithm": "sha256",
     "files": {relative path: {"size": bytes, "sha256": hex digest}, ...},
     "metadata": the Checkpointer's `metadata` (or null),
     "versions": {"python", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy"}}

Orbax tolerates the extra file on restore and deletes it with the step when keep-N retires the step.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import importlib.metadata
import json
import os
import platform
import re
from typing import Any

MANIFEST_NAME = "deepvision_manifest.json"
MANIFEST_FORMAT = "deepvision-checkpoint-manifest"
MANIFEST_FORMAT_VERSION = 1
VERSIONED_PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy")

# Orbax's temporary step directories: `<step>.orbax-checkpoint-tmp`, older versions add `-<timestamp>`.
ORBAX_TMP_DIR = re.compile(r"\d+\.orbax-checkpoint-tmp(-\d+)?")
MANIFEST_TMP = re.compile(re.escape(MANIFEST_NAME) + r"\.tmp-\d+")
STEP_DIR = re.compile(r"\d+")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_HASH_CHUNK = 1 << 20


def library_versions() -> dict[str, str | None]:
  """Versions of Python and of the libraries a checkpoint's contents depend on (None: not installed)."""
  versions: dict[str, str | None] = {"python": platform.python_version()}
  for name in VERSIONED_PACKAGES:
    try:
      versions[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      versions[name] = None
  return versions


def fsync(path: str, directory: bool = False) -> None:
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


def step_files(step_dir: str) -> list[str]:
  """Relative POSIX paths of the files under `step_dir`, manifest files excluded, sorted."""
  files = []
  for root, _, names in os.walk(step_dir):
    for name in names:
      if name == MANIFEST_NAME or MANIFEST_TMP.fullmatch(name):
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


def verify_step(step_dir: str, step: int) -> str | None:
  """Checks the step in `step_dir` against its manifest: None when every listed file has its size and
  SHA-256, else why not.

  Rejected: a missing manifest (a kill between orbax's commit and the manifest write, or a step saved
  before manifests existed), one unreadable, not JSON, malformed or for another step; a listed file
  missing, of another size (truncated or extended) or another SHA-256 (flipped bytes). Files present but
  not listed are tolerated: orbax reads only files that the listed (and checked) metadata and OCDBT
  manifests name, so an extra file cannot change what is restored. Reads every file of the step.
  """
  if not os.path.isdir(step_dir):
    return "step directory is missing"
  try:
    with open(os.path.join(step_dir, MANIFEST_NAME), encoding="utf-8") as f:
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


def write_manifest(step_dir: str, step: int, metadata: dict | None) -> None:
  """Hashes and fsyncs every file of the committed step, then writes its manifest atomically.

  The checkpoint's files are fsynced before the manifest is written, and the manifest goes to a
  temporary file, flushed and fsynced, then renamed over the final name (and the directory fsynced), so
  a manifest on disk never vouches for data that is not.
  """
  files = {}
  for rel in step_files(step_dir):
    path = os.path.join(step_dir, *rel.split("/"))
    fsync(path)
    files[rel] = {"size": os.path.getsize(path), "sha256": _sha256(path)}
  for root, _, _ in os.walk(step_dir):
    fsync(root, directory=True)
  manifest = {
      "format": MANIFEST_FORMAT,
      "format_version": MANIFEST_FORMAT_VERSION,
      "step": step,
      "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
      "algorithm": "sha256",
      "files": files,
      "metadata": metadata,
      "versions": library_versions(),
  }
  tmp = os.path.join(step_dir, f"{MANIFEST_NAME}.tmp-{os.getpid()}")
  with open(tmp, "w", encoding="utf-8") as f:
    json.dump(manifest, f, indent=1, sort_keys=True, allow_nan=False)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, os.path.join(step_dir, MANIFEST_NAME))
  fsync(step_dir, directory=True)
