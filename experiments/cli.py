"""Flag handling shared by the launchers: a config file flag whose overrides are checked.

The config files return locked configs (`common.locked`), so `--config.FIELD=VALUE` naming no field is
an error from ml_collections itself, except under `model_kwargs`, whose fields go to the zoo (which
checks them). A bad flag, field or value exits with status 2.
"""

from __future__ import annotations

import re
import sys

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


def _readable(message: str) -> str:
  """ml_collections' "Key ... cannot be added since the config is locked" (which prints the whole
  block) as: unknown config field, the suggestion, and the names of the block's fields."""
  unknown = re.search(r'Key "([^"]+)" does not exist and cannot be added since the config is locked', message)
  if unknown is None:
    return message
  fields = re.findall(r"'(\w+)': ", message.partition("Other fields present:")[2])
  hint = re.search(r'Did you mean "[^"]+" instead of "[^"]+"\?', message)
  return (f"unknown config field {unknown.group(1)!r}" + (f"; {hint.group(0)}" if hint else "")
          + (f"; valid fields here: {', '.join(fields)}" if fields else ""))


def make_parser(usage: str):
  """absl's flag parser, but a bad flag or an override naming no config field exits with status 2."""

  def parse(argv: list[str]) -> list[str]:
    try:
      rest = flags.FLAGS(argv)
    except (flags.Error, ValueError, KeyError, AttributeError, TypeError) as e:
      usage_error(_readable(str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)), usage)
    return rest

  return parse
