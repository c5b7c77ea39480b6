"""Local contrast / response normalisation against an explicit-loop NumPy reference."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from deepvision.nn import lcn


def _window(kind, size):
  """The 2-D window written out independently: Gaussian σ = size/4, or a box."""
  r = size // 2
  i, j = np.mgrid[-r:r + 1, -r:r + 1]
  if kind == "box":
    return np.full((size, size), 1.0 / size**2)
  w = np.exp(-(i**2 + j**2) / (2 * (size / 4) ** 2))
  return w / w.sum()


def _reference_lcn(x, mode, kind, size, threshold=1e-4, thresval=1e-4):
  """Loops over every pixel and every window position inside the image."""
  n, h, w, c = x.shape
  win, r = _window(kind, size), size // 2
  # The Torch7 window is normalised over space and channels: k / C for each channel.
  k = win / c

  def window_sums(maps):  # Σ_c Σ_{q inside} k(q) maps_c(p+q), and the mass Σ_c Σ_q k(q).
    out, mass = np.zeros((n, h, w)), np.zeros((h, w))
    for y in range(h):
      for xx in range(w):
        for dy in range(-r, r + 1):
          for dx in range(-r, r + 1):
            yy, xq = y + dy, xx + dx
            if 0 <= yy < h and 0 <= xq < w:
              out[:, y, xx] += k[dy + r, dx + r] * maps[:, yy, xq, :].sum(-1)
              mass[y, xx] += k[dy + r, dx + r] * c
    return out, mass

  sums, coef = window_sums(x)
  v = x - (sums / coef)[..., None]
  energy, _ = window_sums(v**2)
  if mode == "torch7":
    d = np.sqrt(energy) / coef
  else:
    s = np.sqrt(energy / coef)
    d = np.maximum(s.mean(axis=(1, 2), keepdims=True), s)
  d = np.where(d > threshold, d, thresval)
  return v / d[..., None]


@pytest.mark.parametrize("mode,kind,size", [("torch7", "gaussian", 5), ("torch7", "box", 3),
                                            ("jarrett", "gaussian", 5), ("jarrett", "box", 7)])
def test_matches_loop_reference_including_borders(mode, kind, size):
  x = np.random.default_rng(0).normal(size=(2, 6, 7, 3))
  with jax.enable_x64(True):
    y = lcn.local_contrast_norm(jnp.asarray(x), mode=mode, kernel=kind, kernel_size=size)
    assert y.dtype == jnp.float64
  expected = _reference_lcn(x, mode, kind, size)
  np.testing.assert_allclose(np.asarray(y), expected, rtol=1e-10, atol=1e-12)


def test_threshold_replaces_small_divisors():
  x = np.random.default_rng(1).normal(size=(1, 5, 5, 2)) * 1e-7  # σ ≈ 1e-7 < 1e-4
  with jax.enable_x64(True):
    y = lcn.local_contrast_norm(jnp.asarray(x), kernel_size=3)
  np.testing.assert_allclose(np.asarray(y), _reference_lcn(x, "torch7", "gaussian", 3), rtol=1e-9)
  assert np.abs(np.asarray(y)).max() < 1e-2  # divided by thresval, not by the tiny σ


@pytest.mark.parametrize("mode", lcn.MODES)
def test_constant_image_maps_to_zero(mode):
  x = jnp.full((2, 9, 11, 3), 0.7, jnp.float32)
  y = lcn.LocalContrastNorm(mode=mode).apply({}, x)
  np.testing.assert_allclose(np.asarray(y), 0.0, atol=1e-2)  # float32 rounding / thresval
  with jax.enable_x64(True):
    y64 = lcn.local_contrast_norm(jnp.full((2, 9, 11, 3), 0.7), mode=mode)
  np.testing.assert_allclose(np.asarray(y64), 0.0, atol=1e-9)


@pytest.mark.parametrize("mode", lcn.MODES)
def test_invariant_to_input_scale(mode):
  x = np.random.default_rng(5).normal(size=(2, 12, 12, 4)).astype(np.float32)
  layer = lcn.LocalContrastNorm(mode=mode, kernel_size=5)
  np.testing.assert_allclose(layer.apply({}, 37.0 * x), layer.apply({}, x), rtol=1e-4, atol=1e-5)


def test_interior_pixel_by_hand_with_box_window():
  # Away from the border coef = 1: m is the 3×3×C mean, σ² the 3×3×C mean of v².
  x = np.random.default_rng(2).normal(size=(1, 11, 11, 2))
  with jax.enable_x64(True):
    y = np.asarray(lcn.local_contrast_norm(jnp.asarray(x), kernel="box", kernel_size=3))
  patch = x[0, 4:7, 4:7, :]
  v = x[0, 5, 5, :] - patch.mean()
  neighbourhood_v = x[0, 3:8, 3:8, :]
  local_means = np.array([[neighbourhood_v[a:a + 3, b:b + 3].mean() for b in range(3)]
                          for a in range(3)])
  v_patch = neighbourhood_v[1:4, 1:4, :] - local_means[..., None]
  sigma = np.sqrt((v_patch**2).mean())
  np.testing.assert_allclose(y[0, 5, 5], v / sigma, rtol=1e-10)


@pytest.mark.parametrize("mode", lcn.MODES)
def test_gradients_match_finite_differences_at_borders(mode):
  x = np.random.default_rng(3).normal(size=(1, 5, 6, 2))
  with jax.enable_x64(True):
    # The 5×5 window is wider than half the image: most pixels are border pixels.
    f = jax.jit(lambda z: lcn.local_contrast_norm(z, mode=mode, kernel_size=5))
    check_grads(f, (jnp.asarray(x),), order=1, modes=("rev", "fwd"), eps=1e-6, atol=1e-6, rtol=1e-6)


def test_gradient_finite_on_flat_image():
  g = jax.jit(jax.grad(lambda z: lcn.local_contrast_norm(z).sum()))(jnp.zeros((1, 8, 8, 2)))
  assert np.all(np.isfinite(np.asarray(g)))


def test_local_response_norm_matches_loops_and_gradients():
  x = np.random.default_rng(4).normal(size=(2, 5, 6, 3)) * 30
  size, alpha, beta = 3, 1e-3, 0.75
  ref = np.empty_like(x)
  for y in range(5):
    for xx in range(6):
      win = x[:, max(y - 1, 0):y + 2, max(xx - 1, 0):xx + 2, :]
      ref[:, y, xx, :] = x[:, y, xx, :] / (1 + alpha / size**2 * (win**2).sum(axis=(1, 2))) ** beta
  with jax.enable_x64(True):
    f = jax.jit(lambda z: lcn.local_response_norm(z, size=size, alpha=alpha, beta=beta))
    np.testing.assert_allclose(np.asarray(f(jnp.asarray(x))), ref, rtol=1e-12)
    check_grads(f, (jnp.asarray(x),), order=1, modes=("rev",), eps=1e-5, atol=1e-6, rtol=1e-6)


def test_bad_arguments_are_named():
  with pytest.raises(ValueError, match="mode 'lecun'.*torch7, jarrett"):
    lcn.LocalContrastNorm(mode="lecun")
  with pytest.raises(ValueError, match="odd"):
    lcn.LocalContrastNorm(kernel_size=8)
  with pytest.raises(ValueError, match=r"\(8, 8\)"):
    lcn.local_contrast_norm(jnp.zeros((8, 8)))


def test_separable_window_is_the_2d_gaussian():
  np.testing.assert_allclose(lcn.kernel_2d("gaussian", 9), _window("gaussian", 9), rtol=1e-12)
  assert lcn.kernel_1d("gaussian", 13).sum() == pytest.approx(1.0)


BF16_ROUNDOFF = 2.0**-8  # unit roundoff of bfloat16 (8 significant bits)


def _bfloat16_image(values):
  """values as a bfloat16 array, and the same numbers (exactly representable) in float64."""
  x = jnp.asarray(values, jnp.bfloat16)
  return x, np.asarray(x.astype(jnp.float32), np.float64)


@pytest.mark.parametrize("mode", lcn.MODES)
def test_bfloat16_maps_get_float32_statistics(mode):
  """On a bright image (1000 ± 12), m and σ in bfloat16 would be off by half their size.

  With the statistics in float32, the bfloat16 output is the float32 result rounded once: within
  one unit roundoff of the float64 loop reference, elementwise, plus float32's own error at this
  offset (about 2e-5 on outputs of order 1). Computing them in bfloat16 misses by about 0.5.
  """
  rng = np.random.default_rng(6)
  x, x64 = _bfloat16_image(1000 + 4 * rng.integers(-3, 4, size=(1, 8, 8, 3)))
  y = lcn.local_contrast_norm(x, mode=mode, kernel_size=5)
  assert y.dtype == jnp.bfloat16
  want = _reference_lcn(x64, mode, "gaussian", 5)
  assert np.abs(want).max() > 1.0
  error = np.abs(np.asarray(y.astype(jnp.float32), np.float64) - want)
  assert np.all(error <= BF16_ROUNDOFF * np.abs(want) + 1e-4)


def test_bfloat16_response_norm_is_computed_in_float32():
  """y = x / (1 + α/n² Σ x²)^β of bf16 maps: one rounding of the exact value (bf16 inside: ~3)."""
  x, x64 = _bfloat16_image(np.random.default_rng(7).normal(size=(2, 5, 6, 3)) * 30)
  size, alpha, beta = 3, 1.0, 0.75
  y = lcn.local_response_norm(x, size=size, alpha=alpha, beta=beta)
  assert y.dtype == jnp.bfloat16
  padded = np.pad(x64**2, ((0, 0), (1, 1), (1, 1), (0, 0)))
  window_sum = sum(padded[:, a:a + 5, b:b + 6] for a in range(3) for b in range(3))
  want = x64 / (1 + alpha / size**2 * window_sum) ** beta
  error = np.abs(np.asarray(y.astype(jnp.float32), np.float64) - want)
  assert np.all(error <= 1.01 * BF16_ROUNDOFF * np.abs(want) + 1e-6)
