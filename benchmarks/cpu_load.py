"""How busy the machine was during a benchmark: the benchmarks warn when other processes took the CPU."""

from __future__ import annotations

import os
import pathlib
import resource


def cpu_busy_seconds() -> float | None:
  """CPU seconds all processes have spent busy since boot (Linux /proc/stat), or None."""
  try:
    fields = pathlib.Path("/proc/stat").read_text().splitlines()[0].split()[1:]
  except OSError:
    return None
  ticks = [int(v) for v in fields]
  idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
  return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
  """User + system CPU seconds of this process's finished children (the runs it timed)."""
  usage = resource.getrusage(resource.RUSAGE_CHILDREN)
  return usage.ru_utime + usage.ru_stime


def other_processes_share(busy_before: float | None, own_before: float, seconds: float) -> float | None:
  """The share of all cores that processes other than this one's children took over `seconds` of wall
  time, from `cpu_busy_seconds()` and `children_cpu_seconds()` read at its start (None off Linux)."""
  if busy_before is None:
    return None
  capacity = seconds * os.cpu_count()
  others = (cpu_busy_seconds() - busy_before) - (children_cpu_seconds() - own_before)
  return max(0.0, others / capacity)
