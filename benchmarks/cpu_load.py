"""How busy the machine was during a benchmark: the benchmarks warn when other processes took the CPU."""

from __future__ import annotations

import os
import pathlib
import resource
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


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


def measure_children(run: Callable[[], T]) -> tuple[T, dict]:
  """Calls `run` (which starts and waits for child processes) and returns its result with how busy the machine
  was meanwhile: `machine_busy_share` (all cores, the run included; None off Linux), `run_cpu_seconds` (the
  children's own CPU time) and `other_processes_cpu_share` (the busy share less the children's)."""
  own_before, busy_before, begin = children_cpu_seconds(), cpu_busy_seconds(), time.perf_counter()
  result = run()
  capacity = (time.perf_counter() - begin) * os.cpu_count()
  own = children_cpu_seconds() - own_before
  busy = None if busy_before is None else (cpu_busy_seconds() - busy_before) / capacity
  return result, {"machine_busy_share": busy, "run_cpu_seconds": own,
                  "other_processes_cpu_share": None if busy is None else max(0.0, busy - own / capacity)}


class OwnLoad:
  """How much of the machine other processes took while this process measured, from its creation on.

  `other_share()`: the busy CPU time of all processes (Linux /proc/stat) less this process's own, over the
  wall time × cores since creation, rounded to 3 digits (None off Linux); `seconds()`: that wall time.
  """

  def __init__(self):
    self.begin, self.own, self.busy = time.perf_counter(), time.process_time(), cpu_busy_seconds()

  def seconds(self) -> float:
    return time.perf_counter() - self.begin

  def other_share(self) -> float | None:
    busy = cpu_busy_seconds()
    if self.busy is None or busy is None:
      return None
    other = max(0.0, busy - self.busy - (time.process_time() - self.own))
    return round(other / (self.seconds() * os.cpu_count()), 3)
