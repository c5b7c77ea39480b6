"""Fault injection: kill -9 and SIGTERM mid-run, a NaN mid-run, bad input; resumes must be bitwise.

Each trainer runs its smoke config in a child process (`tests/fault_driver.py`), which is killed with SIGKILL
right after orbax committed a checkpoint but before its manifest was written, then at two random steps (a
seeded choice), and then re-run to the end: the final train state must equal, bit for bit, that of a run never
interrupted. The children share the session's persistent compilation cache, so the programs the in-process
reference run compiled load from disk there; the reference runs themselves are trained once per module.
"""

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from deepvision import optim, zoo
from deepvision.checkpoint import Checkpointer
from deepvision.data import datasets, pipeline
from deepvision.train import contrastive, contrastive_loop
from deepvision.train.errors import TrainingDivergedError
from deepvision.train.loop import override_config, train_and_evaluate
from deepvision.train.state import create_train_state
from deepvision.train.writers import read_metrics
from experiments.configs import lcn_convnet_digits, rbm_digits

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DRIVER = os.path.join(ROOT, "tests", "fault_driver.py")
# Small runs that save often, so random kills land in steps and in saves alike.
RUNS = {
    "lcn_convnet_digits": {"figures": False, "num_epochs": 4, "checkpoint_every_steps": 2,
                           "keep_checkpoints": 3},
    # One step per dispatch: the signals land between steps, as the tests' step counts assume (K > 1 is
    # killed and resumed in tests/test_kill_each_task.py).
    "rbm_digits": {"figures": False, "linear_eval.enabled": False, "num_epochs": 1, "batch_size": 50,
                   "checkpoint_every_steps": 2, "keep_checkpoints": 3, "steps_per_dispatch": 1},
}
MODULES = {"lcn_convnet_digits": lcn_convnet_digits, "rbm_digits": rbm_digits}


def _config(name):
  return override_config(MODULES[name].get_config("smoke"), RUNS[name])


def _final_state(name, workdir):
  config = _config(name)
  if name == "rbm_digits":
    plan = contrastive_loop.plan_contrastive(config)
    template = contrastive.create_state(plan.model, optim.make_optimizer(config, plan.total_steps),
                                        jax.random.key(0), plan.spec,
                                        np.zeros((plan.num_chains, plan.model.n_visible), np.float32))
  else:
    info = datasets.dataset_info(config.dataset)
    template = create_train_state(zoo.create(config.model), optim.make_optimizer(config, 10),
                                  jax.random.key(0), info.image_shape)
  checkpointer = Checkpointer(os.path.join(workdir, "checkpoints"))
  state, _ = checkpointer.restore(template)
  checkpointer.close()
  return state


def _assert_bitwise_equal(a, b):
  assert int(a.step) == int(b.step)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
      x, y = jax.random.key_data(x), jax.random.key_data(y)
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.fixture(scope="module")
def compile_cache(tmp_path_factory):
  """The persistent compilation cache of the child processes.

  The session's cache where the test session set one (tests/conftest.py): the in-process reference runs
  already compiled the children's programs into it. Otherwise a fresh one: only the first child compiles.
  """
  return jax.config.jax_compilation_cache_dir or str(tmp_path_factory.mktemp("jax_cache"))


_CACHE: dict[str, str] = {}


@pytest.fixture(autouse=True)
def _children_share_a_compile_cache(compile_cache):
  _CACHE["dir"] = compile_cache
  yield


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
  """reference_run(name): the workdir of one uninterrupted run of `_config(name)`, trained once per module.

  Tests only read it (or copy it): the runs they compare with it are their own.
  """
  workdirs: dict[str, str] = {}

  def get(name):
    if name not in workdirs:
      workdir = str(tmp_path_factory.mktemp(f"reference_{name}") / "run")
      train_and_evaluate(_config(name), workdir)
      workdirs[name] = workdir
    return workdirs[name]

  return get


def _launch(name, workdir, *extra):
  env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": _CACHE["dir"],
         "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0", "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}
  return subprocess.Popen([sys.executable, DRIVER, name, str(workdir), json.dumps(RUNS[name]), *extra],
                          cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _wait_for_step(process, step, timeout=120):
  """Reads the child's `STEP n` lines until n >= step; returns n (None if it ended first)."""
  deadline = time.monotonic() + timeout
  for line in process.stdout:
    if line.startswith("STEP ") and int(line.split()[1]) >= step:
      return int(line.split()[1])
    if time.monotonic() > deadline:
      break
  return None


def _finish(process, timeout=120):
  try:
    out, err = process.communicate(timeout=timeout)
  finally:
    if process.poll() is None:
      process.kill()
      process.wait()
  return process.returncode, out, err


# Four child runs each: the supervised trainer's kill test is in the slow tier. The default tier keeps the
# contrastive one (the same runner, checkpointer and manifests), and the supervised trainer's bitwise
# resumes from a cut run (tests/test_experiments.py) and from a damaged newest checkpoint (below).
@pytest.mark.parametrize("name", [pytest.param("lcn_convnet_digits", marks=pytest.mark.slow), "rbm_digits"])
def test_kill_9_anywhere_then_resume_is_bitwise_equal(tmp_path, reference_run, name):
  reference = reference_run(name)
  total = read_metrics(reference)[-1]["step"]

  run = tmp_path / "killed"
  rng = random.Random(f"kill-{name}")
  # 1. Killed right after orbax committed step 4, before its manifest: step 4 cannot be verified.
  code, _, _ = _finish(_launch(name, run, "--kill-before-manifest", "4"))
  assert code == -signal.SIGKILL
  # 2-3. Killed at random steps, a random instant later (mid-step or mid-save: steps take milliseconds,
  #      saves tens of them).
  for low, high in ((5, total // 2), (total // 2 + 1, total - 1)):
    process = _launch(name, run)
    reached = _wait_for_step(process, rng.randint(low, high))
    if reached is not None:
      time.sleep(rng.uniform(0.0, 0.05))
      process.send_signal(signal.SIGKILL)
    _finish(process)
  # 4. The same command again finishes the run.
  code, _, err = _finish(_launch(name, run))
  assert code == 0, err
  _assert_bitwise_equal(_final_state(name, reference), _final_state(name, str(run)))
  strip = lambda records: [{k: v for k, v in r.items() if k != "steps_per_second"}  # noqa: E731
                           for r in records]
  assert strip(read_metrics(str(run))) == strip(read_metrics(reference))


def test_sigterm_saves_within_two_steps_exits_0_and_resumes_bitwise(tmp_path, reference_run):
  name = "rbm_digits"
  reference = reference_run(name)
  run = tmp_path / "run"
  process = _launch(name, run)
  signalled_at = _wait_for_step(process, 7)
  process.send_signal(signal.SIGTERM)
  code, _, err = _finish(process)
  assert code == 0, err
  assert "SIGTERM received" in err and "run the same command again" in err
  saved = Checkpointer(str(run / "checkpoints")).latest_valid_step()
  assert signalled_at <= saved <= signalled_at + 2
  code, _, err = _finish(_launch(name, run))
  assert code == 0, err
  _assert_bitwise_equal(_final_state(name, reference), _final_state(name, str(run)))


@pytest.mark.parametrize("name", ["lcn_convnet_digits", "rbm_digits"])
def test_an_injected_nan_stops_the_run_naming_the_step_and_saves_nothing_after(tmp_path, monkeypatch, name):
  real = pipeline.train_batches

  def poisoned(*args, **kwargs):
    iterator = real(*args, **kwargs)
    return _PoisonAt(iterator, bad_step=5)

  monkeypatch.setattr(pipeline, "train_batches", poisoned)
  config = override_config(_config(name), {"checkpoint_every_steps": 2, "debug_nans": True})
  with pytest.raises(TrainingDivergedError, match=r"non-finite \(NaN or Inf\) at step 5") as error:
    train_and_evaluate(config, str(tmp_path))
  # The replay under jax_debug_nans names the operation and where this package's code called it.
  assert "loss" in str(error.value) and "encountered in" in str(error.value)
  assert "at deepvision/" in str(error.value)
  checkpointer = Checkpointer(str(tmp_path / "checkpoints"))
  assert checkpointer.all_steps() == [2, 4]  # the last good checkpoint is kept; nothing after it


class _PoisonAt:
  """A training iterator whose batch for step `bad_step` carries a NaN pixel."""

  def __init__(self, iterator, bad_step):
    self._iterator, self._bad_step = iterator, bad_step

  def __next__(self):
    step = self._iterator.get_state()["next_step"] + 1
    batch = next(self._iterator)
    if step == self._bad_step:
      batch = {**batch, "image": np.array(batch["image"], copy=True)}
      batch["image"][0, 0, 0, 0] = np.nan
    return batch

  def get_state(self):
    return self._iterator.get_state()

  def set_state(self, state):
    self._iterator.set_state(state)


def _tree_digest(directory):
  digest = hashlib.sha256()
  for root, _, files in sorted(os.walk(directory)):
    for name in sorted(files):
      path = os.path.join(root, name)
      digest.update(path.encode())
      with open(path, "rb") as f:
        digest.update(f.read())
  return digest.hexdigest()


@pytest.fixture(scope="module")
def finished_smoke_run(tmp_path_factory):
  """A finished lcn_convnet_digits:smoke run (figures off), trained once; tests work on copies."""
  workdir = tmp_path_factory.mktemp("finished") / "run"
  train_and_evaluate(override_config(lcn_convnet_digits.get_config("smoke"), {"figures": False}), str(workdir))
  return workdir


@pytest.mark.parametrize("flags,message", [
    (["--config.batch_size=0"], "batch_size"),
    (["--config.optimizer.learning_rate=0.5"], "holds a finished run and its config cannot change"),
    (["--config.optimizer.learning_rate=0.5", "--config.allow_config_change=True"], "python -m experiments.evaluate"),
    (["--config.seed=3"], "cannot change on resume"),
    (["--config.dataset=dv_faces"], "dataset"),
    (["--config.min_free_disk_mb=1e15"], "free"),
])
def test_bad_input_exits_2_and_leaves_checkpoints_untouched(tmp_path, finished_smoke_run, flags, message):
  workdir = tmp_path / "run"
  shutil.copytree(finished_smoke_run, workdir)
  before = _tree_digest(workdir)
  result = subprocess.run(
      [sys.executable, "-m", "experiments.main", "--config=experiments/configs/lcn_convnet_digits.py:smoke",
       f"--workdir={workdir}", "--config.figures=False", *flags],
      cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert result.returncode == 2, result.stderr
  assert message in result.stderr
  assert _tree_digest(workdir) == before


def test_a_workdir_that_is_a_file_is_refused(tmp_path):
  path = tmp_path / "file"
  path.write_text("not a directory")
  with pytest.raises(ValueError, match="not a directory"):
    train_and_evaluate(override_config(lcn_convnet_digits.get_config("smoke"), {"figures": False}), str(path))
  assert path.read_text() == "not a directory"


def test_a_damaged_data_file_gets_a_clear_error_and_exit_2(tmp_path):
  data = tmp_path / "data"
  datasets.load_arrays("dv_digits", "train", data_dir=str(data))
  (record_file,) = [p for p in data.rglob("*train.array_record*")]
  with open(record_file, "r+b") as f:
    f.truncate(os.path.getsize(record_file) // 2)
  result = subprocess.run(
      [sys.executable, "-m", "experiments.main", "--config=experiments/configs/lcn_convnet_digits.py:smoke",
       f"--workdir={tmp_path}/run", f"--config.data_dir={data}", "--config.figures=False"],
      cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert result.returncode == 2, result.stderr
  assert "cannot be read" in result.stderr and "delete" in result.stderr
  assert not os.path.exists(tmp_path / "run")


def test_a_damaged_newest_checkpoint_is_skipped_with_a_warning_and_the_run_ends_bitwise(tmp_path,
                                                                                       reference_run):
  name = "lcn_convnet_digits"
  reference, run = reference_run(name), tmp_path / "run"
  config = _config(name)
  shutil.copytree(reference, run)  # a finished run that kept its last 3 checkpoints (every 2 steps)
  total = read_metrics(str(run))[-1]["step"]
  # Damage the final checkpoint and the one before it: a flipped byte and a deleted file.
  steps = Checkpointer(str(run / "checkpoints")).all_steps()
  newest, previous = steps[-1], steps[-2]
  data_files = sorted(p for p in (run / "checkpoints" / str(newest)).rglob("*") if p.is_file()
                      and p.stat().st_size > 0 and "manifest" not in p.name)
  with open(data_files[-1], "r+b") as f:
    first = f.read(1)
    f.seek(0)
    f.write(bytes([first[0] ^ 0xFF]))
  (run / "checkpoints" / str(previous) / "commit_success.txt").unlink()
  with open(run / "metrics.jsonl") as f:  # as if the final evaluation had not been written
    lines = f.readlines()
  with open(run / "metrics.jsonl", "w") as f:
    f.writelines(lines[:-1])
  with pytest.warns(Warning, match=f"step {newest}"):
    train_and_evaluate(config, str(run))
  assert newest == total
  _assert_bitwise_equal(_final_state(name, reference), _final_state(name, str(run)))
  assert any(".damaged-" in p.name for p in (run / "checkpoints").iterdir())  # moved aside, not deleted


def test_a_changed_config_resumes_only_when_allowed(tmp_path):
  config = override_config(_config("lcn_convnet_digits"), {"num_epochs": 2})
  train_and_evaluate(override_config(config, {"checkpoint_every_steps": 4}), str(tmp_path))
  records = read_metrics(str(tmp_path))
  with open(tmp_path / "metrics.jsonl", "w") as f:  # killed before its final evaluation: not finished
    f.writelines(json.dumps(r) + "\n" for r in records[:-1])
  changed = override_config(config, {"optimizer.learning_rate": 0.02})
  from deepvision.train.errors import ConfigError  # pylint: disable=g-import-not-at-top
  with pytest.raises(ConfigError, match="optimizer.learning_rate: 0.01 there, 0.02 now"):
    train_and_evaluate(changed, str(tmp_path))
  train_and_evaluate(override_config(changed, {"allow_config_change": True}), str(tmp_path))
  with open(tmp_path / "config.json") as f:
    assert json.load(f)["optimizer"]["learning_rate"] == 0.02


def test_a_block_added_later_at_its_defaults_is_not_a_config_change(tmp_path):
  """A run started before `activation_sparsity` existed (no such block in its config.json) resumes and
  finishes with today's configs, where the block is off; switching the penalty on is a change."""
  config = override_config(_config("lcn_convnet_digits"), {"num_epochs": 1})
  train_and_evaluate(config, str(tmp_path))
  with open(tmp_path / "config.json") as f:
    saved = json.load(f)
  del saved["activation_sparsity"]
  with open(tmp_path / "config.json", "w") as f:
    json.dump(saved, f)
  before = (tmp_path / "metrics.jsonl").read_bytes()
  train_and_evaluate(config, str(tmp_path))  # already finished: nothing to do, no error
  assert (tmp_path / "metrics.jsonl").read_bytes() == before
  from deepvision.train.errors import ConfigError  # pylint: disable=g-import-not-at-top
  on = override_config(config, {"activation_sparsity.stages": ("stage1/rect",), "activation_sparsity.weight": 0.1})
  with pytest.raises(ConfigError, match=r"activation_sparsity.weight: None there, 0.1 now"):
    train_and_evaluate(on, str(tmp_path))
