"""The marginal wavelet model: exact GG log-likelihood against NumPy/SciPy, ML fits, exact samples, gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import pywt
import scipy.stats
from jax.test_util import check_grads

from deepvision.models.wavelet_prior import WaveletPrior, fit_generalized_gaussian, golden_section_minimum

pytestmark = pytest.mark.filterwarnings("ignore:Level value of")


def known_params(levels, seed=0):
  rng = np.random.default_rng(seed)
  return {"log_scale": np.log(rng.uniform(0.3, 2.0, (levels, 3))),
          "log_shape": np.log(rng.uniform(0.6, 2.0, (levels, 3))),
          "low_mean": np.asarray(0.7), "low_log_std": np.asarray(np.log(1.5))}


def numpy_log_prob(x, params, wavelet, levels):
  """Σ log GG over the subbands of pywt.wavedec2 + Σ log N over the lowpass band, per image."""
  coefficients = pywt.wavedec2(x, wavelet, mode="periodization", level=levels)
  scale, shape = np.exp(params["log_scale"]), np.exp(params["log_shape"])
  total = scipy.stats.norm(params["low_mean"], np.exp(params["low_log_std"])).logpdf(
      coefficients[0]).sum(axis=(-2, -1))
  energy = 0.5 * np.sum(((coefficients[0] - params["low_mean"]) / np.exp(params["low_log_std"])) ** 2, (-2, -1))
  for level in range(1, levels + 1):
    for o, band in enumerate(coefficients[levels + 1 - level]):
      s, beta = scale[level - 1, o], shape[level - 1, o]
      total += scipy.stats.gennorm(beta, scale=s).logpdf(band).sum(axis=(-2, -1))
      energy += np.sum(np.abs(band / s) ** beta, axis=(-2, -1))
  return total, energy


def test_free_energy_and_exact_log_likelihood_against_scipy(x64):
  model = WaveletPrior(image_shape=(8, 16), wavelet="db2", levels=2)
  params = known_params(2)
  x = np.random.default_rng(1).laplace(size=(4, 8, 16))
  log_prob, energy = numpy_log_prob(x, params, "db2", 2)
  np.testing.assert_allclose(model.apply({"params": params}, x, method="free_energy"), energy, rtol=1e-10)
  np.testing.assert_allclose(model.apply({"params": params}, x, method="log_prob"), log_prob, rtol=1e-10)


def test_gradients_match_finite_differences(x64):
  x = jnp.asarray(np.random.default_rng(2).normal(size=(2, 8, 8)))
  params = jax.tree.map(jnp.asarray, known_params(2, seed=3))
  smooth = {**params, "log_shape": jnp.log(jnp.linspace(1.2, 2.5, 6).reshape(2, 3))}  # β > 1: F is C¹
  model = WaveletPrior(image_shape=(8, 8), wavelet="haar", levels=2)
  # ∂/∂x of F and ∂/∂θ of log p = −F − log Z (through log Z too), in one check.
  check_grads(jax.jit(lambda p, x: model.apply({"params": p}, x, method="log_prob")), (smooth, x), order=1,
              modes=("rev",))
  # β < 1 with the documented smoothing sqrt(c² + ε²).
  smoothed = WaveletPrior(image_shape=(8, 8), wavelet="haar", levels=2, epsilon=0.1)
  check_grads(jax.jit(lambda x: smoothed.apply({"params": params}, x, method="free_energy")), (x,), order=1,
              modes=("rev",))


@pytest.mark.parametrize("beta, scale", [(0.7, 0.3), (1.0, 2.0), (2.0, 1.0)])
def test_the_ml_fit_recovers_known_generalized_gaussians(beta, scale):
  data = scipy.stats.gennorm(beta, scale=scale).rvs(size=20000, random_state=np.random.default_rng(4))
  fitted_scale, fitted_beta = fit_generalized_gaussian(data)
  assert fitted_beta == pytest.approx(beta, rel=0.05) and fitted_scale == pytest.approx(scale, rel=0.05)
  # The ML solution: SciPy's own maximum-likelihood fit of the same family agrees.
  reference_beta, _, reference_scale = scipy.stats.gennorm.fit(data, floc=0)
  assert fitted_beta == pytest.approx(reference_beta, rel=2e-3)
  assert fitted_scale == pytest.approx(reference_scale, rel=2e-3)


def test_exact_samples_are_fitted_back_to_their_parameters():
  model = WaveletPrior(image_shape=(16, 16), wavelet="db2", levels=2)
  params = known_params(2, seed=5)
  samples = jax.jit(lambda key: model.apply({"params": params}, key, 600, method="sample"))(jax.random.key(6))
  assert samples.shape == (600, 16, 16)
  _, fitted = WaveletPrior.fit(np.asarray(samples), wavelet="db2", levels=2)
  fitted = fitted["params"]
  # Level 2 has 16 coefficients per image and subband (9,600 in all), level 1 has 64.
  np.testing.assert_allclose(np.exp(fitted["log_shape"]), np.exp(params["log_shape"]), rtol=0.08)
  np.testing.assert_allclose(np.exp(fitted["log_scale"]), np.exp(params["log_scale"]), rtol=0.08)
  assert float(fitted["low_mean"]) == pytest.approx(0.7, abs=0.06)  # σ/√(9,600) ≈ 0.015
  assert float(np.exp(fitted["low_log_std"])) == pytest.approx(1.5, rel=0.03)


def test_bad_fields_and_input_are_named():
  with pytest.raises(ValueError, match="H=12 is not a multiple of 2\\^levels = 8"):
    WaveletPrior(image_shape=(12, 16), levels=3)
  with pytest.raises(ValueError, match="'bior1.3' is not orthogonal"):
    WaveletPrior(image_shape=(8, 8), wavelet="bior1.3")
  with pytest.raises(ValueError, match="epsilon must be a finite number >= 0, got -0.1"):
    WaveletPrior(image_shape=(8, 8), levels=2, epsilon=-0.1)
  with pytest.raises(ValueError, match="levels must be a positive int, got 0"):
    WaveletPrior(image_shape=(8, 8), levels=0)
  images = np.random.default_rng(0).normal(size=(2, 8, 8))
  images[1, 2, 3] = np.nan
  with pytest.raises(ValueError, match="WaveletPrior.fit got 1 non-finite values"):
    WaveletPrior.fit(images, levels=2)
  with pytest.raises(ValueError, match="WaveletPrior.fit takes the image shape from the images"):
    WaveletPrior.fit(np.ones((2, 8, 8)), image_shape=(8, 8), levels=2)
  with pytest.raises(ValueError, match="at least 2 finite values, not all zero"):
    fit_generalized_gaussian(np.zeros(10))


def test_golden_section_finds_the_minimum_of_a_unimodal_function():
  assert abs(golden_section_minimum(lambda x: (x - 1.234) ** 2, -3.0, 5.0) - 1.234) < 1e-9
  # At a bound: the minimiser of a monotone function on the bracket is its end.
  assert abs(golden_section_minimum(lambda x: x, 0.5, 2.0) - 0.5) < 1e-9
