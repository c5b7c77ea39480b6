"""Name → object registries: models, data sets, schedules and trainers are chosen by name.

A `Registry` maps a string to an object (a class, a factory or a partial). Registering a
name twice is an error, and asking for a name that is not there raises `UnknownNameError`
listing the valid choices, so a typo in a config fails before any compute.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
  """Raised for a name that is not registered; the message lists the valid choices."""

  def __str__(self) -> str:  # KeyError quotes its message; print it plainly.
    return str(self.args[0]) if self.args else ""


class Registry(Generic[T]):
  """A named collection of objects of one kind.

  Example:
    >>> MODELS = Registry("model")
    >>> @MODELS.register("mlp")
    ... def make_mlp(): ...
    >>> MODELS.get("mlp") is make_mlp
    True
  """

  def __init__(self, kind: str):
    self.kind = kind
    self._items: dict[str, T] = {}

  def register(self, name: str, obj: T | None = None) -> Any:
    """Registers `obj` under `name`; used bare as a decorator when `obj` is None."""
    if not isinstance(name, str) or not name:
      raise ValueError(f"{self.kind} name must be a non-empty string, got {name!r}")

    def add(item: T) -> T:
      if name in self._items:
        raise ValueError(f"duplicate {self.kind} name {name!r}: already registered")
      self._items[name] = item
      return item

    if obj is None:
      return add
    return add(obj)

  def get(self, name: str) -> T:
    """Returns the object registered as `name`, or raises `UnknownNameError`."""
    try:
      return self._items[name]
    except (KeyError, TypeError):
      close = difflib.get_close_matches(str(name), self._items, n=1)
      hint = f" Did you mean {close[0]!r}?" if close else ""
      raise UnknownNameError(
          f"unknown {self.kind} {name!r}.{hint} Valid choices: {', '.join(self.names())}"
      ) from None

  def names(self) -> list[str]:
    """Registered names, sorted."""
    return sorted(self._items)

  def __contains__(self, name: object) -> bool:
    return name in self._items

  def __iter__(self) -> Iterator[str]:
    return iter(self.names())

  def __len__(self) -> int:
    return len(self._items)


def check_choice(field: str, value: Any, choices: Callable[[], list[str]] | list[str]) -> None:
  """Raises ValueError naming `field`, `value` and the valid `choices` if value is not one."""
  valid = choices() if callable(choices) else choices
  if value not in valid:
    raise ValueError(f"invalid {field} {value!r}; valid choices: {', '.join(map(str, valid))}")
