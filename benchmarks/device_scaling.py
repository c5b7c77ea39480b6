"""Data-parallel training throughput on 1, 2, 4 and 8 forced CPU devices: what `deepvision.parallel` costs.

IMPORTANT: the devices are FORCED host devices (`XLA_FLAGS=--xla_force_host_platform_device_count=N`).
They are not extra hardware: all N share the machine's cores (2 on the development machine), so the total
arithmetic per step is the same for every N and no speed-up is possible. What this measures is the
OVERHEAD of the data-parallel step — splitting the batch into N smaller per-device programs, the
all-reduce (`lax.pmean`) of gradients and metrics, pmap dispatch, and worse use of the cores by N small
programs — as the ratio images/s(N) / images/s(1). A ratio near 1 means the machinery is cheap; on real
accelerators each device brings its own compute and the same code scales.

Workloads, each in a fresh interpreter per device count (the CPU device count is fixed when JAX starts):
  * cifar_convnet: the zoo's "cifar_convnet" (32×32×3, 89,578 parameters), global batch 128 of synthetic
    images, softmax cross-entropy, SGD lr 0.01 momentum 0.9, through
    `parallel.data_parallel(supervised.make_train_step, ...)` with `shard_state` / `shard_batch`. With one
    device the plain `jax.jit` step is timed too (`jit_one_device`), the pmap-free reference.
  * rbm_pcd1: the zoo's "rbm" (784 × 500 binary RBM), PCD-1 with block Gibbs (`deepvision.train.
    contrastive`), global batch 128 and 128 persistent chains split over the devices, SGD lr 0.01
    momentum 0.5, synthetic binary data.
Every step is warmed up (compiled) first; then images/s is the median over timed windows of a few steps,
each window ended by `jax.block_until_ready` on the state.

Usage (about 2 minutes on 2 cores; --quick: under a minute):
  python benchmarks/device_scaling.py [--quick] [--devices 1,2,4,8] [--out PATH]
Writes benchmarks/results/device_scaling.json (or device_scaling_quick.json) and prints a table.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time

from cpu_load import cpu_busy_seconds  # benchmarks/cpu_load.py (the script's own folder)
from deepvision.xla_flags import with_cpu_devices  # imports no JAX

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
GLOBAL_BATCH = 128
WORKLOADS = ("cifar_convnet", "rbm_pcd1")
NOTE = ("Forced CPU devices share this machine's cores: the work per step is the same for every device "
        "count, so this measures the OVERHEAD of data parallelism (ratio to 1 device; 1.0 = free), not a "
        "speed-up.")


# ---------------------------------------------------------------------------------------------------------
# Worker: runs in a subprocess whose XLA_FLAGS fix the device count before JAX starts.

def _time_windows(step, state, batch, steps: int, windows: int, warmup: int) -> tuple[list[float], object]:
  """images/s of each timed window of `steps` steps (after `warmup` untimed steps), and the final state."""
  import jax  # pylint: disable=g-import-not-at-top
  for _ in range(warmup):
    state, metrics = step(state, batch)
  jax.block_until_ready((state, metrics))
  rates = []
  for _ in range(windows):
    start = time.perf_counter()
    for _ in range(steps):
      state, metrics = step(state, batch)
    jax.block_until_ready((state, metrics))
    rates.append(steps * GLOBAL_BATCH / (time.perf_counter() - start))
  return rates, state


def _cifar(num_devices: int, steps: int, windows: int, warmup: int) -> dict:
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top
  from deepvision import parallel, zoo  # pylint: disable=g-import-not-at-top
  from deepvision.train import supervised  # pylint: disable=g-import-not-at-top
  from deepvision.train.state import create_train_state  # pylint: disable=g-import-not-at-top

  model = zoo.create("cifar_convnet")
  rng = np.random.default_rng(0)
  batch = {"image": rng.random((GLOBAL_BATCH, *model.input_shape), dtype=np.float32),
           "label": rng.integers(0, 10, GLOBAL_BATCH).astype(np.int32)}
  preprocess = supervised.Preprocess(standardize=False)
  state = create_train_state(model, optax.sgd(0.01, momentum=0.9), jax.random.key(0), model.input_shape)
  out = {}
  if num_devices == 1:
    single = jax.jit(supervised.make_train_step(preprocess), donate_argnums=0)
    rates, _ = _time_windows(single, jax.tree.map(jax.numpy.copy, state), jax.device_put(batch),
                             steps, windows, warmup)
    out["jit_one_device"] = rates
  step = parallel.data_parallel(supervised.make_train_step, preprocess, num_devices=num_devices)
  rates, final = _time_windows(step, parallel.shard_state(state, num_devices),
                               parallel.shard_batch(batch, num_devices), steps, windows, warmup)
  loss = float(np.asarray(final.params["output"]["bias"]).sum())  # touch the result
  if not np.isfinite(loss):
    raise FloatingPointError("cifar_convnet diverged during the benchmark")
  out["data_parallel"] = rates
  return out


def _rbm(num_devices: int, steps: int, windows: int, warmup: int) -> dict:
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top
  from deepvision import parallel, zoo  # pylint: disable=g-import-not-at-top
  from deepvision.train import contrastive  # pylint: disable=g-import-not-at-top

  model = zoo.create("rbm")
  rng = np.random.default_rng(1)
  data = (rng.random((2 * GLOBAL_BATCH, model.n_visible)) < 0.2).astype(np.float32)
  spec = contrastive.ContrastiveSpec(method="pcd", k=1)
  lr_fn = optax.constant_schedule(0.01)
  state = contrastive.create_state(model, optax.sgd(lr_fn, momentum=0.5), jax.random.key(2), spec,
                                   data[GLOBAL_BATCH:])
  step = parallel.data_parallel(contrastive.make_train_step, model, spec, lr_fn, num_devices=num_devices)
  rates, _ = _time_windows(step, parallel.shard_state(state, num_devices),
                           parallel.shard_batch(data[:GLOBAL_BATCH], num_devices), steps, windows, warmup)
  return {"data_parallel": rates}


def worker(num_devices: int, quick: bool) -> dict:
  """Measures every workload on `num_devices` forced devices; returns the rates per window."""
  import jax  # pylint: disable=g-import-not-at-top
  if jax.local_device_count() < num_devices:
    raise RuntimeError(f"asked for {num_devices} devices, JAX sees {jax.local_device_count()} "
                       "(XLA_FLAGS must be set before JAX starts)")
  windows = 3 if quick else 5
  return {
      "num_devices": num_devices,
      "jax_version": jax.__version__,
      "device_kind": jax.devices()[0].device_kind,
      "platform": jax.devices()[0].platform,
      "cifar_convnet": _cifar(num_devices, steps=2 if quick else 4, windows=windows, warmup=2),
      "rbm_pcd1": _rbm(num_devices, steps=10 if quick else 25, windows=windows, warmup=3),
  }


# ---------------------------------------------------------------------------------------------------------
# Driver.

def run_worker(num_devices: int, quick: bool, timeout: float) -> dict:
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=with_cpu_devices(num_devices))
  command = [sys.executable, os.path.abspath(__file__), "--worker", str(num_devices)]
  if quick:
    command.append("--quick")
  done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, check=False,
                        cwd=pathlib.Path(__file__).resolve().parent.parent)
  if done.returncode != 0:
    raise RuntimeError(f"the {num_devices}-device worker failed:\n{done.stderr[-3000:]}")
  return json.loads(done.stdout.strip().splitlines()[-1])


def summarise(runs: list[dict]) -> dict:
  """images/s (median of windows) per workload and device count, and the ratio to 1 device."""
  table = {}
  for workload in WORKLOADS:
    rows = {}
    for run in runs:
      rates = run[workload]["data_parallel"]
      rows[str(run["num_devices"])] = {"images_per_s_median": round(statistics.median(rates), 1),
                                       "images_per_s_windows": [round(r, 1) for r in rates]}
      if "jit_one_device" in run[workload]:
        rates = run[workload]["jit_one_device"]
        rows["1 (jit, no pmap)"] = {"images_per_s_median": round(statistics.median(rates), 1),
                                    "images_per_s_windows": [round(r, 1) for r in rates]}
    base = rows.get("1", {}).get("images_per_s_median")
    for row in rows.values():
      row["ratio_to_1_device"] = None if not base else round(row["images_per_s_median"] / base, 3)
    table[workload] = rows
  return table


def print_table(table: dict) -> None:
  print(f"\nNOTE: {NOTE}\n")
  print(f"{'workload':15s} {'devices':>18s} {'per-device batch':>17s} {'images/s':>10s} {'vs 1 device':>12s}")
  for workload, rows in table.items():
    for devices, row in rows.items():
      count = int(devices.split()[0])
      ratio = row["ratio_to_1_device"]
      print(f"{workload:15s} {devices:>18s} {GLOBAL_BATCH // count:>17d} "
            f"{row['images_per_s_median']:>10.0f} {'' if ratio is None else f'{ratio:.2f}×':>12s}")


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true", help="fewer and shorter windows (smoke test)")
  parser.add_argument("--devices", default="1,2,4,8", help="comma-separated device counts")
  parser.add_argument("--out", type=pathlib.Path, default=None, help="JSON output path")
  parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.worker is not None:
    print(json.dumps(worker(args.worker, args.quick)))
    return {}
  try:
    counts = [int(c) for c in args.devices.split(",")]
  except ValueError:
    raise SystemExit(f"--devices must be comma-separated ints, got {args.devices!r}")
  if not counts or any(c < 1 or GLOBAL_BATCH % c for c in counts):
    raise SystemExit(f"--devices must be divisors of the global batch {GLOBAL_BATCH}, got {args.devices!r}")
  out = args.out or RESULTS / ("device_scaling_quick.json" if args.quick else "device_scaling.json")

  cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
  busy_start, start = cpu_busy_seconds(), time.perf_counter()
  runs = []
  for count in counts:
    t0 = time.perf_counter()
    runs.append(run_worker(count, args.quick, timeout=300))
    print(f"{count} device(s): done in {time.perf_counter() - t0:.0f} s", flush=True)
  elapsed = time.perf_counter() - start
  busy_end = cpu_busy_seconds()
  # Our workers use (at most) every core while they run, so the busy share beyond 100% is not
  # separable here; record the whole machine's busy share and the load average instead.
  busy_share = None if busy_start is None else round((busy_end - busy_start) / (elapsed * cores), 3)
  table = summarise(runs)
  report = {
      "benchmark": "data-parallel training throughput on forced CPU devices",
      "note": NOTE,
      "workloads": {
          "cifar_convnet": "zoo cifar_convnet (32×32×3), global batch 128 synthetic images, softmax "
                           "cross-entropy, SGD lr 0.01 momentum 0.9; parallel.data_parallel("
                           "supervised.make_train_step); '1 (jit, no pmap)': jax.jit of the same step",
          "rbm_pcd1": "zoo rbm (784×500), PCD-1 block Gibbs, global batch 128, 128 persistent chains "
                      "sharded over the devices, SGD lr 0.01 momentum 0.5; parallel.data_parallel("
                      "contrastive.make_train_step)",
      },
      "global_batch": GLOBAL_BATCH,
      "results": table,
      "jax_version": runs[0]["jax_version"],
      "device_kind": runs[0]["device_kind"],
      "platform": runs[0]["platform"],
      "machine": {"cores": cores, "platform": platform.platform(), "processor": platform.processor(),
                  "machine_busy_share_during_run": busy_share,
                  "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()]},
      "measured_seconds": round(elapsed, 1),
      "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "command": "python benchmarks/device_scaling.py" + (" " + " ".join(sys.argv[1:]) if argv is None and sys.argv[1:] else ""),
  }
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
  print_table(table)
  load = report["machine"]["load_average_1_5_15"]
  print(f"\njax {report['jax_version']}, device kind {report['device_kind']!r}, {cores} cores; "
        f"load average {load[0]} (1 min); took {elapsed:.0f} s; wrote {out}")
  if load[0] > cores:
    print(f"warning: the load average ({load[0]}) exceeds the {cores} cores: other processes competed "
          "for the CPU and the numbers are noisy.")
  return report


if __name__ == "__main__":
  main()
