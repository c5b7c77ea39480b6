"""Pooling against small examples worked out by hand."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from deepvision.nn import pooling

# 1..16 in a 4×4 map, with the top-left pixel made negative.
IMAGE = np.arange(1.0, 17.0).reshape(1, 4, 4, 1)
IMAGE[0, 0, 0, 0] = -10.0


def _map(y):
  return np.asarray(y)[0, :, :, 0]


def test_non_overlapping_2x2():
  np.testing.assert_allclose(_map(pooling.max_pool(IMAGE, 2)), [[6, 8], [14, 16]])
  np.testing.assert_allclose(_map(pooling.avg_pool(IMAGE, 2)), [[(-10 + 2 + 5 + 6) / 4, 5.5],
                                                                [11.5, 13.5]])
  l2 = [[np.sqrt(100 + 4 + 25 + 36), np.sqrt(9 + 16 + 49 + 64)],
        [np.sqrt(81 + 100 + 169 + 196), np.sqrt(121 + 144 + 225 + 256)]]
  np.testing.assert_allclose(_map(pooling.l2_pool(IMAGE, 2)), l2, rtol=1e-6)


def test_overlapping_and_same_padding():
  x = np.arange(1.0, 17.0).reshape(1, 4, 4, 1)
  np.testing.assert_allclose(_map(pooling.max_pool(x, 3, 1)), [[11, 12], [15, 16]])
  # 'SAME', window 3, stride 2 on 4 pixels: one padding cell after the image.
  np.testing.assert_allclose(_map(pooling.max_pool(x, 3, 2, "SAME")), [[11, 12], [15, 16]])
  np.testing.assert_allclose(_map(pooling.avg_pool(x, 3, 2, "SAME")), [[6, 7.5], [12, 13.5]])
  np.testing.assert_allclose(_map(pooling.avg_pool(x, 3, 2, "SAME", count_include_pad=True)),
                             [[6, 5], [8, 6]])
  np.testing.assert_allclose(_map(pooling.l2_pool(x, 3, 2, "SAME"))[1, 1],
                             np.sqrt(11**2 + 12**2 + 15**2 + 16**2), rtol=1e-6)
  np.testing.assert_allclose(_map(pooling.max_pool(x, (1, 2), (1, 2))), x[0, :, 1::2, 0])


def test_pool_by_name_and_channels_kept_apart():
  x = np.stack([IMAGE[..., 0], -IMAGE[..., 0]], axis=-1)
  for kind, fn in [("max", pooling.max_pool), ("avg", pooling.avg_pool), ("l2", pooling.l2_pool)]:
    y = pooling.Pool(kind=kind, window=2).apply({}, x)
    np.testing.assert_array_equal(np.asarray(y), np.asarray(fn(x, 2)))
  np.testing.assert_allclose(np.asarray(pooling.pool(x, "max"))[0, :, :, 1], [[10, -3], [-9, -11]])


def test_l2_pool_gradients():
  x = np.random.default_rng(0).normal(size=(2, 5, 5, 3))
  with jax.enable_x64(True):
    f = jax.jit(lambda z: pooling.l2_pool(z, 3, 2, "SAME"))
    check_grads(f, (jnp.asarray(x),), order=2, modes=("rev",), eps=1e-5, atol=1e-6, rtol=1e-6)
  g = jax.grad(lambda z: pooling.l2_pool(z, 2).sum())(jnp.zeros((1, 4, 4, 2)))
  np.testing.assert_array_equal(np.asarray(g), 0.0)  # finite (the subgradient 0), not NaN


def test_bad_arguments_are_named():
  with pytest.raises(ValueError, match="'median'.*max, avg, l2"):
    pooling.Pool(kind="median")
  with pytest.raises(ValueError, match="window"):
    pooling.max_pool(IMAGE, 0)
  with pytest.raises(ValueError, match="'FULL'"):
    pooling.avg_pool(IMAGE, 2, padding="FULL")
  with pytest.raises(ValueError, match=r"\(4, 4\)"):
    pooling.l2_pool(np.zeros((4, 4)), 2)


@pytest.mark.parametrize("kind, window, strides, padding", [
    ("max", 2, None, "VALID"), ("max", 3, 2, "SAME"), ("avg", 2, None, "VALID"),
    ("avg", 3, 2, "SAME"), ("l2", 2, None, "VALID")])
def test_bfloat16_maps_stay_bfloat16(kind, window, strides, padding):
  """Each pool of bf16 maps is bf16 and agrees with the pool of the same numbers in float64.

  Max pooling selects, so it is exact; a bf16 sum of w window cells errs by at most w unit
  roundoffs (2^-8) of the window's Σ|x|. ('SAME' average pooling divides by a float32 count of
  the cells inside, which would otherwise promote the maps to float32.)
  """
  x = jnp.asarray(np.random.default_rng(8).normal(size=(2, 6, 6, 3)), jnp.bfloat16)
  y = pooling.pool(x, kind, window, strides, padding)
  assert y.dtype == jnp.bfloat16
  with jax.enable_x64(True):
    x64 = x.astype(jnp.float64)
    want = np.asarray(pooling.pool(x64, kind, window, strides, padding))
    magnitude = np.asarray(pooling.pool(jnp.abs(x64), kind, window, strides, padding))
  error = np.abs(np.asarray(y.astype(jnp.float32), np.float64) - want)
  cells = 0 if kind == "max" else window**2
  assert np.all(error <= cells * 2.0**-8 * magnitude)
  if kind == "max":  # selection only: the gradient is exact and bf16 too
    g = jax.grad(lambda z: jnp.sum(pooling.max_pool(z, window, strides, padding)
                                   .astype(jnp.float32) ** 2))(x)
    assert g.dtype == jnp.bfloat16
