"""Block Gibbs: stationary distributions against exact enumeration, and the step-key contract."""

import jax
import jax.numpy as jnp
import numpy as np

from deepvision.estimators import partition
from deepvision.models.rbm import RBM, GaussianRBM
from deepvision.samplers.base import run_chain
from deepvision.samplers.gibbs import GibbsState, block_gibbs
from rbm_testing import random_variables


@jax.jit
def state_index(v):
  """Row index of each binary v in `partition.all_binary_states` order (unit 0 least significant)."""
  return jnp.sum(v.astype(jnp.int32) << jnp.arange(v.shape[-1]), axis=-1)


def test_binary_chains_reach_the_exact_marginal():
  model = RBM(n_visible=4, n_hidden=3)
  variables = random_variables(model, seed=0)
  exact = np.exp(np.asarray(partition.exact_visible_log_probs(model, variables), np.float64))
  sampler = block_gibbs(model, variables)
  chains, burn_in, kept = 4000, 30, 50

  @jax.jit
  def histogram(key):
    state = sampler.init(jnp.zeros((chains, 4)))  # every chain starts in the same state
    state, _, _ = run_chain(jax.random.fold_in(key, 0), sampler.step, state, burn_in)
    _, _, positions = run_chain(jax.random.fold_in(key, 1), sampler.step, state, kept,
                                trace=lambda s: s.position)
    return jnp.bincount(state_index(positions).reshape(-1), length=16)

  counts = np.asarray(histogram(jax.random.key(1)), np.float64)
  empirical = counts / counts.sum()
  total_variation = 0.5 * np.abs(empirical - exact).sum()
  assert total_variation < 0.02, (total_variation, empirical, exact)
  assert exact.max() < 0.5 and (exact > 0.005).sum() >= 8  # the marginal is not nearly a point mass


def test_gibbs_state_and_info():
  model = RBM(n_visible=4, n_hidden=3)
  variables = random_variables(model, seed=2)
  sampler = block_gibbs(model, variables)
  state = sampler.init(jnp.ones((5, 2, 2)))  # images are flattened
  assert isinstance(state, GibbsState) and state.position.shape == (5, 4)
  assert state.hidden.shape == (5, 3)
  new_state, info = sampler.step(jax.random.key(3), state)
  probs = model.apply(variables, state.position, method="hidden_probs")
  np.testing.assert_allclose(info.mean_hidden_prob, probs.mean(), rtol=1e-6)
  assert set(np.unique(new_state.position)) <= {0.0, 1.0}
  assert set(np.unique(new_state.hidden)) <= {0.0, 1.0}


def test_run_chain_step_t_uses_fold_in_of_t():
  # The documented contract: step t (0-based, counted from 0 in every call) gets fold_in(key, t).
  model = RBM(n_visible=4, n_hidden=3)
  variables = random_variables(model, seed=4)
  sampler = block_gibbs(model, variables)
  key = jax.random.key(5)
  start = sampler.init((np.random.default_rng(6).uniform(size=(64, 4)) < 0.5).astype(np.float32))

  def steps(key, state, first_step, num_steps):  # explicit keys fold_in(key, first_step + t)
    hidden, probs = [], []
    for t in range(num_steps):
      state, info = sampler.step(jax.random.fold_in(key, first_step + t), state)
      hidden.append(state.hidden)
      probs.append(info.mean_hidden_prob)
    return state, jnp.stack(probs), jnp.stack(hidden)

  three_steps = jax.jit(lambda key, state, first_step: steps(key, state, first_step, 3))
  middle, probs_a, hidden_a = three_steps(key, start, 0)
  end, probs_b, hidden_b = three_steps(key, middle, 3)
  state, infos, traces = jax.jit(lambda key, state: run_chain(key, sampler.step, state, 6,
                                                              trace=lambda s: s.hidden))(key, start)
  np.testing.assert_array_equal(traces, jnp.concatenate([hidden_a, hidden_b]))
  np.testing.assert_allclose(infos.mean_hidden_prob, jnp.concatenate([probs_a, probs_b]), rtol=1e-6)
  np.testing.assert_array_equal(state.position, end.position)
  # Two calls of 3 steps, the second told that 3 steps were taken, equal one call of 6 steps; without
  # start_step the second call reuses the keys of steps 0..2.
  half = jax.jit(lambda key, state, first: run_chain(key, sampler.step, state, 3, start_step=first)[0])
  np.testing.assert_array_equal(half(key, half(key, start, 0), 3).position, state.position)
  np.testing.assert_array_equal(half(key, half(key, start, 0), 0).position,
                                three_steps(key, middle, 0)[0].position)


def test_gaussian_chains_match_exact_moments():
  model = GaussianRBM(n_visible=2, n_hidden=3, learn_sigma=True)
  variables = random_variables(model, seed=7, scale=0.8)
  # Exact moments by enumerating h: p(h) ∝ exp(−F_h(h)), v | h ~ N(μ(h), diag σ²).
  params = {name: value.astype(np.float64) for name, value in variables["params"].items()}
  hidden = ((np.arange(8)[:, None] >> np.arange(3)) & 1).astype(np.float64)
  sigma = np.exp(params["log_sigma"])
  mu = params["b_v"] + sigma * (hidden @ params["W"].T)  # E[v | h]
  a = hidden @ params["W"].T  # F_h(h) = −b_hᵀh − Σ_i (b_v_i a_i/σ_i + a_i²/2) − Σ_i log(√(2π) σ_i)
  log_p_h = hidden @ params["b_h"] + (params["b_v"] * a / sigma + a ** 2 / 2).sum(1)
  p_h = np.exp(log_p_h - log_p_h.max())
  p_h /= p_h.sum()
  mean = p_h @ mu
  second = np.einsum("k,ki,kj->ij", p_h, mu, mu) + np.diag(sigma ** 2)
  sampler = block_gibbs(model, variables)
  chains, burn_in, kept = 2000, 30, 50

  @jax.jit
  def per_chain_moments(key):
    state = sampler.init(jnp.zeros((chains, 2)))
    state, _, _ = run_chain(jax.random.fold_in(key, 0), sampler.step, state, burn_in)
    _, _, v = run_chain(jax.random.fold_in(key, 1), sampler.step, state, kept,
                        trace=lambda s: s.position)  # (kept, chains, 2)
    return v.mean(0), jnp.einsum("tci,tcj->cij", v, v) / kept

  chain_mean, chain_second = per_chain_moments(jax.random.key(8))
  # The chains are independent: standard errors from the spread of the per-chain averages.
  for estimate, exact_value in ((chain_mean, mean), (chain_second, second)):
    error = np.abs(np.asarray(estimate.mean(0) - exact_value))
    standard_error = np.asarray(estimate.std(0)) / np.sqrt(chains)
    np.testing.assert_array_less(error, 5 * standard_error + 1e-6)
  assert np.abs(mean - params["b_v"]).max() > 0.3  # the hiddens move the mean
