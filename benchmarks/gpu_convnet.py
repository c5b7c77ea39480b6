"""CIFAR convnet training on an accelerator: images/s and achieved FLOP/s, float32 against bfloat16 compute.

Measured on whatever JAX's default backend is (written for one NVIDIA H200; `--quick` runs in seconds on
a CPU as a smoke test):

1. Peak matrix-multiply rate of the device, in this run: a jitted n×n by n×n product (n = 8192,
   2n³ FLOPs) repeated in timed windows, for bfloat16, float32 at JAX's default precision (on NVIDIA
   Ampere/Hopper that runs on the tensor cores as TF32: 10-bit mantissa inputs, float32 accumulation)
   and float32 at `precision=HIGHEST` (true FP32 on the CUDA cores).
2. Training throughput of the zoo's "cifar_convnet" (cuda-convnet's layers-18pct net, 32×32×3, 89,578
   parameters) on synthetic images kept on the device: `deepvision.train.supervised.make_train_step`
   (softmax cross-entropy, no augmentation or standardisation), SGD lr 0.01 momentum 0.9, jitted with the
   state donated, for each compute mode — 'float32' (dtype=None, default precision: TF32 convolutions
   on GPUs that have it), 'bfloat16' (the model's dtype field: bf16 activations, float32 parameters and
   logits) and 'float32_highest' (dtype=None under `jax.default_matmul_precision('highest')`) — and
   each batch size (128, 1024, 4096).
3. Achieved FLOP/s = images/s × training FLOPs per image, where the training FLOPs are taken as 3× the
   analytic forward FLOPs of `deepvision.diagnostics.flops` (2 × 12,384,256 multiply-adds per image:
   convolutions and the dense layer, plus the window sums of pooling and normalisation; elementwise work
   counts 0). The 3× convention counts the input and weight gradients as one forward pass each. This
   is compared with (i) the measured matmul peak of the matching precision and (ii) the nominal dense
   peak given by flags (defaults: H200 SXM, 989 TFLOP/s BF16, 494 TF32, 67 FP32; TF32 is what the
   'float32' mode uses on tensor cores, FP32 what 'float32_highest' uses).
4. With more than one local device, the same step through `deepvision.parallel.data_parallel` on one
   device and on all of them (per-device batch 1024); skipped on a single device.

Each measurement is warmed up (compiled) first and timed over several windows, each ended by
`jax.block_until_ready`; the median window is reported. A time budget (`--budget-s`) skips what is left
rather than overrun. This is a small network (12 MFLOP forward per image): expect it to be bound by
memory traffic and kernel launches, far below the matmul peak, with bfloat16 helping mostly through the
halved activation traffic.

Imports from deepvision only what runs on a bare accelerator machine (no TFDS, grain, ml_collections or
tensorboardX): `zoo`, `parallel`, `diagnostics.flops`, `train.supervised`, `train.state`.

Usage (about 2-3 minutes on one GPU, mostly compilation; --quick: a short CPU smoke run):
  python benchmarks/gpu_convnet.py [--quick] [--out PATH] [--batch-sizes 128,1024,4096]
      [--modes float32,bfloat16,float32_highest] [--spec-bf16-tflops 989] [--spec-tf32-tflops 494]
      [--spec-fp32-tflops 67] [--budget-s 170]
Writes benchmarks/results/gpu_convnet.json unless --out is given.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.util
import json
import pathlib
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

if importlib.util.find_spec("deepvision") is None:  # A checkout without the package installed.
  sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from deepvision import parallel, zoo  # noqa: E402
from deepvision.diagnostics import flops  # noqa: E402
from deepvision.train import supervised  # noqa: E402
from deepvision.train.state import create_train_state  # noqa: E402

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
MODEL = "cifar_convnet"
MODES = ("float32", "bfloat16", "float32_highest")
# Which measured matmul and which nominal peak each training mode is compared with.
MATMUL_OF_MODE = {"float32": "float32_default", "bfloat16": "bfloat16", "float32_highest": "float32_highest"}
SPEC_OF_MODE = {"float32": "tf32", "bfloat16": "bf16", "float32_highest": "fp32"}
TRAINING_FACTOR = 3  # training FLOPs ≈ 3 × forward FLOPs (input and weight gradients ≈ one forward each)


class OutOfTime(Exception):
  """The time budget is spent: the remaining measurements are skipped."""


def _median_rate(run: Callable[[int], None], work_per_call: float, calls: int, windows: int) -> dict:
  """Median of `windows` timed windows of `calls` calls of `run` (which blocks at its end), as work/s."""
  rates = []
  for _ in range(windows):
    start = time.perf_counter()
    run(calls)
    rates.append(calls * work_per_call / (time.perf_counter() - start))
  return {"median": statistics.median(rates), "windows": rates}


def _calls_per_window(seconds_per_call: float, target_s: float, low: int, high: int) -> int:
  return int(min(high, max(low, round(target_s / max(seconds_per_call, 1e-9)))))


# ---------------------------------------------------------------------------------------------------------
# 1. Matmul peak.

def matmul_peak(n: int, windows: int, target_s: float) -> dict[str, dict]:
  """FLOP/s of an n×n·n×n product for bfloat16, float32 (default precision) and float32 (HIGHEST)."""
  key_a, key_b = jax.random.split(jax.random.key(0))
  cases = {"bfloat16": (jnp.bfloat16, None), "float32_default": (jnp.float32, None),
           "float32_highest": (jnp.float32, jax.lax.Precision.HIGHEST)}
  out = {}
  for name, (dtype, precision) in cases.items():
    a = jax.random.normal(key_a, (n, n), dtype)
    b = (jax.random.normal(key_b, (n, n), jnp.float32) / np.sqrt(n)).astype(dtype)
    product = jax.jit(lambda a, b, precision=precision: jnp.matmul(a, b, precision=precision))
    jax.block_until_ready(product(a, b))  # compile
    start = time.perf_counter()
    jax.block_until_ready(product(a, b))
    calls = _calls_per_window(time.perf_counter() - start, target_s, 2, 1000)

    def run(calls, a=a, b=b, product=product):
      results = [product(a, b) for _ in range(calls)]
      jax.block_until_ready(results)

    rate = _median_rate(run, 2.0 * n**3, calls, windows)
    out[name] = {"tflops_median": rate["median"] / 1e12,
                 "tflops_windows": [r / 1e12 for r in rate["windows"]], "calls_per_window": calls,
                 "precision": "HIGHEST" if precision is not None else "DEFAULT"}
  return out


# ---------------------------------------------------------------------------------------------------------
# 2. Training throughput.

def _precision_context(mode: str):
  return jax.default_matmul_precision("highest") if mode == "float32_highest" else contextlib.nullcontext()


def _model(mode: str):
  return zoo.create(MODEL, dtype="bfloat16" if mode == "bfloat16" else None)


def _synthetic_batch(batch: int, input_shape: tuple[int, ...], seed: int = 0) -> dict[str, jax.Array]:
  key_images, key_labels = jax.random.split(jax.random.key(seed))
  return {"image": jax.random.uniform(key_images, (batch, *input_shape), jnp.float32),
          "label": jax.random.randint(key_labels, (batch,), 0, 10, jnp.int32)}


def train_throughput(mode: str, batch: int, windows: int, target_s: float, min_steps: int,
                     deadline: float) -> dict:
  """images/s of the jitted, donated training step in compute mode `mode` at batch size `batch`."""
  if time.perf_counter() > deadline:
    raise OutOfTime
  model = _model(mode)
  preprocess = supervised.Preprocess(standardize=False)
  with _precision_context(mode):
    state = create_train_state(model, optax.sgd(0.01, momentum=0.9), jax.random.key(0), model.input_shape)
    step = jax.jit(supervised.make_train_step(preprocess), donate_argnums=0)
    data = _synthetic_batch(batch, model.input_shape)
    holder = {"state": state}

    def run(steps: int) -> None:
      state = holder["state"]
      for _ in range(steps):
        state, metrics = step(state, data)
      jax.block_until_ready((state, metrics))
      holder["state"], holder["metrics"] = state, metrics

    start = time.perf_counter()
    run(1)
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    run(2)
    steps = _calls_per_window((time.perf_counter() - start) / 2, target_s, min_steps, 500)
    rate = _median_rate(run, batch, steps, windows)
    loss = float(holder["metrics"]["train/loss"])
  if not np.isfinite(loss):
    raise FloatingPointError(f"{mode} at batch {batch} diverged (loss {loss})")
  return {"images_per_s_median": rate["median"], "images_per_s_windows": rate["windows"],
          "ms_per_step_median": 1e3 * batch / rate["median"], "steps_per_window": steps,
          "first_call_s": compile_s, "final_loss": loss}


def data_parallel_throughput(mode: str, per_device_batch: int, num_devices: int, windows: int,
                             target_s: float, min_steps: int, deadline: float) -> dict:
  """images/s of `parallel.data_parallel(make_train_step)` over `num_devices` local devices."""
  if time.perf_counter() > deadline:
    raise OutOfTime
  model = _model(mode)
  preprocess = supervised.Preprocess(standardize=False)
  global_batch = per_device_batch * num_devices
  with _precision_context(mode):
    state = create_train_state(model, optax.sgd(0.01, momentum=0.9), jax.random.key(0), model.input_shape)
    step = parallel.data_parallel(supervised.make_train_step, preprocess, num_devices=num_devices)
    data = parallel.shard_batch(jax.device_get(_synthetic_batch(global_batch, model.input_shape)), num_devices)
    holder = {"state": parallel.shard_state(state, num_devices)}

    def run(steps: int) -> None:
      state = holder["state"]
      for _ in range(steps):
        state, metrics = step(state, data)
      jax.block_until_ready((state, metrics))
      holder["state"] = state

    run(1)
    start = time.perf_counter()
    run(2)
    steps = _calls_per_window((time.perf_counter() - start) / 2, target_s, min_steps, 500)
    rate = _median_rate(run, global_batch, steps, windows)
  return {"num_devices": num_devices, "global_batch": global_batch,
          "images_per_s_median": rate["median"], "images_per_s_windows": rate["windows"]}


# ---------------------------------------------------------------------------------------------------------
# Report.

def forward_flops_per_image() -> dict[str, int]:
  costs = flops.total(flops.layer_table(MODEL))
  return {"forward_macs": costs.macs_forward, "forward_flops": 2 * costs.macs_forward,
          "training_flops_3x_forward": TRAINING_FACTOR * 2 * costs.macs_forward,
          "training_flops_flops_module": 2 * costs.macs_training}


def _versions() -> dict[str, str]:
  import jaxlib  # pylint: disable=g-import-not-at-top
  return {"python": platform.python_version(), "jax": jax.__version__, "jaxlib": jaxlib.__version__,
          "flax": flax.__version__, "optax": optax.__version__, "numpy": np.__version__}


def _rounded(tree: Any, digits: int = 4) -> Any:
  if isinstance(tree, dict):
    return {k: _rounded(v, digits) for k, v in tree.items()}
  if isinstance(tree, list):
    return [_rounded(v, digits) for v in tree]
  if isinstance(tree, float):
    return float(f"{tree:.{digits}g}")
  return tree


def _parse_ints(name: str, text: str) -> list[int]:
  try:
    values = [int(v) for v in text.split(",") if v]
  except ValueError:
    raise SystemExit(f"{name} must be comma-separated positive ints, got {text!r}")
  if not values or min(values) < 1:
    raise SystemExit(f"{name} must be comma-separated positive ints, got {text!r}")
  return values


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true", help="small batches, small matmul, few steps (CPU smoke)")
  parser.add_argument("--out", type=pathlib.Path, default=RESULTS / "gpu_convnet.json", help="JSON output path")
  parser.add_argument("--batch-sizes", default=None, help="comma-separated (default 128,1024,4096; quick 16)")
  parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of {', '.join(MODES)}")
  parser.add_argument("--matmul-size", type=int, default=None, help="n of the n×n matmul (default 8192; quick 256)")
  parser.add_argument("--windows", type=int, default=None, help="timed windows per measurement (default 5; quick 3)")
  parser.add_argument("--window-s", type=float, default=None, help="target seconds per window (default 0.4)")
  parser.add_argument("--budget-s", type=float, default=170.0, help="skip what is left after this many seconds")
  parser.add_argument("--spec-name", default="NVIDIA H200 SXM (dense, no sparsity)")
  parser.add_argument("--spec-bf16-tflops", type=float, default=989.0, help="nominal dense BF16 peak")
  parser.add_argument("--spec-tf32-tflops", type=float, default=494.0, help="nominal dense TF32 peak")
  parser.add_argument("--spec-fp32-tflops", type=float, default=67.0, help="nominal FP32 (non-tensor-core) peak")
  args = parser.parse_args(argv)
  batch_sizes = _parse_ints("--batch-sizes", args.batch_sizes or ("16" if args.quick else "128,1024,4096"))
  modes = [m for m in args.modes.split(",") if m]
  bad = [m for m in modes if m not in MODES]
  if bad or not modes:
    raise SystemExit(f"--modes must be a comma-separated subset of {', '.join(MODES)}, got {args.modes!r}")
  n = args.matmul_size or (256 if args.quick else 8192)
  windows = args.windows or (3 if args.quick else 5)
  window_s = args.window_s or (0.05 if args.quick else 0.4)
  min_steps = 2 if args.quick else 5
  if n < 1 or windows < 1 or window_s <= 0:
    raise SystemExit("--matmul-size, --windows and --window-s must be positive")

  begin = time.perf_counter()
  deadline = begin + args.budget_s
  device = jax.devices()[0]
  print(f"device: {device.device_kind} ({device.platform}), {jax.local_device_count()} local device(s); "
        f"jax {jax.__version__}", flush=True)
  flop_counts = forward_flops_per_image()
  training_flops = flop_counts["training_flops_3x_forward"]

  peaks = matmul_peak(n, windows, window_s)
  for name, peak in peaks.items():
    print(f"matmul {n}³ {name:16s} {peak['tflops_median']:9.2f} TFLOP/s", flush=True)
  tf32_ratio = peaks["float32_default"]["tflops_median"] / peaks["float32_highest"]["tflops_median"]
  tf32_note = (f"float32 at default precision ran {tf32_ratio:.2f}× the HIGHEST-precision matmul: "
               + ("TF32 tensor cores (10-bit mantissa inputs, float32 accumulation)" if tf32_ratio > 2 else
                  "no sign of TF32 (about the same speed)"))
  print(tf32_note, flush=True)
  spec = {"name": args.spec_name, "bf16": args.spec_bf16_tflops, "tf32": args.spec_tf32_tflops,
          "fp32": args.spec_fp32_tflops}

  results, skipped = [], []
  for mode in modes:
    for batch in batch_sizes:
      try:
        r = train_throughput(mode, batch, windows, window_s, min_steps, deadline)
      except OutOfTime:
        skipped.append(f"{mode} batch {batch}: time budget")
        continue
      tflops = r["images_per_s_median"] * training_flops / 1e12
      peak = peaks[MATMUL_OF_MODE[mode]]["tflops_median"]
      r.update(mode=mode, batch=batch, achieved_tflops=tflops,
               fraction_of_measured_matmul=tflops / peak,
               measured_matmul=MATMUL_OF_MODE[mode],
               fraction_of_spec=tflops / spec[SPEC_OF_MODE[mode]], spec_peak=SPEC_OF_MODE[mode])
      results.append(r)
      print(f"{mode:16s} batch {batch:5d}: {r['images_per_s_median']:11.0f} images/s "
            f"{r['ms_per_step_median']:8.2f} ms/step  {tflops:8.3f} TFLOP/s = "
            f"{100 * r['fraction_of_measured_matmul']:5.2f}% of measured {MATMUL_OF_MODE[mode]} matmul, "
            f"{100 * r['fraction_of_spec']:5.2f}% of spec {SPEC_OF_MODE[mode].upper()} "
            f"(first call {r['first_call_s']:.1f} s)", flush=True)

  speedups = {}
  for batch in batch_sizes:
    rates = {r["mode"]: r["images_per_s_median"] for r in results if r["batch"] == batch}
    if "float32" in rates and "bfloat16" in rates:
      speedups[str(batch)] = rates["bfloat16"] / rates["float32"]

  data_parallel: dict[str, Any]
  if jax.local_device_count() > 1:
    data_parallel = {}
    per_device = 8 if args.quick else 1024
    for mode in [m for m in ("float32", "bfloat16") if m in modes]:
      for count in sorted({1, jax.local_device_count()}):
        try:
          data_parallel[f"{mode}/{count}"] = data_parallel_throughput(
              mode, per_device, count, windows, window_s, min_steps, deadline)
        except OutOfTime:
          skipped.append(f"data_parallel {mode} on {count} device(s): time budget")
  else:
    data_parallel = {"skipped": "one local device"}

  report = {
      "benchmark": "cifar_convnet training throughput and achieved FLOP/s, float32 vs bfloat16 compute",
      "model": f"zoo {MODEL} (89,578 parameters), 32×32×3, softmax cross-entropy, SGD lr 0.01 momentum 0.9, "
               "synthetic images on the device, jax.jit(make_train_step(Preprocess(standardize=False)), "
               "donate_argnums=0)",
      "modes": {"float32": "dtype=None, default matmul precision (TF32 tensor cores on Ampere/Hopper GPUs)",
                "bfloat16": "dtype='bfloat16': bf16 activations and convolutions, float32 parameters, "
                            "LCN/LRN statistics and logits",
                "float32_highest": "dtype=None under jax.default_matmul_precision('highest'): true FP32"},
      "flops_per_image": flop_counts,
      "flops_convention": "achieved FLOP/s = images/s × 3 × forward FLOPs (deepvision.diagnostics.flops: "
                          "2 × multiply-adds of convolutions, dense layer, pooling and normalisation window "
                          "sums; elementwise work not counted). training_flops_flops_module counts "
                          "parameter-free layers 2× instead of 3× (for reference).",
      "matmul_peak": {"n": n, "flops_per_call": 2 * n**3, **peaks, "float32_default_vs_highest": tf32_note},
      "spec_peak_tflops": spec,
      "training": results,
      "bfloat16_speedup_over_float32": speedups,
      "data_parallel": data_parallel,
      "skipped": skipped,
      "device": {"kind": device.device_kind, "platform": device.platform,
                 "local_devices": jax.local_device_count(), "devices": jax.device_count()},
      "versions": _versions(),
      "quick": args.quick,
      "measured_seconds": time.perf_counter() - begin,
      "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "command": "python benchmarks/gpu_convnet.py" + (" " + " ".join(sys.argv[1:]) if argv is None and sys.argv[1:] else ""),
  }
  report = _rounded(report)
  args.out.parent.mkdir(parents=True, exist_ok=True)
  args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
  for batch, ratio in speedups.items():
    print(f"bfloat16 / float32 images/s at batch {batch}: {ratio:.2f}×")
  for name, r in data_parallel.items():
    if isinstance(r, dict):
      print(f"data_parallel {name}: {r['images_per_s_median']:.0f} images/s (global batch {r['global_batch']})")
  if skipped:
    print("skipped (time budget): " + "; ".join(skipped))
  print(f"took {report['measured_seconds']:.0f} s; wrote {args.out}")
  return report


if __name__ == "__main__":
  main()
