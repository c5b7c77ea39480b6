r"""Regenerates the pretrained weights shipped in `deepvision/pretrained/weights/` from their configs.

  python -m experiments.export_pretrained                      # all four, trained in runs/pretrained/NAME
  python -m experiments.export_pretrained --names=rbm_digits --workdir=/tmp/pretrained

For each name (`deepvision.pretrained.names()`) it trains `experiments/configs/NAME.py` with its default
values in `WORKDIR/NAME` (a finished run is reused, an interrupted one resumes), evaluates the weights
through the same loading path users take, and writes `NAME.msgpack` and `NAME.json` (config, data set,
metric and tolerance, library versions, SHA-256). Training is seeded, so re-running on the same machine and
library versions writes byte-identical files. Cost on a 2-core CPU: about five minutes for all four.
"""

from __future__ import annotations

import importlib
import sys

from deepvision.xla_flags import prefer_single_threaded_eigen

# The HMC-based evaluations (continuous AIS, inpainting) are then reproducible bit for bit, and equal to
# what the test suite, run with the same setting, recomputes. Before JAX starts.
prefer_single_threaded_eigen()

from absl import app, flags, logging  # noqa: E402  pylint: disable=g-import-not-at-top

from deepvision import pretrained  # noqa: E402  pylint: disable=g-import-not-at-top
from deepvision.pretrained import export  # noqa: E402  pylint: disable=g-import-not-at-top
from experiments import pipelines  # noqa: E402,F401  pylint: disable=g-import-not-at-top  (trainers)

_NAMES = flags.DEFINE_list("names", None, "Pretrained models to export (default: all of "
                           f"{', '.join(pretrained.names())}).")
_WORKDIR = flags.DEFINE_string("workdir", "runs/pretrained", "Root of the training runs (one directory per name).")
_OUTPUT = flags.DEFINE_string("output", None, "Where to write the files (default: the package's weights directory).")


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    print(f"error: unexpected arguments {argv[1:]}", file=sys.stderr)
    sys.exit(2)
  names = _NAMES.value or pretrained.names()
  unknown = sorted(set(names) - set(pretrained.names()))
  if unknown:
    print(f"error: --names: unknown pretrained model(s) {', '.join(unknown)}; known: "
          f"{', '.join(pretrained.names())}", file=sys.stderr)
    sys.exit(2)
  logging.set_verbosity(logging.WARNING)
  for name in names:
    config_name = pretrained.SHIPPED.get(name).config
    config = importlib.import_module(f"experiments.configs.{config_name}").get_config()
    export.export(name, config, f"{_WORKDIR.value}/{name}", f"experiments/configs/{config_name}.py",
                  output_dir=_OUTPUT.value)


if __name__ == "__main__":
  app.run(main)
