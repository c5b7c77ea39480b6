r"""Timing one whole training run of the library's real path, `train_and_evaluate(config, workdir)`.

Used by `main_job.py`, `steps_per_dispatch.py` and `rbm_sklearn.py`. A run is timed three ways:

* `run_seconds`: wall time of the `train_and_evaluate` call (data, initial state, training, final
  evaluation, checkpoint, metrics files);
* `train_seconds`: wall time of the training loop alone (`deepvision.train.fit._train`, wrapped here without
  changing it: every dispatch, the log records and the last checkpoint);
* `compile_seconds`: what JAX itself reports through `jax.monitoring` while the run lasts (the durations of
  its events `/jax/core/compile/jaxpr_trace_duration`, `jaxpr_to_mlir_module_duration` and
  `backend_compile_duration`: tracing, lowering and XLA compilation; `train_compile_seconds` is the part
  inside the training loop). Every run builds its jitted functions afresh, so every run compiles them and
  `train_seconds - train_compile_seconds` is the loop without compilation.

Run as a script it trains one job in this fresh process and prints one JSON line (the parent scripts time
the whole process, start-up and imports included):

  python benchmarks/run_timing.py --job main|rbm_test_fit --k K [--seed S] [--epochs N]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import pathlib
import platform
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # experiments/ (the configs) is importable from a checkout, not installed.
  sys.path.insert(0, str(ROOT))

COMPILE_EVENTS = ("/jax/core/compile/jaxpr_trace_duration", "/jax/core/compile/jaxpr_to_mlir_module_duration",
                  "/jax/core/compile/backend_compile_duration")
TEST_FIT = {"n_hidden": 64, "learning_rate": 0.1, "batch_size": 10, "epochs": 7}
_compile_total = [0.0]
_listening = [False]


def _listen() -> None:
  """Adds the compile-duration listener once per process."""
  if _listening[0]:
    return
  import jax  # pylint: disable=g-import-not-at-top

  def on_duration(event: str, seconds: float, **_) -> None:
    if event in COMPILE_EVENTS:
      _compile_total[0] += seconds

  jax.monitoring.register_event_duration_secs_listener(on_duration)
  _listening[0] = True


def main_job_config(steps_per_dispatch: int, seed: int = 0, epochs: int | None = None):
  """The default experiment, `experiments/configs/lcn_convnet_digits.py`, with K, the seed and (for quick
  runs only) fewer epochs; figures off (they change no number)."""
  from experiments.configs import lcn_convnet_digits  # pylint: disable=g-import-not-at-top
  config = lcn_convnet_digits.get_config()
  config.steps_per_dispatch = steps_per_dispatch
  config.seed = seed
  config.figures = False
  if epochs:
    config.num_epochs = epochs
  return config


def rbm_test_fit_config(steps_per_dispatch: int, seed: int = 0, epochs: int | None = None):
  """`experiments/configs/rbm_digits.py` at scikit-learn's `test_fit` settings, evaluation at its minimum.

  All 1,797 digits (`train+validation+test` of `dv_digits`: `load_digits().data / 16`, the same values as
  scikit-learn's test, in another order), 64 hidden units, rate 0.1, batch 10, 7 epochs, PCD-1, no
  momentum, no weight decay, constant rate. Turned off: the held-out splits, the log-likelihood, the
  linear evaluation, the figures; one log record and one checkpoint, at the end. What the config cannot
  turn off: the final evaluation on a training subset of 1,000 (reconstruction error, pseudo-likelihood,
  free energy), the final checkpoint, `metrics.jsonl` / TensorBoard / `config.json`.
  """
  from experiments.configs import rbm_digits  # pylint: disable=g-import-not-at-top
  config = rbm_digits.get_config()
  config.model_kwargs.n_hidden = TEST_FIT["n_hidden"]
  config.train_split, config.eval_split, config.test_split = "train+validation+test", "", ""
  config.batch_size = TEST_FIT["batch_size"]
  config.num_epochs = epochs or TEST_FIT["epochs"]
  config.contrastive.method, config.contrastive.k = "pcd", 1
  config.optimizer.learning_rate = TEST_FIT["learning_rate"]
  config.optimizer.schedule = "constant"
  config.optimizer.momentum = 0.0
  config.optimizer.momentum_ramp_steps = 0
  config.optimizer.nesterov = False
  config.optimizer.weight_decay = 0.0
  config.log_likelihood.method = "none"
  config.linear_eval.enabled = False
  total = (1797 // config.batch_size) * config.num_epochs
  config.log_every_steps = total
  config.eval_every_steps = total
  config.checkpoint_every_steps = 0  # only at the end
  config.figures = False
  config.steps_per_dispatch = steps_per_dispatch
  config.seed = seed
  return config


def rbm_digits_config(steps_per_dispatch: int, seed: int = 0, epochs: int | None = None):
  """`experiments/configs/rbm_digits.py` as the launcher runs it (3,180 steps of 20, a log record and an
  evaluation every epoch), without what only the end of the run does and K cannot change: the AIS
  log-likelihood, the linear evaluation and the figures."""
  from experiments.configs import rbm_digits  # pylint: disable=g-import-not-at-top
  config = rbm_digits.get_config()
  config.log_likelihood.method = "none"
  config.linear_eval.enabled = False
  config.figures = False
  config.steps_per_dispatch = steps_per_dispatch
  config.seed = seed
  if epochs:
    config.num_epochs = epochs
  return config


def lenet5_modern_mnist_config(steps_per_dispatch: int, seed: int = 0, epochs: int | None = None):
  """`experiments/configs/lenet5_modern_mnist.py` as the launcher runs it (figures included), on the `mnist`
  of $DEEPVISION_DATA_DIR; K = 0 keeps the config's own."""
  from experiments.configs import lenet5_modern_mnist  # pylint: disable=g-import-not-at-top
  config = lenet5_modern_mnist.get_config()
  if steps_per_dispatch:
    config.steps_per_dispatch = steps_per_dispatch
  config.seed = seed
  if epochs:
    config.num_epochs = epochs
  return config


JOBS = {"main": main_job_config, "rbm_test_fit": rbm_test_fit_config, "rbm_digits": rbm_digits_config,
        "lenet5_modern_mnist": lenet5_modern_mnist_config}


def timed_run(config, workdir: str | None = None) -> dict:
  """Runs `train_and_evaluate(config, workdir)` (a fresh temporary work dir by default) and times it."""
  _listen()
  from deepvision.train import fit  # pylint: disable=g-import-not-at-top
  from deepvision.train.loop import train_and_evaluate  # pylint: disable=g-import-not-at-top

  inner = {}
  original = fit._train  # pylint: disable=protected-access

  def timed_train(*args, **kwargs):
    compile_before, begin = _compile_total[0], time.perf_counter()
    try:
      return original(*args, **kwargs)
    finally:
      inner["train_seconds"] = time.perf_counter() - begin
      inner["train_compile_seconds"] = _compile_total[0] - compile_before

  with contextlib.ExitStack() as stack:
    if workdir is None:
      workdir = stack.enter_context(tempfile.TemporaryDirectory())
    fit._train = timed_train  # pylint: disable=protected-access
    try:
      compile_before, begin = _compile_total[0], time.perf_counter()
      record = train_and_evaluate(config, workdir)
      run_seconds = time.perf_counter() - begin
      compile_seconds = _compile_total[0] - compile_before
    finally:
      fit._train = original  # pylint: disable=protected-access
  train = inner["train_seconds"]
  return {"run_seconds": run_seconds, "compile_seconds": compile_seconds, **inner,
          "train_seconds_excluding_compile": train - inner["train_compile_seconds"],
          "run_seconds_excluding_compile": run_seconds - compile_seconds,
          "record": {k: v for k, v in record.items() if isinstance(v, (int, float, str, bool))}}


def launcher_run(config: str, workdir: str, overrides: list[str], env: dict | None = None) -> tuple[float, list]:
  """`python -m experiments.main --config=CONFIG --workdir=WORKDIR --config.KEY=VALUE ...` in a fresh process,
  as a user runs it: its whole wall time and the records of its `metrics.jsonl` (RuntimeError on failure)."""
  from deepvision.train import writers  # pylint: disable=g-import-not-at-top
  command = [sys.executable, "-m", "experiments.main", f"--config={config}", f"--workdir={workdir}"]
  command += [f"--config.{o}" for o in overrides]
  begin = time.perf_counter()
  done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env, check=False)
  seconds = time.perf_counter() - begin
  if done.returncode:
    raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
  return seconds, writers.read_metrics(workdir)


def child_run(job: str, k: int, seed: int, epochs: int | None = None, timeout: float = 900) -> dict:
  """`timed_run` of `job` in a fresh Python process; adds `process_seconds`, the child's whole wall time
  (interpreter start, imports, the run, exit)."""
  command = [sys.executable, str(pathlib.Path(__file__).resolve()), "--job", job, "--k", str(k),
             "--seed", str(seed)] + (["--epochs", str(epochs)] if epochs else [])
  begin = time.perf_counter()
  done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT, check=False)
  seconds = time.perf_counter() - begin
  if done.returncode != 0:
    raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
  result = json.loads(done.stdout.strip().splitlines()[-1])
  result["process_seconds"] = seconds
  return result


def machine() -> dict:
  """CPU model, cores, load, XLA flags and the BLAS numpy uses (`deepvision.machine.describe`)."""
  from deepvision import machine as machine_info  # pylint: disable=g-import-not-at-top
  return machine_info.describe()


def versions() -> dict:
  import flax  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  import jaxlib  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top
  return {"python": platform.python_version(), "jax": jax.__version__, "jaxlib": jaxlib.__version__,
          "flax": flax.__version__, "optax": optax.__version__, "numpy": np.__version__}


def git_state() -> dict:
  """The commit measured and whether the library's files differed from it."""
  def git(*args):
    return subprocess.run(["git", *args], capture_output=True, text=True, cwd=ROOT, check=False).stdout.strip()
  return {"commit": git("rev-parse", "HEAD"),
          "library_files_modified": git("status", "--porcelain", "--", "deepvision", "experiments").splitlines()}


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description="one timed training run (prints JSON)")
  parser.add_argument("--job", choices=sorted(JOBS), required=True)
  parser.add_argument("--k", type=int, required=True, help="steps_per_dispatch")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--epochs", type=int, default=None, help="fewer epochs (quick runs only)")
  args = parser.parse_args(argv)
  import jax  # pylint: disable=g-import-not-at-top
  jax.config.update("jax_platforms", "cpu")
  config = JOBS[args.job](args.k, args.seed, args.epochs)
  with contextlib.redirect_stdout(sys.stderr):  # the run's progress lines; stdout carries the JSON only
    result = timed_run(config)
  print(json.dumps(result))


if __name__ == "__main__":
  main()
