"""PCA whitening against closed forms: identity covariance, exact round trips, discarded variance."""

import dataclasses
import json

import numpy as np
import pytest

from deepvision.data.whiten import PCAWhitening
from deepvision.models.gaussian import GaussianModel


def _correlated(n=2000, d=12, seed=0):
  """n draws of a d-dim Gaussian with a random covariance of widely spread eigenvalues, float64."""
  rng = np.random.default_rng(seed)
  q, _ = np.linalg.qr(rng.normal(size=(d, d)))
  scales = np.geomspace(3.0, 0.01, d)
  return 0.5 + (rng.normal(size=(n, d)) * scales) @ q.T


def _ml_eigenvalues(x):
  """Eigenvalues of the 1/N covariance of x (brute force, largest first)."""
  flat = x.reshape(len(x), -1)
  return np.linalg.eigvalsh(np.cov(flat.T, bias=True))[::-1]


def _diagonal_data():
  """8 points ±a_i e_i, a = (4, 3, 2, 1): mean 0 and 1/N covariance exactly diag(a²/4) =
  diag(4, 2.25, 1, 0.25), total 7.5, cumulative fractions 4/7.5, 6.25/7.5, 7.25/7.5, 1; the
  coordinates are then permuted, so the covariance is diagonal but not sorted."""
  a = np.array([4.0, 3.0, 2.0, 1.0])
  return np.concatenate([np.diag(a), -np.diag(a)]) @ _PERMUTATION


_PERMUTATION = np.eye(4)[:, [2, 0, 3, 1]]  # column j of the data is coordinate [2, 0, 3, 1][j]


def test_whitened_training_data_has_zero_mean_and_identity_covariance():
  x = _correlated()
  whitening = PCAWhitening.fit(x, variance=0.99)
  z = whitening.transform(x)
  assert z.shape == (2000, whitening.num_components) and z.dtype == np.float64
  assert whitening.input_dim == 12 and whitening.num_components < 12
  np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-12)
  np.testing.assert_allclose(z.T @ z / len(z), np.eye(whitening.num_components), atol=1e-10)
  np.testing.assert_allclose(whitening.components.T @ whitening.components,
                             np.eye(whitening.num_components), atol=1e-12)
  np.testing.assert_allclose(whitening.eigenvalues, _ml_eigenvalues(x)[:whitening.num_components],
                             rtol=1e-10)


def test_float32_in_float32_out_and_same_values():
  x = _correlated(n=300, d=6)
  whitening = PCAWhitening.fit(x.astype(np.float32), variance=1.0)
  z32 = whitening.transform(x.astype(np.float32))
  assert z32.dtype == np.float32 and whitening.inverse(z32).dtype == np.float32
  np.testing.assert_allclose(z32, whitening.transform(x), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("variance, k", [
    (0.1, 1), (4 / 7.5, 1), (0.54, 2), (6.25 / 7.5, 2), (0.834, 3), (7.25 / 7.5, 3), (0.97, 4),
    (1.0, 4)])
def test_k_is_the_smallest_number_of_components_reaching_the_fraction(variance, k):
  x = _diagonal_data()
  whitening = PCAWhitening.fit(x, variance=variance)
  assert whitening.num_components == k
  eigenvalues = np.array([4.0, 2.25, 1.0, 0.25])
  np.testing.assert_array_equal(whitening.eigenvalues, eigenvalues[:k])
  assert whitening.variance_kept == pytest.approx(eigenvalues[:k].sum() / 7.5, rel=1e-15)
  assert whitening.variance_kept >= variance
  # The eigenvectors of the permuted diagonal covariance are unit vectors, signed positive.
  expected = _PERMUTATION.T[:, :k]
  np.testing.assert_array_equal(whitening.components, expected)


def test_inverse_of_transform_is_the_identity_with_every_component():
  rng = np.random.default_rng(1)
  x = rng.normal(size=(200, 3, 3, 1)) * np.linspace(0.1, 2, 9).reshape(3, 3, 1) + 0.5
  whitening = PCAWhitening.fit(x, variance=1.0)
  assert whitening.num_components == 9 and whitening.patch_shape == (3, 3, 1)
  back = whitening.inverse(whitening.transform(x))
  assert back.shape == x.shape and back.dtype == np.float64
  np.testing.assert_allclose(back, x, rtol=0, atol=1e-10)
  # Flattened patches are accepted and give the same whitening.
  np.testing.assert_array_equal(whitening.transform(x.reshape(200, 9)), whitening.transform(x))


def test_reconstruction_error_per_pixel_is_the_discarded_variance_over_d():
  # On the training data, (1/(N·D)) Σ_n |x_n − inverse(transform(x_n))|² = (1/D) Σ_{k>K} λ_k.
  x = _correlated(n=1000, d=10, seed=3)
  whitening = PCAWhitening.fit(x, variance=0.9)
  k = whitening.num_components
  assert 1 <= k < 10
  residual = x - whitening.inverse(whitening.transform(x))
  eigenvalues = _ml_eigenvalues(x)
  assert np.mean(residual ** 2) == pytest.approx(eigenvalues[k:].sum() / 10, rel=1e-10)
  assert whitening.variance_kept == pytest.approx(eigenvalues[:k].sum() / eigenvalues.sum(),
                                                  rel=1e-12)
  assert eigenvalues[:k - 1].sum() / eigenvalues.sum() < 0.9 <= whitening.variance_kept


def test_rank_deficient_patches_drop_the_zero_variance_direction_even_at_variance_one():
  rng = np.random.default_rng(2)
  x = rng.uniform(size=(400, 4, 4, 1))
  x -= x.mean(axis=(1, 2, 3), keepdims=True)  # every patch sums to 0: rank 15
  whitening = PCAWhitening.fit(x, variance=1.0)
  assert whitening.num_components == 15
  z = whitening.transform(x)
  np.testing.assert_allclose(z.T @ z / 400, np.eye(15), atol=1e-10)
  np.testing.assert_allclose(whitening.inverse(z), x, atol=1e-10)
  # The dropped direction is the constant patch.
  np.testing.assert_allclose(whitening.components.sum(axis=0), 0.0, atol=1e-10)


def test_epsilon_shrinks_each_component_variance_to_lambda_over_lambda_plus_epsilon():
  x = _correlated(n=500, d=5, seed=4)
  plain = PCAWhitening.fit(x, variance=1.0)
  damped = PCAWhitening.fit(x, variance=1.0, epsilon=0.1)
  z = damped.transform(x)
  np.testing.assert_allclose(np.diag(z.T @ z / len(z)), plain.eigenvalues / (plain.eigenvalues + 0.1),
                             rtol=1e-10)
  np.testing.assert_allclose(damped.inverse(z), x, atol=1e-10)
  assert damped.log_det_jacobian == pytest.approx(-0.5 * np.sum(np.log(plain.eigenvalues + 0.1)))


def test_filter_weights_give_the_same_response_on_pixels():
  # Cᵀ transform(x) = filters_to_pixels(C)ᵀ (x − m) for any x, not only training data.
  x = _correlated(n=600, d=8, seed=5)
  whitening = PCAWhitening.fit(x, variance=0.95)
  rng = np.random.default_rng(6)
  filters = rng.normal(size=(whitening.num_components, 5))
  probe = 3.0 * rng.normal(size=(7, 8))
  pixel_filters = whitening.filters_to_pixels(filters)
  assert pixel_filters.shape == (8, 5)
  np.testing.assert_allclose(whitening.transform(probe) @ filters,
                             (probe - whitening.mean) @ pixel_filters, rtol=1e-10, atol=1e-10)
  # A filter's pattern is the pixel change whose whitening is the filter itself.
  patterns = whitening.filters_to_pixels(filters, kind="patterns")
  np.testing.assert_allclose(whitening.transform(whitening.mean + patterns.T), filters.T, atol=1e-10)
  np.testing.assert_allclose(patterns.T, whitening.inverse(filters.T) - whitening.mean, atol=1e-12)


def test_log_det_jacobian_turns_a_whitened_gaussian_into_the_pixel_gaussian():
  # K = D: the ML Gaussian of z plus the log-Jacobian is the ML Gaussian of x (change of variables).
  x = _correlated(n=800, d=6, seed=7)
  whitening = PCAWhitening.fit(x, variance=1.0)
  z = whitening.transform(x)
  probe = x[:5] + 0.3
  in_pixels = GaussianModel.fit(x).log_prob(probe)
  via_whitened = GaussianModel.fit(z).log_prob(whitening.transform(probe)) + whitening.log_det_jacobian
  np.testing.assert_allclose(via_whitened, in_pixels, rtol=1e-10)
  assert whitening.log_det_jacobian == pytest.approx(-0.5 * np.linalg.slogdet(np.cov(x.T, bias=True))[1],
                                                     rel=1e-10)
  # K < D: the same identity holds for the density of the PCA coordinates y = U_Kᵀ(x − m).
  partial = PCAWhitening.fit(x, variance=0.9)
  y = (x - partial.mean) @ partial.components
  y_probe = (probe - partial.mean) @ partial.components
  np.testing.assert_allclose(
      GaussianModel.fit(partial.transform(x)).log_prob(partial.transform(probe))
      + partial.log_det_jacobian, GaussianModel.fit(y).log_prob(y_probe), rtol=1e-10)


def test_survives_json_exactly_and_is_frozen():
  x = _correlated(n=300, d=16, seed=8).reshape(300, 4, 4, 1)
  whitening = PCAWhitening.fit(x, variance=0.97, epsilon=1e-3)
  restored = PCAWhitening.from_dict(json.loads(json.dumps(whitening.to_dict())))
  for field in ("mean", "components", "eigenvalues"):
    np.testing.assert_array_equal(getattr(restored, field), getattr(whitening, field))
  assert (restored.epsilon, restored.variance_kept, restored.patch_shape) == (
      whitening.epsilon, whitening.variance_kept, (4, 4, 1))
  np.testing.assert_array_equal(restored.transform(x), whitening.transform(x))
  with pytest.raises(dataclasses.FrozenInstanceError):
    whitening.mean = np.zeros(16)
  with pytest.raises(ValueError, match="read-only"):
    whitening.components[0, 0] = 1.0
  with pytest.raises(ValueError, match=r"missing \['patch_shape'\]"):
    PCAWhitening.from_dict({k: v for k, v in whitening.to_dict().items() if k != "patch_shape"})


def test_inputs_not_matching_the_fitted_whitening_are_rejected():
  whitening = PCAWhitening.fit(np.random.default_rng(0).normal(size=(50, 4, 4, 1)), variance=0.9)
  k = whitening.num_components
  with pytest.raises(ValueError, match=r"transform got an array of shape \(3, 5, 5, 1\), but the "
                                       r"whitening was fitted on patches of shape \(4, 4, 1\)"):
    whitening.transform(np.zeros((3, 5, 5, 1)))
  with pytest.raises(ValueError, match=r"shape \(3, 2, 8, 1\)"):  # 16 values, another patch shape
    whitening.transform(np.zeros((3, 2, 8, 1)))
  with pytest.raises(ValueError, match=r"shape \(3, 15\)"):
    whitening.check_input(np.zeros((3, 15)))
  with pytest.raises(ValueError, match=r"shape \(16,\)"):  # no batch axis
    whitening.transform(np.zeros(16))
  with pytest.raises(ValueError, match=rf"K = {k} components: expected \(B, {k}\)"):
    whitening.inverse(np.zeros((3, k + 1)))
  with pytest.raises(ValueError, match=rf"filters of shape \(16, 2\).*expected \(K, n\) = \({k}, n\)"):
    whitening.filters_to_pixels(np.zeros((16, 2)))
  with pytest.raises(ValueError, match="unknown kind 'pixels'; valid choices: weights, patterns"):
    whitening.filters_to_pixels(np.zeros((k, 2)), kind="pixels")
  flat = PCAWhitening.fit(np.random.default_rng(0).normal(size=(50, 16)), variance=0.9)
  assert flat.patch_shape is None
  with pytest.raises(ValueError, match=r"fitted on vectors of 16 inputs: expected \(B, 16\)"):
    flat.transform(np.zeros((3, 4, 4, 1)))


@pytest.mark.parametrize("variance", [0, 0.0, 1.5, -0.1, "a", True, float("nan"), None])
def test_variance_outside_zero_one_is_rejected(variance):
  with pytest.raises(ValueError, match=r"variance must be a number in \(0, 1\]"):
    PCAWhitening.fit(_diagonal_data(), variance=variance)


@pytest.mark.parametrize("x, epsilon, message", [
    (np.zeros((1, 3)), 0.0, r"N ≥ 2 examples, got shape \(1, 3\)"),
    (np.zeros(5), 0.0, r"N ≥ 2 examples, got shape \(5,\)"),
    (np.array([[0.0, np.inf], [1.0, 2.0]]), 0.0, "fit got 1 non-finite values"),
    (np.full((5, 3), 0.1), 0.0, "no variance"),
    (np.array([["a", "b"], ["c", "d"]]), 0.0, "real numbers"),
    (np.eye(3), -1.0, "epsilon must be a finite number ≥ 0, got -1.0"),
])
def test_fit_errors(x, epsilon, message):
  with pytest.raises(ValueError, match=message):
    PCAWhitening.fit(x, variance=0.9, epsilon=epsilon)
