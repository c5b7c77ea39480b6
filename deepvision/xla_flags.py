"""XLA:CPU settings that must be made before JAX starts (this module does not import JAX)."""

from __future__ import annotations

import os

SINGLE_THREADED_EIGEN = "--xla_cpu_multi_thread_eigen=false"


def prefer_single_threaded_eigen(environ: dict[str, str] | None = None) -> None:
  """Adds `--xla_cpu_multi_thread_eigen=false` to `XLA_FLAGS` unless that flag is already set there.

  XLA:CPU's multi-threaded Eigen pool splits a matrix product over threads and sums the parts in an
  order that depends on thread timing, so results differ in their last digits from run to run; over
  hundreds of HMC transitions the chains then diverge. One thread per operation makes CPU runs
  reproducible bit for bit (the test suite and `experiments/export_pretrained.py` rely on it), and
  avoids wedges of that pool seen on small machines. Call it before the first `import jax`; child
  processes inherit the environment.
  """
  environ = os.environ if environ is None else environ
  flags = environ.get("XLA_FLAGS", "")
  if "--xla_cpu_multi_thread_eigen" not in flags:
    environ["XLA_FLAGS"] = f"{flags} {SINGLE_THREADED_EIGEN}".strip()


def with_cpu_devices(count: int, flags: str | None = None) -> str:
  """`flags` (default: the current `XLA_FLAGS`) plus `--xla_force_host_platform_device_count=count`: the
  `XLA_FLAGS` of a child process that should see `count` CPU devices and keep the parent's other settings."""
  flags = os.environ.get("XLA_FLAGS", "") if flags is None else flags
  return f"{flags} --xla_force_host_platform_device_count={count}".strip()
