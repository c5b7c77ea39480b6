"""Shared fixtures: one prepared data dir for the whole session (embedded sets prepare in seconds)."""

import os

import pytest


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
  """A data dir private to this test session (xdist worker), so tests never touch the user's."""
  path = tmp_path_factory.mktemp("tfds_data")
  return str(path)


@pytest.fixture(autouse=True)
def _no_user_data_dir(monkeypatch, data_dir):
  """Embedded sets asked for without a data_dir go to the session's dir, never the user's home."""
  monkeypatch.setenv("DEEPVISION_DATA_DIR", data_dir)
  yield
