r"""Prints the README's model-zoo tables, or writes them into README.md between their markers.

  python -m experiments.zoo_table            # print
  python -m experiments.zoo_table --write    # replace the tables in README.md
  python -m experiments.zoo_table --check    # exit 1 if README.md's tables differ (also `experiments.tables`)

The tables come from the registry and the manifests (`deepvision.pretrained.markdown_table`): every variant with its paper, input,
parameters and forward FLOPs, and every shipped pretrained model with its data set and recorded metric. The
test suite checks that README.md holds exactly these tables.
"""

from __future__ import annotations

from deepvision import pretrained
from experiments import readme_tables

TABLES = (readme_tables.Table("zoo", "README.md", ("deepvision/zoo.py", "deepvision/pretrained"),
                              pretrained.markdown_table),)


if __name__ == "__main__":
  readme_tables.run_cli(TABLES)
