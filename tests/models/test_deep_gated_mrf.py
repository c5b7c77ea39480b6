"""Deep gated MRFs: features by hand, and the conditional p(x | h) a sampler uses, against NumPy.

References are written in NumPy from reference/gated-mrf.md, independently of the modules: the
conditional Gaussian Λ = C diag(P h_c) Cᵀ + I, μ = Λ⁻¹(W h_m + b_v). Sampling the stack is tested in
tests/samplers/test_deep_gated_mrf_sampling.py.
"""

import numpy as np
import pytest

from deepvision.models import dbn
from deepvision.models import deep_gated_mrf as dgm
from deepvision.models.gated_mrf import MCRBM, MPoT
from deepvision.models.rbm import RBM, GaussianRBM
from rbm_testing import random_params

SMALL = dict(n_visible=4, n_factors=2, n_cov=2, n_mean=2)  # 4 layer-1 codes: 16 states


def gated_layer(model, seed, scale=1.0, dtype=np.float32):
  """(model, params): entries scale·N(0, 1), P = |P| (non-negative as in training)."""
  params = random_params(model, seed, scale, dtype=dtype)
  params["P"] = np.abs(params["P"])
  return model, params


def rbm_layer(n_visible, n_hidden, seed):
  model = RBM(n_visible=n_visible, n_hidden=n_hidden)
  return model, random_params(model, seed, dtype=np.float32)


def sigmoid(z):
  return 1.0 / (1.0 + np.exp(-z))


def gaussian_moments(p, h_c, h_m):
  """(μ, Σ) of p(x | h) for one hidden state: Σ⁻¹ = C diag(P h_c) Cᵀ + I, μ = Σ(W h_m + b_v)."""
  p = {k: np.asarray(v, np.float64) for k, v in p.items()}
  precision = p["C"] @ np.diag(p["P"] @ h_c) @ p["C"].T + np.eye(len(p["b_v"]))
  covariance = np.linalg.inv(precision)
  return covariance @ (p["W"] @ h_m + p["b_v"]), covariance


# Features ---------------------------------------------------------------------------------------


def test_features_compose_the_posterior_means_by_hand():
  """mPoT (γ = 2: RBM 2 sees E[h_c | x]/γ = 1/a) → RBM 4×3 → RBM 3×2."""
  gamma = 2.0
  model, p = gated_layer(MPoT(**SMALL, gamma=gamma), seed=0)
  rbms = [rbm_layer(4, 3, 1), rbm_layer(3, 2, 2)]
  x = np.random.default_rng(3).normal(size=(5, 2, 2, 1)).astype(np.float32)
  flat = x.reshape(5, 4).astype(np.float64)
  q = {k: np.asarray(v, np.float64) for k, v in p.items()}
  rates = 1 + 0.5 * (flat @ q["C"]) ** 2 @ q["P"]
  mean_probs = sigmoid(flat @ q["W"] + q["b_m"])
  expected = [flat, np.concatenate([gamma / rates, mean_probs], 1)]
  h = np.concatenate([1 / rates, mean_probs], 1)
  for _, params in rbms:
    h = sigmoid(h @ np.asarray(params["W"], np.float64) + np.asarray(params["b_h"], np.float64))
    expected.append(h)
  for depth, want in enumerate(expected):
    got = dgm.features((model, p), rbms, x, depth=depth)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6)
  np.testing.assert_allclose(dgm.layer_one_codes((model, p), x), expected[1] / [gamma, gamma, 1, 1],
                             rtol=2e-5, atol=2e-6)
  assert np.all(dgm.layer_one_codes((model, p), 3 * x) <= 1)
  np.testing.assert_array_equal(dgm.features((model, p), rbms, x), dgm.features((model, p), rbms, x, 3))
  # An mcRBM's codes are its hidden_probs: the stack above it is a DBN on them.
  mcrbm = gated_layer(MCRBM(**SMALL), seed=4)
  codes = mcrbm[0].apply({"params": mcrbm[1]}, x, method="hidden_probs")
  np.testing.assert_array_equal(dgm.features(mcrbm, rbms, x, depth=1), codes)
  np.testing.assert_allclose(dgm.features(mcrbm, rbms, x), dbn.features(rbms, codes), rtol=1e-6)


# What a sampler needs: the visibles given layer 1 -------------------------------------------------


@pytest.mark.parametrize("form", ["paper", "original"])
def test_conditional_energy_and_natural_parameters(x64, form):
  """E(x, h) up to terms free of x; (η, Λ) of p(x | h), the paper-form formula for the original form."""
  model, p = gated_layer(MCRBM(**SMALL, input_norm=form), seed=7, dtype=np.float64)
  h_c, h_m = np.array([[1.0, 1.0], [0.0, 1.0]]), np.array([[1.0, 0.0], [1.0, 1.0]])
  xs = np.random.default_rng(8).normal(size=(2, 4))
  diff = lambda f: f(xs) - f(np.zeros_like(xs))  # noqa: E731
  np.testing.assert_allclose(
      diff(lambda x: dgm.conditional_energy((model, p), x, h_c, h_m)),
      diff(lambda x: model.apply({"params": p}, x, h_c, h_m, method="energy")), rtol=1e-12)
  natural, precision = dgm.conditional_natural((model, p), h_c, h_m)
  for i in range(2):
    mean, covariance = gaussian_moments(p, h_c[i], h_m[i])
    np.testing.assert_allclose(precision[i], np.linalg.inv(covariance), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.linalg.solve(precision[i], natural[i]), mean, rtol=1e-10, atol=1e-12)
  assert dgm.has_gaussian_conditional(model) == (form == "paper")
  codes = np.array([[1.0, 0.0, 1.0, 1.0]])
  h_c, h_m = dgm.hiddens_from_codes(MPoT(**SMALL, gamma=1.7), codes)
  np.testing.assert_allclose(h_c, [[1.7, 0.0]])
  np.testing.assert_array_equal(h_m, [[1.0, 1.0]])


# Bad inputs -------------------------------------------------------------------------------------


def test_bad_stacks_are_rejected_before_any_compute():
  gmrf = gated_layer(MCRBM(**SMALL, input_norm="paper"), seed=20)
  rbms = [rbm_layer(4, 3, 21), rbm_layer(3, 2, 22)]
  x = np.zeros((2, 4), np.float32)
  with pytest.raises(ValueError, match=r"layer 2 \(an RBM\) has n_visible=5 but the gated MRF \(layer 1\) "
                     r"has n_cov \+ n_mean=4"):
    dgm.features(gmrf, [rbm_layer(5, 3, 0)], x)
  with pytest.raises(ValueError, match=r"layer 3 \(an RBM\) has n_visible=2 but layer 2 has n_hidden=3"):
    dgm.check_stack(gmrf, [rbms[0], rbm_layer(2, 2, 0)])
  with pytest.raises(ValueError, match="layer 2 must be a binary RBM .* got GaussianRBM"):
    dgm.features(gmrf, [(GaussianRBM(n_visible=4, n_hidden=3), rbms[0][1])], x)
  with pytest.raises(ValueError, match="layer 1 of a deep gated MRF must be an MCRBM or an MPoT, got RBM"):
    dgm.features(rbms[0], [], x)
  with pytest.raises(ValueError, match=r"depth must be an int in \[0, 3\] .* got 4"):
    dgm.features(gmrf, rbms, x, depth=4)
