r"""Runs an experiment: a config file and a work dir in, metrics, checkpoints and figures out.

  python -m experiments.main --config=experiments/configs/lcn_convnet_digits.py --workdir=/tmp/lcn
  python -m experiments.main --config=experiments/configs/lcn_convnet_digits.py:smoke --workdir=/tmp/s \
      --config.optimizer.learning_rate=0.05 --config.seed=1

Re-running with the same work dir resumes from its newest valid checkpoint. Exit status: 0 done (or
stopped by SIGTERM / SIGINT after saving a checkpoint), 1 training diverged (non-finite loss, gradients or
parameters; nothing non-finite is saved), 2 bad flag, config field, value, work dir or data, named in the
message, before any training.
"""

from __future__ import annotations

import sys

from absl import app, flags, logging

from deepvision.checkpoint import CheckpointCorruptedError, CheckpointRestoreError
from deepvision.data.datasets import DatasetCorruptedError, DatasetNotFoundError
from deepvision.train.errors import ConfigError, TrainingDivergedError, TrainingPreempted
from deepvision.train.loop import train_and_evaluate
from experiments import cli

_CONFIG = cli.define_config_flag()
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for metrics, checkpoints and figures.")
USAGE = "python -m experiments.main --config=CONFIG.py[:smoke] --workdir=DIR [--config.FIELD=VALUE ...]"


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    print(f"error: unexpected arguments {argv[1:]}", file=sys.stderr)
    sys.exit(cli.USAGE_ERROR)
  if _CONFIG.value is None or not _WORKDIR.value:
    print("error: both --config and --workdir are required", file=sys.stderr)
    sys.exit(cli.USAGE_ERROR)
  logging.set_verbosity(logging.WARNING)  # keep orbax's per-save INFO lines out of the progress output
  try:
    train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except (ConfigError, DatasetNotFoundError, DatasetCorruptedError, CheckpointCorruptedError,
          CheckpointRestoreError) as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(cli.USAGE_ERROR)
  except TrainingDivergedError as e:
    print(f"training diverged: {e}", file=sys.stderr)
    sys.exit(1)
  except TrainingPreempted:
    sys.exit(0)  # the message is printed; the checkpoint is saved


if __name__ == "__main__":
  app.run(main, flags_parser=cli.make_parser(USAGE))
