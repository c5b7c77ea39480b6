"""Generated tables in README.md: the text between a BEGIN and an END marker, replaced by the generator's."""

from __future__ import annotations


def replace_between(text: str, begin: str, end: str, generated: str, name: str) -> str:
  """`text` with what lies between `begin` and `end` replaced by `generated`.

  Raises:
    ValueError: the markers are missing or out of order (the message gives the lines to add).
  """
  start, stop = text.find(begin), text.find(end)
  if start < 0 or stop < start:
    raise ValueError(f"the README has no {name} markers: add the lines\n{begin}\n{end}\nwhere the tables go")
  return text[:start + len(begin)] + "\n" + generated + "\n" + text[stop:]
