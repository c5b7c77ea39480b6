r"""Evaluates a finished run again, on any split, without touching the run.

  python -m experiments.evaluate --workdir=runs/lcn_convnet_digits --split=validation
  python -m experiments.evaluate --workdir=runs/rbm_digits --split=test --out=/tmp/rbm_test.json

The run's newest verified checkpoint is evaluated with the run's own final evaluation (accuracy and loss
for classifiers, AIS log-likelihood for energy models, reconstruction error for autoencoders, linear
read-outs where the run has them) on `--split` (any TFDS split of the run's data set, e.g. `train[:500]`).
The record goes to `--out` (default `WORKDIR/evaluations/SPLIT.json`); the run's `config.json`,
`metrics.jsonl` and checkpoints stay byte-identical. Exit status 2: no finished run there, a bad split, or
a pipeline trainer (dbn, sdae, ...) whose run is not one model.
"""

from __future__ import annotations

import json
import sys

from absl import app, flags, logging

from deepvision.pretrained import runs
from experiments import cli, pipelines  # noqa: F401  pipelines: registers the experiments' trainers

_WORKDIR = flags.DEFINE_string("workdir", None, "The finished run's work dir.")
_SPLIT = flags.DEFINE_string("split", None, "The split to evaluate on (e.g. validation, test, train[:500]).")
_OUT = flags.DEFINE_string("out", None, "Where the record goes (default WORKDIR/evaluations/SPLIT.json).")
USAGE = "python -m experiments.evaluate --workdir=RUN_DIR --split=SPLIT [--out=FILE.json]"


def main(argv: list[str]) -> None:
  if len(argv) > 1 or not _WORKDIR.value or not _SPLIT.value:
    cli.usage_error("--workdir and --split are required" if len(argv) <= 1 else
                    f"unexpected arguments {argv[1:]}", USAGE)
  logging.set_verbosity(logging.WARNING)
  record = cli.or_exit_2(runs.evaluate_run, _WORKDIR.value, _SPLIT.value, _OUT.value, also=(FileNotFoundError,))
  print(json.dumps(record, indent=2, sort_keys=True))
  if record["shared_with_training"]:
    print(f"warning: {record['shared_with_training']} examples of --split={record['split']} are in the run's "
          f"train_split {record['train_split']!r}: these figures are partly on training data", file=sys.stderr)


if __name__ == "__main__":
  app.run(main, flags_parser=cli.make_parser(USAGE))
