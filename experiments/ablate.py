r"""The ablation table: the talk's ingredients switched off one at a time, over several seeds.

  python -m experiments.ablate --config=experiments/configs/lcn_convnet_digits.py \
      --workdir=runs/ablation --seeds=3

Writes `ablation.md` (mean ± std test error per variant) and `ablation.json` to the work dir; each run
has its own work dir below it, so re-running resumes. Cost for the digits: about 40 s per run on a
2-core CPU (12 variants × 3 seeds ≈ 25 minutes). `--variants=baseline,no_lcn` picks a subset.
"""

from __future__ import annotations

import sys

from absl import app, flags, logging

from deepvision.diagnostics import ablation
from deepvision.registry import UnknownNameError
from deepvision.train.loop import ConfigError
from experiments import cli

_CONFIG = cli.define_config_flag()
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for the table and the runs.")
_SEEDS = flags.DEFINE_integer("seeds", 3, "Number of seeds (0, 1, ...) per variant.", lower_bound=1)
_VARIANTS = flags.DEFINE_list("variants", ablation.VARIANTS.names(),
                              f"Variants to run; valid: {', '.join(ablation.VARIANTS.names())}.")


def main(argv: list[str]) -> None:
  if len(argv) > 1 or _CONFIG.value is None or not _WORKDIR.value:
    print("usage: python -m experiments.ablate --config=NAME|FILE.py --workdir=DIR [--seeds=3] "
          "[--variants=a,b]", file=sys.stderr)
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
  print(ablation.format_markdown(rows, _CONFIG.value.dataset))


if __name__ == "__main__":
  app.run(main, flags_parser=cli.make_parser(
      "python -m experiments.ablate --config=NAME|FILE.py --workdir=DIR [--seeds=3] [--variants=a,b]"))
