"""Flag handling shared by the launchers: a config file flag whose overrides are checked.

`--config.FIELD=VALUE` must name a field of the config file, except under `model_kwargs`, whose
fields go to the zoo (which checks them). A bad flag, field or value exits with status 2.
"""

from __future__ import annotations

import importlib.util
import sys

import ml_collections
from absl import flags
from ml_collections import config_flags

USAGE_ERROR = 2


def define_config_flag() -> flags.FlagHolder:
  """Defines `--config` (path[:arg]) accepting `--config.model_kwargs.FIELD=VALUE` overrides."""
  return config_flags.DEFINE_config_file("config", None, "Experiment config file (path[:arg]).",
                                         lock_config=False, accept_new_attributes=True)


def usage_error(message: str, usage: str) -> None:
  print(f"error: {message}\nUsage: {usage}", file=sys.stderr)
  sys.exit(USAGE_ERROR)


def _fields(config: ml_collections.ConfigDict, prefix: str = "") -> set[str]:
  out = set()
  for key, value in config.items():
    out.add(prefix + key)
    if isinstance(value, ml_collections.ConfigDict):
      out |= _fields(value, prefix + key + ".")
  return out


def _pristine_config(spec: str) -> ml_collections.ConfigDict:
  """The config file's own `get_config(arg)`, without command-line overrides."""
  path, _, arg = spec.partition(":")
  module_spec = importlib.util.spec_from_file_location("_experiment_config", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(arg) if arg else module.get_config()


def make_parser(usage: str):
  """absl's flag parser, but a bad flag or an override naming no config field exits with status 2."""

  def parse(argv: list[str]) -> list[str]:
    try:
      rest = flags.FLAGS(argv)
    except (flags.Error, ValueError, KeyError, AttributeError, TypeError) as e:
      usage_error(str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e), usage)
    config = flags.FLAGS["config"].value
    if config is not None:
      known = _fields(_pristine_config(flags.FLAGS["config"].serialize().partition("=")[2]))
      unknown = sorted(f for f in _fields(config) - known
                       if not f.startswith("model_kwargs.") and f.rpartition(".")[0] in known | {""})
      if unknown:
        usage_error(f"unknown config field(s) {', '.join(unknown)}; valid fields: {', '.join(sorted(known))}",
                    usage)
    return rest

  return parse
