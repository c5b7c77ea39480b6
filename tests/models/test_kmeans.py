"""k-means features: the triangle encoder against closed forms, spherical k-means recovering known directions
without raising its objective, re-seeding of empty centroids, and the whole-image features against a loop."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepvision import zoo
from deepvision.models import kmeans as km


def test_triangle_activation_matches_the_closed_form_on_a_hand_made_example():
  C = jnp.array([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])
  x = jnp.array([[0.0, 0.0], [1.0, 0.0]])
  # x = 0: z = (1, 2, 3), μ = 2 → f = (1, 0, 0).  x = (1, 0): z = (0, √5, 2), μ = (2 + √5)/3 → f = (μ, 0, 0).
  mu = (2.0 + math.sqrt(5.0)) / 3.0
  expected = np.array([[1.0, 0.0, 0.0], [mu, 0.0, 0.0]])
  np.testing.assert_allclose(km.triangle(x, C), expected, atol=1e-6)
  model = zoo.create("kmeans_tiny", n_visible=2, n_centroids=3)
  np.testing.assert_allclose(model.apply({"params": {"C": C}}, x, method="hidden_probs"), expected, atol=1e-6)
  np.testing.assert_allclose(model.apply({"params": {"C": C}}, x, method="free_energy"), [1.0, 0.0], atol=1e-6)
  features, intermediates = model.apply({"params": {"C": C}}, x)
  np.testing.assert_allclose(intermediates["distances"][1], [0.0, math.sqrt(5.0), 2.0], atol=1e-6)
  np.testing.assert_allclose(features, expected, atol=1e-6)


def test_assignment_is_the_nearest_unit_centroid_and_the_largest_signed_similarity():
  rng = np.random.default_rng(0)
  C = np.asarray(km.normalize_rows(jnp.asarray(rng.normal(size=(7, 5)), jnp.float32)))
  x = jnp.asarray(rng.normal(size=(200, 5)) * 2.0, jnp.float32)
  nearest = np.argmin(((np.asarray(x)[:, None, :] - C[None]) ** 2).sum(-1), axis=1)
  np.testing.assert_array_equal(km.assign(x, jnp.asarray(C)), nearest)


def test_spherical_kmeans_recovers_the_directions_of_well_separated_clusters():
  rng = np.random.default_rng(1)
  directions = np.linalg.qr(rng.normal(size=(6, 3)))[0].T  # 3 orthonormal unit vectors in R^6
  x = np.concatenate([d * rng.uniform(0.8, 1.5, size=(100, 1)) + 0.05 * rng.normal(size=(100, 6))
                      for d in directions]).astype(np.float32)
  for seed in range(5):  # k-means++ seeds, then Lloyd: every start finds the three clusters
    C = np.asarray(km.spherical_kmeans(jnp.asarray(x), 3, jax.random.key(seed), iterations=10))
    error = min(max(np.linalg.norm(C[list(p)] - directions, axis=1)) for p in itertools.permutations(range(3)))
    assert error < 0.05, (seed, C, directions)  # the noise moves the mean direction by ~0.02
    np.testing.assert_allclose(np.linalg.norm(C, axis=1), 1.0, rtol=1e-6)


def test_lloyd_steps_never_increase_the_objective_on_a_fixed_data_set():
  rng = np.random.default_rng(2)
  x = jnp.asarray(rng.standard_t(3, size=(600, 8)), jnp.float32)  # heavy tails, no clusters
  C = km.normalize_rows(x[:16])
  key = jax.random.key(3)
  objectives = []
  for i in range(15):
    C, info = km.lloyd_step(C, x, jax.random.fold_in(key, i))
    objectives.append(float(info["objective"]))
  objectives.append(float(jnp.mean(km.distortion(x, C))))
  steps = np.diff(objectives)
  assert np.all(steps <= 1e-5 * abs(objectives[0])), objectives
  assert objectives[-1] < objectives[0] - 0.01  # and it moved


def test_an_empty_centroid_is_reseeded_at_a_random_example_deterministically():
  rng = np.random.default_rng(4)
  x = jnp.asarray(np.abs(rng.normal(size=(50, 4))) + 0.1, jnp.float32)  # every coordinate positive
  C = jnp.asarray([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [-0.5, -0.5, -0.5, -0.5]])  # c_3 · x < 0
  sums, counts = km.cluster_sums(x, C)
  assert float(counts[2]) == 0 and float(counts.sum()) == 50
  key = jax.random.key(5)
  new, info = km.lloyd_step(C, x, key)
  assert int(info["empty"]) == 1
  np.testing.assert_allclose(new[2], km.normalize_rows(km.random_examples(key, x, 3))[2], rtol=1e-6)
  np.testing.assert_allclose(new[:2], km.normalize_rows(sums[:2]), rtol=1e-6)  # the others: normalised sums
  again, _ = km.lloyd_step(C, x, key)
  np.testing.assert_array_equal(new, again)
  other, _ = km.lloyd_step(C, x, jax.random.key(6))
  assert not np.allclose(other[2], new[2])
  assert any(np.allclose(new[2], row / np.linalg.norm(row), rtol=1e-6) for row in np.asarray(x))


def _loop_features(C, images, p, stride, prep):
  """The whole-image features by explicit loops over positions and quadrants (numpy, float64)."""
  n, h, w = images.shape
  rows, cols = list(range(0, h - p + 1, stride)), list(range(0, w - p + 1, stride))
  half_r, half_c = (len(rows) + 1) // 2, (len(cols) + 1) // 2
  K = C.shape[0]
  out = np.zeros((n, 4 * K))
  for b in range(n):
    for i, r in enumerate(rows):
      for j, c in enumerate(cols):
        x = images[b, r:r + p, c:c + p].reshape(-1).astype(np.float64)
        x = x - x.mean() if prep.remove_dc else x
        x = (x - prep.mean) @ prep.projection
        z = np.linalg.norm(x[None] - C, axis=1)
        f = np.maximum(z.mean() - z, 0.0)
        quadrant = 2 * (i >= half_r) + (j >= half_c)
        out[b, quadrant * K:(quadrant + 1) * K] += f
  return out


@pytest.mark.parametrize("stride", [1, 2])
def test_convolutional_features_equal_an_explicit_loop_over_patches_and_quadrants(stride):
  rng = np.random.default_rng(7)
  images = rng.uniform(size=(3, 7, 6)).astype(np.float32)
  p, n_out, K = 3, 5, 4
  prep = km.PatchPreprocessing(True, rng.normal(size=9).astype(np.float32) * 0.1,
                               rng.normal(size=(9, n_out)).astype(np.float32))
  C = np.asarray(km.normalize_rows(jnp.asarray(rng.normal(size=(K, n_out)), jnp.float32)))
  got = km.convolutional_features(C, images, p, preprocessing=prep, stride=stride, batch_size=2)
  assert got.shape == (3, 4 * K)
  np.testing.assert_allclose(got, _loop_features(C, images, p, stride, prep), rtol=1e-4, atol=1e-5)
  pixels = np.round(images * 255).astype(np.uint8)  # uint8 images are read as pixels / 255
  np.testing.assert_allclose(km.convolutional_features(C, pixels, p, preprocessing=prep, stride=stride),
                             _loop_features(C, pixels / 255.0, p, stride, prep), rtol=1e-4, atol=1e-5)


def test_convolutional_features_refuse_bad_sizes_before_any_compute():
  C = np.ones((4, 9), np.float32)
  with pytest.raises(ValueError, match="patch_size 8 exceeds the 7×6 images: it must be at most 6"):
    km.convolutional_features(C, np.zeros((2, 7, 6)), 8)
  with pytest.raises(ValueError, match="stride must be an integer ≥ 1, got 0"):
    km.convolutional_features(C, np.zeros((2, 7, 6)), 3, stride=0)
  with pytest.raises(ValueError, match=r"the centroids have shape \(4, 9\) \(expected \(K, 4\)\)"):
    km.convolutional_features(C, np.zeros((2, 7, 6)), 2)


def test_the_zoo_variants_and_bad_sizes():
  assert {"kmeans", "kmeans_tiny"} <= set(zoo.names())
  params = zoo.abstract_variables(zoo.create("kmeans"))["params"]
  assert params["C"].shape == (256, 52) and zoo.count_params(params) == 256 * 52
  assert zoo.paper("kmeans") == "Coates et al. 2011"
  with pytest.raises(ValueError, match="n_centroids must be an integer ≥ 1, got 0"):
    zoo.create("kmeans", n_centroids=0)
  model = zoo.create("kmeans_tiny")
  C = model.init(jax.random.key(0), jnp.zeros((1, 6)))["params"]["C"]
  np.testing.assert_allclose(np.linalg.norm(C, axis=1), 1.0, rtol=1e-6)
