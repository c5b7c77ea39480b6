"""Generated tables in README.md: the text between a BEGIN and an END marker, replaced by the generator's."""

from __future__ import annotations

import sys


def replace_between(text: str, begin: str, end: str, generated: str, name: str) -> str:
  """`text` with what lies between `begin` and `end` replaced by `generated`.

  Raises:
    ValueError: the markers are missing or out of order (the message gives the lines to add).
  """
  start, stop = text.find(begin), text.find(end)
  if start < 0 or stop < start:
    raise ValueError(f"the README has no {name} markers: add the lines\n{begin}\n{end}\nwhere the tables go")
  return text[:start + len(begin)] + "\n" + generated + "\n" + text[stop:]


def publish(generated: str, readme: str, begin: str, end: str, name: str, *, write: bool, check: bool,
            command: str) -> None:
  """Prints `generated`, writes it into `readme` between the markers, or checks that `readme` holds it.

  Exits 2 when the markers are missing and 1 when `check` finds the README stale (naming `command`).
  """
  if not (write or check):
    print(generated)
    return
  with open(readme, encoding="utf-8") as f:
    text = f.read()
  try:
    updated = replace_between(text, begin, end, generated, name)
  except ValueError as e:
    print(f"error: {readme}: {e}", file=sys.stderr)
    sys.exit(2)
  if check:
    if updated != text:
      print(f"{readme}: the {name} tables differ from their sources; run {command}", file=sys.stderr)
      sys.exit(1)
    return
  with open(readme, "w", encoding="utf-8") as f:
    f.write(updated)
