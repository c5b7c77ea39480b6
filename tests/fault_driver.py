"""Runs one smoke experiment in its own process for the fault-injection tests (tests/test_fault_injection.py).

  python tests/fault_driver.py CONFIG_NAME WORKDIR OVERRIDES_JSON [--kill-before-manifest STEP]

Prints `STEP n` (flushed) after every dispatch of training steps (every step with K = 1), so a test can send a signal at a known step.
`--kill-before-manifest STEP` SIGKILLs the process after orbax has committed checkpoint STEP but before its
manifest is written: the moment a crash leaves an unverifiable newest step.
"""

import importlib
import json
import os
import signal
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from deepvision import checkpoint  # noqa: E402
from deepvision.train import dispatch, loop  # noqa: E402
from deepvision.train.errors import TrainingPreempted  # noqa: E402
from experiments import pipelines  # noqa: E402,F401  (registers the pipeline trainers, e.g. 'dbn')


def main() -> int:
  name, workdir, overrides = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
  kill_step = int(sys.argv[5]) if len(sys.argv) > 5 and sys.argv[4] == "--kill-before-manifest" else None
  config = loop.override_config(importlib.import_module(f"experiments.configs.{name}").get_config("smoke"),
                                overrides)
  original_run = dispatch.Dispatcher.run

  def counted(self, state, fault, max_steps):
    out = original_run(self, state, fault, max_steps)
    print(f"STEP {int(out[0].step)}", flush=True)
    return out

  dispatch.Dispatcher.run = counted
  if kill_step is not None:
    original_manifest = checkpoint.Checkpointer._write_manifest  # pylint: disable=protected-access

    def write_manifest(self, step):
      if step == kill_step:
        os.kill(os.getpid(), signal.SIGKILL)
      return original_manifest(self, step)

    checkpoint.Checkpointer._write_manifest = write_manifest  # pylint: disable=protected-access
  try:
    loop.train_and_evaluate(config, workdir)
  except TrainingPreempted:
    return 0
  return 0


if __name__ == "__main__":
  sys.exit(main())
