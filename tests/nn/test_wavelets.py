"""The JAX periodic DWT: PyWavelets' wavedec2(mode='periodization') exactly, orthogonal, inverted exactly."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import pywt

from deepvision.nn import wavelets

# pywt warns that levels this deep on images this small see the periodic boundary everywhere: it is the point.
pytestmark = pytest.mark.filterwarnings("ignore:Level value of")
wavedec2 = jax.jit(wavelets.wavedec2, static_argnums=(1, 2))
waverec2 = jax.jit(wavelets.waverec2, static_argnums=1)


@pytest.mark.parametrize("name, levels, shape", [("haar", 3, (8, 16)), ("db4", 2, (16, 8)),
                                                 ("sym3", 1, (6, 10))])
def test_wavedec2_is_pywavelets_periodization(x64, name, levels, shape):
  x = np.random.default_rng(0).normal(size=(3, *shape))
  ours = wavedec2(jnp.asarray(x), name, levels)
  reference = pywt.wavedec2(x, name, mode="periodization", level=levels)
  assert len(ours) == len(reference) == levels + 1
  np.testing.assert_allclose(ours[0], reference[0], rtol=1e-12, atol=1e-12)
  for level in range(1, levels + 1):
    assert len(ours[level]) == 3
    for mine, theirs in zip(ours[level], reference[level]):
      assert mine.shape == theirs.shape
      np.testing.assert_allclose(mine, theirs, rtol=1e-12, atol=1e-12)


def test_the_transform_is_orthogonal_and_waverec2_inverts_it(x64):
  x = jnp.asarray(np.random.default_rng(1).normal(size=(2, 16, 8)))
  coefficients = wavedec2(x, "db2", 3)
  energy = sum(jnp.sum(leaf ** 2, axis=(-2, -1)) for leaf in jax.tree.leaves(coefficients))
  np.testing.assert_allclose(energy, jnp.sum(x ** 2, axis=(-2, -1)), rtol=1e-12)
  np.testing.assert_allclose(waverec2(coefficients, "db2"), x, rtol=1e-12, atol=1e-12)
  # The inverse is PyWavelets' too: a random coefficient set goes back to the same image.
  random = jax.tree.map(lambda c: jnp.asarray(np.random.default_rng(c.size).normal(size=c.shape)),
                        coefficients)
  reference = pywt.waverec2([np.asarray(random[0]), *[tuple(map(np.asarray, d)) for d in random[1:]]],
                            "db2", mode="periodization")
  np.testing.assert_allclose(waverec2(random, "db2"), reference, rtol=1e-12, atol=1e-12)


def test_bad_wavelets_and_levels_are_named():
  with pytest.raises(ValueError, match="'bior2.2' is not orthogonal"):
    wavelets.wavelet_filters("bior2.2")
  with pytest.raises(ValueError, match="orthogonal discrete wavelet of PyWavelets.*got 'morl'"):
    wavelets.wavelet_filters("morl")
  with pytest.raises(ValueError, match="W=12 is not a multiple of 2\\^levels = 8.*levels <= 2"):
    wavelets.wavedec2(jnp.zeros((1, 16, 12)), "haar", 3)
  with pytest.raises(ValueError, match="levels must be a positive int, got 0"):
    wavelets.check_levels((8, 8), 0)
