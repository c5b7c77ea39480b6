"""The error every layer raises for a config that cannot run (the launcher exits 2 on it)."""


class ConfigError(ValueError):
  """An experiment config that cannot run: the message names the field, the value and what is valid."""
