"""fastpool.max_pool: the values and gradients of nn.max_pool, ties and NaN included."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from deepvision.nn import fastpool


def _reference(x, window, strides=None, padding="VALID"):
  window = (window, window) if isinstance(window, int) else window
  strides = window if strides is None else ((strides, strides) if isinstance(strides, int) else strides)
  return nn.max_pool(x, window, strides, padding)


def _vjp(f, x, g):
  return jax.vjp(f, x)[1](g)[0]


@pytest.mark.parametrize("shape,window", [((3, 8, 8, 2), 2), ((2, 7, 6, 3), 2), ((2, 9, 8, 2), (3, 2)),
                                          ((1, 5, 7, 1), (2, 3))])
def test_values_and_gradients_equal_nn_max_pool_with_many_ties(shape, window):
  """Inputs in {0, 1, 2}: most windows hold several maxima; the first (row-major) gets the gradient."""
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.integers(0, 3, shape).astype(np.float32))
  want = _reference(x, window)
  g = jnp.asarray(rng.standard_normal(want.shape).astype(np.float32))
  np.testing.assert_array_equal(fastpool.max_pool(x, window), want)
  np.testing.assert_array_equal(_vjp(lambda x: fastpool.max_pool(x, window), x, g),
                                _vjp(lambda x: _reference(x, window), x, g))


def test_each_window_sends_its_gradient_to_exactly_one_first_maximum():
  x = jnp.array([[1., 3., 0., 0.], [3., 2., 0., 0.]]).reshape(1, 2, 4, 1)
  dx = _vjp(lambda x: fastpool.max_pool(x, 2), x, jnp.array([5., 7.]).reshape(1, 1, 2, 1))
  np.testing.assert_array_equal(dx.reshape(2, 4), [[0., 5., 7., 0.], [0., 0., 0., 0.]])


def test_gradient_matches_finite_differences_in_float64():
  with jax.enable_x64(True):
    x = jnp.asarray(np.random.default_rng(1).standard_normal((2, 6, 4, 3)))  # No ties.
    w = jnp.asarray(np.random.default_rng(2).standard_normal((2, 3, 2, 3)))
    f = jax.jit(lambda x: jnp.sum(w * fastpool.max_pool(x, 2) ** 2))
    check_grads(f, (x,), order=1, modes=("rev",), eps=1e-6, atol=1e-8, rtol=1e-8)


def test_nan_propagates_like_nn_max_pool():
  x = jnp.arange(16.0).reshape(1, 4, 4, 1).at[0, 1, 0, 0].set(jnp.nan)
  got, want = fastpool.max_pool(x, 2), _reference(x, 2)
  np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
  assert np.isnan(got[0, 0, 0, 0])
  np.testing.assert_array_equal(got[~np.isnan(got)], want[~np.isnan(want)])


def test_same_padding_that_adds_no_cells_and_non_tiling_configurations():
  x = jnp.asarray(np.random.default_rng(3).standard_normal((2, 6, 6, 2)).astype(np.float32))
  np.testing.assert_array_equal(fastpool.max_pool(x, 2, padding="SAME"), _reference(x, 2, padding="SAME"))
  # Overlapping windows and adding padding fall back to nn.max_pool.
  for window, strides, padding in [(3, 2, "SAME"), (3, 2, "VALID"), (2, 2, ((1, 1), (1, 1)))]:
    assert not fastpool.is_tiled(x.shape, window, strides, padding)
    f = lambda x: fastpool.max_pool(x, window, strides, padding)
    r = lambda x: _reference(x, window, strides, padding)
    np.testing.assert_array_equal(f(x), r(x))
    g = jnp.ones(r(x).shape)
    np.testing.assert_array_equal(_vjp(f, x, g), _vjp(r, x, g))
  assert fastpool.is_tiled((2, 7, 7, 1), 2) and not fastpool.is_tiled((2, 7, 7, 1), 2, padding="SAME")
  assert fastpool.is_tiled((2, 6, 6, 1), 2, 2, ((0, 0), (0, 0)))
  ints = jnp.arange(2 * 4 * 4).reshape(2, 4, 4, 1)
  np.testing.assert_array_equal(fastpool.max_pool(ints, 2), _reference(ints, 2))


def test_bad_arguments_are_rejected():
  x = jnp.zeros((1, 4, 4, 1))
  with pytest.raises(ValueError, match="NHWC"):
    fastpool.max_pool(jnp.zeros((4, 4, 1)))
  with pytest.raises(ValueError, match="window must be a positive int"):
    fastpool.max_pool(x, 0)
  with pytest.raises(ValueError, match="'FULL'"):
    fastpool.max_pool(x, 2, padding="FULL")
  with pytest.raises(ValueError, match="larger than"):
    fastpool.max_pool(x, 5)
