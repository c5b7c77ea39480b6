"""Shared fixtures: one prepared data dir for the whole session (embedded sets prepare in seconds)."""

import os

from deepvision.xla_flags import prefer_single_threaded_eigen

# Reproducible XLA:CPU sums (see the function); set before JAX starts, child processes inherit it.
prefer_single_threaded_eigen()

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
  """A data dir private to this test session (xdist worker), so tests never touch the user's."""
  path = tmp_path_factory.mktemp("tfds_data")
  return str(path)


@pytest.fixture
def x64():
  """Runs the test with 64-bit floats enabled (for finite differences and exact sums)."""
  import jax  # pylint: disable=g-import-not-at-top
  with jax.enable_x64():
    yield


@pytest.fixture(autouse=True)
def _no_user_data_dir(monkeypatch, data_dir):
  """Embedded sets asked for without a data_dir go to the session's dir, never the user's home."""
  monkeypatch.setenv("DEEPVISION_DATA_DIR", data_dir)
  yield



@pytest.fixture(scope="session", autouse=True)
def _shared_compilation_cache(tmp_path_factory):
  """One persistent XLA compilation cache for the session, shared by the xdist workers.

  Many tests build the same small models and steps (smoke runs, resumes); with the cache each distinct
  program compiles about once per session instead of once per test. It lives in pytest's temporary
  directory of this session (the xdist workers' directories share its parent), so every session starts
  cold and nothing outlives pytest's own clean-up. The launchers the tests start as child processes (kill
  and resume, exit codes, multi-process runs) read the same cache through the environment.
  """
  import jax  # pylint: disable=g-import-not-at-top
  base = tmp_path_factory.getbasetemp()
  root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
  settings = {"jax_compilation_cache_dir": str(root / "jax_compilation_cache"),
              "jax_persistent_cache_min_compile_time_secs": 0.0,
              "jax_persistent_cache_min_entry_size_bytes": 0}
  for name, value in settings.items():
    jax.config.update(name, value)
    os.environ[name.upper()] = str(value)
  yield
