"""Conv and conv2d: every algorithm equals lax.conv_general_dilated, in value and gradient."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.test_util import check_grads

from deepvision.nn import conv
from deepvision.nn.conv import Conv, banded_conv2d, banded_matrix, conv2d, width_tile

DN = ("NHWC", "HWIO", "NHWC")

# (image H, W, C_in, C_out, kernel, strides, padding)
CASES = [
    ((28, 28), 1, 6, (5, 5), (1, 1), "SAME"),          # LeNet-5 conv1
    ((14, 14), 6, 16, (5, 5), (1, 1), "VALID"),        # LeNet-5 conv2
    ((9, 11), 3, 4, (3, 2), (2, 1), "SAME"),
    ((10, 9), 2, 5, (3, 3), (2, 2), "VALID"),
    ((8, 7), 4, 3, (2, 3), (1, 2), ((1, 0), (2, 1))),
    ((7, 7), 2, 2, (3, 3), (3, 2), ((0, 2), (1, 1))),
]


def _reference(x, k, strides, padding):
  padding = padding if isinstance(padding, str) else tuple(map(tuple, padding))
  return lax.conv_general_dilated(x, k, strides, padding, dimension_numbers=DN,
                                  precision=lax.Precision.HIGHEST)


def _data(seed, size, cin, cout, kernel, batch=3):
  rng = np.random.default_rng(seed)
  x = jnp.asarray(rng.standard_normal((batch, *size, cin)))
  k = jnp.asarray(rng.standard_normal((*kernel, cin, cout)))
  b = jnp.asarray(rng.standard_normal((cout,)))
  return x, k, b


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}x{c[1]}-{c[2]}-{c[3]}-{c[4]}-{c[5]}")
def test_banded_equals_xla_in_float64(case):
  size, cin, cout, kernel, strides, padding = case
  with jax.enable_x64(True):
    x, k, b = _data(0, size, cin, cout, kernel)
    want = _reference(x, k, strides, padding) + b
    got = conv2d(x, k, strides, padding, bias=b, implementation="banded")
    assert got.dtype == jnp.float64
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(conv2d(x, k, strides, padding, bias=b, implementation="xla"), want,
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("tile", [1, 2, 3, 4, 5, 7, 10])
def test_every_width_tile_gives_the_same_convolution(tile):
  """Including ragged last tiles (10 columns in tiles of 3, 4 or 7)."""
  with jax.enable_x64(True):
    x, k, b = _data(1, (12, 14), 3, 4, (3, 5))
    pads = ((1, 1), (0, 0))
    want = _reference(x, k, (1, 1), pads) + b
    got = banded_conv2d(x, k, (1, 1), pads, bias=b, tile=tile)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CASES[1:], ids=lambda c: f"{c[0]}x{c[1]}-{c[2]}-{c[3]}")
def test_banded_gradients_match_finite_differences_and_xla(case):
  size, cin, cout, kernel, strides, padding = case
  with jax.enable_x64(True):
    x, k, b = _data(2, size, cin, cout, kernel, batch=2)
    w = jnp.asarray(np.random.default_rng(3).standard_normal(_reference(x, k, strides, padding).shape))

    def loss(implementation):
      return jax.jit(lambda x, k, b: jnp.sum(w * jnp.tanh(conv2d(x, k, strides, padding, b,
                                                                   implementation))))

    check_grads(loss("banded"), (x, k, b), order=1, modes=("rev", "fwd"), eps=1e-6, atol=1e-7,
                rtol=1e-7)
    got = jax.grad(loss("banded"), argnums=(0, 1, 2))(x, k, b)
    want = jax.grad(loss("xla"), argnums=(0, 1, 2))(x, k, b)
    for g, r in zip(got, want):
      np.testing.assert_allclose(g, r, rtol=1e-11, atol=1e-11)


def test_banded_matrix_holds_the_kernel_on_its_bands():
  """T[(i, p, c), (w, d)] = k[i, p − w·s, c, d] inside the band, 0 outside (stride 2)."""
  kh, kw, cin, cout, tile, stride = 2, 3, 2, 2, 3, 2
  k = jnp.arange(1.0, kh * kw * cin * cout + 1).reshape(kh, kw, cin, cout)
  tile_in = (tile - 1) * stride + kw
  t = np.asarray(banded_matrix(k, tile, stride)).reshape(kh, tile_in, cin, tile, cout)
  for i in range(kh):
    for p in range(tile_in):
      for w in range(tile):
        j = p - w * stride
        want = np.asarray(k[i, j]) if 0 <= j < kw else np.zeros((cin, cout))
        np.testing.assert_array_equal(t[i, p, :, w, :], want)


def test_width_tile_rule():
  assert width_tile(28, 5, 6) == 4    # t·C_out ≥ 24 → 4, a divisor of 28.
  assert width_tile(10, 5, 16) == 5   # t ≥ k_w − 1 = 4 → moved up to the divisor 5.
  assert width_tile(13, 5, 6) == 4    # No divisor of 13 in [4, 8]: ragged tiles of 4.
  assert width_tile(3, 5, 1) == 3     # Never wider than the output.


def test_auto_picks_banded_on_cpu_for_few_input_channels():
  assert conv.choose_implementation((5, 5, 1, 6), backend="cpu") == "banded"
  assert conv.choose_implementation((5, 5, conv.BANDED_MAX_IN_FEATURES, 64), backend="cpu") == "banded"
  assert conv.choose_implementation((3, 3, conv.BANDED_MAX_IN_FEATURES + 1, 8), backend="cpu") == "xla"
  assert conv.choose_implementation((5, 5, 1, 6), backend="gpu") == "xla"
  assert conv.choose_implementation((5, 5, 1, 6), backend="tpu") == "xla"


@pytest.mark.parametrize("implementation", ["auto", "xla", "banded"])
def test_conv_module_keeps_flax_layout_and_matches_nn_conv(implementation):
  x = jnp.asarray(np.random.default_rng(4).standard_normal((2, 9, 9, 3)), jnp.float32)
  ours = Conv(5, (3, 3), strides=(2, 2), padding="SAME", implementation=implementation)
  params = ours.init(jax.random.key(0), x)
  assert jax.tree.map(jnp.shape, params) == {"params": {"kernel": (3, 3, 3, 5), "bias": (5,)}}
  theirs = nn.Conv(5, (3, 3), strides=(2, 2), padding="SAME")
  np.testing.assert_allclose(ours.apply(params, x), theirs.apply(params, x), rtol=1e-5, atol=1e-5)
  no_bias = Conv(5, (3, 3), use_bias=False, implementation=implementation)
  assert set(no_bias.init(jax.random.key(0), x)["params"]) == {"kernel"}


def test_invalid_implementation_is_rejected_before_compute():
  with pytest.raises(ValueError, match=r"'fft'.*auto, xla, banded"):
    Conv(4, (3, 3), implementation="fft")
  with pytest.raises(ValueError, match=r"'fft'.*auto, xla, banded"):
    conv2d(jnp.zeros((1, 5, 5, 1)), jnp.zeros((3, 3, 1, 2)), implementation="fft")


def test_bad_shapes_and_padding_are_rejected():
  x, k = jnp.zeros((1, 5, 5, 2)), jnp.zeros((3, 3, 1, 2))
  with pytest.raises(ValueError, match="2 channels but the kernel expects 1"):
    conv2d(x, k)
  with pytest.raises(ValueError, match="'FULL'.*SAME, VALID"):
    conv2d(x, jnp.zeros((3, 3, 2, 2)), padding="FULL")
  with pytest.raises(ValueError, match="no output pixels"):
    conv2d(x, jnp.zeros((7, 7, 2, 2)), padding="VALID")
  with pytest.raises(ValueError, match="NHWC"):
    conv2d(jnp.zeros((5, 5, 2)), jnp.zeros((3, 3, 2, 2)))
  with pytest.raises(ValueError, match="strides must be two positive ints"):
    Conv(2, (3, 3), strides=(0, 1))


def test_compute_dtype_accepts_names_and_dtypes_and_rejects_the_rest():
  assert conv.compute_dtype(None) is None
  for spelling in ("bfloat16", jnp.bfloat16, jnp.dtype("bfloat16")):
    assert conv.compute_dtype(spelling) == jnp.bfloat16
  assert conv.compute_dtype("float16") == jnp.float16
  assert conv.compute_dtype(jnp.float32) == jnp.float32
  for bad in ("float64", jnp.int8, "bf17", 3):
    with pytest.raises(ValueError, match=rf"compute dtype {bad!r} .*None \(float32\), float32, "
                                         r"bfloat16, float16"):
      conv.compute_dtype(bad)
  with pytest.raises(ValueError, match="compute dtype 'float64'"):
    Conv(4, (3, 3), dtype="float64")


@pytest.mark.parametrize("implementation", ["xla", "banded"])
def test_conv_in_bfloat16_rounds_like_one_bfloat16_product(implementation):
  """Parameters stay float32; y is the product of the bf16-rounded operands within 2 roundings."""
  x = jnp.asarray(np.random.default_rng(5).standard_normal((2, 8, 8, 3)), jnp.float32)
  layer = Conv(4, (3, 3), implementation=implementation, dtype="bfloat16")
  params = jax.tree.map(lambda p: p + 0.1, layer.init(jax.random.key(0), x))  # a non-zero bias
  assert {p.dtype for p in jax.tree.leaves(params)} == {jnp.dtype(jnp.float32)}
  y = layer.apply(params, x)
  assert y.dtype == jnp.bfloat16
  with jax.enable_x64(True):
    rounded = lambda a: jnp.asarray(a, jnp.bfloat16).astype(jnp.float64)  # noqa: E731
    x64, k64, b64 = rounded(x), rounded(params["params"]["kernel"]), rounded(params["params"]["bias"])
    want = _reference(x64, k64, (1, 1), "SAME") + b64
    magnitude = _reference(jnp.abs(x64), jnp.abs(k64), (1, 1), "SAME") + jnp.abs(b64)
    error = jnp.abs(y.astype(jnp.float64) - want)
    # Unit roundoff u = 2^-8: the product rounded to bf16, then the bias added and rounded again.
    assert float(jnp.max(error / magnitude)) <= 2 * 2.0**-8
    assert float(jnp.max(error / magnitude)) > 1e-5  # bf16, not a float32 product

  def loss(p, layer):
    return jnp.sum(jnp.sin(layer.apply(p, x).astype(jnp.float32)))

  grads = jax.grad(loss)(params, layer)
  reference = jax.grad(loss)(params, Conv(4, (3, 3), implementation=implementation))
  for g, r in zip(jax.tree.leaves(grads), jax.tree.leaves(reference)):
    assert g.dtype == jnp.float32
    assert float(jnp.linalg.norm(g - r) / jnp.linalg.norm(r)) < 3e-2
