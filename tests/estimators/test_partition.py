"""Exact log Z by enumeration: against brute-force joint sums and quadrature; chunking; errors."""

import jax
import numpy as np
import pytest
from scipy.special import logsumexp

from deepvision.estimators import partition
from deepvision.models.rbm import RBM, GaussianRBM
from rbm_testing import binary_states, random_variables


def binary_energy(params, v, h):
  """E(v, h) = −b_vᵀv − b_hᵀh − vᵀWh for every pair, (len(v), len(h))."""
  return -(v @ params["b_v"])[:, None] - (h @ params["b_h"])[None] - v @ params["W"] @ h.T


def brute_force_log_z(model, variables):
  """log Σ_v Σ_h exp(−E(v, h)) over every joint binary state."""
  return logsumexp(-binary_energy(variables["params"], binary_states(model.n_visible),
                                  binary_states(model.n_hidden)))


def test_all_binary_states_order():
  states = np.asarray(partition.all_binary_states(3))
  np.testing.assert_array_equal(partition.all_binary_states(4), binary_states(4))
  assert states.shape == (8, 3) and states.dtype == np.float32
  np.testing.assert_array_equal(states[5], [1, 0, 1])  # 5 = 0b101, unit 0 least significant
  assert len({tuple(row) for row in states}) == 8
  assert partition.all_binary_states(0).shape == (1, 0)
  with pytest.raises(ValueError, match="n in \\[0, 30\\]"):
    partition.all_binary_states(-1)


@pytest.mark.parametrize("n_visible, n_hidden, expected_layer", [(3, 6, "visible"),
                                                                 (6, 3, "hidden"),
                                                                 (4, 4, "hidden")])
def test_enumeration_matches_brute_force_joint_sum(x64, n_visible, n_hidden, expected_layer):
  model = RBM(n_visible=n_visible, n_hidden=n_hidden)
  variables = random_variables(model, seed=n_visible)
  assert partition.enumerated_layer(model) == expected_layer
  brute = brute_force_log_z(model, variables)
  assert float(partition.log_partition(model, variables)) == pytest.approx(brute, rel=1e-13)
  for layer in partition.LAYERS:
    assert float(partition.log_partition(model, variables, layer=layer)) == pytest.approx(
        brute, rel=1e-13)


def test_chunking_does_not_change_the_result(x64):
  model = RBM(n_visible=9, n_hidden=2)
  variables = random_variables(model, seed=1, scale=2.0)
  values = [float(partition.log_partition(model, variables, layer="visible", chunk_size=c))
            for c in (1, 8, 2 ** 14)]
  np.testing.assert_allclose(values, values[-1], rtol=1e-14)
  log_probs = [partition.exact_visible_log_probs(model, variables, chunk_size=c) for c in (4, 1024)]
  np.testing.assert_allclose(log_probs[0], log_probs[1], rtol=1e-13)


def test_visible_log_probs_and_log_likelihood(x64):
  model = RBM(n_visible=5, n_hidden=3)
  variables = random_variables(model, seed=2)
  log_probs = np.asarray(partition.exact_visible_log_probs(model, variables))
  states = binary_states(5)
  assert log_probs.shape == (32,)
  assert logsumexp(log_probs) == pytest.approx(0.0, abs=1e-13)
  # log p(v) = log Σ_h exp(−E(v, h)) − log Z, by brute force.
  energies = binary_energy(variables["params"], states, binary_states(3))
  np.testing.assert_allclose(log_probs, logsumexp(-energies, axis=1)
                             - brute_force_log_z(model, variables), rtol=1e-12)
  rows = [0, 3, 3, 17, 31]
  assert float(partition.exact_log_likelihood(model, variables, states[rows])) == pytest.approx(
      log_probs[rows].mean(), rel=1e-13)
  # Images of n_visible values are accepted.
  assert float(partition.exact_log_likelihood(model, variables, states[rows].reshape(5, 5, 1, 1))
               ) == pytest.approx(log_probs[rows].mean(), rel=1e-13)


@pytest.mark.parametrize("learn_sigma", [False, True])
def test_gaussian_log_z_matches_quadrature(x64, learn_sigma):
  # V = 1: Z = Σ_h ∫ exp(−E(v, h)) dv by trapezoid quadrature on a grid wide enough for every h.
  model = GaussianRBM(n_visible=1, n_hidden=4, learn_sigma=learn_sigma)
  variables = random_variables(model, seed=3)
  params = variables["params"]
  assert partition.enumerated_layer(model) == "hidden"
  v = np.linspace(-40.0, 40.0, 8001)[:, None]
  step = v[1, 0] - v[0, 0]
  h = binary_states(4)
  sigma = np.exp(params.get("log_sigma", np.zeros(1)))
  energies = ((v - params["b_v"]) ** 2 / (2 * sigma ** 2)).sum(1)[:, None] - (h @ params["b_h"])[None] \
      - (v / sigma) @ params["W"] @ h.T
  expected = logsumexp(-energies) + np.log(step)
  assert float(partition.log_partition(model, variables)) == pytest.approx(expected, rel=1e-11)
  # The log-likelihood is a log density: ∫ exp(ll(v)) dv = 1 on the same grid.
  log_density = jax.jit(jax.vmap(lambda x: partition.exact_log_likelihood(model, variables,
                                                                          x[None, None])))(v[:, 0])
  assert float(np.exp(logsumexp(np.asarray(log_density)) + np.log(step))) == pytest.approx(
      1.0, abs=1e-10)


def test_too_many_units_is_an_error_naming_sizes_and_limit():
  with pytest.raises(ValueError, match=r"hidden layer of 30 units.*max_units=20"):
    partition.log_partition(RBM(n_visible=64, n_hidden=30), None)
  with pytest.raises(ValueError, match=r"visible layer of 21 units.*max_units=20"):
    partition.log_partition(RBM(n_visible=21, n_hidden=40), None)
  # Gaussian visibles are never enumerated: a small V does not help.
  with pytest.raises(ValueError, match=r"hidden layer of 25 units.*max_units=20"):
    partition.log_partition(GaussianRBM(n_visible=2, n_hidden=25), None)
  with pytest.raises(ValueError, match=r"hidden layer of 8 units.*max_units=6"):
    partition.log_partition(RBM(n_visible=10, n_hidden=8), None, max_units=6)
  with pytest.raises(ValueError, match="max_units=20"):
    partition.exact_visible_log_probs(RBM(n_visible=22, n_hidden=3), None)
  with pytest.raises(ValueError, match="Gaussian"):
    partition.log_partition(GaussianRBM(n_visible=2, n_hidden=3), None, layer="visible")
  with pytest.raises(ValueError, match="binary"):
    partition.exact_visible_log_probs(GaussianRBM(n_visible=2, n_hidden=3), None)
  with pytest.raises(ValueError, match="layer must be one of"):
    partition.log_partition(RBM(n_visible=2, n_hidden=3), None, layer="both")
  with pytest.raises(ValueError, match="power of 2"):
    partition.log_partition(RBM(n_visible=2, n_hidden=3), None, chunk_size=100)


def test_bad_data_is_an_error_before_compute():
  model = RBM(n_visible=4, n_hidden=2)
  variables = random_variables(model, seed=4)
  with pytest.raises(ValueError, match=r"found values in \[-0.5, 1.0\]"):
    partition.exact_log_likelihood(model, variables, np.array([[0, 1, -0.5, 1]]))
  with pytest.raises(ValueError, match=r"\(B, 4\).*\(2, 5\)"):
    partition.exact_log_likelihood(model, variables, np.zeros((2, 5)))
  with pytest.raises(ValueError, match="non-finite"):
    partition.exact_log_likelihood(model, variables, np.array([[0, 1, np.nan, 1]]))
