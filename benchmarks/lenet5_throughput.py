"""LeNet-5 training throughput on CPU: deepvision (JAX) against PyTorch at its best, in the same run.

The network is the zoo's `lenet5` (28×28×1 → conv 5×5 6 'SAME' → relu → max pool 2 → conv 5×5
16 'VALID' → relu → max pool 2 → dense 120 → relu → dense 84 → relu → dense 10), trained with
softmax cross-entropy and SGD (learning rate 0.01, momentum 0.9) on batches of 128 fixed random
images. Contestants:

* deepvision: `zoo.create('lenet5')` and `train.supervised.make_train_step`, jitted (no input
  standardisation, so both sides do the same arithmetic);
* flax_plain: the same network written with `flax.linen.Conv` / `nn.max_pool` / `nn.Dense` and a
  jitted `value_and_grad` step (what a plain Flax version costs here);
* torch_eager: the same network in PyTorch eager mode (NCHW), the standard
  `zero_grad(); loss.backward(); step()` loop, with as many intra-op threads as JAX has cores;
* torch_compile: the same model and loop with the model compiled by `torch.compile` (default mode,
  inductor); the optimizer step stays eager;
* torch_compile_channels_last: the same, with the model's weights and the input batch in
  `torch.channels_last` memory format before compiling.

All PyTorch contestants share the batch, threads, data, initial weights (seed 0) and optimizer. Each
contestant is warmed up first: its first step (the whole compilation for `torch.compile` and for the
jitted JAX steps) is timed and reported apart (`first_step_seconds`), never inside a round; a PyTorch
contestant whose compilation fails is reported under `skipped`. Then the contestants are timed in
rounds of `--steps` steps, taking turns inside every round (in rotating order), so a load spike on a
shared machine hits all of them. Reported: images/s per contestant (median over rounds) and every
ratio against the fastest PyTorch contestant (`reference`, by median images/s) as the ratio of medians,
the median and min–max of the per-round ratios (also against torch_eager); when deepvision is behind,
`deepvision_behind_by` says by how much (`--profile`'s per-op tables say where the time goes). The
record names the CPU and the BLAS (`deepvision.machine.describe`). Results go to
benchmarks/results/lenet5_throughput.json.

Usage (about two minutes, a minute of it compiling; --quick: about a minute; --profile adds a per-op
breakdown of each step; --no-torch-compile leaves out the two compiled contestants):
  python benchmarks/lenet5_throughput.py [--quick] [--profile] [--steps 40] [--rounds 9] [--out PATH]
Needs the `bench` extra (PyTorch): pip install -e '.[bench]'.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import statistics
import sys
import time

import jax

from cpu_load import cpu_busy_seconds  # benchmarks/cpu_load.py (the script's own folder)

jax.config.update("jax_platforms", "cpu")  # The comparison is defined on CPU.

import flax  # noqa: E402
import flax.linen as nn  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # deepvision from a checkout, as the other benchmarks
  sys.path.insert(0, str(ROOT))

from deepvision import machine

BATCH = 128
IMAGE_SHAPE = (28, 28, 1)
NUM_CLASSES = 10
LEARNING_RATE = 0.01
MOMENTUM = 0.9
RESULTS = pathlib.Path(__file__).resolve().parent / "results"
TORCH_MODES = ("torch_eager", "torch_compile", "torch_compile_channels_last")


def fixed_batch(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """One batch of uniform [0, 1) images and random labels, reused for every step."""
  rng = np.random.default_rng(seed)
  images = rng.random((BATCH, *IMAGE_SHAPE), dtype=np.float32)
  labels = rng.integers(0, NUM_CLASSES, BATCH).astype(np.int32)
  return images, labels


def deepvision_runner(images: np.ndarray, labels: np.ndarray):
  """The library's LeNet-5 and train step. Returns run(n) -> final loss (blocks until done)."""
  from deepvision import zoo
  from deepvision.train.state import create_train_state
  from deepvision.train.supervised import Preprocess, make_train_step

  model = zoo.create("lenet5")
  state = create_train_state(model, optax.sgd(LEARNING_RATE, momentum=MOMENTUM),
                             jax.random.key(0), IMAGE_SHAPE)
  train_step = jax.jit(make_train_step(Preprocess(standardize=False)), donate_argnums=0)
  batch = {"image": jnp.asarray(images), "label": jnp.asarray(labels)}
  holder = [state]

  def run(n: int) -> float:
    state = holder[0]
    for _ in range(n):
      state, metrics = train_step(state, batch)
    holder[0] = state
    return float(metrics["train/loss"])  # Blocks until the last step is done.

  run.hlo = lambda: train_step.lower(holder[0], batch).compile().as_text()
  run.stablehlo = lambda: train_step.lower(holder[0], batch).as_text()
  return run


class PlainLeNet5(nn.Module):
  """The benchmark network with stock Flax layers (the 'plain Flax' reference)."""

  @nn.compact
  def __call__(self, x):
    x = nn.max_pool(nn.relu(nn.Conv(6, (5, 5), padding="SAME")(x)), (2, 2), (2, 2))
    x = nn.max_pool(nn.relu(nn.Conv(16, (5, 5), padding="VALID")(x)), (2, 2), (2, 2))
    x = x.reshape(x.shape[0], -1)
    x = nn.relu(nn.Dense(120)(x))
    x = nn.relu(nn.Dense(84)(x))
    return nn.Dense(NUM_CLASSES)(x)


def flax_plain_runner(images: np.ndarray, labels: np.ndarray):
  model = PlainLeNet5()
  params = model.init(jax.random.key(0), jnp.zeros((1, *IMAGE_SHAPE)))["params"]
  tx = optax.sgd(LEARNING_RATE, momentum=MOMENTUM)

  def step(params, opt_state, x, y):
    def loss_fn(p):
      logits = model.apply({"params": p}, x)
      return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  step = jax.jit(step, donate_argnums=(0, 1))
  x, y = jnp.asarray(images), jnp.asarray(labels)
  holder = [params, tx.init(params)]

  def run(n: int) -> float:
    params, opt_state = holder
    for _ in range(n):
      params, opt_state, loss = step(params, opt_state, x, y)
    holder[:] = [params, opt_state]
    return float(loss)

  run.hlo = lambda: step.lower(*holder, x, y).compile().as_text()
  return run


def torch_runner(images: np.ndarray, labels: np.ndarray, threads: int, mode: str = "torch_eager"):
  """PyTorch's LeNet-5 step in one of `TORCH_MODES`. Returns run(n) -> final loss.

  torch_compile compiles the model with `torch.compile` (default mode) at the first call;
  torch_compile_channels_last also puts the weights and the input batch in channels_last first.
  """
  import torch
  from torch import nn as tnn

  if mode not in TORCH_MODES:
    raise ValueError(f"unknown PyTorch mode {mode!r}; valid: {', '.join(TORCH_MODES)}")
  torch.set_num_threads(threads)
  torch.manual_seed(0)
  model = tnn.Sequential(
      tnn.Conv2d(1, 6, 5, padding=2), tnn.ReLU(), tnn.MaxPool2d(2),
      tnn.Conv2d(6, 16, 5), tnn.ReLU(), tnn.MaxPool2d(2), tnn.Flatten(),
      tnn.Linear(400, 120), tnn.ReLU(), tnn.Linear(120, 84), tnn.ReLU(),
      tnn.Linear(84, NUM_CLASSES))
  optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM)
  criterion = tnn.CrossEntropyLoss()
  x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))  # NCHW
  y = torch.from_numpy(labels.astype(np.int64))
  forward = model
  if mode == "torch_compile_channels_last":
    model.to(memory_format=torch.channels_last)
    x = x.contiguous(memory_format=torch.channels_last)
  if mode != "torch_eager":
    forward = torch.compile(model)

  def run(n: int) -> float:
    for _ in range(n):
      optimizer.zero_grad()
      loss = criterion(forward(x), y)
      loss.backward()
      optimizer.step()
    return float(loss.detach())

  run.profile = lambda steps: _torch_op_profile(run, steps)
  return run


def _torch_op_profile(run, steps: int, top: int = 12) -> list[dict]:
  """Self CPU time per aten op and step (torch.profiler; its own overhead inflates small ops)."""
  from torch.profiler import ProfilerActivity, profile
  with profile(activities=[ProfilerActivity.CPU]) as prof:
    run(steps)
  rows = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
  return [{"op": e.key, "ms_per_step": round(e.self_cpu_time_total / 1e3 / steps, 3),
           "calls_per_step": e.count / steps} for e in rows[:top]]


def _jax_op_profile(run, steps: int, top: int = 14) -> list[dict]:
  """Time per compiled XLA op (fusion, dot, ...) and step, from a jax.profiler trace.

  Each op is labelled with its output shape from the compiled HLO, to tell which layer it is.
  """
  import collections
  import gzip
  import re
  import tempfile
  shapes = {}
  hlo = run.hlo()
  for line in hlo[hlo.find("ENTRY"):].splitlines():
    m = re.match(r"\s*(?:ROOT )?%(\S+) = (\S+) ", line)
    if m:
      shapes[m.group(1)] = m.group(2)
  with tempfile.TemporaryDirectory() as tmp:
    with jax.profiler.trace(tmp, create_perfetto_trace=True):
      run(steps)
    trace = next(pathlib.Path(tmp).rglob("*.trace.json.gz"))
    events = json.loads(gzip.open(trace).read())
  events = events["traceEvents"] if isinstance(events, dict) else events
  total = collections.Counter()
  for e in events:
    if e.get("ph") == "X" and e.get("name") in shapes:
      total[e["name"]] += e.get("dur", 0)
  return [{"op": name, "shape": shapes[name], "ms_per_step": round(us / 1e3 / steps, 3)}
          for name, us in total.most_common(top)]


def versions() -> dict:
  import jaxlib
  out = {"python": platform.python_version(), "jax": jax.__version__, "jaxlib": jaxlib.__version__,
         "flax": flax.__version__, "optax": optax.__version__, "numpy": np.__version__}
  try:
    import torch
    out["torch"] = torch.__version__
  except ImportError:
    out["torch"] = "not installed"
  return out


def measure(runners: dict, steps: int, rounds: int, warmup: int) -> dict[str, list[float]]:
  """images/s of every runner in each round; the runners take turns (rotating order) per round."""
  for run in runners.values():
    run(warmup)
  names = list(runners)
  rates = {name: [] for name in names}
  for r in range(rounds):
    for name in names[r % len(names):] + names[:r % len(names)]:
      start = time.perf_counter()
      loss = runners[name](steps)
      elapsed = time.perf_counter() - start
      if not np.isfinite(loss):
        raise FloatingPointError(f"{name} diverged (loss {loss}) during the benchmark")
      rates[name].append(steps * BATCH / elapsed)
  return rates


def _ratios(rates: dict[str, list[float]], reference: str) -> dict:
  ratios = {}
  for name, v in rates.items():
    if name == reference:
      continue
    per_round = [a / b for a, b in zip(v, rates[reference])]
    ratios[f"{name}/{reference}"] = {
        "ratio_of_medians": statistics.median(v) / statistics.median(rates[reference]),
        "ratio_of_best_rounds": max(v) / max(rates[reference]),
        "median_of_round_ratios": statistics.median(per_round),
        "round_ratio_min_max": [round(min(per_round), 3), round(max(per_round), 3)],
        "round_ratios": [round(x, 3) for x in per_round]}
  return ratios


def summarise(rates: dict[str, list[float]]) -> dict:
  """Medians per contestant and every ratio against the fastest PyTorch contestant (and torch_eager).

  Raises:
    ValueError: no PyTorch contestant was timed.
  """
  results = {name: {"images_per_s_median": statistics.median(v),
                    "ms_per_step_median": 1e3 * BATCH / statistics.median(v),
                    "images_per_s_best": max(v),
                    "images_per_s_rounds": [round(x, 1) for x in v]} for name, v in rates.items()}
  peers = [name for name in TORCH_MODES if name in rates]
  if not peers:
    raise ValueError(f"no PyTorch contestant among {sorted(rates)}; expected one of {', '.join(TORCH_MODES)}")
  reference = max(peers, key=lambda name: results[name]["images_per_s_median"])
  out = {"results": results, "reference": reference, "ratios": _ratios(rates, reference)}
  if reference != "torch_eager" and "torch_eager" in rates:
    out["ratios_vs_torch_eager"] = _ratios(rates, "torch_eager")
  if "deepvision" in rates:
    ratio = out["ratios"][f"deepvision/{reference}"]["ratio_of_medians"]
    out["deepvision_behind_by"] = None if ratio >= 1 else {
        "ratio": ratio, "step_time_longer_percent": 100 * (1 / ratio - 1),
        "ms_per_step_more": results["deepvision"]["ms_per_step_median"] - results[reference]["ms_per_step_median"],
        "where": "the per-op profiles (--profile: profile_per_op) say where each step spends its time"}
  return out


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true", help="a short run (smoke test)")
  parser.add_argument("--steps", type=int, default=None, help="steps per contestant per round")
  parser.add_argument("--rounds", type=int, default=None, help="timed rounds")
  parser.add_argument("--threads", type=int, default=None,
                      help="PyTorch intra-op threads (default: the cores JAX uses)")
  parser.add_argument("--no-plain-flax", action="store_true", help="skip the plain Flax reference")
  parser.add_argument("--no-torch-compile", action="store_true",
                      help="leave out torch_compile and torch_compile_channels_last")
  parser.add_argument("--profile", action="store_true",
                      help="also record where each contestant's step spends its time, per op")
  parser.add_argument("--out", type=pathlib.Path, default=None, help="JSON output path")
  args = parser.parse_args(argv)
  steps = args.steps if args.steps is not None else (10 if args.quick else 40)
  rounds = args.rounds if args.rounds is not None else (3 if args.quick else 9)
  warmup = 5 if args.quick else 20
  for name, value in (("--steps", steps), ("--rounds", rounds)):
    if value < 1:
      raise SystemExit(f"{name} must be >= 1, got {value}")
  out = args.out or RESULTS / ("lenet5_throughput_quick.json" if args.quick else "lenet5_throughput.json")

  cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
  threads = args.threads or cores
  images, labels = fixed_batch()
  runners = {"deepvision": deepvision_runner(images, labels)}
  if not args.no_plain_flax:
    runners["flax_plain"] = flax_plain_runner(images, labels)
  try:
    import torch
  except ImportError:
    raise SystemExit("PyTorch is missing: install the bench extra, pip install -e '.[bench]'")
  for mode in TORCH_MODES[:1] if args.no_torch_compile else TORCH_MODES:
    runners[mode] = torch_runner(images, labels, threads, mode)

  first_step, skipped = {}, {}
  for name, run in list(runners.items()):  # Compile and warm up before the contention is measured.
    begin = time.perf_counter()
    try:
      run(1)  # the compilation (jax.jit, torch.compile) happens here, outside the rounds
    except Exception as e:  # pylint: disable=broad-except
      if name in ("torch_eager", "deepvision"):
        raise
      skipped[name] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
      del runners[name]
      continue
    first_step[name] = time.perf_counter() - begin
    run(warmup)
  busy_start, own_start, start = cpu_busy_seconds(), time.process_time(), time.perf_counter()
  rates = measure(runners, steps, rounds, warmup=1)
  elapsed = time.perf_counter() - start
  busy_end, own = cpu_busy_seconds(), time.process_time() - own_start
  others = (None if busy_start is None else
            max(0.0, (busy_end - busy_start - own) / (elapsed * cores)))
  report = {
      "benchmark": "lenet5 training throughput, CPU",
      "network": "zoo lenet5 (61,706 parameters); softmax cross-entropy; SGD lr 0.01 momentum 0.9",
      "batch": BATCH, "image_shape": list(IMAGE_SHAPE),
      "steps_per_round": steps, "rounds": rounds, "warmup_steps": warmup,
      **summarise(rates),
      "first_step_seconds": {name: round(t, 3) for name, t in first_step.items()},
      "first_step_note": "each contestant's first step, timed apart before the rounds: compilation "
                         "(jax.jit; torch.compile for the torch_compile contestants) and first-call costs",
      "skipped": skipped,
      "threads": {"cores_available": cores,
                  "jax": f"XLA:CPU, one device, intra-op pool over the {cores} available cores",
                  "torch_intra_op": torch.get_num_threads(),
                  "torch_inter_op": torch.get_num_interop_threads()},
      "versions": versions(),
      "machine": {**machine.describe(), "processor": platform.processor(),
                  "other_processes_cpu_share": None if others is None else round(others, 3)},
      "measured_seconds": round(elapsed, 1),
      "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "command": "python benchmarks/lenet5_throughput.py" + (" " + " ".join(sys.argv[1:]) if argv is None and sys.argv[1:] else ""),
  }
  report["deepvision_max_pool_gradient"] = (
      "select-and-scatter (nn.max_pool)" if "select_and_scatter" in runners["deepvision"].stablehlo()
      else "argmax positions (deepvision.nn.fastpool)")
  if args.profile:
    report["profile_per_op"] = {
        name: (run.profile(steps) if name.startswith("torch") else _jax_op_profile(run, steps))
        for name, run in runners.items()}
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text(json.dumps(report, indent=2) + "\n")
  for name, r in report["results"].items():
    print(f"{name:28s} {r['images_per_s_median']:9.0f} images/s  ({r['ms_per_step_median']:.2f} ms/step)")
  for name, seconds in report["first_step_seconds"].items():
    print(f"{name:28s} first step (compilation) {seconds:.2f} s")
  for name, why in report["skipped"].items():
    print(f"{name:28s} skipped: {why}")
  for name, r in report["ratios"].items():
    print(f"{name:40s} {r['ratio_of_medians']:.2f}× (median of round ratios "
          f"{r['median_of_round_ratios']:.2f}×, rounds {r['round_ratio_min_max'][0]:.2f}-"
          f"{r['round_ratio_min_max'][1]:.2f}×)")
  if report.get("deepvision_behind_by"):
    print(f"deepvision is behind {report['reference']}: {report['deepvision_behind_by']['ratio']:.2f}×, "
          f"{report['deepvision_behind_by']['step_time_longer_percent']:.0f}% longer steps")
  if report["deepvision_max_pool_gradient"].startswith("select-and-scatter"):
    print("note: deepvision's LeNet-5 pools with nn.max_pool, whose gradient (select-and-scatter) "
          "is the slowest op of the step on XLA:CPU; deepvision.nn.fastpool.max_pool has the same "
          "values and gradients without it.")
  if others is not None and others > 0.1:
    print(f"warning: other processes used {100 * others:.0f}% of the {cores} cores while this ran. "
          "PyTorch's OpenMP threads slow down far more than XLA's pool when a core is taken, so "
          "the ratio is not representative; rerun on an idle machine.")
  for name, rows in report.get("profile_per_op", {}).items():
    print(f"\n{name}: top ops, ms per step")
    for row in rows:
      print(f"  {row['ms_per_step']:7.3f}  {row['op'][:40]:40s} {row.get('shape', '')}")
  print(f"threads: JAX/XLA {cores} cores, torch {torch.get_num_threads()} intra-op; wrote {out}")
  return report


if __name__ == "__main__":
  main()
