"""The denoising measure: the L-BFGS MAP estimate against closed forms (the Wiener filter of a stationary
Gaussian, built densely from its circulant covariance; a weighted quadratic energy), a stationary point of
a non-Gaussian prior's objective with the reported numbers checked directly, PSNR and the noise against
hand computations, and bad inputs refused by name."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepvision import zoo
from deepvision.estimators import denoising
from deepvision.models.stationary_gaussian import StationaryGaussian, power_law_spectrum

SIGMA = 25.0 / 255.0


def dense_circulant_covariance(spectrum: np.ndarray) -> np.ndarray:
  """C = U^H diag(S) U with U the unitary 2-D DFT of (H, W) images flattened row by row: (N, N) real."""
  height, width = spectrum.shape
  dft = [np.exp(-2j * np.pi * np.outer(np.arange(n), np.arange(n)) / n) for n in (height, width)]
  unitary = np.kron(dft[0], dft[1]) / np.sqrt(height * width)
  covariance = unitary.conj().T @ np.diag(spectrum.reshape(-1)) @ unitary
  assert np.max(np.abs(covariance.imag)) < 1e-12  # S_k = S_−k: C is real
  return covariance.real


def stationary_gaussian_images(spectrum, mean, count, seed):
  """`count` exact draws μ + U^H diag(√S) U z, z ~ N(0, I), of the stationary Gaussian, and the same images
  with white noise of deviation σ: ((count, H, W), (count, H, W)) float64 (NumPy: no compilation)."""
  rng = np.random.default_rng(seed)
  white = rng.normal(size=(count, *spectrum.shape))
  clean = mean + np.real(np.fft.ifft2(np.sqrt(spectrum) * np.fft.fft2(white)))
  return clean, clean + SIGMA * rng.normal(size=clean.shape)


def objective_of(free_energy, noisy, sigma, weight=1.0):
  return lambda x: weight * jnp.sum(free_energy(x)) + jnp.sum((x - noisy) ** 2) / (2 * sigma ** 2)


def test_map_of_a_stationary_gaussian_is_the_wiener_filter_and_the_dense_posterior_mean(x64):
  shape, mu = (8, 8), 0.3
  spectrum = 0.05 * power_law_spectrum(shape, 2.0)  # gains S/(S + σ²) from 0.15 to 0.84
  model = StationaryGaussian(image_shape=shape)
  variables = {"params": {"mean": jnp.asarray(mu), "log_spectrum": jnp.asarray(np.log(spectrum))}}
  free_energy = lambda x: model.apply(variables, x, method="free_energy")
  clean, noisy = (jnp.asarray(a) for a in stationary_gaussian_images(spectrum, mu, 3, seed=0))

  wiener = denoising.wiener_denoise(spectrum, mu, noisy, SIGMA)
  covariance = dense_circulant_covariance(spectrum)
  precision = np.linalg.inv(covariance)
  y = np.asarray(noisy).reshape(3, -1)
  dense = np.linalg.solve(precision + np.eye(64) / SIGMA ** 2,
                          (precision @ np.full(64, mu))[:, None] + y.T / SIGMA ** 2).T
  np.testing.assert_allclose(np.asarray(wiener).reshape(3, -1), dense, rtol=1e-10, atol=1e-12)

  estimate, info = denoising.map_denoise(free_energy, noisy, SIGMA)
  assert estimate.dtype == jnp.float64 and estimate.shape == noisy.shape
  np.testing.assert_allclose(estimate, wiener, rtol=1e-5, atol=1e-7)
  estimate, wiener = np.asarray(estimate), np.asarray(wiener)
  assert np.linalg.norm(estimate - wiener) / np.linalg.norm(wiener) < 1e-5
  # The posterior mean denoises: it is closer to the clean images than the noisy ones are.
  assert denoising.psnr(clean, wiener) > denoising.psnr(clean, noisy) + 2.0
  assert info["objective_end"] < info["objective_start"]


def test_weighted_quadratic_energy_has_the_closed_form_map():
  # In float32, the pipeline's dtype (the other closed forms are checked in float64).
  rng = np.random.default_rng(0)
  shape, n = (3, 4), 12
  factor = rng.normal(size=(n, n))
  a = factor @ factor.T / n + 0.1 * np.eye(n)  # dense SPD
  a_jax = jnp.asarray(a, jnp.float32)
  energy = lambda x: 0.5 * jnp.einsum("bi,ij,bj->b", x.reshape(len(x), -1), a_jax,
                                      x.reshape(len(x), -1))
  noisy = jnp.asarray(rng.normal(size=(2, *shape)), jnp.float32)
  sigma, weight = 0.5, 2.5
  estimate, info = denoising.map_denoise(energy, noisy, sigma, weight=weight, num_steps=100)
  exact = np.linalg.solve(weight * a + np.eye(n) / sigma ** 2,
                          np.asarray(noisy).reshape(2, n).T / sigma ** 2).T
  assert estimate.dtype == jnp.float32 and estimate.shape == noisy.shape
  np.testing.assert_allclose(np.asarray(estimate).reshape(2, n), exact, rtol=1e-5, atol=1e-6)
  # E(y) = λ Σ_b ½ y_bᵀ A y_b; E(x̂) = ½ Σ_b y_bᵀ (I/σ² − (λA + I/σ²)⁻¹/σ⁴) y_b at the optimum.
  y = np.asarray(noisy, np.float64).reshape(2, n)
  assert info["objective_start"] == pytest.approx(weight * 0.5 * np.einsum("bi,ij,bj->", y, a, y), rel=1e-5)
  assert info["objective_end"] == pytest.approx(0.5 * np.sum(y * (y - exact)) / sigma ** 2, rel=1e-5)
  assert info["gradient_norm_end"] < 1e-4 * np.linalg.norm(weight * y @ a)  # ∇E(y) = λ A y

  # λ = 0: the prior is ignored and the estimate is the noisy image itself; σ, λ and the number of steps
  # are traced, so the compiled loop is reused.
  compiled = denoising._minimise._cache_size()
  unchanged, info = denoising.map_denoise(energy, noisy, 0.3, weight=0.0, num_steps=3)
  assert denoising._minimise._cache_size() == compiled
  np.testing.assert_array_equal(unchanged, noisy)
  assert info["objective_start"] == 0.0 and info["objective_end"] == 0.0


# The FoE repeats the check on learned-filter experts; each prior compiles its own L-BFGS loop (~1.5 s).
@pytest.mark.parametrize("name", ["pairwise_mrf_tiny",
                                  pytest.param("field_of_experts_tiny", marks=pytest.mark.slow)])
def test_map_of_a_heavy_tailed_prior_is_a_stationary_point(name, x64):
  model = zoo.create(name)
  shape = model.image_shape
  variables = jax.jit(lambda key: model.init(key, jnp.zeros((1, *shape)), method="free_energy"))(
      jax.random.key(0))
  variables = jax.tree.map(lambda p: np.asarray(p, np.float64), variables)
  free_energy = lambda x: model.apply(variables, x, method="free_energy")
  rows, cols = np.meshgrid(np.linspace(0, 1, shape[0]), np.linspace(0, 1, shape[1]), indexing="ij")
  clean = np.stack([rows, cols, (rows > 0.5) * 1.0])  # two ramps and an edge
  noisy = jnp.asarray(clean + SIGMA * np.random.default_rng(2).normal(size=clean.shape))
  weight = 1.0
  estimate, info = denoising.map_denoise(free_energy, noisy, SIGMA, weight=weight)

  value_and_grad = jax.jit(jax.value_and_grad(objective_of(free_energy, noisy, SIGMA, weight)))
  value, gradient = value_and_grad(estimate)
  start_value, start_gradient = value_and_grad(noisy)
  start_gradient = np.linalg.norm(start_gradient)
  gradient_norm = np.linalg.norm(gradient)
  assert start_gradient > 0.1
  assert gradient_norm < 1e-6 * start_gradient
  assert info["objective_end"] < info["objective_start"]
  assert info["objective_start"] == pytest.approx(float(start_value), rel=1e-12)
  assert info["objective_end"] == pytest.approx(float(value), rel=1e-12)
  assert info["gradient_norm_end"] == pytest.approx(gradient_norm, rel=1e-6, abs=1e-14)
  assert np.max(np.abs(np.asarray(estimate) - np.asarray(noisy))) > 1e-3  # the prior moved the pixels


@pytest.mark.slow  # one more compilation of the L-BFGS loop (~1.5 s)
def test_float32_images_stay_float32_and_match_the_wiener_filter():
  shape, mu = (4, 6), -0.2
  spectrum = 0.05 * power_law_spectrum(shape, 2.0)
  model = StationaryGaussian(image_shape=shape)
  variables = {"params": {"mean": jnp.float32(mu), "log_spectrum": jnp.asarray(np.log(spectrum), jnp.float32)}}
  _, noisy = stationary_gaussian_images(spectrum, mu, 2, seed=1)
  noisy = jnp.asarray(noisy, jnp.float32)
  estimate, _ = denoising.map_denoise(lambda x: model.apply(variables, x, method="free_energy"), noisy, SIGMA)
  wiener = denoising.wiener_denoise(spectrum, mu, noisy, SIGMA)
  assert estimate.dtype == wiener.dtype == jnp.float32
  np.testing.assert_allclose(estimate, wiener, rtol=1e-3, atol=1e-4)


def test_psnr_is_the_mean_of_per_image_psnrs():
  clean = np.zeros((2, 4, 5))
  estimate = clean.copy()
  estimate[0] += 0.1  # MSE 0.01 → 20 dB
  estimate[1, 0, :] = 1.0  # one row of five 1s in 20 pixels: MSE 0.25 → 10 log10(4) dB
  assert denoising.psnr(clean[:1], estimate[:1]) == pytest.approx(20.0, rel=1e-12)
  assert denoising.psnr(clean, estimate) == pytest.approx((20.0 + 10 * np.log10(4.0)) / 2, rel=1e-12)
  pooled = 10 * np.log10(1.0 / ((0.01 + 0.25) / 2))
  assert abs(denoising.psnr(clean, estimate) - pooled) > 0.5  # not the PSNR of the pooled MSE
  assert denoising.psnr(clean * 255, estimate * 255, peak=255.0) == pytest.approx(
      denoising.psnr(clean, estimate), rel=1e-12)
  assert denoising.psnr(clean, clean) == np.inf


def test_add_noise_has_deviation_sigma_and_is_a_function_of_the_key():
  images = jnp.full((4, 64, 64), 0.5, jnp.float32)
  noisy = denoising.add_noise(jax.random.key(5), images, SIGMA)
  assert noisy.shape == images.shape and noisy.dtype == jnp.float32
  noise = np.asarray(noisy, np.float64) - 0.5
  # 16,384 draws: the sample deviation is within 4 standard errors (σ/√(2n) ≈ 0.55%) of σ.
  assert abs(noise.std() / SIGMA - 1) < 4 / np.sqrt(2 * noise.size)
  assert abs(noise.mean()) < 4 * SIGMA / np.sqrt(noise.size)
  np.testing.assert_array_equal(noisy, denoising.add_noise(jax.random.key(5), images, SIGMA))
  assert not np.array_equal(noisy, denoising.add_noise(jax.random.key(6), images, SIGMA))


def quadratic(x):
  return 0.5 * jnp.sum(x ** 2, axis=(1, 2))


class UnhashableEnergy:
  __hash__ = None

  def __call__(self, x):
    return quadratic(x)


@pytest.mark.parametrize("call, match", [
    (lambda y: denoising.map_denoise(quadratic, y, 0.0), r"sigma.*> 0.*0\.0"),
    (lambda y: denoising.map_denoise(quadratic, y, -0.1), r"sigma.*-0\.1"),
    (lambda y: denoising.map_denoise(quadratic, y, float("nan")), r"sigma.*nan"),
    (lambda y: denoising.map_denoise(quadratic, y, 0.1, num_steps=0), r"num_steps.*positive int.*0"),
    (lambda y: denoising.map_denoise(quadratic, y, 0.1, num_steps=2.5), r"num_steps.*2\.5"),
    (lambda y: denoising.map_denoise(quadratic, y, 0.1, weight=-1.0), r"weight.*>= 0.*-1\.0"),
    (lambda y: denoising.map_denoise(quadratic, y[0], 0.1), r"noisy.*\(B, H, W\).*\(3, 4\)"),
    (lambda y: denoising.map_denoise(quadratic, y[..., None], 0.1), r"noisy.*\(2, 3, 4, 1\)"),
    (lambda y: denoising.map_denoise(quadratic, y.astype(jnp.int32), 0.1), r"noisy.*floating.*int32"),
    (lambda y: denoising.map_denoise(quadratic, y.at[0, 1, 2].set(jnp.nan), 0.1), r"noisy.*1 non-finite"),
    (lambda y: denoising.map_denoise(lambda x: jnp.sum(x), y, 0.1), r"one energy per image.*\(2,\)"),
    (lambda y: denoising.map_denoise("energy", y, 0.1), r"callable.*'energy'"),
    (lambda y: denoising.map_denoise(UnhashableEnergy(), y, 0.1), r"hashable.*UnhashableEnergy"),
    (lambda y: denoising.wiener_denoise(np.ones((4, 3)), 0.0, y, 0.1), r"spectrum.*\(4, 3\).*\(3, 4\)"),
    (lambda y: denoising.wiener_denoise(-np.ones((3, 4)), 0.0, y, 0.1), r"spectrum.*>= 0.*-1\.0"),
    (lambda y: denoising.wiener_denoise(np.ones((3, 4)), np.zeros(3), y, 0.1), r"mean.*scalar.*\(3,\)"),
    (lambda y: denoising.wiener_denoise(np.ones((3, 4)), 0.0, y, 0.0), r"sigma.*0\.0"),
    (lambda y: denoising.wiener_denoise(np.ones((3, 4)), 0.0, y[0], 0.1), r"noisy.*\(3, 4\)"),
    (lambda y: denoising.add_noise(jax.random.key(0), y, 0.0), r"sigma.*0\.0"),
    (lambda y: denoising.add_noise(jax.random.key(0), y.astype(jnp.int32), 0.1), r"images.*int32"),
    (lambda y: denoising.psnr(y, y[:1]), r"estimate.*\(1, 3, 4\).*\(2, 3, 4\)"),
    (lambda y: denoising.psnr(y[0, 0], y[0, 0]), r"clean.*\(4,\)"),
    (lambda y: denoising.psnr(y, y, peak=0.0), r"peak.*0\.0"),
])
def test_bad_inputs_are_refused_by_name(call, match):
  with pytest.raises(ValueError, match=match):
    call(jnp.zeros((2, 3, 4), jnp.float32))
