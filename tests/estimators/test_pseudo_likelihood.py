"""Pseudo-likelihood: exact against brute-force conditionals, the stochastic estimator's mean, errors."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import logsumexp

from deepvision.estimators import pseudo_likelihood
from deepvision.models.rbm import RBM, GaussianRBM
from rbm_testing import binary_states, random_variables


def numpy_free_energy(params, v):
  """F(v) = −b_vᵀv − Σ_j softplus(b_h_j + (vᵀW)_j)."""
  return -v @ params["b_v"] - np.logaddexp(0, v @ params["W"] + params["b_h"]).sum(1)


def test_exact_pseudo_likelihood_is_the_sum_of_brute_force_conditionals(x64):
  model = RBM(n_visible=5, n_hidden=3)
  variables = random_variables(model, seed=0)
  params = variables["params"]
  states, hidden = binary_states(5), binary_states(3)
  # Unnormalised log p(v) = log Σ_h exp(−E(v, h)) for all 32 states, by brute force over the joint.
  energies = -(states @ params["b_v"])[:, None] - (hidden @ params["b_h"])[None] \
      - states @ params["W"] @ hidden.T
  log_p = logsumexp(-energies, axis=1)
  expected = np.zeros(32)
  for i in range(5):  # p(v_i | v_−i) = p(v) / (p(v) + p(v with unit i flipped))
    flipped = np.arange(32) ^ (1 << i)
    expected += log_p - np.logaddexp(log_p, log_p[flipped])
  got = pseudo_likelihood.pseudo_log_likelihood(model, variables, states)
  assert got.shape == (32,)
  np.testing.assert_allclose(got, expected, rtol=1e-12)


class FullyVisibleBoltzmannMachine(nn.Module):
  """F(v) = −bᵀv − ½ vᵀJv (J symmetric, zero diagonal): a binary model that is not an RBM, so the
  pseudo-likelihood takes its generic path (V + 1 free energies per example)."""

  n_visible: int
  visible_kind = "binary"
  visible_range = (0.0, 1.0)

  @nn.compact
  def free_energy(self, v):
    v = jnp.asarray(v).reshape(-1, self.n_visible)
    b = self.param("b", nn.initializers.normal(1.0), (self.n_visible,))
    a = self.param("A", nn.initializers.normal(1.0), (self.n_visible, self.n_visible))
    coupling = (a + a.T) * (1 - jnp.eye(self.n_visible))
    return -(v @ b) - 0.5 * jnp.sum((v @ coupling) * v, axis=-1)


def test_generic_path_on_a_model_that_is_not_an_rbm(x64):
  model = FullyVisibleBoltzmannMachine(n_visible=5)
  variables = jax.tree.map(lambda x: np.asarray(x, np.float64),
                           model.init(jax.random.key(1), jnp.zeros((1, 5)), method="free_energy"))
  states = binary_states(5)
  log_p = -np.asarray(model.apply(variables, states, method="free_energy"))  # log p(v) + log Z
  expected = sum(log_p - np.logaddexp(log_p, log_p[np.arange(32) ^ (1 << i)]) for i in range(5))
  np.testing.assert_allclose(pseudo_likelihood.pseudo_log_likelihood(model, variables, states),
                             expected, rtol=1e-12)


def test_independent_units_pseudo_likelihood_is_the_log_likelihood(x64):
  # W = 0: the visibles are independent, so Σ_i log p(v_i | v_−i) = log p(v) = Σ_i log σ(±b_v_i).
  model = RBM(n_visible=6, n_hidden=2)
  params = {**random_variables(model, seed=1)["params"], "W": np.zeros((6, 2))}
  v = binary_states(6)[::5]
  log_p = -np.logaddexp(0, -(2 * v - 1) * params["b_v"]).sum(1)
  np.testing.assert_allclose(pseudo_likelihood.pseudo_log_likelihood(model, {"params": params}, v),
                             log_p, rtol=1e-12)


def test_grey_levels_are_flipped_to_one_minus_v(x64):
  # The scikit-learn convention for data in [0, 1]: unit i goes to 1 − v_i.
  model = RBM(n_visible=4, n_hidden=3)
  variables = random_variables(model, seed=3)
  v = np.random.default_rng(4).uniform(size=(6, 4))
  expected = 0
  for i in range(4):
    flipped = v.copy()
    flipped[:, i] = 1 - v[:, i]
    expected += -np.logaddexp(0, numpy_free_energy(variables["params"], v)
                              - numpy_free_energy(variables["params"], flipped))
  np.testing.assert_allclose(pseudo_likelihood.pseudo_log_likelihood(model, variables, v), expected,
                             rtol=1e-12)
  # Images of n_visible values are flattened.
  np.testing.assert_allclose(
      pseudo_likelihood.pseudo_log_likelihood(model, variables, v.reshape(6, 2, 2, 1)), expected,
      rtol=1e-12)


def test_stochastic_estimator_is_unbiased():
  model = RBM(n_visible=8, n_hidden=5)
  variables = random_variables(model, seed=5)
  v = binary_states(8)[[3, 100, 200, 255]].astype(np.float32)
  exact = np.asarray(pseudo_likelihood.pseudo_log_likelihood(model, variables, v))
  keys = jax.random.split(jax.random.key(7), 4000)
  samples = np.asarray(jax.jit(jax.vmap(lambda k: pseudo_likelihood.stochastic_pseudo_log_likelihood(
      model, variables, v, k)))(keys))  # (4000, 4)
  standard_error = samples.std(0) / np.sqrt(keys.shape[0])
  np.testing.assert_array_less(np.abs(samples.mean(0) - exact), 4 * standard_error + 1e-5)
  # Each draw is V·log σ(F(ṽ) − F(v)) for one of the V single flips.
  params = {name: value.astype(np.float64) for name, value in variables["params"].items()}
  flips = []
  for i in range(8):
    flipped = v.astype(np.float64)
    flipped[:, i] = 1 - flipped[:, i]
    flips.append(-8 * np.logaddexp(0, numpy_free_energy(params, v) - numpy_free_energy(params,
                                                                                       flipped)))
  distance = np.abs(samples[:, :, None] - np.stack(flips, 1)[None]).min(-1)  # (4000, 4)
  np.testing.assert_array_less(distance, 1e-5 * (1 + np.abs(samples)))


def test_errors():
  model = RBM(n_visible=4, n_hidden=3)
  variables = random_variables(model, seed=8)
  gaussian = GaussianRBM(n_visible=4, n_hidden=3)
  with pytest.raises(ValueError, match="binary visible units.*gaussian"):
    pseudo_likelihood.pseudo_log_likelihood(gaussian, random_variables(gaussian, 0), jnp.zeros((2, 4)))
  with pytest.raises(ValueError, match="binary visible units.*gaussian"):
    pseudo_likelihood.stochastic_pseudo_log_likelihood(gaussian, random_variables(gaussian, 0),
                                                       jnp.zeros((2, 4)), jax.random.key(0))
  with pytest.raises(ValueError, match=r"found values in \[0.0, 3.0\]"):
    pseudo_likelihood.pseudo_log_likelihood(model, variables, np.array([[0.0, 1.0, 3.0, 0.0]]))
  with pytest.raises(ValueError, match=r"\(B, 4\).*\(2, 3\)"):
    pseudo_likelihood.stochastic_pseudo_log_likelihood(model, variables, np.zeros((2, 3)),
                                                       jax.random.key(0))
