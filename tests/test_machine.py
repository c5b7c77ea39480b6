"""`deepvision.machine.describe`: the machine description every benchmark and results record carries."""

from __future__ import annotations

import numpy as np

from deepvision import machine


def test_describe_names_the_cpu_cores_and_numpys_blas():
  np.ones((4, 4)) @ np.ones((4, 4))  # numpy's BLAS is loaded with numpy
  info = machine.describe()
  assert isinstance(info["cpu_model"], str) and info["cores"] >= 1
  assert info["blas"], "numpy's BLAS should be listed"
  assert all(entry["internal_api"] and entry["num_threads"] >= 1 for entry in info["blas"])
  assert info["blas_summary"].startswith(info["blas"][0]["internal_api"])


def test_blas_summary_names_each_library_once_with_its_kernel():
  blas = [{"internal_api": "openblas", "version": "0.3.31", "architecture": "Haswell"},
          {"internal_api": "openblas", "version": "0.3.31", "architecture": "Haswell"},
          {"internal_api": "mkl", "version": "2025.1", "architecture": None}]
  assert machine.blas_summary(blas) == "openblas 0.3.31 (Haswell), mkl 2025.1"
  assert machine.blas_summary([]) == "no BLAS loaded"
