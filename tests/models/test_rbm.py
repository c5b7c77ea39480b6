"""RBM math: free energies, conditionals, samplers and gradients against brute force and quadrature.

Everything runs in float64 on tiny models with random (not small) parameters. The references are
written in NumPy from the energies of reference/gated-mrf.md, independently of the modules: sums over
all joint states, trapezoid quadrature over Gaussian visibles, and finite differences.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from scipy.special import logsumexp

from deepvision.estimators import partition
from deepvision.models.rbm import RBM, GaussianRBM
from rbm_testing import binary_states, random_params


def binary_energy(params, v, h):
  """E(v, h) = −b_vᵀv − b_hᵀh − vᵀWh for every pair, (len(v), len(h))."""
  return -(v @ params["b_v"])[:, None] - (h @ params["b_h"])[None] - v @ params["W"] @ h.T


def gaussian_energy(params, v, h):
  """E(v, h) = Σ_i (v_i − b_v_i)²/(2σ_i²) − b_hᵀh − Σ_ij (v_i/σ_i) W_ij h_j for every pair."""
  sigma = np.exp(params.get("log_sigma", np.zeros_like(params["b_v"])))
  quadratic = np.sum((v - params["b_v"]) ** 2 / (2 * sigma ** 2), axis=1)
  return quadratic[:, None] - (h @ params["b_h"])[None] - (v / sigma) @ params["W"] @ h.T


apply = jax.jit(lambda model, params, *args, method: model.apply({"params": params}, *args,
                                                                   method=method),
                static_argnames=("model", "method"))


def trapezoid_grid(centres, sigma, points=301, width=12.0):
  """A 2-D grid covering N(centre, σ²) for every centre row, (points², 2), and trapezoid weights."""
  axes, weights = [], []
  for i in range(2):
    x = np.linspace(centres[:, i].min() - width * sigma[i], centres[:, i].max() + width * sigma[i],
                    points)
    w = np.full(points, x[1] - x[0])
    w[[0, -1]] /= 2
    axes.append(x)
    weights.append(w)
  return np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 2), np.outer(*weights).ravel()


@pytest.mark.parametrize("model", [RBM(n_visible=5, n_hidden=3), GaussianRBM(n_visible=4, n_hidden=3),
                                   GaussianRBM(n_visible=4, n_hidden=3, learn_sigma=True)],
                         ids=["rbm", "grbm", "grbm_learn_sigma"])
def test_free_energies_pass_finite_differences(x64, model):
  params = random_params(model, seed=1)
  rng = np.random.default_rng(2)
  v = rng.uniform(size=(3, model.n_visible))
  h = rng.uniform(size=(3, model.n_hidden))

  @jax.jit
  def total(params, v, h):
    weights = jnp.arange(1.0, 4.0)
    return (jnp.sum(model.apply({"params": params}, v, method="free_energy") * weights)
            + jnp.sum(model.apply({"params": params}, h, method="hidden_free_energy") * weights))

  check_grads(total, (params, v, h), order=1, modes=("fwd", "rev"))


def test_free_energy_matches_scikit_learn(x64):
  from sklearn.neural_network import BernoulliRBM
  model = RBM(n_visible=5, n_hidden=3)
  params = random_params(model, seed=3)
  reference = BernoulliRBM(n_components=3)
  reference.components_ = params["W"].T
  reference.intercept_hidden_ = params["b_h"]
  reference.intercept_visible_ = params["b_v"]
  v = np.random.default_rng(4).uniform(size=(7, 5))
  np.testing.assert_allclose(apply(model, params, v, method="free_energy"),
                             reference._free_energy(v), rtol=1e-12)


def test_binary_free_energies_and_conditionals_from_the_joint(x64):
  model = RBM(n_visible=4, n_hidden=3)
  params = random_params(model, seed=5)
  visible, hidden = binary_states(4), binary_states(3)
  energies = binary_energy(params, visible, hidden)  # (16, 8)
  np.testing.assert_allclose(apply(model, params, visible, hidden[[3] * 16], method="energy"),
                             energies[:, 3], rtol=1e-12)
  # F(v) = −log Σ_h exp(−E(v, h)), F_h(h) = −log Σ_v exp(−E(v, h)).
  np.testing.assert_allclose(apply(model, params, visible, method="free_energy"),
                             -logsumexp(-energies, axis=1), rtol=1e-12)
  np.testing.assert_allclose(apply(model, params, hidden, method="hidden_free_energy"),
                             -logsumexp(-energies, axis=0), rtol=1e-12)
  # p(h_j = 1 | v) = Σ_h h_j exp(−E) / Σ_h exp(−E), and likewise p(v_i = 1 | h).
  joint = np.exp(-energies)
  np.testing.assert_allclose(apply(model, params, visible, method="hidden_probs"),
                             (joint @ hidden) / joint.sum(1, keepdims=True), rtol=1e-12)
  np.testing.assert_allclose(apply(model, params, hidden, method="visible_mean"),
                             (joint.T @ visible) / joint.sum(0)[:, None], rtol=1e-12)


@pytest.mark.parametrize("learn_sigma", [False, True])
def test_gaussian_free_energies_and_conditionals_by_quadrature(x64, learn_sigma):
  model = GaussianRBM(n_visible=2, n_hidden=3, learn_sigma=learn_sigma)
  params = random_params(model, seed=7)
  sigma = np.exp(params.get("log_sigma", np.zeros(2)))
  hidden = binary_states(3)
  centres = params["b_v"] + sigma * (hidden @ params["W"].T)  # E[v | h], to place the grid
  grid, weights = trapezoid_grid(centres, sigma)
  joint = np.exp(-gaussian_energy(params, grid, hidden))  # (grid, 8)
  integrals = weights @ joint
  # F_h(h) = −log ∫ exp(−E(v, h)) dv and E[v | h], by 2-D quadrature.
  np.testing.assert_allclose(apply(model, params, hidden, method="hidden_free_energy"),
                             -np.log(integrals), rtol=1e-10, atol=1e-10)
  np.testing.assert_allclose(apply(model, params, hidden, method="visible_mean"),
                             ((weights[:, None] * joint).T @ grid) / integrals[:, None], rtol=1e-9,
                             atol=1e-9)
  # F(v) = −log Σ_h exp(−E(v, h)) and p(h | v) on a few visible points.
  v = grid[:: grid.shape[0] // 7]
  energies = gaussian_energy(params, v, hidden)
  np.testing.assert_allclose(apply(model, params, v, hidden[[5] * len(v)], method="energy"),
                             energies[:, 5], rtol=1e-12)
  np.testing.assert_allclose(apply(model, params, v, method="free_energy"),
                             -logsumexp(-energies, axis=1), rtol=1e-12, atol=1e-12)
  posterior = np.exp(-energies - logsumexp(-energies, axis=1, keepdims=True))
  np.testing.assert_allclose(apply(model, params, v, method="hidden_probs"), posterior @ hidden,
                             rtol=1e-10, atol=1e-12)


def test_gaussian_visible_sampler_moments(x64):
  model = GaussianRBM(n_visible=3, n_hidden=2, learn_sigma=True)
  params = random_params(model, seed=8)
  h = np.array([[1.0, 0.0]])
  n = 200_000
  sample = jax.jit(lambda key: model.apply({"params": params}, key, jnp.repeat(h, n, axis=0),
                                           method="sample_visible"))
  samples = np.asarray(sample(jax.random.key(9)))
  sigma = np.exp(params["log_sigma"])
  mean = params["b_v"] + sigma * (params["W"] @ h[0])
  # Standard errors: σ/√n for the mean, σ²·√(2/n) for the variance, 1/√n for correlations.
  np.testing.assert_array_less(np.abs(samples.mean(0) - mean), 5 * sigma / np.sqrt(n))
  np.testing.assert_array_less(np.abs(samples.var(0) - sigma ** 2), 5 * sigma ** 2 * np.sqrt(2 / n))
  np.testing.assert_array_less(np.abs(np.corrcoef(samples.T)[np.triu_indices(3, 1)]), 5 / np.sqrt(n))


def test_log_partition_from_either_layer_agrees_with_the_joint_sum(x64):
  model = RBM(n_visible=5, n_hidden=4)
  params = random_params(model, seed=10)
  brute = logsumexp(-binary_energy(params, binary_states(5), binary_states(4)))
  for layer in ("visible", "hidden"):
    assert float(partition.log_partition(model, {"params": params}, layer=layer)) == pytest.approx(
        brute, rel=1e-13)


def free_energy_grads(model):
  """v (N, V) -> ∂F(v_n)/∂θ for each row, a params pytree with a leading axis N."""
  return jax.jit(jax.vmap(jax.grad(
      lambda params, x: model.apply({"params": params}, x[None], method="free_energy")[0]),
      in_axes=(None, 0)))


def log_likelihood_grad(model):
  return jax.jit(jax.grad(
      lambda params, data: partition.exact_log_likelihood(model, {"params": params}, data)))


def test_gradient_of_exact_log_likelihood_is_data_minus_model_expectation(x64):
  # ∂/∂θ [mean_n −F(v_n) − log Z] = −⟨∂F/∂θ⟩_data + ⟨∂F/∂θ⟩_model, the model term by enumeration.
  model = RBM(n_visible=5, n_hidden=3)
  params = random_params(model, seed=11)
  data = (np.random.default_rng(12).uniform(size=(9, 5)) < 0.4).astype(np.float64)
  grads = log_likelihood_grad(model)(params, data)
  states = binary_states(5)
  free_energy = -logsumexp(-binary_energy(params, states, binary_states(3)), axis=1)
  probs = np.exp(-free_energy - logsumexp(-free_energy))  # p(v) ∝ Σ_h exp(−E(v, h))
  per_state, per_example = free_energy_grads(model)(params, states), free_energy_grads(model)(params,
                                                                                              data)
  for name in params:
    expected = -per_example[name].mean(0) + np.tensordot(probs, per_state[name], axes=1)
    np.testing.assert_allclose(grads[name], expected, rtol=1e-10, atol=1e-12, err_msg=name)


def test_gradient_of_gaussian_log_likelihood_is_data_minus_model_expectation(x64):
  # V = 1: the model term ⟨∂F/∂θ⟩_p(v) by trapezoid quadrature over v.
  model = GaussianRBM(n_visible=1, n_hidden=3, learn_sigma=True)
  params = random_params(model, seed=13)
  data = np.random.default_rng(14).normal(size=(6, 1))
  grads = log_likelihood_grad(model)(params, data)
  grid = np.linspace(-30.0, 30.0, 3001)[:, None]
  step = grid[1, 0] - grid[0, 0]
  free_energy = -logsumexp(-gaussian_energy(params, grid, binary_states(3)), axis=1)
  weights = np.exp(-free_energy - logsumexp(-free_energy))  # p(v)·step, the grid ends are ≈ 0
  assert logsumexp(-free_energy) + np.log(step) == pytest.approx(
      float(partition.log_partition(model, {"params": params})), rel=1e-10)
  per_point, per_example = free_energy_grads(model)(params, grid), free_energy_grads(model)(params,
                                                                                            data)
  for name in params:
    expected = -per_example[name].mean(0) + np.tensordot(weights, per_point[name], axes=1)
    np.testing.assert_allclose(grads[name], expected, rtol=1e-8, atol=1e-10, err_msg=name)
