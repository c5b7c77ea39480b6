r"""Prints the README's model-zoo tables, or writes them into README.md between their markers.

  python -m experiments.zoo_table            # print
  python -m experiments.zoo_table --write    # replace the tables in README.md
  python -m experiments.zoo_table --check    # exit 1 if README.md's tables differ (also `experiments.tables`)

The tables come from the registry and the manifests (`deepvision.pretrained.markdown_table`): every variant with its paper, input,
parameters and forward FLOPs, and every shipped pretrained model with its data set and recorded metric. The
test suite checks that README.md holds exactly these tables.
"""

from __future__ import annotations

import sys

from absl import app, flags

from deepvision import pretrained
from experiments import readme_tables

TABLES = (readme_tables.Table("zoo", "README.md", ("deepvision/zoo.py", "deepvision/pretrained"),
                              pretrained.markdown_table),)
_FLAGS = {}  # defined when run as a script


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    print(f"error: unexpected arguments {argv[1:]}", file=sys.stderr)
    sys.exit(2)
  sys.exit(readme_tables.publish(TABLES, write=_FLAGS["write"].value, check=_FLAGS["check"].value))


if __name__ == "__main__":
  _FLAGS["write"] = flags.DEFINE_bool("write", False, "Write the tables into README.md instead of printing them.")
  _FLAGS["check"] = flags.DEFINE_bool("check", False, "Exit 1 if README.md's tables differ from the registry.")
  app.run(main)
