r"""Every generated table of README.md, BUILD.md and benchmarks/README.md, from the committed records.

  python -m experiments.tables             # print every table
  python -m experiments.tables --write     # write them into their documents
  python -m experiments.tables --check     # exit 1, naming each table that differs from its records
  python -m experiments.tables --only=zoo,default-experiment --check

Each table is a `readme_tables.Table` declared by the module that knows its records (`TABLES` in each
module of `GENERATORS`); in a document it sits between `<!-- table NAME: ... -->` and
`<!-- table NAME: end -->`. The test suite runs the check.
"""

from __future__ import annotations

import sys

from absl import app, flags

from experiments import (
  benchmark_tables,
  build_tables,
  energy_tables,
  features_table,
  mnist_table,
  readme_tables,
  results_tables,
  zoo_table,
)

GENERATORS = (zoo_table, mnist_table, features_table, benchmark_tables, build_tables, energy_tables, results_tables)
_FLAGS = {}  # defined when run as a script


def all_tables() -> tuple[readme_tables.Table, ...]:
  """Every table of every generator, in the order of `GENERATORS`."""
  return tuple(table for module in GENERATORS for table in module.TABLES)


def select(names: list[str]) -> tuple[readme_tables.Table, ...]:
  """The tables called `names` (all when empty).

  Raises:
    ValueError: a name that no generator declares (the message lists the valid ones).
  """
  tables = all_tables()
  known = [t.name for t in tables]
  unknown = [n for n in names if n not in known]
  if unknown:
    raise ValueError(f"unknown table {', '.join(map(repr, unknown))}; valid: {', '.join(known)}")
  return tuple(t for t in tables if not names or t.name in names)


def _define_flags() -> None:
  _FLAGS["write"] = flags.DEFINE_bool("write", False, "Write the tables into their documents.")
  _FLAGS["check"] = flags.DEFINE_bool("check", False, "Exit 1 if a document's table differs from its records.")
  _FLAGS["only"] = flags.DEFINE_list("only", [], "Table names to print, write or check (default: all).")


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    print(f"error: unexpected arguments {argv[1:]}", file=sys.stderr)
    sys.exit(2)
  if _FLAGS["write"].value and _FLAGS["check"].value:
    print("error: --write and --check exclude each other; give one", file=sys.stderr)
    sys.exit(2)
  try:
    tables = select(_FLAGS["only"].value)
  except ValueError as e:
    print(f"error: --only: {e}", file=sys.stderr)
    sys.exit(2)
  sys.exit(readme_tables.publish(tables, write=_FLAGS["write"].value, check=_FLAGS["check"].value))


if __name__ == "__main__":
  _define_flags()
  app.run(main)
