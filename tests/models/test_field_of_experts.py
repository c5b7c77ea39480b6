"""The Field of Experts: energy against a loop over cliques, gradients, the pair-wise MRF as a special case."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.test_util import check_grads

from deepvision import zoo
from deepvision.models.field_of_experts import FieldOfExperts, dct_filters
from deepvision.models.pairwise_mrf import PairwiseMRF
from deepvision.train import contrastive


def loop_energy(x, filters, alpha, epsilon):
  """Σ_i α_i Σ_p log(1 + (J_i ⋆ x)_p²/2) + ε/2 ‖x‖² for one image, the filters used as given."""
  height, width = x.shape
  _, kh, kw = filters.shape
  total = 0.5 * epsilon * np.sum(x ** 2)
  for i, f in enumerate(filters):
    for r in range(height - kh + 1):
      for c in range(width - kw + 1):
        total += alpha[i] * np.log(1 + np.sum(f * x[r:r + kh, c:c + kw]) ** 2 / 2)
  return total


def random_params(seed, n, shape):
  rng = np.random.default_rng(seed)
  return {"J": rng.normal(size=(n, *shape)), "log_alpha": rng.normal(size=n) * 0.3}


def test_free_energy_against_a_loop_over_cliques(x64):
  model = FieldOfExperts(image_shape=(5, 6), n_filters=3, filter_shape=(3, 2), epsilon=0.02)
  params = random_params(0, 3, (3, 2))
  x = np.random.default_rng(1).normal(size=(2, 5, 6))
  used = params["J"] - params["J"].mean(axis=(1, 2), keepdims=True)  # zero_mean
  expected = [loop_energy(image, used, np.exp(params["log_alpha"]), 0.02) for image in x]
  np.testing.assert_allclose(model.apply({"params": params}, x, method="free_energy"), expected, rtol=1e-12)
  raw = FieldOfExperts(image_shape=(5, 6), n_filters=3, filter_shape=(3, 2), epsilon=0.02, zero_mean=False)
  expected = [loop_energy(image, params["J"], np.exp(params["log_alpha"]), 0.02) for image in x]
  np.testing.assert_allclose(raw.apply({"params": params}, x, method="free_energy"), expected, rtol=1e-12)
  # Features: E[h | x] = α_i/(1 + r²/2) at position (row 1, column 3) of filter 2.
  features = model.apply({"params": params}, x, method="hidden_probs")
  assert features.shape == (2, 3 * 5, 3)
  response = np.sum(used[2] * x[0, 1:4, 3:5])
  assert float(features[0, 1 * 5 + 3, 2]) == pytest.approx(
      np.exp(params["log_alpha"][2]) / (1 + response ** 2 / 2), rel=1e-12)


def test_gradients_match_finite_differences(x64):
  model = FieldOfExperts(image_shape=(4, 5), n_filters=2, filter_shape=(3, 3), epsilon=0.1)
  params = jax.tree.map(jnp.asarray, random_params(2, 2, (3, 3)))
  x = jnp.asarray(np.random.default_rng(3).normal(size=(2, 4, 5)))
  energy = jax.jit(lambda p, x: model.apply({"params": p}, x, method="free_energy"))
  check_grads(energy, (params, x), order=1, modes=("rev",))


def test_a_derivative_filter_is_the_pairwise_mrf(x64):
  """One 1×2 filter [1, −1]/σ_h gives the horizontal terms of the pair-wise MRF, one 2×1 filter the vertical."""
  pairwise = PairwiseMRF(image_shape=(4, 5), epsilon=0.3)
  pairwise_params = {"log_alpha": np.log([1.7, 0.6]), "log_sigma": np.log([0.4, 1.3])}
  x = np.random.default_rng(4).normal(size=(3, 4, 5))
  edges = pairwise.apply({"params": pairwise_params}, x, method="edge_energies")
  quadratic = 0.5 * 0.3 * np.sum(x ** 2, axis=(1, 2))
  np.testing.assert_allclose(np.sum(edges, axis=1) + quadratic,
                             pairwise.apply({"params": pairwise_params}, x, method="free_energy"), rtol=1e-12)
  for d, shape in enumerate(((1, 2), (2, 1))):
    foe = FieldOfExperts(image_shape=(4, 5), n_filters=1, filter_shape=shape, epsilon=0.3, filter_init="random")
    derivative = np.array([-1.0, 1.0]).reshape(1, *shape) / np.exp(pairwise_params["log_sigma"][d])
    params = {"J": derivative, "log_alpha": pairwise_params["log_alpha"][d:d + 1]}
    np.testing.assert_allclose(foe.apply({"params": params}, x, method="free_energy"), edges[:, d] + quadratic,
                               rtol=1e-12)


def test_dct_filters_are_orthonormal_zero_mean_and_ordered_by_frequency():
  filters = dct_filters((3, 3), 8)
  gram = np.einsum("iab,jab->ij", filters, filters)
  np.testing.assert_allclose(gram, np.eye(8), atol=1e-12)
  np.testing.assert_allclose(filters.sum(axis=(1, 2)), 0.0, atol=1e-12)
  # The first two atoms are the lowest horizontal and vertical cosines (constant down the columns, then
  # along the rows).
  assert np.ptp(filters[0], axis=0).max() < 1e-12 and np.ptp(filters[0], axis=1).min() > 0.8
  assert np.ptp(filters[1], axis=1).max() < 1e-12 and np.ptp(filters[1], axis=0).min() > 0.8
  model = FieldOfExperts(image_shape=(6, 6))
  np.testing.assert_allclose(model.init(jax.random.key(0), jnp.zeros((1, 36)))["params"]["J"], filters,
                             atol=1e-6)


def test_bad_fields_are_named():
  with pytest.raises(ValueError, match="DCT basis has 3 atoms besides the constant one; asked for n_filters=4"):
    FieldOfExperts(image_shape=(4, 4), n_filters=4, filter_shape=(2, 2))
  with pytest.raises(ValueError, match=r"filter_shape \(5, 5\) does not fit in the image \(4, 6\)"):
    FieldOfExperts(image_shape=(4, 6), filter_shape=(5, 5))
  with pytest.raises(ValueError, match="invalid FieldOfExperts.filter_init 'gabor'; valid choices: dct, random"):
    FieldOfExperts(image_shape=(8, 8), filter_init="gabor")
  with pytest.raises(ValueError, match="n_filters must be a positive int, got 0"):
    FieldOfExperts(image_shape=(8, 8), n_filters=0)
  with pytest.raises(ValueError, match=r"filter_shape \(1, 1\) has one tap"):
    FieldOfExperts(image_shape=(8, 8), filter_shape=(1, 1), filter_init="random")
  with pytest.raises(ValueError, match="epsilon must be a finite number > 0, got nan"):
    FieldOfExperts(image_shape=(8, 8), epsilon=float("nan"))


def test_pcd_hmc_updates_of_the_library_lower_the_data_free_energy_relative_to_the_samples():
  """Two updates of `train.contrastive`'s step (PCD, one HMC trajectory per update) on the tiny zoo FoE: each
  is exactly θ − lr·∇_θ(⟨F(data)⟩ − ⟨F(negatives)⟩) at the negatives it drew, and lowers that difference."""
  model = zoo.create("field_of_experts_tiny")
  spec = contrastive.ContrastiveSpec(method="pcd", k=1, sampler="hmc",
                                     sampler_options=(("num_leapfrog", 5), ("initial_step_size", 0.1)))
  rng = np.random.default_rng(5)
  data = np.cumsum(np.cumsum(rng.normal(size=(8, 4, 4)), 1), 2).reshape(8, 16).astype(np.float32) * 0.3
  learning_rate = 0.01
  state = contrastive.create_state(model, optax.sgd(learning_rate), jax.random.key(6), spec,
                                   chain_start=rng.normal(size=(8, 16)).astype(np.float32))
  step = jax.jit(contrastive.make_train_step(model, spec, lambda _: learning_rate))

  def cd_loss(params, negatives):
    energy = lambda x: model.apply({"params": params}, x, method="free_energy")
    return jnp.mean(energy(data)) - jnp.mean(energy(negatives))

  for _ in range(2):
    new_state, metrics = step(state, data)
    negatives = new_state.chains.position
    assert negatives.shape == (8, 16) and not np.allclose(negatives, state.chains.position)
    before = cd_loss(state.params, negatives)
    np.testing.assert_allclose(metrics["train/cd_loss"], before, rtol=1e-5)
    grads = jax.grad(cd_loss)(state.params, negatives)
    expected = jax.tree.map(lambda p, g: p - learning_rate * g, state.params, grads)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), new_state.params, expected)
    assert float(cd_loss(new_state.params, negatives)) < float(before)
    assert all(float(np.max(np.abs(a - b))) > 0 for a, b in zip(jax.tree.leaves(new_state.params),
                                                                 jax.tree.leaves(state.params)))
    state = new_state
