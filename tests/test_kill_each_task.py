"""kill -9 mid-run of every task kind, then the same command again: the run ends bitwise as an uninterrupted one.

One child process per kill (`tests/fault_driver.py`), SIGKILLed at a known dispatch, then rerun to the end;
every checkpoint directory under the work dir (the DBN pipeline has one per stage) must hold bitwise the
reference run's newest state, and every `metrics.jsonl` the same records (timings aside). The kinds: the
supervised convnet, a PCD RBM with K = 4 steps per dispatch, an mcRBM trained with HMC negatives, and the
DBN pipeline (killed inside its stages, whose fine-tuning is a supervised task). Eight child runs: the slow
tier (`make test-slow`); the default tier kills the PCD RBM in tests/test_fault_injection.py.
"""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from deepvision.checkpoint import read_state
from deepvision.train.writers import read_metrics

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DRIVER = os.path.join(ROOT, "tests", "fault_driver.py")
# Short runs that save every other step; `kill_at`: the child is killed after this many dispatches.
KINDS = {
    "lcn_convnet_digits": ({"figures": False, "num_epochs": 1, "checkpoint_every_steps": 2}, 2),
    "rbm_digits": ({"figures": False, "linear_eval.enabled": False, "num_epochs": 1, "batch_size": 50,
                    "checkpoint_every_steps": 8, "steps_per_dispatch": 4, "log_every_steps": 4}, 3),
    "mcrbm_patches": ({"figures": False, "num_epochs": 1, "checkpoint_every_steps": 2,
                       "log_likelihood.method": "none"}, 5),
    "dbn_digits": ({"figures": False, "num_epochs": 1, "checkpoint_every_steps": 4,
                    "finetune.checkpoint_every_steps": 4, "finetune.num_epochs": 2,
                    "log_likelihood.method": "none", "linear_eval.enabled": False}, 40),
}


def _launch(name, workdir, cache_dir):
  env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": cache_dir,
         "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0", "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}
  return subprocess.Popen([sys.executable, DRIVER, name, str(workdir), json.dumps(KINDS[name][0])],
                          cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _finish(process, timeout=300):
  try:
    out, err = process.communicate(timeout=timeout)
  finally:
    if process.poll() is None:
      process.kill()
      process.wait()
  return process.returncode, out, err


def _runs(workdir):
  """Every sub-run of `workdir` that saved checkpoints, by its path relative to `workdir`."""
  return sorted(os.path.relpath(root, workdir) for root, dirs, _ in os.walk(workdir) if "checkpoints" in dirs)


def _assert_same_run(reference, run):
  assert _runs(run) == _runs(reference)
  strip = lambda records: [{k: v for k, v in r.items() if k != "steps_per_second"}  # noqa: E731
                           for r in records]
  for sub in _runs(reference):
    (a, step_a), (b, step_b) = (read_state(os.path.join(w, sub, "checkpoints")) for w in (reference, run))
    assert step_a == step_b, sub
    flat_a, flat_b = jax.tree_util.tree_leaves_with_path(a), jax.tree_util.tree_leaves_with_path(b)
    assert [p for p, _ in flat_a] == [p for p, _ in flat_b], sub
    for (path, x), (_, y) in zip(flat_a, flat_b):
      if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        x, y = jax.random.key_data(x), jax.random.key_data(y)
      np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=f"{sub}: {path}")
    assert strip(read_metrics(os.path.join(run, sub))) == strip(read_metrics(os.path.join(reference, sub))), sub


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(KINDS))
def test_kill_9_mid_run_then_rerun_ends_bitwise_equal(tmp_path, name):
  cache_dir = jax.config.jax_compilation_cache_dir or str(tmp_path / "cache")
  reference = tmp_path / "reference"
  code, _, err = _finish(_launch(name, reference, cache_dir))
  assert code == 0, err
  run = tmp_path / "killed"
  process = _launch(name, run, cache_dir)
  dispatches = 0
  for line in process.stdout:
    dispatches += line.startswith("STEP ")
    if dispatches >= KINDS[name][1]:
      time.sleep(0.01)
      process.send_signal(signal.SIGKILL)
      break
  code, _, _ = _finish(process)
  assert code == -signal.SIGKILL, "the run ended before the kill: make it longer"
  code, _, err = _finish(_launch(name, run, cache_dir))
  assert code == 0, err
  _assert_same_run(str(reference), str(run))
