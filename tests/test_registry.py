"""Registries reject duplicates and name the valid choices for unknown names."""

import pytest

from deepvision.registry import Registry, UnknownNameError, check_choice


def test_register_get_names_and_duplicates():
  reg = Registry("widget")
  reg.register("b", 2)

  @reg.register("a")
  def make_a():
    return 1

  assert reg.get("a") is make_a and reg.get("b") == 2
  assert reg.names() == ["a", "b"] and "a" in reg and len(reg) == 2
  with pytest.raises(ValueError, match="duplicate widget name 'a'"):
    reg.register("a", 3)


def test_unknown_name_lists_choices_and_suggests():
  reg = Registry("model")
  reg.register("lenet5", 1)
  reg.register("jarrett", 2)
  with pytest.raises(UnknownNameError) as info:
    reg.get("lenet")
  message = str(info.value)
  assert "unknown model 'lenet'" in message and "Did you mean 'lenet5'" in message
  assert "jarrett, lenet5" in message


def test_check_choice():
  check_choice("pool", "max", ["max", "avg"])
  with pytest.raises(ValueError, match="invalid pool 'min'; valid choices: max, avg"):
    check_choice("pool", "min", ["max", "avg"])
