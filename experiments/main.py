r"""Runs an experiment: a config file and a work dir in, metrics, checkpoints and figures out.

  python -m experiments.main --config=experiments/configs/lcn_convnet_digits.py --workdir=/tmp/lcn
  python -m experiments.main --config=experiments/configs/lcn_convnet_digits.py:smoke --workdir=/tmp/s \
      --config.optimizer.learning_rate=0.05 --config.seed=1

Re-running with the same work dir resumes from its newest checkpoint. A bad flag, config field or
value exits with status 2 and a message naming it, before any training.
"""

from __future__ import annotations

import importlib.util
import sys

import ml_collections
from absl import app, flags, logging
from ml_collections import config_flags

from deepvision.data.datasets import DatasetNotFoundError
from deepvision.train.loop import ConfigError, train_and_evaluate

# New attributes are accepted so that `--config.model_kwargs.FIELD=VALUE` can pass any model field to
# the zoo (which checks them); every other override must name a field of the config file.
_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file (path[:arg]).",
                                          lock_config=False, accept_new_attributes=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for metrics, checkpoints and figures.")

USAGE_ERROR = 2


def _usage_error(message: str) -> None:
  print(f"error: {message}\nUsage: python -m experiments.main --config=CONFIG.py[:smoke] --workdir=DIR "
        "[--config.FIELD=VALUE ...]", file=sys.stderr)
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


def _check_overrides(config: ml_collections.ConfigDict, spec: str) -> None:
  """Rejects overrides that name no field of the config file (except under model_kwargs)."""
  known = _fields(_pristine_config(spec))
  unknown = sorted(f for f in _fields(config) - known
                   if not f.startswith("model_kwargs.") and f.rpartition(".")[0] in known | {""})
  if unknown:
    _usage_error(f"unknown config field(s) {', '.join(unknown)}; valid fields: {', '.join(sorted(known))}")


def _parse_flags(argv: list[str]) -> list[str]:
  """absl's parser, but a bad flag or config override exits with status 2 (usage error)."""
  try:
    rest = flags.FLAGS(argv)
  except (flags.Error, ValueError, KeyError, AttributeError, TypeError) as e:
    _usage_error(str(e))
  if _CONFIG.value is not None:
    _check_overrides(_CONFIG.value, flags.FLAGS["config"].serialize().partition("=")[2])
  return rest


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    print(f"error: unexpected arguments {argv[1:]}", file=sys.stderr)
    sys.exit(USAGE_ERROR)
  if _CONFIG.value is None or not _WORKDIR.value:
    print("error: both --config and --workdir are required", file=sys.stderr)
    sys.exit(USAGE_ERROR)
  logging.set_verbosity(logging.WARNING)  # keep orbax's per-save INFO lines out of the progress output
  try:
    train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except (ConfigError, DatasetNotFoundError) as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(USAGE_ERROR)


if __name__ == "__main__":
  app.run(main, flags_parser=_parse_flags)
