"""Scale-out through the trainers: several devices in one process, and two processes on 127.0.0.1.

Each run is a fresh interpreter (the CPU device count is fixed when JAX starts) driven by
tests/distributed_driver.py, under a timeout, and every child is reaped whatever happens.

* Two processes × one CPU device each (`jax.distributed`, CPU collectives) train the smoke config and must
  end with bitwise identical parameters in both processes; and, since process p's device is replica p and
  reads rows [p·B/2, (p+1)·B/2) of every global batch, with the parameters of ONE process driving two
  devices (up to the order of floating-point sums in the all-reduce).
* One process with four devices trains the PCD RBM: its persistent chains are split over the devices and
  gathered back into the checkpoint, which a one-device run then resumes.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from deepvision import parallel
from deepvision.train import loop
from deepvision.train.errors import ConfigError
from deepvision.xla_flags import with_cpu_devices
from experiments.configs import lcn_convnet_digits

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DRIVER = os.path.join(ROOT, "tests", "distributed_driver.py")
TIMEOUT_S = 240


def _free_port() -> int:
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _env(num_devices: int, cache_dir: str) -> dict[str, str]:
  # The session's XLA flags (single-threaded Eigen, see tests/conftest.py) stay; the device count is added.
  return {**os.environ, "XLA_FLAGS": with_cpu_devices(num_devices),
          "JAX_PLATFORMS": "cpu", "JAX_COMPILATION_CACHE_DIR": cache_dir, "PYTHONUNBUFFERED": "1"}


def _run_all(commands: list[list[str]], env: dict[str, str]) -> list[tuple[int, str, str]]:
  """Starts every command, waits for all under one timeout, and always kills and reaps them."""
  children = [subprocess.Popen(c, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
              for c in commands]
  results = []
  try:
    for child in children:
      out, err = child.communicate(timeout=TIMEOUT_S)
      results.append((child.returncode, out, err))
  finally:
    for child in children:
      if child.poll() is None:
        child.kill()
      child.communicate()
  return results


def _digest(stdout: str) -> dict:
  return json.loads([line for line in stdout.splitlines() if line.startswith('{"process"')][-1])


def _params(out_dir, process: int = 0) -> dict[str, np.ndarray]:
  with np.load(os.path.join(out_dir, f"params_{process}.npz")) as f:
    return dict(f)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp("jax_cache"))


def test_two_processes_end_with_identical_parameters_equal_to_one_process_with_two_devices(tmp_path, cache_dir):
  overrides = json.dumps({"figures": False})
  multi_out, single_out = tmp_path / "multi_out", tmp_path / "single_out"
  multi_out.mkdir(), single_out.mkdir()
  port = _free_port()
  two = [[sys.executable, DRIVER, "lcn_convnet_digits", str(tmp_path / "multi"), str(multi_out), overrides,
          str(port), "2", str(p)] for p in range(2)]
  results = _run_all(two, _env(1, cache_dir))
  for p, (code, out, err) in enumerate(results):
    assert code == 0, f"process {p} exited {code}:\n{out}\n{err[-3000:]}"
  digests = [_digest(out) for _, out, _ in results]
  assert [d["process"] for d in digests] == [0, 1]
  assert digests[0]["sha256"] == digests[1]["sha256"]
  # Process 0 checked the replicas in memory and said so; only it wrote the logs.
  assert f"parameters agree across 2 processes: sha256 {digests[0]['sha256']}" in results[0][1]
  assert "Done:" in results[0][1] and "Done:" not in results[1][1]

  (code, out, err), = _run_all([[sys.executable, DRIVER, "lcn_convnet_digits", str(tmp_path / "single"),
                                 str(single_out), overrides]], _env(2, cache_dir))
  assert code == 0, f"{out}\n{err[-3000:]}"
  assert "over 2 devices" in out
  # metrics.jsonl written once (by process 0), record for record like the one-process run's.
  read = lambda run: [json.loads(line) for line in open(tmp_path / run / "metrics.jsonl")]  # noqa: E731
  multi_records, single_records = read("multi"), read("single")
  assert [(r["step"], sorted(r)) for r in multi_records] == [(r["step"], sorted(r)) for r in single_records]
  assert "test/accuracy" in multi_records[-1]
  multi, single = _params(multi_out, 0), _params(single_out, 0)
  assert multi.keys() == single.keys()
  for name in multi:
    np.testing.assert_allclose(multi[name], single[name], rtol=1e-5, atol=1e-6, err_msg=name)
  # Both runs start from the same initial parameters and did train: the comparison is not vacuous.
  with np.load(os.path.join(multi_out, "initial_params_0.npz")) as f:
    initial = dict(f)
  with np.load(os.path.join(single_out, "initial_params_0.npz")) as f:
    assert all(np.array_equal(initial[name], f[name]) for name in initial)
  moved = [float(np.max(np.abs(multi[name] - initial[name]))) for name in sorted(multi)]
  assert min(moved) > 1e-4, dict(zip(sorted(multi), moved))


def test_two_devices_train_bitwise_alike_one_or_four_steps_per_dispatch(tmp_path, cache_dir):
  """Data-parallel K > 1 stages (K, B) batches as (devices, K, B / devices): the same rows per device, the
  same numbers as the per-step path."""
  runs = {}
  for k in (1, 4):
    workdir, out_dir = tmp_path / f"k{k}", tmp_path / f"k{k}_out"
    out_dir.mkdir()
    settings = {"figures": False, "num_devices": 2, "steps_per_dispatch": k, "num_epochs": 1, "log_every_steps": 6,
                "checkpoint_every_steps": 9, "linear_eval.enabled": False}
    runs[k] = [sys.executable, DRIVER, "rbm_digits", str(workdir), str(out_dir), json.dumps(settings)]
  results = _run_all(list(runs.values()), _env(2, cache_dir))
  for (code, out, err) in results:
    assert code == 0, f"{out}\n{err[-3000:]}"
    assert "PCD" in out
  read = lambda k: [{key: v for key, v in json.loads(line).items() if key != "steps_per_second"}  # noqa: E731
                    for line in open(tmp_path / f"k{k}" / "metrics.jsonl")]
  assert read(1) == read(4) and len(read(1)) > 3
  one, four = _params(tmp_path / "k1_out"), _params(tmp_path / "k4_out")
  for name in one:
    np.testing.assert_array_equal(one[name], four[name], err_msg=name)


@pytest.mark.slow  # four runs in subprocesses: ~55 s
def test_pcd_chains_split_over_four_devices_checkpoint_whole_and_resume_on_four_or_one(tmp_path, cache_dir):
  """Preempted at step 30 on four devices, then resumed on four: bitwise the uninterrupted run. The
  checkpoint holds all chains in host order, so one device can resume it too."""
  overrides = json.dumps({"figures": False, "checkpoint_every_steps": 1000})
  runs = {name: (str(tmp_path / name), tmp_path / f"{name}_out") for name in ("whole", "split", "one")}
  for _, out_dir in runs.values():
    out_dir.mkdir()

  def run(name, num_devices=4, extra=None, stop_at=0):
    workdir, out_dir = runs[name]
    env = {**_env(4, cache_dir), "SIGTERM_AT_STEP": str(stop_at)}
    settings = {**json.loads(overrides), "num_devices": num_devices, **(extra or {})}
    (code, out, err), = _run_all([[sys.executable, DRIVER, "rbm_digits", workdir, str(out_dir),
                                   json.dumps(settings)]], env)
    assert code == 0, f"{out}\n{err[-3000:]}"
    return out, err

  out, _ = run("whole")
  assert "PCD" in out
  _, err = run("split", stop_at=30)
  assert "SIGTERM received: saved the checkpoint of step 30" in err
  shutil.copytree(runs["split"][0], runs["one"][0])
  saved = ocp.PyTreeCheckpointer().restore(os.path.join(runs["split"][0], "checkpoints", "30", "state"))
  chains = [leaf for path, leaf in jax.tree_util.tree_leaves_with_path(saved["chains"])]
  assert chains and all(c.shape[0] == 20 for c in chains)  # rbm_digits:smoke's 20 chains, from 4 devices
  out, _ = run("split")
  assert "Resuming from step 30" in out
  whole, split = _params(runs["whole"][1]), _params(runs["split"][1])
  for name in whole:
    np.testing.assert_array_equal(whole[name], split[name], err_msg=name)
  out, _ = run("one", num_devices=1, extra={"allow_config_change": True})
  assert "Resuming from step 30" in out
  one = _params(runs["one"][1])
  assert all(np.all(np.isfinite(v)) for v in one.values())


def test_a_global_batch_the_devices_do_not_divide_is_a_config_error(monkeypatch):
  config = loop.override_config(lcn_convnet_digits.get_config("smoke"), {"batch_size": 30})
  monkeypatch.setattr(parallel.Replicas, "num_devices", property(lambda self: 4))
  with pytest.raises(ConfigError, match=r"config.batch_size=30 must be a multiple of the 4 devices"):
    loop.plan_supervised(config)


@pytest.mark.parametrize("field, value, message", [
    ("num_devices", -1, r"config.num_devices: num_devices must be an int in \[0, "),
    ("num_devices", 99, r"config.num_devices: num_devices must be an int in \[0, "),
    ("compute_dtype", "float8", r"config.compute_dtype must be one of float32, bfloat16, got 'float8'"),
    ("matmul_precision", "fast", r"config.matmul_precision must be one of default, high, highest"),
])
def test_bad_device_settings_are_config_errors_before_compute(tmp_path, field, value, message):
  config = loop.override_config(lcn_convnet_digits.get_config("smoke"), {field: value})
  with pytest.raises(ConfigError, match=message):
    loop.train_and_evaluate(config, str(tmp_path / "w"))
  assert not (tmp_path / "w").exists()


def test_bfloat16_compute_trains_with_float32_parameters(tmp_path):
  config = loop.override_config(lcn_convnet_digits.get_config("smoke"),
                                {"compute_dtype": "bfloat16", "figures": False})
  record = loop.train_and_evaluate(config, str(tmp_path / "bf16"))
  assert 0.0 <= record["test/accuracy"] <= 1.0 and np.isfinite(record["test/loss"])
  last = max(int(d) for d in os.listdir(tmp_path / "bf16" / "checkpoints") if d.isdigit())
  assert last == record["step"]
  saved = ocp.PyTreeCheckpointer().restore(str(tmp_path / "bf16" / "checkpoints" / str(last) / "state"))
  dtypes = {leaf.dtype for leaf in jax.tree.leaves(saved["params"])}
  assert dtypes == {np.dtype(np.float32)}


def test_bfloat16_compute_is_refused_for_models_without_it(tmp_path):
  from experiments.configs import rbm_digits  # pylint: disable=g-import-not-at-top
  config = loop.override_config(rbm_digits.get_config("smoke"), {"compute_dtype": "bfloat16"})
  with pytest.raises(ConfigError, match=r"compute_dtype='bfloat16': model '\w+' has no compute dtype"):
    loop.train_and_evaluate(config, str(tmp_path / "w"))
