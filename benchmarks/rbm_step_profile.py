r"""Where the RBM trainer's time goes at scikit-learn's `test_fit` settings (64 × 64, batch 10, PCD-1).

scikit-learn's `BernoulliRBM` fits the 1,797 digits for 7 epochs (1,260 updates) in about 75 ms on one core
here, so three times its speed leaves 25 ms for 1,253 updates: 20 µs per update, host and device together.
This script times the parts of deepvision's real path apart, in one process:

1. `trainer_step`: the trainer's guarded step (`ContrastiveTask.make_step` + `runner.guard_step`: PCD-1 through
   the sampler registry, the optimiser, the metrics, the non-finite guard) scanned over K staged minibatches
   already on the device (`dispatch.loop_steps`, what one dispatch runs): µs per step on the device alone.
2. `plain_step`: the same PCD-1 update written directly in JAX (no metrics, no guard, plain SGD), scanned the
   same way, drawing its random numbers inside the loop from `fold_in(key, t)` like the trainer;
   `plain_step_predrawn`: the same with the K steps' uniforms drawn before the loop in one vectorised call
   (the same numbers: each step's draw depends only on its key). The difference is what XLA:CPU spends on
   small random-number kernels inside a loop (threefry is lowered as a rolled loop on CPU).
3. `host`: reading K minibatches (`BatchIterator.next_many`), and saving the final checkpoint
   (`deepvision.checkpoint.Checkpointer.save`: orbax, fsync, manifest), which every run does once at least.
4. `sklearn_float32`: scikit-learn's whole fit on the float32 digits, 1 BLAS thread, for the per-update budget.

Usage (about a minute on 2 idle cores):
  python benchmarks/rbm_step_profile.py [--k 64] [--rounds 15] [--out PATH]
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import statistics
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

import run_timing  # benchmarks/run_timing.py (the script's own folder)
from cpu_load import OwnLoad

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _per_step_us(run, state, steps: int, rounds: int) -> list[float]:
  """µs per step of `run(state) -> state` (one dispatch of `steps` steps), per round."""
  state = run(state)
  jax.block_until_ready(state)
  out = []
  for _ in range(rounds):
    start = time.perf_counter()
    state = run(state)
    jax.block_until_ready(state)
    out.append((time.perf_counter() - start) / steps * 1e6)
  return out


def plain_pcd(k: int, n_visible: int, n_hidden: int, batch: int, rate: float, predrawn: bool):
  """A jitted `run(carry, data, key) -> carry` of k plain PCD-1 updates (see the module docstring)."""

  def draws(key, t):
    hidden_key, visible_key = jax.random.split(jax.random.fold_in(key, t))
    return jax.random.uniform(hidden_key, (batch, n_hidden)), jax.random.uniform(visible_key, (batch, n_visible))

  def run(carry, data, key):
    steps = carry[-1] + jnp.arange(k)
    noise = jax.vmap(draws, in_axes=(None, 0))(key, steps) if predrawn else steps

    def update(carry, xs):
      w, b_v, b_h, chains, t = carry
      v, noise_t = xs
      u_hidden, u_visible = noise_t if predrawn else draws(key, noise_t)
      p_data = jax.nn.sigmoid(v @ w + b_h)
      h = (u_hidden < jax.nn.sigmoid(chains @ w + b_h)).astype(jnp.float32)
      negatives = (u_visible < jax.nn.sigmoid(h @ w.T + b_v)).astype(jnp.float32)
      p_model = jax.nn.sigmoid(negatives @ w + b_h)
      scale = rate / batch
      w = w + scale * (v.T @ p_data - negatives.T @ p_model)
      b_v = b_v + scale * jnp.sum(v - negatives, axis=0)
      b_h = b_h + scale * jnp.sum(p_data - p_model, axis=0)
      return (w, b_v, b_h, negatives, t + 1), None

    carry, _ = jax.lax.scan(update, carry, (data, noise))
    return carry

  return jax.jit(run)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--k", type=int, default=64, help="steps per dispatch")
  parser.add_argument("--rounds", type=int, default=15)
  parser.add_argument("--out", type=pathlib.Path, default=ROOT / "benchmarks/results/rbm_step_profile.json")
  args = parser.parse_args(argv)
  sys.path.insert(0, str(ROOT))
  from deepvision.checkpoint import Checkpointer  # pylint: disable=g-import-not-at-top
  from deepvision.train import contrastive_loop, dispatch, runner  # pylint: disable=g-import-not-at-top
  from sklearn.neural_network import BernoulliRBM  # pylint: disable=g-import-not-at-top
  import threadpoolctl  # pylint: disable=g-import-not-at-top

  load = OwnLoad()
  k, rounds = args.k, args.rounds
  config = run_timing.rbm_test_fit_config(k)
  plan = contrastive_loop.plan_contrastive(config)
  task = contrastive_loop.ContrastiveTask(plan, config, quiet=True)
  state = task.init_state()
  batches = task.train_batches()
  read_start = time.perf_counter()
  staged = batches.next_many(k)
  read_us = (time.perf_counter() - read_start) / k * 1e6
  staged = jax.device_put(staged)
  multi = jax.jit(dispatch.loop_steps(runner.guard_step(task.make_step(None))))
  fault = runner.initial_fault()
  compile_start = time.perf_counter()
  compiled = multi.lower(state, fault, staged, k).compile()
  trainer_compile = time.perf_counter() - compile_start
  trainer = _per_step_us(lambda s: compiled(s, fault, staged, k)[0], state, k, rounds)

  n_visible, n_hidden = 64, run_timing.TEST_FIT["n_hidden"]
  batch, rate = run_timing.TEST_FIT["batch_size"], run_timing.TEST_FIT["learning_rate"]
  data = staged["image"].reshape(k, batch, n_visible)
  key = jax.random.key(0)
  carry = (jnp.zeros((n_visible, n_hidden)), jnp.zeros(n_visible), jnp.zeros(n_hidden),
           data[0], jnp.zeros((), jnp.int32))
  plain = {}
  for predrawn in (False, True):
    run = plain_pcd(k, n_visible, n_hidden, batch, rate, predrawn)
    plain[predrawn] = _per_step_us(lambda c, run=run: run(c, data, key), carry, k, rounds)

  with tempfile.TemporaryDirectory() as directory:
    checkpointer = Checkpointer(directory)
    host_state = jax.device_get(compiled(state, fault, staged, k)[0])
    save_start = time.perf_counter()
    checkpointer.save(host_state, batches.get_state())
    save_ms = (time.perf_counter() - save_start) * 1e3
    checkpointer.close()

  digits = (plan.data.splits["train"].reshape(-1, n_visible)).astype(np.float32)
  fits = []
  with threadpoolctl.threadpool_limits(1, user_api="blas"):
    for seed in range(rounds // 2 + 1):
      model = BernoulliRBM(n_components=n_hidden, learning_rate=rate, batch_size=batch,
                           n_iter=run_timing.TEST_FIT["epochs"], random_state=seed)
      fit_start = time.perf_counter()
      model.fit(digits)
      fits.append(time.perf_counter() - fit_start)
  sklearn_updates = (len(digits) // batch + (len(digits) % batch > 0)) * run_timing.TEST_FIT["epochs"]
  sklearn_seconds = statistics.median(fits)

  med = statistics.median
  record = {
      "benchmark": "RBM trainer at scikit-learn's test_fit settings: device step, host and checkpoint apart",
      "settings": {**run_timing.TEST_FIT, "steps_per_dispatch": k, "rounds": rounds},
      "machine_before": run_timing.machine(), "versions": run_timing.versions(),
      "device_us_per_step": {
          "trainer_step": {"median": med(trainer), "rounds": [round(v, 2) for v in trainer],
                           "compile_seconds": trainer_compile},
          "plain_step": {"median": med(plain[False]), "rounds": [round(v, 2) for v in plain[False]]},
          "plain_step_predrawn": {"median": med(plain[True]), "rounds": [round(v, 2) for v in plain[True]]},
      },
      "host": {"next_many_us_per_batch": read_us, "final_checkpoint_ms": save_ms},
      "sklearn_float32": {"fit_seconds_median": sklearn_seconds, "updates": sklearn_updates,
                          "us_per_update": sklearn_seconds / sklearn_updates * 1e6, "blas_threads": 1},
  }
  record["budget_us_per_update_for_3x"] = record["sklearn_float32"]["us_per_update"] / 3
  record["machine_after"] = run_timing.machine()
  wall = load.seconds()
  if (share := load.other_share()) is not None:
    record["other_processes_cpu_share"] = share
  record.update({"measured_seconds": round(wall, 1), "git": run_timing.git_state(),
                 "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                 "command": "python benchmarks/rbm_step_profile.py " + " ".join(argv or sys.argv[1:])})
  args.out.write_text(json.dumps(record, indent=1) + "\n")
  steps = record["device_us_per_step"]
  print(f"device µs/step: trainer {steps['trainer_step']['median']:.1f}, plain {steps['plain_step']['median']:.1f}, "
        f"plain with pre-drawn noise {steps['plain_step_predrawn']['median']:.1f}; host read "
        f"{read_us:.1f} µs/batch, final checkpoint {save_ms:.0f} ms; scikit-learn float32 "
        f"{record['sklearn_float32']['us_per_update']:.1f} µs/update (3× budget "
        f"{record['budget_us_per_update_for_3x']:.1f}); wrote {args.out}")


if __name__ == "__main__":
  main()
