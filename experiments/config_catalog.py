"""The experiment configs by name: where each file is, what it runs, what it costs, which fields it has.

Every launcher takes `--config` as a path (`experiments/configs/rbm_digits.py[:smoke]`) or as a bare name
(`rbm_digits[:smoke]`); `resolve` turns either into a path, or says in one line which configs there are.
`python -m experiments.configs` prints the catalogue (`summaries`), `python -m experiments.configs NAME`
one config's fields with their values.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import importlib.util
import os
import re

import ml_collections

from deepvision.train import workdir as workdirs

CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")
_NOT_CONFIGS = ("__init__", "__main__", "common")


class UnknownConfigError(ValueError):
  """`--config` names neither a file nor a config of `experiments/configs/`."""


def names() -> list[str]:
  """The configs of `experiments/configs/`, sorted."""
  return sorted(f[:-3] for f in os.listdir(CONFIG_DIR)
                if f.endswith(".py") and f[:-3] not in _NOT_CONFIGS)


def path_of(name: str) -> str:
  return os.path.join(CONFIG_DIR, f"{name}.py")


def resolve(value: str) -> str:
  """`path[:arg]` or `name[:arg]` as `path[:arg]` of an existing file.

  Raises:
    UnknownConfigError: neither an existing file nor a config name; the message lists the configs.
  """
  path, colon, arg = value.partition(":")
  if os.path.isfile(os.path.expanduser(path)):
    return value
  name = os.path.basename(path)[:-3] if path.endswith(".py") else path
  if name in names() and (path == name or not os.path.dirname(path) or path.endswith(f"configs/{name}.py")):
    return path_of(name) + colon + arg
  what = "no such file" if ("/" in path or path.endswith(".py")) else "no such config"
  raise UnknownConfigError(f"--config={value}: {what}; configs (a name or experiments/configs/NAME.py, "
                           f"':smoke' for a seconds-long run): {', '.join(names())}")


@dataclasses.dataclass(frozen=True)
class Summary:
  """One config in the catalogue.

  Attributes:
    name: the file's name without `.py`.
    summary: the first line of its docstring.
    cost: its "Cost on a 2-core CPU: …" sentence, or '' when it states none.
    arguments: what may follow ':' besides nothing (e.g. 'smoke').
  """

  name: str
  summary: str
  cost: str
  arguments: tuple[str, ...]


def summary(name: str) -> Summary:
  """The config's docstring facts, read without importing it."""
  with open(path_of(name)) as f:
    source = f.read()
  doc = ast.get_docstring(ast.parse(source)) or ""
  text = " ".join(doc.split())
  cost = re.search(r"Cost on a[^:]*: (.+?)(?:;|\.(?:\s|$))", text)
  arguments = tuple(sorted(set(re.findall(r"\.py:(\w+)", doc)) | ({"smoke"} if "smoke" in source else set())))
  return Summary(name, doc.splitlines()[0] if doc else "", cost.group(1) if cost else "", arguments)


def load(name: str, arg: str | None = None) -> ml_collections.ConfigDict:
  """The config `name` as its `get_config(arg)` returns it."""
  module = importlib.import_module(f"experiments.configs.{name}")
  return module.get_config(arg) if arg is not None else module.get_config()


def load_file(value: str) -> ml_collections.ConfigDict:
  """The config of `--config=path[:arg]`, loaded as the flag loads it."""
  path, _, arg = value.partition(":")
  spec = importlib.util.spec_from_file_location("_config_file", os.path.expanduser(path))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg) if arg else module.get_config()


def flat_fields(config: ml_collections.ConfigDict) -> dict[str, object]:
  """{'optimizer.learning_rate': 0.1, …}: every leaf field with its value."""
  return workdirs.flatten(config.to_dict())


def catalogue() -> str:
  """The text `python -m experiments.configs` prints: a paragraph per config."""
  lines = ["Configs (pass a name or its file as --config; NAME:smoke runs in seconds). Fields of one config:",
           "  python -m experiments.configs NAME", ""]
  for name in names():
    entry = summary(name)
    lines.append(f"{name}" + (f"  [:{', :'.join(entry.arguments)}]" if entry.arguments else ""))
    lines.append(f"  {entry.summary}")
    if entry.cost:
      lines.append(f"  cost on 2 CPU cores: {entry.cost}")
    config = load(name)
    blocks = sorted(key for key, value in config.items() if isinstance(value, ml_collections.ConfigDict))
    lines.append(f"  trainer {config.trainer}, model {config.get('model', '-')}, data {config.dataset}; "
                 f"{len(flat_fields(config))} fields, in blocks {', '.join(blocks)}")
  return "\n".join(lines)


def describe(name: str, arg: str | None = None) -> str:
  """One config: its summary, cost and every field with its value, as `--config.FIELD=VALUE` would set it."""
  entry = summary(name)
  fields = flat_fields(load(name, arg))
  width = max(map(len, fields))
  lines = [f"{name}{':' + arg if arg else ''}: {entry.summary}"]
  if entry.cost:
    lines.append(f"cost on 2 CPU cores: {entry.cost}")
  lines += ["", f"fields ({len(fields)}; override with --config.FIELD=VALUE):"]
  lines += [f"  {key:<{width}}  {value!r}" for key, value in sorted(fields.items())]
  return "\n".join(lines)
