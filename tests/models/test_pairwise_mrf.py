"""The pair-wise Student-t MRF: energy against a loop over edges, gradients by finite differences, features."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from deepvision.models.pairwise_mrf import PairwiseMRF

PARAMS = {"log_alpha": np.log([1.5, 0.7]), "log_sigma": np.log([0.3, 0.8])}


def loop_energy(x, alpha, sigma, epsilon):
  """Σ over every horizontal and vertical neighbour pair of α_d log(1 + d²/(2σ_d²)) + ε/2 ‖x‖², one image."""
  height, width = x.shape
  total = 0.5 * epsilon * np.sum(x ** 2)
  for i in range(height):
    for j in range(width):
      if j + 1 < width:
        total += alpha[0] * np.log(1 + (x[i, j] - x[i, j + 1]) ** 2 / (2 * sigma[0] ** 2))
      if i + 1 < height:
        total += alpha[1] * np.log(1 + (x[i, j] - x[i + 1, j]) ** 2 / (2 * sigma[1] ** 2))
  return total


def test_free_energy_and_features_against_a_loop_over_edges(x64):
  model = PairwiseMRF(image_shape=(3, 4), epsilon=0.05)
  x = np.random.default_rng(0).normal(size=(3, 3, 4))
  alpha, sigma = np.exp(PARAMS["log_alpha"]), np.exp(PARAMS["log_sigma"])
  expected = [loop_energy(image, alpha, sigma, 0.05) for image in x]
  np.testing.assert_allclose(model.apply({"params": PARAMS}, x, method="free_energy"), expected, rtol=1e-12)
  # Flat and channel-last batches are the same images.
  np.testing.assert_allclose(model.apply({"params": PARAMS}, x.reshape(3, 12), method="free_energy"), expected,
                             rtol=1e-12)
  np.testing.assert_allclose(model.apply({"params": PARAMS}, x[..., None], method="free_energy"), expected,
                             rtol=1e-12)
  # E[h | x] = α_d / (1 + d²/(2σ_d²)): horizontal edges of image 1, row 2, columns 1–2, then vertical.
  features = model.apply({"params": PARAMS}, x, method="hidden_probs")
  assert features.shape == (3, 3 * 3 + 2 * 4)
  d = x[1, 2, 2] - x[1, 2, 1]
  assert float(features[1, 2 * 3 + 1]) == pytest.approx(alpha[0] / (1 + d ** 2 / (2 * sigma[0] ** 2)), rel=1e-12)
  d = x[1, 1, 3] - x[1, 0, 3]
  assert float(features[1, 9 + 3]) == pytest.approx(alpha[1] / (1 + d ** 2 / (2 * sigma[1] ** 2)), rel=1e-12)


def test_gradients_match_finite_differences(x64):
  model = PairwiseMRF(image_shape=(3, 3), epsilon=0.1)
  params = jax.tree.map(jnp.asarray, PARAMS)
  x = jnp.asarray(np.random.default_rng(1).normal(size=(2, 3, 3)))
  energy = jax.jit(lambda p, x: model.apply({"params": p}, x, method="free_energy"))
  check_grads(energy, (params, x), order=1, modes=("rev",))
  # The closed form of ∂F/∂x at one pixel: ε x + Σ_{edges at the pixel} α_d (x − x') / (σ_d² + (x − x')²/2).
  alpha, sigma = np.exp(PARAMS["log_alpha"]), np.exp(PARAMS["log_sigma"])
  grad = jax.grad(lambda x: jnp.sum(energy(params, x)))(x)
  image = np.asarray(x[0])
  centre = image[1, 1]
  expected = 0.1 * centre + sum(
      alpha[d] * (centre - other) / (sigma[d] ** 2 + (centre - other) ** 2 / 2)
      for d, other in ((0, image[1, 0]), (0, image[1, 2]), (1, image[0, 1]), (1, image[2, 1])))
  assert float(grad[0, 1, 1]) == pytest.approx(expected, rel=1e-10)


def test_bad_fields_and_input_are_named():
  with pytest.raises(ValueError, match="epsilon must be a finite number > 0, got 0"):
    PairwiseMRF(image_shape=(3, 3), epsilon=0)
  with pytest.raises(ValueError, match="has no neighbour pairs: it needs at least 2 pixels"):
    PairwiseMRF(image_shape=(1, 1))
  with pytest.raises(ValueError, match="sigma_init must be a finite number > 0, got -1"):
    PairwiseMRF(image_shape=(3, 3), sigma_init=-1)
  with pytest.raises(ValueError, match=r"image_shape must be a pair \(H, W\) of positive ints, got 9"):
    PairwiseMRF(image_shape=9)
  model = PairwiseMRF(image_shape=(3, 3))
  with pytest.raises(ValueError, match=r"expects images of shape \(batch, 3, 3\).*got \(2, 8\)"):
    model.apply({"params": PARAMS}, np.zeros((2, 8)), method="free_energy")
