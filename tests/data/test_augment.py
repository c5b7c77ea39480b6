"""Tests for deepvision.data.augment: exact shifts and flips, noise statistics, standardisation."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepvision.data import augment

GRID = np.arange(1, 10, dtype=np.float32).reshape(1, 3, 3, 1)  # [[1 2 3] [4 5 6] [7 8 9]]


def test_translate_zero_fill_exact():
  down_right = augment.translate(GRID, jnp.array([[1, 1]]))
  np.testing.assert_array_equal(down_right[0, :, :, 0], [[0, 0, 0], [0, 1, 2], [0, 4, 5]])
  up_left = augment.translate(GRID, jnp.array([[-1, -2]]))
  np.testing.assert_array_equal(up_left[0, :, :, 0], [[6, 0, 0], [9, 0, 0], [0, 0, 0]])


def test_translate_edge_fill_exact():
  right = augment.translate(GRID, jnp.array([[0, 1]]), fill="edge")
  np.testing.assert_array_equal(right[0, :, :, 0], [[1, 1, 2], [4, 4, 5], [7, 7, 8]])


def test_random_translate_shifts_each_example_by_a_draw_within_max_shift():
  images = jax.random.uniform(jax.random.key(0), (32, 6, 6, 2))
  out = augment.random_translate(jax.random.key(1), images, max_shift=1)
  candidates = {s: augment.translate(images, jnp.tile(jnp.array([s]), (32, 1))) for s in itertools.product((-1, 0, 1), repeat=2)}
  used = [next(s for s, c in candidates.items() if np.array_equal(out[b], c[b])) for b in range(32)]
  assert len(set(used)) >= 5  # per-example shifts, not one shift for the batch
  np.testing.assert_array_equal(augment.random_translate(jax.random.key(1), images, 0), images)


def test_same_key_same_output_also_under_jit():
  images = jax.random.uniform(jax.random.key(0), (8, 5, 5, 1))
  key = jax.random.key(3)
  jitted = jax.jit(augment.random_translate, static_argnums=2)
  np.testing.assert_array_equal(jitted(key, images, 2), augment.random_translate(key, images, 2))
  np.testing.assert_array_equal(augment.gaussian_noise(key, images, 0.1), augment.gaussian_noise(key, images, 0.1))
  assert not np.array_equal(augment.gaussian_noise(key, images, 0.1), augment.gaussian_noise(jax.random.key(4), images, 0.1))


def test_flip_twice_with_the_same_key_is_identity_and_flips_about_half():
  images = jax.random.uniform(jax.random.key(0), (200, 4, 5, 1))
  key = jax.random.key(5)
  once = augment.random_flip_left_right(key, images)
  np.testing.assert_array_equal(augment.random_flip_left_right(key, once), images)
  flipped = np.array([np.array_equal(once[b], images[b, :, ::-1]) for b in range(200)])
  kept = np.array([np.array_equal(once[b], images[b]) for b in range(200)])
  assert np.all(flipped ^ kept)
  assert 70 < flipped.sum() < 130  # Binomial(200, 1/2): mean 100, sd ~7


def test_gaussian_noise_statistics():
  images = jnp.full((64, 32, 32, 1), 0.5)
  noise = augment.gaussian_noise(jax.random.key(2), images, stddev=0.1) - images  # 65,536 draws
  assert abs(float(noise.mean())) < 0.1 * 4 / 256  # 4 standard errors
  assert abs(float(noise.std()) - 0.1) < 0.1 * 0.012  # sd of the sample sd ~ 0.1 / sqrt(2 n)


def test_standardize_per_image_gives_zero_mean_unit_variance():
  images = jax.random.uniform(jax.random.key(1), (4, 6, 6, 3)) * jnp.array([1.0, 10.0, 0.1, 3.0])[:, None, None, None] + 2.0
  out = augment.standardize_per_image(images, eps=0.0)
  np.testing.assert_allclose(out.mean(axis=(1, 2, 3)), 0.0, atol=1e-5)
  np.testing.assert_allclose(out.std(axis=(1, 2, 3)), 1.0, rtol=1e-5)
  np.testing.assert_allclose(augment.standardize_per_image(3 * images + 7, eps=0.0), out, atol=1e-4)
  np.testing.assert_array_equal(augment.standardize_per_image(jnp.ones((1, 2, 2, 1))), 0.0)  # eps: no NaN


def test_bad_inputs_are_refused():
  with pytest.raises(ValueError, match="NHWC"):
    augment.random_flip_left_right(jax.random.key(0), jnp.zeros((3, 3, 1)))
  with pytest.raises(ValueError, match="invalid fill 'wrap'; valid choices: zero, edge"):
    augment.translate(GRID, jnp.zeros((1, 2), jnp.int32), fill="wrap")
  with pytest.raises(ValueError, match="max_shift"):
    augment.random_translate(jax.random.key(0), GRID, -1)
