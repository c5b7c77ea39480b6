r"""Runs an experiment: a config file and a work dir in, metrics, checkpoints and figures out.

  python -m experiments.main --config=experiments/configs/lcn_convnet_digits.py --workdir=/tmp/lcn
  python -m experiments.main --config=experiments/configs/lcn_convnet_digits.py:smoke --workdir=/tmp/s \
      --config.optimizer.learning_rate=0.05 --config.seed=1

Several processes (one per host, or several on one machine) run the same command with
--coordinator_address=HOST:PORT --num_processes=N --process_id=I, or --distributed alone where JAX finds
the cluster itself (SLURM, Open MPI, Cloud TPU pods); see BUILD.md, "Scale-out".

Re-running with the same work dir resumes from its newest valid checkpoint. Exit status: 0 done (or
stopped by SIGTERM / SIGINT after saving a checkpoint), 1 training diverged (non-finite loss, gradients or
parameters; nothing non-finite is saved), 2 bad flag, config field, value, work dir or data, named in the
message, before any training, 75 another process of a multi-process run was lost (killed, crashed or stuck;
rerun all of them to resume). A process that stops answering altogether is declared lost after
--config.distributed_heartbeat_timeout_s, and then JAX itself aborts the others (SIGABRT).
"""

from __future__ import annotations

import sys

from absl import app, flags, logging

from deepvision import distributed
from deepvision.train.errors import TrainingDivergedError, TrainingPreempted
from deepvision.train.loop import train_and_evaluate
from experiments import cli, pipelines  # noqa: F401  pipelines: registers the experiments' trainers

_CONFIG = cli.define_config_flag()
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for metrics, checkpoints and figures.")
_DISTRIBUTED = flags.DEFINE_bool("distributed", False, "Join a multi-process run, the cluster detected by JAX "
                                 "(SLURM, Open MPI, Cloud TPU) unless the three flags below are given.")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "HOST:PORT of process 0's coordination "
                                   "service (keep the port inside the cluster's private network).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Number of processes in the run.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index, 0 … num_processes - 1.")
USAGE = "python -m experiments.main --config=NAME|FILE.py[:smoke] --workdir=DIR [--config.FIELD=VALUE ...]"


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    print(f"error: unexpected arguments {argv[1:]}", file=sys.stderr)
    sys.exit(cli.USAGE_ERROR)
  if _CONFIG.value is None or not _WORKDIR.value:
    print("error: both --config and --workdir are required", file=sys.stderr)
    sys.exit(cli.USAGE_ERROR)
  logging.set_verbosity(logging.WARNING)  # keep orbax's per-save INFO lines out of the progress output
  cli.use_compilation_cache()
  explicit = (_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  try:
    timeouts = distributed.distributed_timeouts(_CONFIG.value)
    if _DISTRIBUTED.value or any(v is not None for v in explicit):
      distributed.initialize_distributed(*explicit, **timeouts)
  except ValueError as e:
    cli.usage_error(str(e), USAGE)
  try:
    with distributed.exit_on_lost_peer():
      train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except cli.USER_ERRORS as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(cli.USAGE_ERROR)
  except TrainingDivergedError as e:
    print(f"training diverged: {e}", file=sys.stderr)
    sys.exit(1)
  except TrainingPreempted:
    sys.exit(0)  # the message is printed; the checkpoint is saved


if __name__ == "__main__":
  app.run(main, flags_parser=cli.make_parser(USAGE))
