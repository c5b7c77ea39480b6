r"""Lists the experiment configs, or one config's fields.

  python -m experiments.configs                  # every config: summary, cost, fields
  python -m experiments.configs rbm_digits       # one config's fields and values
  python -m experiments.configs rbm_digits:smoke
"""

from __future__ import annotations

import sys

from experiments import config_catalog


def main(argv: list[str]) -> int:
  if len(argv) > 2 or any(a in ("-h", "--help") for a in argv[1:]):
    print(__doc__.strip())
    return 0 if len(argv) <= 2 else 2
  if len(argv) == 1:
    print(config_catalog.catalogue())
    return 0
  name, _, arg = argv[1].partition(":")
  if name not in config_catalog.names():
    print(f"error: unknown config {name!r}; configs: {', '.join(config_catalog.names())}", file=sys.stderr)
    return 2
  try:
    print(config_catalog.describe(name, arg or None))
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
