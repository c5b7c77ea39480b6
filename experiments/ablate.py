r"""The ablation table: the talk's ingredients switched off one at a time, over several seeds.

  python -m experiments.ablate --config=experiments/configs/lcn_convnet_digits.py \
      --workdir=runs/ablation --seeds=3

Writes `ablation.md` (mean ± std test error per variant) and `ablation.json` to the work dir; each run
has its own work dir below it, so re-running resumes. `--record=results/ablation/dv_digits.json` also writes
the record behind the README's table (the rows, the command, the machine, the versions, the commit), from
which `python -m experiments.tables --write` regenerates it. Cost for the digits: about 40 s per run on a
2-core CPU (12 variants × 3 seeds ≈ 25 minutes). `--variants=baseline,no_lcn` picks a subset.
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import subprocess
import sys

import jax
from absl import app, flags, logging

from deepvision import machine
from deepvision.diagnostics import ablation
from deepvision.registry import UnknownNameError
from deepvision.train.loop import ConfigError
from experiments import cli

_CONFIG = cli.define_config_flag()
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for the table and the runs.")
_SEEDS = flags.DEFINE_integer("seeds", 3, "Number of seeds (0, 1, ...) per variant.", lower_bound=1)
_VARIANTS = flags.DEFINE_list("variants", ablation.VARIANTS.names(),
                              f"Variants to run; valid: {', '.join(ablation.VARIANTS.names())}.")
_RECORD = flags.DEFINE_string("record", "", "Also write the table's record (JSON) to this path.")


def command_line(argv: list[str]) -> str:
  """The command as run, with the work dir written generically (records name no machine's paths)."""
  words = ["--workdir=runs/ablation" if a.startswith("--workdir") else a for a in argv[1:]]
  return " ".join(["python -m experiments.ablate", *words])


def record_path_problem(path: str) -> str | None:
  """Why `--record=path` cannot be written (checked before any training), or None."""
  if path and (not path.endswith(".json") or os.path.isdir(path)):
    return f"--record must name a .json file, got {path!r}"
  return None


def write_record(path: str, rows: list[dict], config, argv: list[str]) -> None:
  """The ablation's record: every variant's per-seed test errors, and what produced them."""
  commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False,
                          cwd=pathlib.Path(__file__).resolve().parent).stdout.strip()
  record = {"what": "test error of the config with one ingredient changed at a time, per seed",
            "dataset": config.dataset, "model": config.model, "seeds": len(rows[0]["seeds"]) if rows else 0,
            "variants": rows, "command": command_line(argv), "commit": commit,
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "machine": machine.describe(), "versions": {"jax": jax.__version__}}
  target = pathlib.Path(path)
  target.parent.mkdir(parents=True, exist_ok=True)
  target.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def main(argv: list[str]) -> None:
  if len(argv) > 1 or _CONFIG.value is None or not _WORKDIR.value:
    print("usage: python -m experiments.ablate --config=NAME|FILE.py --workdir=DIR [--seeds=3] "
          "[--variants=a,b]", file=sys.stderr)
    sys.exit(2)
  problem = record_path_problem(_RECORD.value)
  if problem:
    print(f"error: {problem}", file=sys.stderr)
    sys.exit(2)
  logging.set_verbosity(logging.WARNING)
  order = [name for name in ablation.VARIANTS.names() if name == "baseline"]
  variants = order + [v for v in _VARIANTS.value if v != "baseline"] if "baseline" in _VARIANTS.value \
      else list(_VARIANTS.value)
  try:
    rows = ablation.run_ablation(_CONFIG.value, _WORKDIR.value, variants, range(_SEEDS.value))
  except (UnknownNameError, ConfigError, ValueError) as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  if _RECORD.value:
    write_record(_RECORD.value, rows, _CONFIG.value, sys.argv)
  print(ablation.format_markdown(rows, _CONFIG.value.dataset))


if __name__ == "__main__":
  app.run(main, flags_parser=cli.make_parser(
      "python -m experiments.ablate --config=NAME|FILE.py --workdir=DIR [--seeds=3] [--variants=a,b]"))
