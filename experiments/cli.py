"""Flag handling shared by the launchers: a config flag (a file or a config's name) whose overrides are checked.

`--config` takes `experiments/configs/NAME.py[:ARG]` or the bare `NAME[:ARG]` (`config_catalog.resolve`).
The config files return locked configs (`common.locked`), so `--config.FIELD=VALUE` naming no field is
an error from ml_collections itself, except under `model_kwargs`, whose fields go to the zoo (which
checks them). A bad path, name, argument, flag, field or value exits with status 2 and one line saying
what is valid; `--help` prints the launcher's flags and the configs and exits 0.
"""

from __future__ import annotations

import os
import re
import sys

import jax
from absl import flags
from ml_collections import config_flags

from deepvision.checkpoint import CheckpointCorruptedError, CheckpointRestoreError
from deepvision.data.datasets import DatasetCorruptedError, DatasetNotFoundError
from deepvision.errors import ConfigError
from experiments import config_catalog

USAGE_ERROR = 2
# What a launcher reports in one line with exit status 2: bad config, data, work dir or checkpoints.
USER_ERRORS = (ConfigError, DatasetNotFoundError, DatasetCorruptedError, CheckpointCorruptedError,
               CheckpointRestoreError)
_HELP = ("-h", "--help", "--helpshort", "--helpfull", "-?")


def use_compilation_cache(environ=None) -> str | None:
  """Keeps XLA's compiled programs in a persistent cache, so a run repeated (another seed, a resume, a
  tweak that leaves the program as it was) skips compiling its initialisation, step and evaluation.

  The cache is `$JAX_COMPILATION_CACHE_DIR` when set (JAX reads it itself), else
  `$XDG_CACHE_HOME/deepvision/xla` (default `~/.cache/deepvision/xla`); `DEEPVISION_COMPILATION_CACHE=0`
  turns it off. A cached program is the same binary, so results are bit for bit those of a fresh compile.
  Returns the directory used, or None.
  """
  environ = os.environ if environ is None else environ
  if environ.get("DEEPVISION_COMPILATION_CACHE", "1") == "0":
    return None
  directory = environ.get("JAX_COMPILATION_CACHE_DIR")
  if not directory:
    cache_home = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    directory = os.path.join(cache_home, "deepvision", "xla")
    jax.config.update("jax_compilation_cache_dir", directory)
  # Also the small programs (an evaluation step compiles in about a second on two cores).
  if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in environ:
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
  return directory


def define_config_flag() -> flags.FlagHolder:
  """Defines `--config` (path or name, `[:arg]`) accepting `--config.FIELD=VALUE` overrides."""
  holder = config_flags.DEFINE_config_file(
      "config", None, "Experiment config: a file (experiments/configs/NAME.py[:smoke]) or a config's name "
      "(NAME[:smoke]); list them with `python -m experiments.configs`. Override fields with "
      "--config.FIELD=VALUE.", lock_config=False, accept_new_attributes=True)
  return holder


def or_exit_2(fn, *args, also: tuple[type[Exception], ...] = ()):
  """`fn(*args)`, or a one-line `error: ...` and exit status 2 on a user error (`USER_ERRORS` and `also`)."""
  try:
    return fn(*args)
  except (*USER_ERRORS, *also) as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(USAGE_ERROR)


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


def _unknown_nested_field(message: str, argv: list[str]) -> str:
  """ml_collections' bare "'optimiser'\\nDid you mean ..." (a typo in a block's name) as one line naming the
  fields of the block above it."""
  typo = re.match(r"^'(\w+)'\s*\n(Did you mean .*)$", message.strip(), flags=re.DOTALL)
  if typo is None:
    return message
  key, hint = typo.group(1), typo.group(2).strip()
  try:
    block = config_catalog.load_file(next(a.partition("=")[2] for a in resolve_config_arguments(argv)
                                          if a.startswith("--config=")))
  except (OSError, ValueError, AttributeError, StopIteration, config_catalog.UnknownConfigError):
    block = None
  for arg in argv:
    path = arg.partition("=")[0].split(".")
    if path[0] == "--config" and key in path:
      for name in path[1:path.index(key)]:
        block = block.get(name, block)
      break
  valid = ", ".join(block.keys()) if hasattr(block, "keys") else ""
  return f"unknown config field {key!r}; {hint}" + (f"; valid fields here: {valid}" if valid else "")


def _config_error(message: str) -> str:
  """The one line that matters of ml_collections' "Error whilst parsing config file" (which embeds the
  config's traceback): the exception the config's `get_config` raised."""
  if "Error whilst parsing config file" not in message:
    return message
  raised = re.findall(r"^\w+(?:Error|Exception): (.+)$", message, flags=re.MULTILINE)
  return raised[-1] if raised else message.splitlines()[0]


def resolve_config_arguments(argv: list[str]) -> list[str]:
  """`argv` with `--config=NAME[:arg]` (or `--config NAME[:arg]`) as the config file's path.

  Raises:
    config_catalog.UnknownConfigError: neither a file nor a config's name (the message lists them).
  """
  out = list(argv)
  for i, arg in enumerate(out):
    if arg.startswith("--config="):
      out[i] = "--config=" + config_catalog.resolve(arg[len("--config="):])
    elif arg == "--config" and i + 1 < len(out):
      out[i + 1] = config_catalog.resolve(out[i + 1])
  return out


def print_help(doc: str | None) -> None:
  """The launcher's docstring, its flags (with `--config`) and the configs' names."""
  print((doc or "").strip())
  own = [line for line in flags.FLAGS.main_module_help().splitlines() if line and not line.endswith(".py:")]
  try:
    config_help = f"\n  --config: {flags.FLAGS['config'].help}"
  except KeyError:
    config_help = ""
  print("\nflags:" + config_help + "\n" + "\n".join(own))
  print(f"\nconfigs (python -m experiments.configs lists them with their cost and fields):\n  "
        f"{', '.join(config_catalog.names())}")


def make_parser(usage: str):
  """absl's flag parser, but `--help` exits 0 and a bad config path, name, argument, flag or an override
  naming no config field exits with status 2 and one line."""

  def parse(argv: list[str]) -> list[str]:
    if any(arg in _HELP for arg in argv[1:]):
      print_help(getattr(sys.modules.get("__main__"), "__doc__", None))
      sys.exit(0)
    try:
      rest = flags.FLAGS(resolve_config_arguments(argv))
      if "config" in flags.FLAGS and flags.FLAGS["config"].present:
        flags.FLAGS.config.get("trainer")  # a config file that fails to load fails here, not mid-run
    except config_catalog.UnknownConfigError as e:
      usage_error(str(e), usage)
    except (flags.Error, ValueError, KeyError, AttributeError, TypeError, OSError) as e:
      message = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
      usage_error(_unknown_nested_field(_readable(_config_error(message)), argv), usage)
    return rest

  return parse
