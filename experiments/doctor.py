r"""The doctor: run the talk's "what if it does not work?" checklist on an experiment config.

  python -m experiments.doctor --config=experiments/configs/lcn_convnet_digits.py --workdir=runs/doctor
  python -m experiments.doctor --config=experiments/configs/lcn_convnet_digits.py:smoke \
      --workdir=/tmp/doctor --config.optimizer.learning_rate=8       # a diverging config
  python -m experiments.doctor --config=experiments/configs/rbm_digits.py --workdir=runs/doctor_rbm

Diagnoses classifiers (the supervised trainer) and energy models (the contrastive trainer: RBMs, gated
MRFs); any other trainer is refused with exit status 2 before anything is written. Prints the diagnosis
with its evidence, writes `doctor.md` and figures into the work dir and names them on the last line. Cost
on a 2-core CPU: a minute or two for the digits (a few hundred probe steps per check).
"""

from __future__ import annotations

import os
import sys

from absl import app, flags, logging

from deepvision.data.datasets import DatasetCorruptedError, DatasetNotFoundError
from deepvision.diagnostics.doctor import REPORT_FILE, run_doctor
from deepvision.train.loop import ConfigError
from experiments import cli

_CONFIG = cli.define_config_flag()
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for doctor.md and the figures.")
_STEPS = flags.DEFINE_integer("probe_steps", 300, "Updates per probe / learning-rate trial.", lower_bound=10)
_SUBSET = flags.DEFINE_integer("subset", 512, "Training examples used by the probes.", lower_bound=0)


def main(argv: list[str]) -> None:
  if len(argv) > 1 or _CONFIG.value is None or not _WORKDIR.value:
    print("usage: python -m experiments.doctor --config=NAME|FILE.py[:smoke] --workdir=DIR", file=sys.stderr)
    sys.exit(2)
  logging.set_verbosity(logging.WARNING)
  try:
    report = run_doctor(_CONFIG.value, _WORKDIR.value, subset=_SUBSET.value, probe_steps=_STEPS.value)
  except (ConfigError, DatasetNotFoundError, DatasetCorruptedError) as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  print(report.markdown())
  figures = f" (and {len(report.figures)} figure{'s' * (len(report.figures) != 1)})" if report.figures else ""
  print(f"wrote {os.path.join(_WORKDIR.value, REPORT_FILE)}{figures}")


if __name__ == "__main__":
  app.run(main, flags_parser=cli.make_parser(
      "python -m experiments.doctor --config=NAME|FILE.py[:smoke] --workdir=DIR"))
