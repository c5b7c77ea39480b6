r"""Writes a run's features for every example of a split to a `.npz` file.

  python -m experiments.export_features --workdir=runs/lcn_convnet_digits --split=test --out=feats.npz
  python -m experiments.export_features --workdir=runs/rbm_digits --split=train --out=rbm_train.npz

Classifiers: every intermediate map of the model (`features/<layer>`, flattened per example) and the
`logits`; RBMs, gated MRFs, autoencoders and sparse coders: `features/hidden_probs` of the split as the
run preprocessed it; `labels` when the data set has them. From the newest verified checkpoint; the run
itself is not touched. Exit status 2: no run there, a bad split or output name.
"""

from __future__ import annotations

import numpy as np
from absl import app, flags, logging

from deepvision.pretrained import runs
from experiments import cli, pipelines  # noqa: F401  pipelines: registers the experiments' trainers

_WORKDIR = flags.DEFINE_string("workdir", None, "The run's work dir.")
_SPLIT = flags.DEFINE_string("split", None, "The split (e.g. train, test, train[:500]).")
_OUT = flags.DEFINE_string("out", None, "The .npz file to write.")
USAGE = "python -m experiments.export_features --workdir=RUN_DIR --split=SPLIT --out=FILE.npz"


def main(argv: list[str]) -> None:
  if len(argv) > 1 or not (_WORKDIR.value and _SPLIT.value and _OUT.value):
    cli.usage_error("--workdir, --split and --out are required" if len(argv) <= 1 else
                    f"unexpected arguments {argv[1:]}", USAGE)
  logging.set_verbosity(logging.WARNING)
  arrays = cli.or_exit_2(runs.export_features, _WORKDIR.value, _SPLIT.value, _OUT.value,
                         also=(FileNotFoundError,))
  for name, value in arrays.items():
    print(f"{name:<32} {value.shape!s:<16} {value.dtype}" + (
        f"  mean {float(np.mean(value)):.4f}" if name != "labels" else ""))
  print(f"wrote {_OUT.value}")


if __name__ == "__main__":
  app.run(main, flags_parser=cli.make_parser(USAGE))
