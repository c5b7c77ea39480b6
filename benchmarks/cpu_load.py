"""How busy the machine was during a benchmark: the benchmarks warn when other processes took the CPU."""

from __future__ import annotations

import os
import pathlib


def cpu_busy_seconds() -> float | None:
  """CPU seconds all processes have spent busy since boot (Linux /proc/stat), or None."""
  try:
    fields = pathlib.Path("/proc/stat").read_text().splitlines()[0].split()[1:]
  except OSError:
    return None
  ticks = [int(v) for v in fields]
  idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
  return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")
