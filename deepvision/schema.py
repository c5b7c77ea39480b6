"""Config blocks as typed frozen dataclasses: defaults in one place, every field checked once, on load.

A block is a frozen dataclass whose fields carry their default and their check (`spec`); nested blocks are
fields whose type is another block. `defaults(Block)` is the `ml_collections.ConfigDict` the config files
start from (locked by `lock`, so a typo is an error from ml_collections itself), and `load(Block, config)`
reads a config back into the typed record, raising `ConfigError` that names the field, the value and
what is accepted, before any compute:

  @dataclasses.dataclass(frozen=True)
  class Run:
    batch_size: int = spec(32, at_least(1), "examples per step")

  run = schema.load(Run, config)   # ConfigError: config.batch_size must be an integer >= 1, got -3

A check that relates fields lives in the block's `__post_init__`, raising ValueError whose message starts
with the field it is about ("burn_in=6 must be smaller than num_steps=6"); `load` prefixes the block's path.
A block typed `Block | None` (default None, `optional`) is a block that only some configs carry.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import ml_collections

from deepvision.errors import ConfigError

Check = Callable[[Any], Any]  # returns the accepted value (possibly normalised) or raises ValueError


def spec(default: Any, check: Check | None = None, doc: str = "", *, optional: bool = False) -> Any:
  """A block field: its default, its check (None: any value) and what it means.

  An `optional` field is checked when a config has it but is not written into `defaults` (a recipe's
  extra setting that most configs do not carry).
  """
  metadata = {"check": check, "doc": doc, "optional": optional}
  if isinstance(default, (list, dict, ml_collections.ConfigDict)) or dataclasses.is_dataclass(default):
    value = default
    return dataclasses.field(default_factory=lambda: _copy(value), metadata=metadata)
  return dataclasses.field(default=default, metadata=metadata)


def _copy(value: Any) -> Any:
  if isinstance(value, ml_collections.ConfigDict):
    return ml_collections.ConfigDict(value.to_dict())
  return value if dataclasses.is_dataclass(value) else type(value)(value)


def _is_int(value: Any) -> bool:
  return isinstance(value, int) and not isinstance(value, bool)


def at_least(low: int) -> Check:
  """An integer >= `low`."""
  def check(value):
    if not _is_int(value) or value < low:
      raise ValueError(f"must be an integer >= {low}")
    return value
  return check


def real(low: float | None = None, high: float | None = None, *, low_open: bool = False,
         high_open: bool = False) -> Check:
  """A finite number in the interval given (either end may be open or absent)."""
  left = "" if low is None else ("(" if low_open else "[") + f"{low:g}"
  right = "" if high is None else f"{high:g}" + (")" if high_open else "]")
  where = f" in {left or '(-inf'}, {right or 'inf)'}" if (low is not None or high is not None) else ""

  def check(value):
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
          and (low is None or (value > low if low_open else value >= low))
          and (high is None or (value < high if high_open else value <= high)))
    if not ok:
      raise ValueError(f"must be a number{where}")
    return value
  return check


def one_of(choices: Sequence[Any]) -> Check:
  """One of `choices`."""
  def check(value):
    if value not in choices:
      raise ValueError(f"must be one of {', '.join(str(c) for c in choices)}")
    return value
  return check


def distinct(choices: Sequence[str]) -> Check:
  """A non-empty tuple of distinct names from `choices`."""
  def check(value):
    names = tuple(value) if isinstance(value, (tuple, list)) else None
    if not names or any(n not in choices for n in names) or len(set(names)) != len(names):
      raise ValueError(f"must be a non-empty tuple of distinct names from {', '.join(map(repr, choices))}")
    return names
  return check


def boolean(value: Any) -> bool:
  if not isinstance(value, bool):
    raise ValueError("must be True or False")
  return value


def text(value: Any) -> str:
  if not isinstance(value, str):
    raise ValueError("must be a string")
  return value


def numbers(low: float | None = None, *, allow_empty: bool = True) -> Check:
  """A tuple of finite numbers, each >= `low` when given (a single number is a 1-tuple)."""
  def check(value):
    items = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    element = real(low)
    if not items and not allow_empty:
      raise ValueError("must hold at least one number")
    try:
      return tuple(element(v) for v in items)
    except ValueError:
      raise ValueError(f"must be numbers{'' if low is None else f' >= {low:g}'}") from None
  return check


def integers(low: int = 1, *, allow_empty: bool = True, each: str = "") -> Check:
  """A tuple of integers >= `low` (a single integer is a 1-tuple); `each` says what one stands for."""
  def check(value):
    items = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    if (not items and not allow_empty) or not all(_is_int(v) and v >= low for v in items):
      raise ValueError(f"must be a {'' if allow_empty else 'non-empty '}tuple of integers >= {low}"
                       + (f", {each}" if each else ""))
    return items
  return check


def _hints(block: type) -> dict[str, Any]:
  return typing.get_type_hints(block)


def _is_block(kind: Any) -> bool:
  return isinstance(kind, type) and dataclasses.is_dataclass(kind)


def _block_of(kind: Any) -> type | None:
  """The block type of a field typed `Block` or `Block | None`, else None."""
  if _is_block(kind):
    return kind
  inner = [arg for arg in typing.get_args(kind) if arg is not type(None)]
  return inner[0] if len(inner) == 1 and _is_block(inner[0]) else None


def defaults(block: type, **overrides: Any) -> ml_collections.ConfigDict:
  """The config block of `block`'s defaults (nested blocks as nested ConfigDicts), with `overrides`."""
  return to_config(block(**overrides))


def to_config(record: Any) -> ml_collections.ConfigDict:
  """A block instance as a ConfigDict (the inverse of `load`)."""
  config = ml_collections.ConfigDict()
  for f in dataclasses.fields(record):
    if f.metadata.get("optional"):
      continue
    value = getattr(record, f.name)
    config[f.name] = to_config(value) if dataclasses.is_dataclass(value) else _copy_value(value)
  return config


def _copy_value(value: Any) -> Any:
  if isinstance(value, ml_collections.ConfigDict):
    return ml_collections.ConfigDict(value.to_dict())
  if isinstance(value, dict):
    return ml_collections.ConfigDict(value)
  return value


def lock(config: ml_collections.ConfigDict, free: Sequence[str] = ("model_kwargs",)) -> ml_collections.ConfigDict:
  """Locks `config` (a new field is an error, naming the fields there are) except the free-form blocks
  named in `free` (dotted paths, e.g. the model's keyword arguments, checked by the zoo)."""
  config.lock()
  for path in free:
    node = config
    try:
      for part in path.split("."):
        node = node[part]
    except (KeyError, AttributeError):
      continue
    if isinstance(node, ml_collections.ConfigDict):
      node.unlock()
  return config


def load(block: type, config: ml_collections.ConfigDict | dict, path: str = "config") -> Any:
  """`config` read into `block`, every field checked; fields the block does not name are left alone.

  Raises:
    ConfigError: naming `path.field`, the value and what is accepted.
  """
  values = {}
  hints = _hints(block)
  for f in dataclasses.fields(block):
    where = f"{path}.{f.name}"
    if f.name not in config:
      continue  # the default
    value = config[f.name]
    kind = _block_of(hints.get(f.name))
    if kind is not None:
      if not isinstance(value, (ml_collections.ConfigDict, dict)):
        raise ConfigError(f"{where} must be a block of fields, got {value!r}")
      values[f.name] = load(kind, value, where)
      continue
    check = f.metadata.get("check")
    if check is not None:
      try:
        value = check(value)
      except (ValueError, TypeError) as e:
        raise ConfigError(f"{where} {e}, got {value!r}") from None
    if isinstance(value, ml_collections.ConfigDict):
      value = value.to_dict()
    values[f.name] = value
  try:
    return block(**values)
  except ValueError as e:  # a check relating fields (`__post_init__`)
    raise ConfigError(f"{path}.{e}") from None


def override_config(config: ml_collections.ConfigDict, overrides: Mapping[str, Any]
                    ) -> ml_collections.ConfigDict:
  """A copy of `config` with dotted fields set; unknown fields (outside model_kwargs) are an error."""
  config = ml_collections.ConfigDict(config.to_dict())
  for dotted, value in overrides.items():
    *path, leaf = dotted.split(".")
    target = config
    for part in path:
      if part not in target:
        raise ValueError(f"unknown config field {dotted!r}")
      target = target[part]
    if leaf not in target and path != ["model_kwargs"]:
      raise ValueError(f"unknown config field {dotted!r}")
    target[leaf] = value
  return config
