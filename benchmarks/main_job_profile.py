r"""Where the default experiment's training time goes: arithmetic, not dispatch.

The issue's premise was that the main job (`experiments/configs/lcn_convnet_digits.py`: 5,340 steps of 16
8×8 images through three [conv 3×3 → ReLU → LCN] stages of 32, 64, 128 maps) is dispatch-bound. This script
measures, in one process on this CPU:

1. `step`: XLA's FLOP count of one training step (`cost_analysis` of the compiled step) and its time on a
   fixed batch already on the device (no host work, no dispatch gaps: the jitted step called back to back),
   so FLOPs / time is the rate the whole step runs at; and the same for the guarded step `fit` runs.
2. `convolutions`: each of the three convolutions alone (forward + both gradients, `jax.grad` of a sum of
   squares) as XLA:CPU's `conv_general_dilated` and as one matrix product over the nine shifted copies of
   the input ("im2col by slicing"), in GFLOP/s.
3. `matmul`: float32 matrix products of the convolutions' im2col shapes and of 2048³, in GFLOP/s: the
   rate this CPU's XLA dot reaches at those sizes.

From these: the training time the step's arithmetic alone implies, and the rate the whole step would need
for the issue's 2.5× shorter training.

Usage (about a minute on 2 idle cores):
  python benchmarks/main_job_profile.py [--rounds 7] [--out PATH]
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import statistics
import sys
import time

import jax
import jax.numpy as jnp
from jax import lax

import run_timing  # benchmarks/run_timing.py (the script's own folder)
from cpu_load import OwnLoad

ROOT = pathlib.Path(__file__).resolve().parents[1]
TARGET_SPEEDUP = 2.5


def _median_seconds(fn, args, calls: int, rounds: int) -> float:
  """Median over `rounds` of the mean seconds per call of `calls` back-to-back calls of `fn(*args)`."""
  out = fn(*args)
  jax.block_until_ready(out)
  times = []
  for _ in range(rounds):
    start = time.perf_counter()
    for _ in range(calls):
      out = fn(*args)
    jax.block_until_ready(out)
    times.append((time.perf_counter() - start) / calls)
  return statistics.median(times)


def _flops(compiled) -> float:
  analysis = compiled.cost_analysis()
  analysis = analysis[0] if isinstance(analysis, list) else analysis
  return float(analysis["flops"])


def profile_step(rounds: int) -> dict:
  """FLOPs and time of the default experiment's training step (see the module docstring)."""
  from deepvision import optim  # pylint: disable=g-import-not-at-top
  from deepvision.train import fit, runner, supervised  # pylint: disable=g-import-not-at-top
  from experiments.configs import lcn_convnet_digits  # pylint: disable=g-import-not-at-top
  config = lcn_convnet_digits.get_config()
  plan = supervised.plan_supervised(config)
  task = supervised.SupervisedTask(
      model=plan.model, input_shape=plan.info.image_shape, train_source=plan.train_source, sources={},
      tx=optim.make_optimizer(config, plan.total_steps),
      lr_fn=optim.learning_rate_schedule(config, plan.total_steps), batch_size=config.batch_size,
      eval_batch_size=None, seed=config.seed,
      schedule=fit.default_schedule(config, plan.total_steps, plan.steps_per_epoch), replicas=plan.replicas,
      preprocess=plan.preprocess, ema_decay=0.0, identity=(), figures=False, advice="", describe="")
  state = task.init_state()
  step = task.make_step(None)
  batch = jax.device_put(next(task.train_batches()))
  compiled = jax.jit(step).lower(state, batch).compile()
  flops = _flops(compiled)
  seconds = _median_seconds(lambda s: compiled(s, batch)[0], (state,), calls=100, rounds=rounds)
  guarded = jax.jit(runner.guard_step(step))
  fault = runner.initial_fault()
  guarded_seconds = _median_seconds(lambda s: guarded(s, fault, batch)[0], (state,), calls=100, rounds=rounds)
  return {"config": "experiments/configs/lcn_convnet_digits.py", "steps": plan.total_steps,
          "batch_size": config.batch_size, "flops_per_step": flops,
          "step_seconds": seconds, "gflops_per_s": flops / seconds / 1e9,
          "guarded_step_seconds": guarded_seconds,
          "implied_training_seconds": guarded_seconds * plan.total_steps,
          "gflops_per_s_needed_for_target": TARGET_SPEEDUP * flops / guarded_seconds / 1e9}


def _conv(x, w):
  return lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _shifted_matmul(x, w):
  """The same 'SAME' 3×3 convolution as one product: the nine shifted copies side by side times W."""
  kh, kw, cin, cout = w.shape
  padded = jnp.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
  height, width = x.shape[1:3]
  columns = jnp.concatenate([padded[:, i:i + height, j:j + width, :] for i in range(kh) for j in range(kw)], -1)
  return (columns.reshape(-1, kh * kw * cin) @ w.reshape(kh * kw * cin, cout)).reshape(*x.shape[:3], cout)


def profile_convolutions(rounds: int, batch: int = 16, size: int = 8) -> list[dict]:
  key = jax.random.key(0)
  rows = []
  for cin, cout in ((1, 32), (32, 64), (64, 128)):
    x = jax.random.normal(key, (batch, size, size, cin))
    w = jax.random.normal(jax.random.fold_in(key, 1), (3, 3, cin, cout))
    forward_flops = 2 * batch * size * size * 9 * cin * cout
    row = {"input": [batch, size, size, cin], "kernel": [3, 3, cin, cout], "forward_flops": forward_flops}
    for name, fn in (("xla_conv", _conv), ("shifted_matmul", _shifted_matmul)):
      grad = jax.jit(jax.grad(lambda x, w, fn=fn: jnp.sum(fn(x, w) ** 2), argnums=(0, 1)))
      seconds = _median_seconds(grad, (x, w), calls=100, rounds=rounds)
      row[name] = {"forward_and_gradients_seconds": seconds, "gflops_per_s": 3 * forward_flops / seconds / 1e9}
    rows.append(row)
  return rows


def profile_matmul(rounds: int) -> list[dict]:
  key = jax.random.key(0)
  rows = []
  for m, k, n in ((1024, 9, 32), (1024, 288, 64), (1024, 576, 128), (2048, 2048, 2048)):
    a = jax.random.normal(key, (m, k))
    b = jax.random.normal(jax.random.fold_in(key, 1), (k, n))
    product = jax.jit(jnp.matmul)
    calls = 5 if m * k * n > 1e9 else 100
    seconds = _median_seconds(product, (a, b), calls=calls, rounds=rounds)
    rows.append({"shape": [m, k, n], "seconds": seconds, "gflops_per_s": 2 * m * k * n / seconds / 1e9})
  return rows


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--rounds", type=int, default=7)
  parser.add_argument("--out", type=pathlib.Path, default=ROOT / "benchmarks/results/main_job_profile.json")
  args = parser.parse_args(argv)
  sys.path.insert(0, str(ROOT))
  load = OwnLoad()
  record = {"benchmark": "default experiment: FLOPs and time of one training step, and this CPU's rates",
            "machine_before": run_timing.machine(), "versions": run_timing.versions(),
            "step": profile_step(args.rounds), "convolutions": profile_convolutions(args.rounds),
            "matmul": profile_matmul(args.rounds)}
  record["machine_after"] = run_timing.machine()
  record["measured_seconds"] = round(load.seconds(), 1)
  if (share := load.other_share()) is not None:  # the share other processes used while this one measured
    record["other_processes_cpu_share"] = share
  record["git"] = run_timing.git_state()
  record["date"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
  record["command"] = "python benchmarks/main_job_profile.py " + " ".join(argv or sys.argv[1:])
  args.out.write_text(json.dumps(record, indent=1) + "\n")
  step = record["step"]
  print(f"step: {step['flops_per_step'] / 1e6:.0f} MFLOP in {step['step_seconds'] * 1e3:.2f} ms "
        f"({step['gflops_per_s']:.0f} GFLOP/s); guarded {step['guarded_step_seconds'] * 1e3:.2f} ms → "
        f"{step['implied_training_seconds']:.1f} s for {step['steps']} steps; "
        f"{TARGET_SPEEDUP}× needs {step['gflops_per_s_needed_for_target']:.0f} GFLOP/s")
  for row in record["convolutions"]:
    print(f"conv {row['kernel']}: XLA {row['xla_conv']['gflops_per_s']:.0f} GFLOP/s, "
          f"shifted matmul {row['shifted_matmul']['gflops_per_s']:.0f} GFLOP/s")
  for row in record["matmul"]:
    print(f"matmul {row['shape']}: {row['gflops_per_s']:.0f} GFLOP/s")
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
