"""What a record of a measured run says about the machine: CPU model, cores, load, XLA flags and BLAS."""

from __future__ import annotations

import contextlib
import os
import pathlib
import platform

import numpy as np
import threadpoolctl


def describe() -> dict:
  """CPU model, cores, load, XLA flags and the BLAS numpy uses (what every benchmark and results record
  carries, so figures from different machines are not compared unawares)."""
  model = platform.processor()
  with contextlib.suppress(OSError):
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
      if line.startswith("model name"):
        model = line.split(":", 1)[1].strip()
        break
  pools = [{k: info.get(k) for k in ("internal_api", "prefix", "version", "threading_layer", "num_threads")}
           for info in threadpoolctl.threadpool_info()]
  # The BLAS libraries loaded in this process as they run now (numpy's among them: its build names the
  # library, threadpoolctl the version, the CPU kernel it picked and its threads).
  blas = [{k: info.get(k) for k in ("internal_api", "prefix", "version", "architecture", "num_threads")}
          for info in threadpoolctl.threadpool_info() if info.get("user_api") == "blas"]
  numpy_blas = None
  with contextlib.suppress(Exception):  # numpy's build report has changed shape across versions
    numpy_blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
  return {"cpu_model": model, "platform": platform.platform(),
          "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
          "load_average_1_5_15": [round(v, 2) for v in os.getloadavg()],
          "xla_flags": os.environ.get("XLA_FLAGS", ""),
          "xla_flags_note": "XLA_FLAGS as set for this process (empty: XLA:CPU defaults, multi-threaded Eigen)",
          "numpy_blas_build": numpy_blas, "blas": blas, "blas_summary": blas_summary(blas),
          "native_thread_pools": pools}


def blas_summary(blas: list[dict]) -> str:
  """One line naming the BLAS libraries of `describe()["blas"]`, e.g. `openblas 0.3.31 (Haswell)`."""
  names = []
  for info in blas:
    name = f"{info.get('internal_api') or 'unknown BLAS'} {info.get('version') or ''}".strip()
    if info.get("architecture"):
      name += f" ({info['architecture']})"
    if name not in names:
      names.append(name)
  return ", ".join(names) or "no BLAS loaded"
