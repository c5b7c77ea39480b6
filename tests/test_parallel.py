"""Data parallelism: layout helpers in process, and equivalence to single-device training on 8 CPU devices.

The device count of the CPU backend is fixed when JAX starts, so the multi-device checks run this file as a
script in a fresh interpreter with `--xla_force_host_platform_device_count=8`; the script prints one JSON
object with the measured differences, and the tests assert on them.

Equivalence, exactly what can be equal:
  * supervised: data-parallel steps on D devices with B/D examples each give the parameters of the
    unchanged single-device step on the global batch of B (no dropout or augmentation, whose randomness
    is drawn per device), up to the order of floating-point sums.
  * contrastive (PCD with a sparsity penalty, FPCD): the negatives are random, and D devices draw them
    from D keys `fold_in(step_key, d)`. The reference is written out here on one device: the global chains
    split into the same D groups, group d advanced with key `fold_in(step_key, d)`, then ONE gradient of the
    global-batch objective ⟨F(v⁺)⟩ − ⟨F(v⁻)⟩ + λ·Σ_j CE(p, q_j) over all B positives and all C chains
    (q_j the global mean activity). Equal parameters, chains and fast weights after several steps show
    that the all-reduces reproduce the global-batch gradient and that the chains stay on their devices.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepvision import parallel
from deepvision.xla_flags import with_cpu_devices

NUM_DEVICES = 8
RTOL, ATOL = 1e-5, 1e-6


# ---------------------------------------------------------------------------------------------------------
# In-process checks (however many devices this process has).

def test_per_device_batch_divides_the_global_batch():
  assert parallel.per_device_batch(64, 8) == 8
  assert parallel.per_device_batch(3, 1) == 3


@pytest.mark.parametrize("global_batch, num_devices", [(10, 4), (0, 2), (-8, 8), (8, 0)])
def test_per_device_batch_rejects_what_does_not_divide(global_batch, num_devices):
  with pytest.raises(ValueError, match="multiple of the number of devices") as info:
    parallel.per_device_batch(global_batch, num_devices)
  assert f"batch_size {global_batch}" in str(info.value) and f"devices {num_devices}" in str(info.value)


def test_shard_batch_and_unshard_round_trip():
  d = parallel.local_device_count()
  batch = {"image": np.arange(2 * d * 3, dtype=np.float32).reshape(2 * d, 3), "label": np.arange(2 * d)}
  sharded = parallel.shard_batch(batch)
  assert sharded["image"].shape == (d, 2, 3) and sharded["label"].shape == (d, 2)
  np.testing.assert_array_equal(sharded["image"][0], batch["image"][:2])
  back = parallel.unshard(sharded)
  np.testing.assert_array_equal(back["image"], batch["image"])
  np.testing.assert_array_equal(back["label"], batch["label"])


def test_shard_batch_rejects_a_batch_the_devices_do_not_divide():
  d = parallel.local_device_count()
  with pytest.raises(ValueError, match="multiple of the number of devices"):
    parallel.shard_batch({"image": np.zeros((d + 1, 2)) if d > 1 else np.zeros((0, 2))})


def test_num_devices_beyond_the_local_devices_is_rejected():
  with pytest.raises(ValueError, match="num_devices"):
    parallel.replicate(jnp.zeros(2), num_devices=parallel.local_device_count() + 1)


def test_replicate_and_unreplicate_keep_values_and_keys():
  d = parallel.local_device_count()
  tree = {"w": jnp.arange(6.0).reshape(2, 3), "step": jnp.zeros((), jnp.int32), "key": jax.random.key(3)}
  replicated = parallel.replicate(tree)
  assert replicated["w"].shape == (d, 2, 3) and replicated["key"].shape == (d,)
  back = parallel.unreplicate(replicated)
  np.testing.assert_array_equal(back["w"], tree["w"])
  np.testing.assert_array_equal(jax.random.key_data(back["key"]), jax.random.key_data(tree["key"]))


def test_prefetch_yields_every_batch_in_order_on_the_devices():
  d = parallel.local_device_count()
  batches = [{"x": np.full((d, 2), i, np.float32)} for i in range(5)]
  out = list(parallel.prefetch_to_devices(iter(batches), size=2))
  assert [int(b["x"][0, 0, 0]) for b in out] == list(range(5))
  assert all(b["x"].shape == (d, 1, 2) for b in out)
  with pytest.raises(ValueError, match="prefetch size"):
    next(parallel.prefetch_to_devices(iter(batches), size=0))


def test_device_prefetch_keeps_the_resumable_position_of_the_batches_handed_out():
  from deepvision import data  # pylint: disable=g-import-not-at-top
  d = parallel.local_device_count()
  source = data.ArraySource(np.arange(40 * d, dtype=np.float32).reshape(40 * d, 1, 1, 1), np.arange(40 * d))
  plain = data.train_batches(source, 2 * d, seed=3)
  prefetched = parallel.DevicePrefetch(data.train_batches(source, 2 * d, seed=3), size=3)
  for _ in range(4):
    expected, got = next(plain), next(prefetched)
    assert got["label"].shape == (d, 2)
    np.testing.assert_array_equal(parallel.unshard(got)["label"], expected["label"])
  # Three batches wait in the queue, yet the saved position is that of the consumer (4 batches).
  assert prefetched.get_state() == plain.get_state()
  resumed = parallel.DevicePrefetch(data.train_batches(source, 2 * d, seed=3), size=2)
  resumed.set_state(prefetched.get_state())
  np.testing.assert_array_equal(parallel.unshard(next(resumed))["label"], next(plain)["label"])
  with pytest.raises(ValueError, match="prefetch size must be an int >= 1"):
    parallel.DevicePrefetch(iter([]), size=0)


# ---------------------------------------------------------------------------------------------------------
# Equivalence on 8 forced CPU devices, in a subprocess.

def _run_script(scenario: str) -> dict:
  # The session's XLA flags (single-threaded Eigen, see tests/conftest.py) stay; the device count is added.
  env = dict(os.environ, XLA_FLAGS=with_cpu_devices(NUM_DEVICES), JAX_PLATFORMS="cpu")
  done = subprocess.run([sys.executable, os.path.abspath(__file__), scenario], env=env, capture_output=True,
                        text=True, timeout=240, check=False)
  assert done.returncode == 0, done.stderr[-4000:]
  return json.loads(done.stdout.strip().splitlines()[-1])


def test_data_parallel_supervised_training_matches_one_device():
  result = _run_script("supervised")
  assert result["num_devices"] == NUM_DEVICES
  assert result["params_excess"] <= 1.0, result       # |Δ| ≤ atol + rtol·|θ| for every parameter
  assert result["opt_state_excess"] <= 1.0, result
  assert result["ema_excess"] <= 1.0, result
  assert result["metrics_excess"] <= 1.0, result
  assert result["params_moved"] > 1e-3, result          # training changed the parameters at all
  assert result["replicas_identical"], result
  assert result["traces"] == 1, result                  # compiled once for all steps
  assert result["finite"], result


def test_data_parallel_contrastive_training_matches_the_global_batch_update():
  result = _run_script("contrastive")
  assert set(result) == {"pcd", "fpcd"}
  for method, r in result.items():
    assert r["num_devices"] == NUM_DEVICES
    assert r["params_excess"] <= 1.0, (method, r)
    assert r["chains_excess"] <= 1.0, (method, r)
    assert r["fast_excess"] <= 1.0, (method, r)
    assert r["cd_loss_excess"] <= 1.0, (method, r)
    assert r["params_moved"] > 1e-3, (method, r)
    assert r["replicas_identical"], (method, r)
    assert r["chains_differ_across_devices"], (method, r)
    assert r["finite"], (method, r)


# ---------------------------------------------------------------------------------------------------------
# The script side (run as `python tests/test_parallel.py SCENARIO` with 8 forced devices).

def _excess(a, b) -> float:
  """max over leaves of |a − b| / (atol + rtol·|b|): ≤ 1 means allclose."""
  worst = 0.0
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    assert x.shape == y.shape, (x.shape, y.shape)
    worst = max(worst, float(np.max(np.abs(x - y) / (ATOL + RTOL * np.abs(y)), initial=0.0)))
  return worst


def _max_diff(a, b) -> float:
  return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y)), initial=0.0))
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def _replicas_identical(tree) -> bool:
  return all(bool(np.all(np.asarray(x) == np.asarray(x)[:1])) for x in jax.tree.leaves(tree))


def _counting(step_fn, counter):
  def counted(*args):
    counter.append(1)  # runs once per trace
    return step_fn(*args)
  return counted


def _supervised_scenario(num_steps: int = 3, global_batch: int = 16) -> dict:
  import optax  # pylint: disable=g-import-not-at-top
  from deepvision import zoo  # pylint: disable=g-import-not-at-top
  from deepvision.train import state as state_lib  # pylint: disable=g-import-not-at-top
  from deepvision.train import supervised  # pylint: disable=g-import-not-at-top

  model = zoo.create("lenet5_tiny")  # no dropout; augmentation off: the steps draw nothing
  lr_fn = optax.cosine_decay_schedule(0.1, 10)
  tx = optax.sgd(lr_fn, momentum=0.9, nesterov=True)
  state = state_lib.create_train_state(model, tx, jax.random.key(0), (12, 12, 1), ema=True)
  rng = np.random.default_rng(0)
  batches = [{"image": rng.uniform(size=(global_batch, 12, 12, 1)).astype(np.float32),
              "label": rng.integers(0, 10, size=global_batch).astype(np.int32)} for _ in range(num_steps)]
  preprocess = supervised.Preprocess()

  single = jax.jit(supervised.make_train_step(preprocess, lr_fn, 0.9))
  ref = state
  for batch in batches:
    ref, ref_metrics = single(ref, batch)

  traces = []
  step = parallel.pmap_train_step(
      _counting(supervised.make_train_step(preprocess, lr_fn, 0.9, axis_name=parallel.AXIS), traces))
  dp = parallel.shard_state(state)
  for batch in parallel.prefetch_to_devices(batches):
    dp, dp_metrics = step(dp, batch)
  host = parallel.unshard_state(dp)
  finite = [k for k in dp_metrics if k.startswith("finite/")]
  return {
      "num_devices": jax.local_device_count(),
      "params_excess": _excess(host.params, ref.params),
      "opt_state_excess": _excess(host.opt_state, ref.opt_state),
      "ema_excess": _excess(host.ema_params, ref.ema_params),
      "metrics_excess": _excess({k: v[0] for k, v in dp_metrics.items() if k not in finite},
                                {k: v for k, v in ref_metrics.items() if k not in finite}),
      "params_moved": _max_diff(host.params, state.params),
      "replicas_identical": _replicas_identical((dp.params, dp.opt_state, dp.step, dp_metrics)),
      "traces": len(traces),
      "finite": bool(finite) and all(bool(np.all(dp_metrics[k])) for k in finite),
  }


def _contrastive_reference_step(model, spec, num_devices):
  """One device, the global-batch update, with the chains advanced in the devices' groups and keys."""
  from deepvision import objectives  # pylint: disable=g-import-not-at-top
  from deepvision.samplers.base import run_chain  # pylint: disable=g-import-not-at-top

  def step(state, batch):
    key = jax.random.fold_in(state.key, state.step)
    positives = model.apply({"params": state.params}, batch, method="visible")
    chain_params = state.params
    if spec.method == "fpcd":
      chain_params = jax.tree.map(jnp.add, state.params, state.fast_params)
    sampler = spec.make_sampler(model, {"params": chain_params})
    start = state.chains if spec.persistent else sampler.init(positives)
    groups = jax.tree.map(lambda x: x.reshape(num_devices, -1, *x.shape[1:]), start)
    advance = lambda d, group: run_chain(jax.random.fold_in(key, d), sampler.step, group, spec.k)[0]  # noqa: E731
    chains = parallel.unshard(jax.vmap(advance)(jnp.arange(num_devices), groups))

    def loss_fn(params):
      variables = {"params": params}
      cd = objectives.contrastive_divergence_loss(model, variables, positives, chains.position)
      penalty = 0.0
      if spec.sparsity_cost > 0:
        probs = model.apply(variables, positives, method="hidden_probs")
        penalty = objectives.sparsity_penalty(probs, spec.sparsity_target)
      return cd + spec.sparsity_cost * penalty, cd

    grads, cd = jax.grad(loss_fn, has_aux=True)(state.params)
    new_state = state.apply_gradients(grads=grads, chains=chains if spec.persistent else None)
    if spec.method == "fpcd":
      new_state = new_state.replace(fast_params=jax.tree.map(
          lambda f, g: spec.fast_decay * f - spec.fast_learning_rate * g, state.fast_params, grads))
    return new_state, {"train/cd_loss": cd}

  return step


def _contrastive_scenario(num_steps: int = 4, global_batch: int = 16, num_chains: int = 32) -> dict:
  import optax  # pylint: disable=g-import-not-at-top
  from deepvision import zoo  # pylint: disable=g-import-not-at-top
  from deepvision.train import contrastive  # pylint: disable=g-import-not-at-top

  num_devices = jax.local_device_count()
  model = zoo.create("rbm", n_visible=16, n_hidden=8, init_scale=0.1)
  rng = np.random.default_rng(1)
  data = (rng.uniform(size=(num_steps * global_batch + num_chains, 16)) < 0.3).astype(np.float32)
  batches = list(data[num_chains:].reshape(num_steps, global_batch, 16))
  specs = {"pcd": contrastive.ContrastiveSpec(method="pcd", k=2, sparsity_target=0.1, sparsity_cost=0.5),
           "fpcd": contrastive.ContrastiveSpec(method="fpcd", k=1, fast_learning_rate=0.1)}
  results = {}
  for method, spec in specs.items():
    lr_fn = optax.constant_schedule(0.1)
    tx = optax.sgd(lr_fn, momentum=0.5)
    state = contrastive.create_state(model, tx, jax.random.key(2), spec, data[:num_chains])

    reference = jax.jit(_contrastive_reference_step(model, spec, num_devices))
    ref = state
    for batch in batches:
      ref, ref_metrics = reference(ref, batch)

    step = parallel.data_parallel(contrastive.make_train_step, model, spec, lr_fn)
    dp = parallel.shard_state(state)
    for batch in parallel.prefetch_to_devices(batches):
      dp, dp_metrics = step(dp, batch)
    host = parallel.unshard_state(dp)
    finite = [k for k in dp_metrics if k.startswith("finite/")]
    chains_differ = True
    if spec.persistent:
      position = np.asarray(dp.chains.position)
      chains_differ = not np.array_equal(position[0], position[1])
    results[method] = {
        "num_devices": num_devices,
        "params_excess": _excess(host.params, ref.params),
        "chains_excess": _excess(host.chains, ref.chains),
        "fast_excess": _excess(host.fast_params, ref.fast_params),
        "cd_loss_excess": _excess(dp_metrics["train/cd_loss"][0], ref_metrics["train/cd_loss"]),
        "params_moved": _max_diff(host.params, state.params),
        "replicas_identical": _replicas_identical((dp.params, dp.opt_state, dp.fast_params, dp_metrics)),
        "chains_differ_across_devices": chains_differ,
        "finite": bool(finite) and all(bool(np.all(dp_metrics[k])) for k in finite),
    }
  return results


if __name__ == "__main__":
  _scenarios = {"supervised": _supervised_scenario, "contrastive": _contrastive_scenario}
  print(json.dumps(_scenarios[sys.argv[1]]()))
