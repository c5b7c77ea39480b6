"""The work dir of a run, checked before any compute: usable, roomy enough, and holding this run only.

`prepare(config, workdir, identity)` raises `ConfigError` (the launcher exits 2, nothing is written) when
  * the path exists and is not a directory, or the directory (or the nearest existing parent) is not
    writable;
  * the file system has less free space than `config.min_free_disk_mb`;
  * the work dir holds checkpoints of a run started with another config (its `config.json`): fields in `identity` shape the state
    or the data order and can never change on resume; any other difference, apart from the bookkeeping
    fields in `MUTABLE`, needs `--config.allow_config_change=True` (then a warning lists the differences
    and `config.json` is rewritten);
  * the work dir holds a finished run and the config differs beyond `MUTABLE`: a finished run's
    `config.json` describes its `metrics.jsonl` and is never rewritten (`experiments.evaluate` evaluates it
    on another split).

A block added to the configs after a run was started (`ADDED_BLOCKS`) is absent from that run's
`config.json`; at its defaults (the feature off) it describes the same run, so it is not a difference.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from typing import Any

import ml_collections

from deepvision import config_blocks, schema
from deepvision.train.errors import ConfigError
from deepvision.train.writers import final_record

CONFIG_FILE = "config.json"
# Fields a resumed run may change freely: where and how often it logs, evaluates, saves and draws.
MUTABLE = ("log_every_steps", "eval_every_steps", "checkpoint_every_steps", "keep_checkpoints", "figures",
           "data_dir", "in_memory", "eval_batch_size", "allow_config_change", "debug_nans",
           "min_free_disk_mb")


# Blocks that later versions added to every config of a kind, by name: off at their defaults.
ADDED_BLOCKS = {"activation_sparsity": config_blocks.ActivationSparsity}


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
  """{'optimizer.learning_rate': 0.1, ...}: the leaves of nested dicts under dotted keys."""
  if isinstance(tree, dict):
    out = {}
    for key, value in tree.items():
      out.update(flatten(value, f"{prefix}{key}."))
    return out
  return {prefix[:-1]: tree}


def _as_json(config: ml_collections.ConfigDict) -> dict:
  return json.loads(json.dumps(config.to_dict(), default=str))


def _added_defaults() -> dict[str, Any]:
  """The dotted fields of `ADDED_BLOCKS` at their defaults, as `config.json` writes them."""
  return flatten({name: _as_json(schema.defaults(block)) for name, block in ADDED_BLOCKS.items()})


def _nearest_existing(path: str) -> str:
  while not os.path.exists(path):
    parent = os.path.dirname(path)
    if parent == path:
      break
    path = parent
  return path


def check_usable(workdir: str, min_free_mb: float) -> None:
  """ConfigError unless `workdir` is (or can be made) a writable directory with `min_free_mb` MB free."""
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise ConfigError(f"--workdir {workdir} exists and is not a directory")
  existing = _nearest_existing(workdir)
  if not os.path.isdir(existing):
    raise ConfigError(f"--workdir {workdir}: {existing} is a file, not a directory")
  if not os.access(existing, os.W_OK | os.X_OK):
    raise ConfigError(f"--workdir {workdir}: {existing} is not writable")
  free_mb = shutil.disk_usage(existing).free / 2**20
  if free_mb < min_free_mb:
    raise ConfigError(f"--workdir {workdir}: only {free_mb:.0f} MB free on its file system, less than "
                      f"config.min_free_disk_mb={min_free_mb:g}; free some space or lower the limit")


def check_same_config(config: ml_collections.ConfigDict, workdir: str, identity: tuple[str, ...],
                      resumable: bool | None = None) -> bool:
  """ConfigError if `workdir` was started with a different config (see the module docstring).

  Args:
    config, workdir: this run.
    identity: fields that can never change on resume.
    resumable: whether `workdir` holds state to resume (default: a non-empty `checkpoints/`); without
      any, this config simply starts the run.

  Returns:
    True when `config.json` should be rewritten (allowed differences), False otherwise.
  """
  path = os.path.join(workdir, CONFIG_FILE)
  checkpoints = os.path.join(workdir, "checkpoints")
  if resumable is None:
    resumable = os.path.isdir(checkpoints) and bool(os.listdir(checkpoints))
  if not os.path.exists(path) or not resumable:
    return True  # nothing to resume: this config starts the run
  with open(path) as f:
    saved = flatten(json.load(f))
  current = flatten(_as_json(config))
  added = _added_defaults()
  changed = sorted(k for k in set(saved) | set(current)
                   if saved.get(k) != current.get(k) and k.split(".")[0] not in MUTABLE
                   and not (k not in saved and k in added and current[k] == added[k]))
  if not changed:
    return False
  details = "; ".join(f"{k}: {saved.get(k)!r} there, {current.get(k)!r} now" for k in changed)
  fixed = [k for k in changed if k.split(".")[0] in identity]
  if fixed:
    raise ConfigError(f"{workdir} holds another run ({details}); {', '.join(fixed)} cannot change on resume: "
                      "use a new --workdir to start a new run")
  if final_record(workdir) is not None:
    raise ConfigError(f"{workdir} holds a finished run and its config cannot change ({details}): evaluate it "
                      f"on another split with python -m experiments.evaluate --workdir={workdir} --split=SPLIT, "
                      "or use a new --workdir")
  if not config.get("allow_config_change", False):
    raise ConfigError(f"{workdir} was started with another config ({details}); pass "
                      "--config.allow_config_change=True to resume with these changes, or use a new --workdir")
  print(f"warning: resuming {workdir} with a changed config ({details})", file=sys.stderr)
  return True


def prepare(config: ml_collections.ConfigDict, workdir: str, identity: tuple[str, ...],
            resumable: bool | None = None, write: bool = True) -> str:
  """Checks `workdir` for this run (module docstring), creates it, and returns its absolute path.

  `config.json` is written after the checks (atomically), unless the saved one already matches or `write`
  is False (the processes other than process 0 of a multi-process run check but do not write).
  """
  workdir = os.path.abspath(os.path.expanduser(workdir))
  check_usable(workdir, float(config.get("min_free_disk_mb", 100)))
  rewrite = check_same_config(config, workdir, identity, resumable)
  os.makedirs(workdir, exist_ok=True)
  if rewrite and write:
    write_config(config, workdir)
  return workdir


def config_hash(config: ml_collections.ConfigDict) -> str:
  """sha256 of the config's canonical JSON (sorted keys): recorded in every checkpoint's manifest."""
  text = json.dumps(_as_json(config), sort_keys=True)
  return hashlib.sha256(text.encode()).hexdigest()


def write_config(config: ml_collections.ConfigDict, workdir: str) -> None:
  """`workdir/config.json`, written to a temporary file and renamed into place."""
  path = os.path.join(workdir, CONFIG_FILE)
  with open(path + ".tmp", "w") as f:
    json.dump(config.to_dict(), f, indent=2, sort_keys=True, default=str)
  os.replace(path + ".tmp", path)
