r"""Draws several runs' curves together: one panel per metric, one line per run.

  python -m experiments.plot --runs=runs/lr_0.01,runs/lr_0.02 --out=runs/lr.png
  python -m experiments.plot --runs=runs/a,runs/b,runs/c --out=/tmp/cmp.png \
      --keys=train/loss,val/accuracy --title="learning rate sweep"

Each run is a work dir of `experiments.main` (its `metrics.jsonl`); runs are labelled by their work dir's
name. Without --keys every numeric metric any run logs gets a panel (at most 18; more need --keys).
Panels wrap at --columns per row (3). Exit status: 0 written, 2 bad flag, a missing run dir, a run
without metrics.jsonl or records, or an unknown key (the message names the keys the runs log), before
anything is written.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags

from deepvision.figures import run_curves
from experiments import cli

_RUNS = flags.DEFINE_list("runs", None, "Comma-separated work dirs, each with a metrics.jsonl.")
_OUT = flags.DEFINE_string("out", None, "The PNG to write (its folder is created if missing).")
_KEYS = flags.DEFINE_list("keys", None, "Comma-separated metric keys, one panel each (default: all "
                          "numeric metrics the runs log).")
_TITLE = flags.DEFINE_string("title", None, "The figure's title (default: the runs' names).")
_COLUMNS = flags.DEFINE_integer("columns", 3, "Panels per row.")
USAGE = ("python -m experiments.plot --runs=DIR1,DIR2[,...] --out=FILE.png [--keys=KEY1,KEY2] "
         "[--title=TEXT] [--columns=3]")


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    cli.usage_error(f"unexpected arguments {argv[1:]}", USAGE)
  if not _RUNS.value or not _OUT.value:
    cli.usage_error("both --runs and --out are required", USAGE)
  if not _OUT.value.lower().endswith(".png"):
    cli.usage_error(f"--out must name a .png file, got {_OUT.value!r}", USAGE)
  if _COLUMNS.value < 1:
    cli.usage_error(f"--columns must be a positive integer, got {_COLUMNS.value}", USAGE)
  try:
    runs = run_curves.read_runs(_RUNS.value)
    keys = run_curves.check_keys(_KEYS.value if _KEYS.value else run_curves.metric_keys(runs),
                                 run_curves.metric_keys(runs))
  except ValueError as e:
    cli.usage_error(str(e), USAGE)
  folder = os.path.dirname(os.path.abspath(_OUT.value))
  os.makedirs(folder, exist_ok=True)
  drawn = run_curves.save_runs_curves(runs, _OUT.value, keys, title=_TITLE.value, columns=_COLUMNS.value)
  print(f"wrote {_OUT.value}: {len(runs)} runs ({', '.join(runs)}), {len(drawn)} panels "
        f"({', '.join(drawn)})")
  sys.exit(0)


if __name__ == "__main__":
  app.run(main, flags_parser=cli.make_parser(USAGE))
