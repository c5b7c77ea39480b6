"""The Gaussian (PCA) baseline against closed forms: ML fit, densities, quadrature, conditioning."""

import itertools
import json
import math

import numpy as np
import pytest

from deepvision.models.gaussian import GaussianModel

MEAN = np.array([1.0, -2.0, 0.5])
COVARIANCE = np.array([[2.0, 0.6, -0.4],
                       [0.6, 1.0, 0.3],
                       [-0.4, 0.3, 0.5]])


def _brute_force_log_prob(x, mean, covariance):
  """log N(x; μ, Σ) from slogdet and the explicit inverse."""
  d = len(mean)
  diff = x - mean
  quadratic = np.einsum("bi,ij,bj->b", diff, np.linalg.inv(covariance), diff)
  return -0.5 * (d * math.log(2 * math.pi) + np.linalg.slogdet(covariance)[1] + quadratic)


def _precision_conditional(x, observed, mean, covariance):
  """x_m | x_o from the precision Λ = Σ⁻¹: N(μ_m − Λ_mm⁻¹ Λ_mo (x_o − μ_o), Λ_mm⁻¹)."""
  precision = np.linalg.inv(covariance)
  o, m = np.flatnonzero(observed), np.flatnonzero(~observed)
  cov_mm = np.linalg.inv(precision[np.ix_(m, m)])
  mean_m = mean[m] - (x[o] - mean[o]) @ (cov_mm @ precision[np.ix_(m, o)]).T
  return mean_m, cov_mm


def test_fit_is_the_maximum_likelihood_estimate_plus_ridge():
  x = np.random.default_rng(0).normal(size=(20, 4))
  model = GaussianModel.fit(x, ridge=0.25)
  np.testing.assert_allclose(model.mean, x.mean(axis=0), rtol=1e-14)
  np.testing.assert_allclose(model.covariance, np.cov(x.T, bias=True) + 0.25 * np.eye(4), rtol=1e-13)


def test_fit_recovers_a_known_gaussian_from_many_samples():
  rng = np.random.default_rng(1)
  x = rng.multivariate_normal(MEAN, COVARIANCE, size=100_000)
  model = GaussianModel.fit(x)
  # Standard errors: √(Σ_ii / N) ≈ 0.0045 for the mean, ≈ 0.009 for the covariance entries.
  np.testing.assert_allclose(model.mean, MEAN, atol=0.03)
  np.testing.assert_allclose(model.covariance, COVARIANCE, atol=0.05)


def test_samples_follow_the_model_and_repeat_with_the_seed():
  model = GaussianModel(MEAN, COVARIANCE)
  samples = model.sample(3, 100_000)
  assert samples.shape == (100_000, 3) and samples.dtype == np.float64
  refit = GaussianModel.fit(samples)
  np.testing.assert_allclose(refit.mean, MEAN, atol=0.03)
  np.testing.assert_allclose(refit.covariance, COVARIANCE, atol=0.05)
  np.testing.assert_array_equal(model.sample(3, 10), model.sample(np.random.default_rng(3), 10))
  assert not np.array_equal(model.sample(3, 10), model.sample(4, 10))


def test_log_prob_of_a_diagonal_gaussian_is_the_sum_of_1d_log_densities():
  mean, std = np.array([0.5, -1.0, 2.0]), np.array([0.3, 1.0, 2.5])
  model = GaussianModel(mean, np.diag(std ** 2))
  x = np.random.default_rng(2).normal(size=(6, 3)) * 2
  expected = np.sum(-0.5 * ((x - mean) / std) ** 2 - np.log(std) - 0.5 * math.log(2 * math.pi), axis=1)
  log_prob = model.log_prob(x)
  assert log_prob.shape == (6,) and log_prob.dtype == np.float64
  np.testing.assert_allclose(log_prob, expected, rtol=1e-13)


def test_log_prob_with_a_full_covariance_matches_brute_force():
  x = np.random.default_rng(3).normal(size=(5, 3))
  model = GaussianModel(MEAN, COVARIANCE)
  np.testing.assert_allclose(model.log_prob(x), _brute_force_log_prob(x, MEAN, COVARIANCE), rtol=1e-12)
  # Images with D elements are flattened.
  np.testing.assert_array_equal(model.log_prob(x.reshape(5, 3, 1)), model.log_prob(x))


def test_density_integrates_to_one_in_1d():
  model = GaussianModel(np.array([0.7]), np.array([[0.09]]))
  grid = np.linspace(0.7 - 12 * 0.3, 0.7 + 12 * 0.3, 20_001)
  density = np.exp(model.log_prob(grid[:, None]))
  integral = np.sum((density[1:] + density[:-1]) / 2 * np.diff(grid))  # trapezoid rule
  assert integral == pytest.approx(1.0, abs=1e-9)
  mean = np.sum(((grid * density)[1:] + (grid * density)[:-1]) / 2 * np.diff(grid))
  assert mean == pytest.approx(0.7, abs=1e-9)


def test_conditional_matches_the_precision_formula_for_every_mask_in_3d():
  model = GaussianModel(MEAN, COVARIANCE)
  rng = np.random.default_rng(4)
  masks = [np.array(bits, bool) for bits in itertools.product([False, True], repeat=3)
           if 0 < sum(bits) < 3]
  x = rng.normal(size=(len(masks), 3))
  mean, cov = model.conditional(x, np.stack(masks))  # one mask per example
  assert mean.shape == (6, 3) and cov.shape == (6, 3, 3)
  for b, observed in enumerate(masks):
    expected_mean, expected_cov = _precision_conditional(x[b], observed, MEAN, COVARIANCE)
    m, o = np.flatnonzero(~observed), np.flatnonzero(observed)
    np.testing.assert_allclose(mean[b, m], expected_mean, rtol=1e-12)
    np.testing.assert_allclose(cov[b][np.ix_(m, m)], expected_cov, rtol=1e-12)
    np.testing.assert_array_equal(mean[b, o], x[b, o])
    np.testing.assert_array_equal(cov[b][o, :], 0.0)
    np.testing.assert_array_equal(cov[b][:, o], 0.0)


def test_a_shared_mask_gives_the_same_as_the_mask_repeated():
  model = GaussianModel(MEAN, COVARIANCE)
  x = np.random.default_rng(5).normal(size=(4, 3))
  shared = np.array([True, False, True])
  mean, cov = model.conditional(x, shared)
  mean_each, cov_each = model.conditional(x, np.tile(shared, (4, 1)))
  np.testing.assert_array_equal(mean, mean_each)
  np.testing.assert_array_equal(cov, cov_each)
  # Monte Carlo: the regression of x_1 on (x_0, x_2) among joint samples has the conditional slope.
  joint = model.sample(6, 200_000)
  design = np.column_stack([np.ones(len(joint)), joint[:, [0, 2]]])
  coefficients = np.linalg.lstsq(design, joint[:, 1], rcond=None)[0]
  residual_variance = np.var(joint[:, 1] - design @ coefficients)
  probe = np.array([[0.3, 0.0, -0.2]])
  np.testing.assert_allclose(model.conditional(probe, shared)[0][0, 1],
                             np.array([1.0, 0.3, -0.2]) @ coefficients, atol=0.02)
  assert model.conditional(probe, shared)[1][0, 1, 1] == pytest.approx(residual_variance, rel=0.02)


def test_inpaint_keeps_observed_values_bitwise_and_fills_the_conditional_mean():
  model = GaussianModel(MEAN, COVARIANCE)
  x = np.random.default_rng(7).normal(size=(5, 3)).astype(np.float32)
  observed = np.random.default_rng(8).random((5, 3)) < 0.5
  observed[:, 0], observed[:, 1] = True, False  # at least one of each per example
  holes = np.where(observed, x, np.float32(np.nan))  # missing values may be anything
  filled = model.inpaint(holes, observed)
  assert filled.dtype == np.float32 and filled.shape == x.shape
  np.testing.assert_array_equal(filled[observed], x[observed])  # bit for bit
  expected, _ = model.conditional(x, observed)
  np.testing.assert_allclose(filled[~observed], expected[~observed], rtol=1e-6)
  assert np.all(np.isfinite(filled))
  # Images of D elements with a shared image-shaped mask.
  image_filled = model.inpaint(x.reshape(5, 3, 1), observed[0].reshape(3, 1))
  np.testing.assert_array_equal(image_filled.reshape(5, 3), model.inpaint(x, observed[0]))


def test_survives_json_exactly():
  model = GaussianModel.fit(np.random.default_rng(9).normal(size=(30, 4)), ridge=1e-3)
  restored = GaussianModel.from_dict(json.loads(json.dumps(model.to_dict())))
  np.testing.assert_array_equal(restored.mean, model.mean)
  np.testing.assert_array_equal(restored.covariance, model.covariance)
  x = np.random.default_rng(10).normal(size=(3, 4))
  np.testing.assert_array_equal(restored.log_prob(x), model.log_prob(x))
  with pytest.raises(ValueError, match=r"missing \['covariance'\]"):
    GaussianModel.from_dict({"mean": [0.0]})


@pytest.mark.parametrize("mask, message", [
    (np.array([False, False, False]), "nothing observed for 2 example"),
    (np.array([[True, False, True], [True, True, True]]), "nothing missing for 1 example.*example 1"),
    (np.array([1, 0, 1]), "must be a bool array.*got dtype int"),
    (np.array([True, False]), r"observed_mask has shape \(2,\); for x of shape \(2, 3\)"),
    (np.ones((3, 3), bool), r"observed_mask has shape \(3, 3\)"),
])
def test_bad_masks_are_rejected(mask, message):
  model = GaussianModel(MEAN, COVARIANCE)
  for method in (model.conditional, model.inpaint):
    with pytest.raises(ValueError, match=message):
      method(np.zeros((2, 3)), mask)


def test_bad_inputs_are_rejected():
  model = GaussianModel(MEAN, COVARIANCE)
  with pytest.raises(ValueError, match=r"log_prob got an array of shape \(2, 4\).*D = 3"):
    model.log_prob(np.zeros((2, 4)))
  with pytest.raises(ValueError, match=r"shape \(3,\)"):
    model.log_prob(np.zeros(3))
  with pytest.raises(ValueError, match="1 non-finite observed values"):
    model.conditional(np.array([[np.nan, 0.0, 0.0]]), np.array([True, False, True]))
  with pytest.raises(ValueError, match="n must be a positive integer, got 0"):
    model.sample(0, 0)
  with pytest.raises(ValueError, match=r"N ≥ 2 examples, got shape \(1, 3\)"):
    GaussianModel.fit(np.zeros((1, 3)))
  with pytest.raises(ValueError, match="ridge must be a finite number ≥ 0, got -0.1"):
    GaussianModel.fit(np.zeros((4, 3)), ridge=-0.1)
  with pytest.raises(ValueError, match="fit got 1 non-finite values"):
    GaussianModel.fit(np.array([[0.0, np.inf], [1.0, 2.0], [3.0, 1.0]]))
  with pytest.raises(ValueError, match="not positive definite.*ridge > 0"):
    GaussianModel.fit(np.random.default_rng(0).normal(size=(3, 5)))  # N ≤ D: singular
  assert GaussianModel.fit(np.random.default_rng(0).normal(size=(3, 5)), ridge=1e-3).dim == 5
  with pytest.raises(ValueError, match="covariance must be symmetric"):
    GaussianModel(np.zeros(2), np.array([[1.0, 0.5], [0.0, 1.0]]))
