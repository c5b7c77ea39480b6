"""The stationary Gaussian: the dense circulant normal exactly, the ML ring-wise fit, exact FFT samples."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from jax.test_util import check_grads

from deepvision.models.stationary_gaussian import StationaryGaussian, frequency_rings

SHAPE = (4, 6)


def dense_covariance(log_spectrum):
  """C_mn = (1/N) Σ_k S_k cos(2π k·(m − n)) with S_k = exp(½(log S_k + log S_−k)), built entry by entry."""
  height, width = log_spectrum.shape
  flipped = np.roll(np.flip(log_spectrum, (0, 1)), 1, (0, 1))
  spectrum = np.exp(0.5 * (log_spectrum + flipped))
  pixels = list(itertools.product(range(height), range(width)))
  cov = np.zeros((len(pixels), len(pixels)))
  for a, (i, j) in enumerate(pixels):
    for b, (k, l) in enumerate(pixels):
      phase = [[2 * np.pi * (u * (i - k) / height + v * (j - l) / width) for v in range(width)]
               for u in range(height)]
      cov[a, b] = np.sum(spectrum * np.cos(phase)) / (height * width)
  return cov


def random_params(seed):
  rng = np.random.default_rng(seed)
  # An asymmetric log S: the module symmetrises it, and so does the dense reference.
  return {"mean": np.asarray(0.3), "log_spectrum": rng.normal(size=SHAPE)}


def test_free_energy_and_log_partition_are_the_dense_circulant_gaussians(x64):
  model = StationaryGaussian(image_shape=SHAPE)
  variables = {"params": random_params(0)}
  cov = dense_covariance(variables["params"]["log_spectrum"])
  assert np.allclose(cov, cov.T) and np.linalg.eigvalsh(cov).min() > 0
  x = np.random.default_rng(1).normal(size=(5, *SHAPE)) + 0.3
  centred = x.reshape(5, -1) - 0.3
  energy = 0.5 * np.einsum("bi,ij,bj->b", centred, np.linalg.inv(cov), centred)
  np.testing.assert_allclose(model.apply(variables, x, method="free_energy"), energy, rtol=1e-10)
  log_z = 0.5 * x[0].size * np.log(2 * np.pi) + 0.5 * np.linalg.slogdet(cov)[1]
  np.testing.assert_allclose(model.apply(variables, method="log_partition"), log_z, rtol=1e-10)
  np.testing.assert_allclose(model.apply(variables, x.reshape(5, -1), method="log_prob"),
                             scipy.stats.multivariate_normal(np.full(24, 0.3), cov).logpdf(x.reshape(5, -1)),
                             rtol=1e-10)
  # ∂F/∂x = C⁻¹(x − μ).
  grad = jax.grad(lambda x: jnp.sum(model.apply(variables, x, method="free_energy")))(x)
  np.testing.assert_allclose(grad.reshape(5, -1), centred @ np.linalg.inv(cov), rtol=1e-9, atol=1e-12)


def test_gradients_match_finite_differences(x64):
  model = StationaryGaussian(image_shape=SHAPE)
  params = jax.tree.map(jnp.asarray, random_params(2))
  x = jnp.asarray(np.random.default_rng(3).normal(size=(3, *SHAPE)))
  # ∂/∂x of F and ∂/∂θ of log p = −F − log Z (through log Z too), in one check.
  check_grads(jax.jit(lambda p, x: model.apply({"params": p}, x, method="log_prob")), (params, x), order=1,
              modes=("rev",))


def test_fit_maximises_the_likelihood_among_ring_wise_constant_spectra(x64):
  rng = np.random.default_rng(4)
  images = np.cumsum(np.cumsum(rng.normal(size=(40, 8, 8)), 1), 2) * 0.2 + rng.normal(size=(40, 1, 1))
  model, variables = StationaryGaussian.fit(images)
  params = variables["params"]
  assert model.image_shape == (8, 8) and float(params["mean"]) == pytest.approx(images.mean(), rel=1e-12)
  rings = frequency_rings((8, 8))
  for ring in np.unique(rings):  # one value per ring
    assert np.ptp(params["log_spectrum"][rings == ring]) < 1e-12
  # Stationary point of the total log-likelihood in the ring-tied family: the gradient w.r.t. μ and
  # summed over every ring of log S vanishes, and a step along it in any direction loses likelihood.
  total = jax.jit(lambda p: jnp.sum(model.apply({"params": p}, images, method="log_prob")))
  grads = jax.grad(total)(jax.tree.map(jnp.asarray, params))
  assert abs(float(grads["mean"])) < 1e-8
  ring_grads = np.bincount(rings.reshape(-1), weights=np.asarray(grads["log_spectrum"]).reshape(-1))
  np.testing.assert_allclose(ring_grads, 0.0, atol=1e-8)
  best = float(total(params))
  for ring in (0, 1, 5):
    for delta in (-0.05, 0.05):
      moved = {**params, "log_spectrum": params["log_spectrum"] + delta * (rings == ring)}
      assert float(total(moved)) < best
  assert float(total({**params, "mean": params["mean"] + 0.05})) < best


def test_fft_samples_have_the_fitted_spectrum(x64):
  rng = np.random.default_rng(5)
  images = np.cumsum(rng.normal(size=(30, 32, 32)), 2) * 0.3 + np.cumsum(rng.normal(size=(30, 32, 32)), 1) * 0.1
  model, variables = StationaryGaussian.fit(images)
  spectrum = np.exp(variables["params"]["log_spectrum"])
  assert spectrum[0, 1] > 10 * spectrum[0, 16]  # a steep, 1/f-like spectrum
  samples = np.asarray(jax.jit(lambda key: model.apply(variables, key, 3000, method="sample"))(jax.random.key(6)))
  assert samples.shape == (3000, 32, 32) and samples.dtype == np.float64
  mean = float(variables["params"]["mean"])
  assert abs(samples.mean() - mean) < 4 * np.sqrt(spectrum[0, 0] / 32 ** 2 / 3000)
  periodogram = np.mean(np.abs(np.fft.fft2(samples - mean)) ** 2, axis=0) / 32 ** 2
  rings = frequency_rings((32, 32))
  counts = np.bincount(rings.reshape(-1))
  sample_rings = np.bincount(rings.reshape(-1), weights=periodogram.reshape(-1)) / counts
  model_rings = np.bincount(rings.reshape(-1), weights=spectrum.reshape(-1)) / counts
  # Each ring ≥ 1 averages ≥ 2 independent exponential periodogram values per sample (std ≤ 1.3%);
  # the DC term is S_0 χ²₁ (std 2.6% over 3,000 samples).
  np.testing.assert_allclose(sample_rings[1:], model_rings[1:], rtol=0.06)
  np.testing.assert_allclose(sample_rings[0], model_rings[0], rtol=0.12)


def test_whitening_is_the_inverse_square_root_of_the_dense_covariance_and_colouring_undoes_it(x64):
  params = random_params(3)
  model = StationaryGaussian(image_shape=SHAPE)
  x = np.random.default_rng(4).normal(size=(5, *SHAPE))
  z = np.asarray(model.apply({"params": params}, x, method="whiten"))
  # C = V diag(λ) Vᵀ (real, symmetric): the symmetric whitening C^(−1/2) (x − μ) is the FFT's.
  values, vectors = np.linalg.eigh(dense_covariance(params["log_spectrum"]))
  inverse_root = vectors @ np.diag(values ** -0.5) @ vectors.T
  expected = (x.reshape(5, -1) - params["mean"]) @ inverse_root.T
  np.testing.assert_allclose(z.reshape(5, -1), expected, rtol=1e-10, atol=1e-12)
  back = np.asarray(model.apply({"params": params}, z, method="colour"))
  np.testing.assert_allclose(back, x, rtol=1e-10, atol=1e-12)
  # F(x) = ½‖z‖²: the whitened image is the one the energy measures.
  energy = np.asarray(model.apply({"params": params}, x, method="free_energy"))
  np.testing.assert_allclose(energy, 0.5 * np.sum(z.reshape(5, -1) ** 2, axis=1), rtol=1e-10)


def test_bad_input_is_named():
  with pytest.raises(ValueError, match=r"image_shape\[1\] \(W\) must be a positive int, got 0"):
    StationaryGaussian(image_shape=(4, 0))
  with pytest.raises(ValueError, match="spectrum_exponent must be a finite number >= 0, got -1"):
    StationaryGaussian(image_shape=(4, 4), spectrum_exponent=-1)
  with pytest.raises(ValueError, match=r"needs a \(B, H, W\) stack of real grey images, got shape \(4, 4\)"):
    StationaryGaussian.fit(np.zeros((4, 4)))
  with pytest.raises(ValueError, match=r"takes the image shape from the images.*got image_shape=\(4, 4\)"):
    StationaryGaussian.fit(np.zeros((3, 4, 4)), image_shape=(4, 4))
  with pytest.raises(ValueError, match="same mean pixel value"):
    StationaryGaussian.fit(np.random.default_rng(0).normal(size=(1, 4, 4)))
  model = StationaryGaussian(image_shape=(4, 6))
  variables = model.init(jax.random.key(0), jnp.zeros((1, 24)))
  with pytest.raises(ValueError, match=r"expects images of shape \(batch, 4, 6\).*got \(2, 6, 4\)"):
    model.apply(variables, jnp.zeros((2, 6, 4)), method="free_energy")
  with pytest.raises(ValueError, match="n .*must be a positive int, got 0"):
    model.apply(variables, jax.random.key(0), 0, method="sample")
