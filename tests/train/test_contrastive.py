"""The contrastive step: CD / PCD / FPCD updates equal their definitions; sparsity reaches its target."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from deepvision import objectives, optim, zoo
from deepvision.samplers.base import run_chain
from deepvision.train import contrastive


def _sgd(learning_rate):
  config = ml_collections.ConfigDict(dict(optimizer=dict(
      name="sgd", learning_rate=learning_rate, schedule="constant", momentum=0.0, nesterov=False,
      weight_decay=0.0)))
  return optim.make_optimizer(config, 100)


def _setup(method, k=1, learning_rate=0.1, **spec_fields):
  model = zoo.create("rbm", n_visible=6, n_hidden=4, init_scale=0.5)
  spec = contrastive.ContrastiveSpec(method=method, k=k, **spec_fields)
  data = jax.random.bernoulli(jax.random.key(3), 0.4, (8, 6)).astype(jnp.float32)
  state = contrastive.create_state(model, _sgd(learning_rate), jax.random.key(0), spec, data)
  step = jax.jit(contrastive.make_train_step(model, spec, lambda s: learning_rate))
  return model, spec, data, state, step


def _dfree_energy(v, probs):
  """Mean ∂F/∂(W, b_v, b_h) over a batch for a binary RBM: −⟨v pᵀ⟩, −⟨v⟩, −⟨p⟩."""
  return {"W": -v.T @ probs / len(v), "b_v": -jnp.mean(v, 0), "b_h": -jnp.mean(probs, 0)}


@pytest.mark.parametrize("method,k", [("cd", 1), ("cd", 3), ("pcd", 1), ("pcd", 2)])
def test_update_is_data_minus_model_statistics(method, k):
  model, spec, data, state, step = _setup(method, k)
  new, metrics = step(state, data)
  # The negatives: k Gibbs steps from the data (CD) or from the persistent chains (PCD), same keys.
  sampler = spec.make_sampler(model, {"params": state.params})
  start = sampler.init(data) if method == "cd" else state.chains
  chains, _, _ = run_chain(jax.random.fold_in(state.key, 0), sampler.step, start, k)
  probs = lambda v: model.apply({"params": state.params}, v, method="hidden_probs")  # noqa: E731
  pos, neg = _dfree_energy(data, probs(data)), _dfree_energy(chains.position, probs(chains.position))
  for name in ("W", "b_v", "b_h"):
    expected = state.params[name] - 0.1 * (pos[name] - neg[name])
    np.testing.assert_allclose(new.params[name], expected, rtol=1e-5, atol=1e-6)
  if method == "pcd":
    np.testing.assert_array_equal(new.chains.position, chains.position)
  else:
    assert new.chains is None
  free_energy = lambda v: model.apply({"params": state.params}, v, method="free_energy")  # noqa: E731
  np.testing.assert_allclose(metrics["train/cd_loss"],
                             jnp.mean(free_energy(data)) - jnp.mean(free_energy(chains.position)), rtol=1e-5)


def test_fast_weights_follow_their_own_rule_and_drive_the_chains():
  model, spec, data, state, step = _setup("fpcd", fast_learning_rate=0.3, fast_decay=0.9)
  s1, _ = step(state, data)
  # θ_fast = 0.9·0 − 0.3·g after one update, and with plain SGD θ' − θ = −0.1·g.
  for name in ("W", "b_v", "b_h"):
    np.testing.assert_allclose(s1.fast_params[name], 3.0 * (s1.params[name] - state.params[name]),
                               rtol=1e-4, atol=1e-7)
  s2, _ = step(s1, data)
  # The second update samples under θ + θ_fast.
  summed = jax.tree.map(jnp.add, s1.params, s1.fast_params)
  sampler = spec.make_sampler(model, {"params": summed})
  chains, _, _ = run_chain(jax.random.fold_in(s1.key, 1), sampler.step, s1.chains, 1)
  np.testing.assert_array_equal(s2.chains.position, chains.position)
  g2 = (s1.params["W"] - s2.params["W"]) / 0.1
  np.testing.assert_allclose(s2.fast_params["W"], 0.9 * s1.fast_params["W"] - 0.3 * g2, rtol=1e-4,
                             atol=1e-6)


def test_sparsity_penalty_drives_mean_activity_to_the_target():
  model, spec, data, state, step = _setup("cd", learning_rate=0.5, sparsity_target=0.1, sparsity_cost=5.0)
  for _ in range(300):
    state, metrics = step(state, data)
  activity = model.apply({"params": state.params}, data, method="hidden_probs").mean(0)
  np.testing.assert_allclose(activity, 0.1, atol=0.03)
  # The penalty's gradient is zero at the target.
  zero = jax.grad(lambda b: objectives.sparsity_penalty(jax.nn.sigmoid(b)[None], 0.25))(
      jnp.full((3,), jnp.log(0.25 / 0.75)))
  np.testing.assert_allclose(zero, 0.0, atol=1e-6)


def test_the_step_compiles_once():
  _, _, data, state, step = _setup("pcd")
  state, _ = step(state, data)
  before = step._cache_size()  # pylint: disable=protected-access
  state, _ = step(state, data)
  assert step._cache_size() == before  # pylint: disable=protected-access


@pytest.mark.parametrize("fields,match", [
    ({"method": "cd10"}, "cd, pcd, fpcd"),
    ({"k": 0}, "k"),
    ({"method": "fpcd"}, "fast_learning_rate"),
    ({"fast_decay": 1.0}, "fast_decay"),
    ({"sparsity_cost": 1.0, "sparsity_target": 1.5}, "sparsity_target"),
    ({"sampler": "hmc2"}, "gibbs"),
])
def test_bad_settings_are_named(fields, match):
  with pytest.raises((ValueError, KeyError), match=match):
    contrastive.ContrastiveSpec(**fields)


def test_cd_surrogate_gradient_is_the_free_energy_difference():
  model = zoo.create("rbm_tiny")
  variables = model.init(jax.random.key(1), jnp.zeros((1, 6)), method="free_energy")
  pos = jax.random.uniform(jax.random.key(2), (5, 6))
  neg = jax.random.uniform(jax.random.key(3), (7, 6))
  grad = jax.grad(lambda p: objectives.contrastive_divergence_loss(model, {"params": p}, pos, neg))(
      variables["params"])
  mean_grad = lambda v: jax.grad(  # noqa: E731
      lambda p: jnp.mean(model.apply({"params": p}, v, method="free_energy")))(variables["params"])
  expected = jax.tree.map(jnp.subtract, mean_grad(pos), mean_grad(neg))
  for a, b in zip(jax.tree.leaves(grad), jax.tree.leaves(expected)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
  # No gradient flows into the negatives.
  dneg = jax.grad(lambda n: objectives.contrastive_divergence_loss(model, variables, pos, n))(neg)
  assert not np.any(np.asarray(dneg))

