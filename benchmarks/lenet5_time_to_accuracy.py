r"""Time to accuracy on MNIST: the launcher's whole run of the modern LeNet-5 against a plain PyTorch loop.

The same network (the zoo's `lenet5`: conv 5×5 6 'SAME' → relu → max pool → conv 5×5 16 → relu → max pool
→ 120 → 84 → 10), the same data (a TFDS data dir's `mnist`, train and test, pixels in [0, 1]), the same
batch (64, the last partial batch dropped), epochs (20), optimiser (SGD, momentum 0.9, no weight decay)
and schedule (cosine from 0.05 to 0.0005, per step), each with its own initialisation and data order:

* deepvision: `python -m experiments.main --config=lenet5_modern_mnist` in a fresh process, as a user runs
  it (checkpoint, metrics, TensorBoard events, figures); its wall time end to end, and the same config
  timed from inside (`run_timing.py`: the run, the training loop, and both without XLA compilation);
* torch: the plain loop (`zero_grad(); loss.backward(); step()`, as many threads as cores) in a fresh process,
  in each of PyTorch's ways to run it (`--torch_modes`: eager, eager with channels-last tensors,
  `torch.compile`); its wall time end to end, and the loop alone (no start-up, imports or data reading). The
  peer is the mode fastest end to end, means over the seeds; every mode's figures are in the record.

Each seed runs both sides back to back; reported per seed and as means: test accuracy, end-to-end seconds,
seconds without start-up and compilation, and the ratio torch / deepvision of each (> 1: deepvision faster).

Usage (about 4 minutes for 3 seeds on the 8,004-digit subset):
  python benchmarks/lenet5_time_to_accuracy.py --data_dir=DATA_DIR [--seeds 0 1 2] [--out PATH]
DATA_DIR holds `mnist` prepared by `python -m experiments.prepare_data`. Needs the `bench` extra (PyTorch).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import run_timing  # benchmarks/run_timing.py (the script's own folder)

ROOT = run_timing.ROOT
RESULTS = pathlib.Path(__file__).resolve().parent / "results"
CONFIG = "lenet5_modern_mnist"


TORCH_MODES = ("eager", "channels_last", "compile")


def torch_child(data_dir: str, seed: int, mode: str) -> None:
  """The plain PyTorch loop; prints one JSON line (accuracy, loop seconds).

  `mode`: 'eager' (NCHW), 'channels_last' (eager, images and weights in NHWC memory order) or 'compile'
  (`torch.compile` of the network for training, its first steps compiling; the test pass runs eagerly on the
  same weights, as a new batch size would compile again).
  """
  begin = time.perf_counter()
  import numpy as np  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  from torch import nn  # pylint: disable=g-import-not-at-top

  from deepvision.data import datasets  # pylint: disable=g-import-not-at-top
  from experiments import config_catalog  # pylint: disable=g-import-not-at-top
  config = config_catalog.load(CONFIG)
  torch.manual_seed(seed)
  torch.set_num_threads(len(os.sched_getaffinity(0)))
  read_begin = time.perf_counter()
  train_x, train_y = datasets.load_arrays("mnist", "train", data_dir=data_dir)
  test_x, test_y = datasets.load_arrays("mnist", "test", data_dir=data_dir)
  to_nchw = lambda x: torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
  train_x, test_x = to_nchw(train_x), to_nchw(test_x)
  train_y, test_y = torch.from_numpy(train_y.astype(np.int64)), torch.from_numpy(test_y.astype(np.int64))
  read_seconds = time.perf_counter() - read_begin

  model = nn.Sequential(
      nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
      nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
      nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))
  opt = config.optimizer
  batch, epochs = config.batch_size, config.num_epochs
  steps_per_epoch = len(train_y) // batch
  total = steps_per_epoch * epochs
  end_rate = opt.learning_rate / opt.decay_factor
  sgd = torch.optim.SGD(model.parameters(), lr=opt.learning_rate, momentum=opt.momentum)
  schedule = torch.optim.lr_scheduler.LambdaLR(  # optax.cosine_decay_schedule with alpha = 1 / decay_factor
      sgd, lambda t: (end_rate + (opt.learning_rate - end_rate) * 0.5 * (1 + math.cos(math.pi * min(t, total)
                                                                                     / total))) / opt.learning_rate)
  trained = model
  if mode == "channels_last":
    model = trained = model.to(memory_format=torch.channels_last)
    train_x, test_x = (x.contiguous(memory_format=torch.channels_last) for x in (train_x, test_x))
  elif mode == "compile":
    trained = torch.compile(model)
  loss_fn = nn.CrossEntropyLoss()
  generator = torch.Generator().manual_seed(seed)
  loop_begin = time.perf_counter()
  model.train()
  for _ in range(epochs):
    order = torch.randperm(len(train_y), generator=generator)
    for i in range(steps_per_epoch):
      index = order[i * batch:(i + 1) * batch]
      sgd.zero_grad()
      loss = loss_fn(trained(train_x[index]), train_y[index])
      loss.backward()
      sgd.step()
      schedule.step()
  model.eval()
  with torch.no_grad():
    correct = sum(int((model(test_x[i:i + 512]).argmax(1) == test_y[i:i + 512]).sum())
                  for i in range(0, len(test_y), 512))
  loop_seconds = time.perf_counter() - loop_begin
  print(json.dumps({"test_accuracy": correct / len(test_y), "loop_seconds": loop_seconds,
                    "read_seconds": read_seconds, "in_process_seconds": time.perf_counter() - begin,
                    "steps": total, "torch": torch.__version__, "threads": torch.get_num_threads(), "mode": mode}))


def run_launcher(data_dir: str, seed: int, k: int, cache_home: str) -> dict:
  """`experiments.main` as a user runs it, in a fresh process: wall time and the final record. Its XLA
  compilation cache lives in `cache_home` (cold for the first run of the benchmark, warm after)."""
  env = {key: value for key, value in os.environ.items() if not key.startswith("JAX_COMPILATION_CACHE")}
  env["XDG_CACHE_HOME"] = cache_home
  cold = not os.path.isdir(os.path.join(cache_home, "deepvision", "xla"))
  overrides = [f"data_dir={data_dir}", f"seed={seed}"] + ([f"steps_per_dispatch={k}"] if k else [])
  with tempfile.TemporaryDirectory() as workdir:
    seconds, records = run_timing.launcher_run(CONFIG, f"{workdir}/run", overrides, env)
  final = [r for r in records if r.get("final")][-1]
  return {"process_seconds": seconds, "test_accuracy": final["test/accuracy"], "steps": final["step"],
          "compilation_cache": "cold" if cold else "warm"}


def run_inside(data_dir: str, seed: int, k: int) -> dict:
  """The same config timed from inside a fresh process (`run_timing.py --job lenet5_modern_mnist`), every
  program compiled afresh (no persistent cache)."""
  env = {key: value for key, value in os.environ.items() if not key.startswith("JAX_COMPILATION_CACHE")}
  env["DEEPVISION_DATA_DIR"] = data_dir
  command = [sys.executable, str(pathlib.Path(run_timing.__file__).resolve()), "--job", CONFIG, "--k", str(k),
             "--seed", str(seed)]
  done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env, check=False)
  if done.returncode:
    raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
  result = json.loads(done.stdout.strip().splitlines()[-1])
  return {k: result[k] for k in ("run_seconds", "compile_seconds", "train_seconds", "train_compile_seconds",
                                 "train_seconds_excluding_compile", "run_seconds_excluding_compile")}


def run_torch(data_dir: str, seed: int, mode: str) -> dict:
  command = [sys.executable, str(pathlib.Path(__file__).resolve()), "--torch_child", "--data_dir", data_dir,
             "--seeds", str(seed), "--torch_modes", mode]
  begin = time.perf_counter()
  done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
  seconds = time.perf_counter() - begin
  if done.returncode:
    raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
  return {"process_seconds": seconds, **json.loads(done.stdout.strip().splitlines()[-1])}


def summarise(rows: list[dict]) -> dict:
  """Means over the seeds; the launcher's end-to-end time also split into its cold- and warm-cache runs."""
  mean = lambda key, side, part=rows: statistics.mean(r[side][key] for r in part)
  cold = [r for r in rows if r["launcher"]["compilation_cache"] == "cold"]
  warm = [r for r in rows if r["launcher"]["compilation_cache"] == "warm"]
  out = {
      "deepvision_test_accuracy_mean": mean("test_accuracy", "launcher"),
      "torch_test_accuracy_mean": mean("test_accuracy", "torch"),
      "deepvision_end_to_end_seconds_mean": mean("process_seconds", "launcher"),
      "deepvision_end_to_end_seconds_cold_cache": mean("process_seconds", "launcher", cold) if cold else None,
      "deepvision_end_to_end_seconds_warm_cache": mean("process_seconds", "launcher", warm) if warm else None,
      "torch_end_to_end_seconds_mean": mean("process_seconds", "torch"),
      "deepvision_compile_seconds_mean": mean("compile_seconds", "inside"),
      "deepvision_train_seconds_excluding_compile_mean": mean("train_seconds_excluding_compile", "inside"),
      "torch_loop_seconds_mean": mean("loop_seconds", "torch"),
  }
  torch_end = out["torch_end_to_end_seconds_mean"]
  for key in ("mean", "cold_cache", "warm_cache"):
    seconds = out[f"deepvision_end_to_end_seconds_{key}"]
    out[f"end_to_end_ratio_torch_over_deepvision_{key}"] = torch_end / seconds if seconds else None
  out["steady_ratio_torch_over_deepvision"] = (out["torch_loop_seconds_mean"]
                                               / out["deepvision_train_seconds_excluding_compile_mean"])
  return out


def main(argv=None) -> dict | None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--data_dir", required=True, help="TFDS data dir holding a prepared `mnist`")
  parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
  parser.add_argument("--k", type=int, default=0, help="steps per dispatch (0: the config's)")
  parser.add_argument("--out", default=str(RESULTS / "lenet5_time_to_accuracy.json"))
  parser.add_argument("--torch_modes", nargs="+", choices=TORCH_MODES, default=list(TORCH_MODES),
                      help="PyTorch's ways to run the loop; the fastest end to end is the peer")
  parser.add_argument("--torch_child", action="store_true", help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  data_dir = os.path.abspath(os.path.expanduser(args.data_dir))
  if args.torch_child:
    return torch_child(data_dir, args.seeds[0], args.torch_modes[0])
  from deepvision.data import datasets  # pylint: disable=g-import-not-at-top
  train_count = datasets.dataset_info("mnist", data_dir).splits  # fails fast, naming the data dir
  rows = []
  with tempfile.TemporaryDirectory() as cache_home:
    for seed in args.seeds:
      row = {"seed": seed, "torch_modes": {mode: run_torch(data_dir, seed, mode) for mode in args.torch_modes},
             "launcher": run_launcher(data_dir, seed, args.k, cache_home), "inside": run_inside(data_dir, seed, args.k)}
      print(json.dumps(row), flush=True)
      rows.append(row)
  modes = {mode: {key: statistics.mean(r["torch_modes"][mode][key] for r in rows)
                  for key in ("test_accuracy", "process_seconds", "loop_seconds")} for mode in args.torch_modes}
  best = min(modes, key=lambda mode: modes[mode]["process_seconds"])  # the peer at its best, end to end
  for row in rows:
    row["torch"] = row["torch_modes"][best]
  result = {
      "benchmark": "lenet5_time_to_accuracy",
      "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
      "command": "python benchmarks/lenet5_time_to_accuracy.py --data_dir=DATA_DIR --seeds "
                 + " ".join(map(str, args.seeds)) + (f" --k {args.k}" if args.k else ""),
      "compilation_cache": "the launcher's in a fresh folder: cold for the first seed, warm for the others "
                           "(the same programs); the 'inside' timings compile everything afresh",
      "data": {"name": "mnist", "splits": {k: v for k, v in train_count.items()}},
      "config": CONFIG, "machine": run_timing.machine(), "versions": run_timing.versions(),
      "git": run_timing.git_state(), "seeds": rows,
      "summary": {**summarise(rows), "torch_best_mode": best, "torch_modes": modes}}
  pathlib.Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
  print(json.dumps(result["summary"], indent=2))
  return result


if __name__ == "__main__":
  main()
