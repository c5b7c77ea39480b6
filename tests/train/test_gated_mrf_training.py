"""The gated-MRF update recipe and the HMC chains of the contrastive trainer, against hand computations.

One PCD-HMC step of a tiny topographic mcRBM is recomputed by hand from the closed-form free-energy
gradients of reference/gated-mrf.md (not autodiff): per-parameter rates, the delayed L1 cost, P frozen
then projected, C renormalised to the running norm. The HMC chains adapt exactly as `samplers.hmc` does on
one device, keep every leaf's leading chain axis (they are sharded over devices), and a two-device run
equals the one-device run.
"""

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from deepvision import optim, zoo
from deepvision.figures import gated_mrf_viz
from deepvision.models import gated_mrf
from deepvision.samplers import adaptation
from deepvision.samplers import hmc as hmc_lib
from deepvision.samplers.base import run_chain
from deepvision.train import contrastive

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RATES = {"C": 2.0, "P": 0.02, "b_c": 0.02, "b_v": 0.02, "W": 0.2, "b_m": 0.1}
LEARNING_RATE, L1, STEPS_PER_EPOCH = 0.05, 0.01, 2


def _optimizer():
  config = ml_collections.ConfigDict(dict(optimizer=dict(
      name="sgd", learning_rate=LEARNING_RATE, schedule="constant", momentum=0.0, nesterov=False,
      weight_decay=0.0, l1=L1, l1_start_epoch=1, lr_multipliers=RATES)))
  return optim.make_optimizer(config, 100, steps_per_epoch=STEPS_PER_EPOCH)


def _model():
  # 16 factors on a 4×4 grid pooled by 3×3 windows (stride 2) into 2×2 covariance units.
  return zoo.create("mcrbm", n_visible=5, n_factors=16, n_cov=4, n_mean=3, pooling_init="topographic",
                    factor_init_scale=0.3)


def _data(n=8, seed=3):
  return jax.random.normal(jax.random.key(seed), (n, 5)) * 1.5


def _setup(frozen_steps=STEPS_PER_EPOCH):
  model = _model()
  spec = contrastive.ContrastiveSpec(method="pcd", sampler="hmc",
                                     sampler_options=(("initial_step_size", 1.5), ("num_leapfrog", 4),
                                                      ("step_size_bounds", (0.001, 2.0))))
  recipe = contrastive.GatedMRFRecipe(pooling_frozen_steps=frozen_steps, pooling_mask=model.pooling_mask())
  state = contrastive.create_state(model, _optimizer(), jax.random.key(0), spec, _data(8, seed=5), recipe)
  step = jax.jit(contrastive.make_train_step(model, spec, lambda t: LEARNING_RATE, recipe=recipe))
  return model, spec, recipe, state, step


def _mean_dfree_energy(params, x):
  """Batch means of ∂F/∂θ of the 'original' mcRBM, from the closed forms of reference/gated-mrf.md."""
  p = {k: np.asarray(v, np.float64) for k, v in params.items()}
  x = np.asarray(x, np.float64)
  scale = np.sqrt(np.mean(x * x, axis=1, keepdims=True) + 0.5)
  x_tilde = x / scale
  s = x_tilde @ p["C"]
  sigma_c = 1 / (1 + np.exp(-(p["b_c"] - 0.5 * (s * s) @ p["P"])))
  sigma_m = 1 / (1 + np.exp(-(x @ p["W"] + p["b_m"])))
  n = len(x)
  return {"C": x_tilde.T @ ((sigma_c @ p["P"].T) * s) / n, "P": 0.5 * (s * s).T @ sigma_c / n,
          "b_c": -sigma_c.mean(0), "W": -x.T @ sigma_m / n, "b_m": -sigma_m.mean(0), "b_v": -x.mean(0)}


def _expected_update(params, positives, negatives, factor_norm, step, mask):
  """θ' of the recipe: SGD at m_p·ε on g (+ λ sign θ on C, P, W from update 2), P frozen for updates
  0-1 and projected after, C's columns rescaled to n' = 0.95 n + 0.05 mean ‖C_f‖."""
  pos, neg = _mean_dfree_energy(params, positives), _mean_dfree_energy(params, negatives)
  out = {}
  for name, value in params.items():
    value = np.asarray(value, np.float64)
    grad = pos[name] - neg[name]
    if step >= STEPS_PER_EPOCH and value.ndim == 2:
      grad = grad + L1 * np.sign(value)
    out[name] = value - LEARNING_RATE * RATES[name] * grad
  if step < STEPS_PER_EPOCH:
    out["P"] = np.asarray(params["P"], np.float64)
  else:
    clipped = np.maximum(out["P"], 0) * mask
    out["P"] = clipped / clipped.sum(0)
  norms = np.linalg.norm(out["C"], axis=0)
  new_norm = 0.95 * factor_norm + 0.05 * norms.mean()
  out["C"] = out["C"] * new_norm / norms
  return out, new_norm


def test_recipe_steps_equal_the_hand_computed_updates():
  model, _, _, state, step = _setup()
  mask = model.pooling_mask()
  positives = _data()
  for t in range(4):  # frozen P and no L1 at updates 0, 1; projected P and L1 at 2, 3
    new, metrics = step(state, positives)
    negatives = new.chains.position  # the PCD negatives of this update
    expected, norm = _expected_update(state.params, positives, negatives, float(state.factor_norm), t, mask)
    for name in RATES:
      np.testing.assert_allclose(new.params[name], expected[name], rtol=2e-5, atol=2e-6, err_msg=f"{name}@{t}")
    np.testing.assert_allclose(float(new.factor_norm), norm, rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(new.params["C"], axis=0), norm, rtol=1e-5)
    assert float(metrics["train/factor_norm"]) == pytest.approx(norm, rel=1e-6)
    if t < STEPS_PER_EPOCH:
      np.testing.assert_array_equal(new.params["P"], state.params["P"])
    else:
      P = np.asarray(new.params["P"])
      assert np.all(P >= 0) and np.all(P[mask == 0] == 0)
      np.testing.assert_allclose(P.sum(0), 1.0, rtol=1e-6)
      assert not np.array_equal(P, np.asarray(state.params["P"]))
    state = new


def test_without_the_recipe_nothing_is_projected_and_no_norm_is_kept():
  model = _model()
  spec = contrastive.ContrastiveSpec(method="cd", sampler="hmc", sampler_options=(("num_leapfrog", 3),))
  state = contrastive.create_state(model, _optimizer(), jax.random.key(0), spec, _data(8))
  assert state.factor_norm is None
  new, _ = jax.jit(contrastive.make_train_step(model, spec, lambda t: LEARNING_RATE))(state, _data(8))
  assert not np.array_equal(new.params["P"], state.params["P"])  # P learns from update 0
  # CD restarts the chains at the data but keeps the adapted step size.
  assert float(new.chains.step_size[0]) != float(state.chains.step_size[0])


def test_hmc_chains_adapt_exactly_like_the_hmc_sampler_and_keep_a_chain_axis():
  model = _model()
  variables = model.init(jax.random.key(1), jnp.zeros((1, 5)), method="free_energy")
  x = _data(6)
  options = dict(num_leapfrog=5, initial_step_size=0.2, target_rejection=0.3)
  chains = contrastive.hmc_chains(model, variables, **options)
  reference = adaptation.adapt_step_size(
      lambda eps: hmc_lib.hmc(lambda v: model.apply(variables, v, method="free_energy"), num_leapfrog=5,
                              step_size=eps), initial_step_size=0.2, target_rejection=0.3)
  state, ref = chains.init(x), reference.init(x)
  for t in range(6):
    key = jax.random.key(10 + t)
    state, info = chains.step(key, state)
    ref, ref_info = reference.step(key, ref)
    np.testing.assert_allclose(state.position, ref.position, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(state.energy, ref.inner.energy, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(state.step_size, ref.step_size, rtol=1e-6)
    np.testing.assert_allclose(state.rejection_avg, ref.rejection_avg, rtol=1e-6)
    assert float(info.acceptance_rate) == pytest.approx(float(ref_info.acceptance_rate))
  for leaf in state:  # every leaf is sharded along the chains
    assert leaf.shape[0] == 6
  restarted = chains.init(x + 1, previous=state)
  np.testing.assert_array_equal(restarted.step_size, state.step_size)
  np.testing.assert_array_equal(restarted.position, x + 1)


def test_energies_are_refreshed_under_new_parameters():
  """A trajectory started with a stale carried energy behaves as one with the true energy."""
  model = _model()
  variables = model.init(jax.random.key(1), jnp.zeros((1, 5)), method="free_energy")
  chains = contrastive.hmc_chains(model, variables, num_leapfrog=3, initial_step_size=0.2)
  fresh = chains.init(_data(6))
  stale = fresh._replace(energy=fresh.energy + 100.0)
  a, _ = chains.step(jax.random.key(4), fresh)
  b, _ = chains.step(jax.random.key(4), stale)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("fields,match", [
    ({"pooling_frozen_steps": -1}, "pooling_frozen_steps"),
    ({"pooling_mask": -np.ones((16, 4))}, "non-negative"),
    ({"factor_norm_decay": 1.5}, "factor_norm_decay"),
])
def test_bad_recipes_are_named(fields, match):
  with pytest.raises(ValueError, match=match):
    contrastive.GatedMRFRecipe(**fields)


def test_a_mask_of_the_wrong_shape_is_refused_at_creation():
  spec = contrastive.ContrastiveSpec(method="pcd", sampler="hmc")
  recipe = contrastive.GatedMRFRecipe(pooling_mask=np.ones((4, 4)))
  with pytest.raises(ValueError, match=r"\(4, 4\).*\(16, 4\)"):
    contrastive.create_state(_model(), _optimizer(), jax.random.key(0), spec, _data(8), recipe)


def test_projection_keeps_the_projected_initial_pooling():
  mask = gated_mrf.topographic_mask(16, 4)
  P = gated_mrf.project_pooling(jnp.asarray(mask))
  np.testing.assert_allclose(gated_mrf.project_pooling(P, mask), P, rtol=1e-7)


_TWO_DEVICES = textwrap.dedent("""
    import json, os, sys
    from deepvision.xla_flags import with_cpu_devices
    os.environ["XLA_FLAGS"] = with_cpu_devices(2)
    sys.path.insert(0, os.path.join(sys.argv[1], "tests", "train"))
    import jax, numpy as np
    from deepvision import parallel
    from deepvision.train import contrastive
    import test_gated_mrf_training as t
    model, spec, recipe, state, _ = t._setup()
    step = parallel.data_parallel(contrastive.make_train_step, model, spec, lambda s: t.LEARNING_RATE,
                                  recipe=recipe)
    sharded = parallel.shard_state(state, 2)
    out = {"devices": jax.local_device_count(), "eps": [], "rejection_avg": [], "acceptance": [], "used": []}
    for batch in parallel.prefetch_to_devices([t._data(8, seed=s) for s in range(5)], 2):
      sharded, metrics = step(sharded, batch)
      eps = np.asarray(sharded.chains.step_size)  # (2 devices, 4 chains each)
      out["eps"].append(eps.tolist())
      out["rejection_avg"].append(np.asarray(sharded.chains.rejection_avg).tolist())
      out["acceptance"].append(np.asarray(metrics["sampler/acceptance_rate"]).tolist())
      out["used"].append(np.asarray(metrics["sampler/step_size"]).tolist())
    params = [np.concatenate([np.ravel(x[d]) for x in jax.tree.leaves(sharded.params)]) for d in range(2)]
    out["replicas_equal"] = bool(np.array_equal(params[0], params[1]))
    host = parallel.unshard_state(sharded)
    out["host_chain_shapes"] = [list(np.shape(x)) for x in host.chains]
    print("RESULT " + json.dumps(out))
""")


def test_two_devices_share_one_step_size_adapted_to_the_global_rejection():
  """Data-parallel PCD-HMC: the chains (every leaf) are sharded, and ε follows the rejection of ALL chains.

  If each device adapted to its own chains the two ε would drift apart; here both devices hold one ε,
  and each new ε is the original rule applied to the running average of the global rejection
  (r̄ ← 0.9 r̄ + 0.1 (1 − acceptance over both devices)).
  """
  result = subprocess.run([sys.executable, "-c", _TWO_DEVICES, ROOT], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
  line = [l for l in result.stdout.splitlines() if l.startswith("RESULT ")]
  assert line, result.stderr[-3000:]
  out = json.loads(line[0][len("RESULT "):])
  assert out["devices"] == 2 and out["replicas_equal"]
  assert out["host_chain_shapes"] == [[8, 5], [8], [8], [8]]
  acceptance = [np.asarray(a).flat[0] for a in out["acceptance"]]
  assert len({round(a, 6) for a in acceptance} - {1.0}) >= 2, acceptance  # the test needs rejections
  eps, rejection_avg = 1.5, 0.1  # ε₀ of _setup and r̄ at the target
  for t in range(5):
    values = np.asarray(out["eps"][t])
    assert np.all(values == values.flat[0]), values  # one ε on both devices
    assert np.asarray(out["used"][t]).flat[0] == pytest.approx(eps, rel=1e-6)
    rejection_avg = 0.9 * rejection_avg + 0.1 * (1 - np.asarray(out["acceptance"][t]).flat[0])
    np.testing.assert_allclose(out["rejection_avg"][t], rejection_avg, rtol=1e-5)
    eps = min(1.01 * eps, 2.0) if rejection_avg < 0.1 else max(0.99 * eps, 0.001)
    assert values.flat[0] == pytest.approx(eps, rel=1e-5)


def test_fpcd_chains_run_under_the_fast_weights_which_leave_the_pooling_alone():
  model = _model()
  spec = contrastive.ContrastiveSpec(method="fpcd", sampler="hmc", fast_learning_rate=0.1, fast_decay=0.9,
                                     sampler_options=(("num_leapfrog", 3), ("initial_step_size", 0.2)))
  recipe = contrastive.GatedMRFRecipe(pooling_frozen_steps=0, pooling_mask=model.pooling_mask())
  state = contrastive.create_state(model, _optimizer(), jax.random.key(0), spec, _data(8, seed=5), recipe)
  step = jax.jit(contrastive.make_train_step(model, spec, lambda t: LEARNING_RATE, recipe=recipe))
  s1, _ = step(state, _data())
  s2, _ = step(s1, _data(seed=4))
  np.testing.assert_array_equal(s2.fast_params["P"], 0.0)
  assert np.any(np.asarray(s2.fast_params["C"]) != 0)
  summed = jax.tree.map(jnp.add, s1.params, s1.fast_params)
  sampler = contrastive.hmc_chains(model, {"params": summed}, num_leapfrog=3, initial_step_size=0.2)
  chains, _, _ = jax.jit(lambda c: run_chain(jax.random.fold_in(s1.key, 1), sampler.step, c, 1))(s1.chains)
  np.testing.assert_allclose(s2.chains.position, chains.position, rtol=1e-5, atol=1e-6)


def test_annealing_schedules_follow_their_closed_forms():
  def schedule(name, **fields):
    config = ml_collections.ConfigDict(dict(optimizer=dict(learning_rate=0.2, schedule=name, **fields)))
    return optim.learning_rate_schedule(config, 10_000, steps_per_epoch=50)

  inverse_epoch = schedule("inverse_epoch", anneal_epochs=20)
  for t in (0, 999, 1049, 1050, 2000, 4321):  # ε / max(1, ⌊t/50⌋ / 20)
    assert float(inverse_epoch(t)) == pytest.approx(0.2 / max(1.0, (t // 50) / 20), rel=1e-6)
  inverse_step = schedule("inverse_step", anneal_steps=2000)
  for t in (0, 1999, 2000, 7999):  # ε · min(1, 2000/(t+1))
    assert float(inverse_step(t)) == pytest.approx(0.2 * min(1.0, 2000 / (t + 1)), rel=1e-6)
  epoch_power = schedule("epoch_power", anneal_power=0.25)
  for t in (0, 49, 50, 5000):  # ε · (epoch + 1)^-0.25, the first epoch at ε
    assert float(epoch_power(t)) == pytest.approx(0.2 * (t // 50 + 1) ** -0.25, rel=1e-6)
  with pytest.raises(ValueError, match="steps_per_epoch"):
    optim.learning_rate_schedule(ml_collections.ConfigDict(dict(optimizer=dict(
        learning_rate=0.2, schedule="inverse_epoch"))), 100)


def test_lr_multipliers_match_names_and_prefixes_and_refuse_unknown_ones():
  params = {"C": jnp.ones(2), "Conv_0": {"kernel": jnp.ones(2), "bias": jnp.ones(2)},
            "Conv_01": {"kernel": jnp.ones(2)}}
  scale = optim.parameter_multipliers(params, {"C": 2.0, "Conv_0": 0.5, "Conv_0/bias": 0.1})
  assert scale == {"C": 2.0, "Conv_0": {"kernel": 0.5, "bias": 0.1}, "Conv_01": {"kernel": 1.0}}
  with pytest.raises(ValueError, match="'b_h'.*not parameters"):
    optim.parameter_multipliers(params, {"b_h": 1.0})
  with pytest.raises(ValueError, match="finite number >= 0"):
    optim.check_lr_multipliers({"C": -1.0})


def test_pooling_pictures_place_each_weight_and_filter_where_documented():
  P = np.array([[0.0, 0.5], [2.0, 0.0], [1.0, 0.5]])  # 3 factors, 2 units
  np.testing.assert_allclose(gated_mrf_viz.pooling_grid(P), [[0.0, 1.0, 0.5], [0.25, 0.0, 0.25]])
  assert gated_mrf_viz.pools_several(P) and not gated_mrf_viz.pools_several(np.eye(3))
  filters = np.stack([np.full(4, 1.0), np.arange(4.0), -np.arange(4.0)], axis=1)  # (V=4, F=3), 2×2 tiles
  grid = gated_mrf_viz.pooled_filter_grid(filters, P, (2, 2), pad=1)
  assert grid.shape == (2 * 3 + 1, 2 * 3 + 1)  # 2 units × at most 2 pooled factors
  # Unit 0 pools factor 1 (2.0) then factor 2 (1.0); unit 1 pools factors 0 and 2 (equal weights: 0 first).
  np.testing.assert_allclose(grid[1:3, 1:3], np.arange(4.0).reshape(2, 2) / 3)
  np.testing.assert_allclose(grid[1:3, 4:6], 1 - np.arange(4.0).reshape(2, 2) / 3)
  np.testing.assert_allclose(grid[4:6, 1:3], 0.0)  # a constant filter is drawn 0
  panels = {"a": np.zeros((4, 4)), "b": np.ones((2, 4))}
  both = gated_mrf_viz.comparison_grid(panels, (2, 2), columns=2, gap=3)
  assert both.shape == (7, 7 + 3 + 7)  # 2×2 tiles of 2×2 pixels, and 1×2 padded to the same height
  assert both[1, 1] == 0.0 and both[1, 11] == 1.0 and np.all(both[4:, 10:] == 1.0)
