"""Runs one smoke experiment as one process of a data-parallel run (tests/test_scale_out.py).

  python tests/distributed_driver.py CONFIG_NAME WORKDIR OUT_DIR OVERRIDES_JSON [PORT NUM_PROCESSES PROCESS_ID]

With the last three arguments the process joins a `jax.distributed` run whose coordinator listens on
127.0.0.1:PORT (the tests never bind elsewhere); without them it runs alone on whatever devices XLA_FLAGS
gives it. At the end it writes the final parameters it holds in memory to OUT_DIR/params_<process>.npz (and
those it started from to initial_params_<process>.npz) and
prints one JSON line `{"process": i, "sha256": ...}`. With the environment variable SIGTERM_AT_STEP=n the
process sends itself SIGTERM after step n (a preemption: the trainer saves a checkpoint and stops).
"""

import importlib
import json
import os
import signal
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import jax  # noqa: E402
import numpy as np  # noqa: E402

from deepvision import distributed  # noqa: E402


def main() -> int:
  name, workdir, out_dir, overrides = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
  if len(sys.argv) > 5:
    port, num_processes, process_id = (int(a) for a in sys.argv[5:8])
    distributed.initialize_distributed(f"127.0.0.1:{port}", num_processes, process_id, initialization_timeout=60)
  from deepvision.train import dispatch, fit, loop  # pylint: disable=g-import-not-at-top
  config = loop.override_config(importlib.import_module(f"experiments.configs.{name}").get_config("smoke"),
                                overrides)
  original_run, original_fit = dispatch.Dispatcher.run, fit.fit
  final = {}

  stop_at = int(os.environ.get("SIGTERM_AT_STEP", "0"))

  def run(self, state, fault, max_steps):
    out = original_run(self, state, fault, max_steps)
    if stop_at and int(np.asarray(jax.device_get(out[0].step)).ravel()[0]) == stop_at:
      os.kill(os.getpid(), signal.SIGTERM)
    return out

  def fit_and_keep(task, *args, **kwargs):
    final["initial"] = task.init_state().params  # deterministic: the parameters the run starts from
    record, final["state"] = original_fit(task, *args, **kwargs)
    return record, final["state"]

  dispatch.Dispatcher.run, fit.fit = run, fit_and_keep
  try:
    loop.train_and_evaluate(config, workdir)
  except loop.TrainingPreempted:
    return 0
  params = jax.device_get(final["state"].params)
  flat = {jax.tree_util.keystr(path): np.asarray(leaf)
          for path, leaf in jax.tree_util.tree_leaves_with_path(params)}
  np.savez(os.path.join(out_dir, f"params_{distributed.process_index()}.npz"), **flat)
  initial = {jax.tree_util.keystr(path): np.asarray(leaf)
             for path, leaf in jax.tree_util.tree_leaves_with_path(jax.device_get(final["initial"]))}
  np.savez(os.path.join(out_dir, f"initial_params_{distributed.process_index()}.npz"), **initial)
  print(json.dumps({"process": distributed.process_index(), "sha256": distributed.tree_digest(params)}), flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
