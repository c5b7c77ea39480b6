"""Fixtures for the data tests."""

import pytest

from deepvision import data


@pytest.fixture(scope="session")
def prepared_data_dir(data_dir):
  """The test run's data directory with dv_digits, dv_faces and dv_natural_images prepared."""
  for name in ("dv_digits", "dv_faces", "dv_natural_images"):
    data.dataset_info(name, data_dir)  # Prepares on first use.
  return data_dir
