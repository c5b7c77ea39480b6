"""Deep gated MRF sampling: visibles against N(μ, Σ) and quadrature, stacks by enumeration.

References are written in NumPy from reference/gated-mrf.md, independently of the modules: the
conditional Gaussian Λ = C diag(P h_c) Cᵀ + I, μ = Λ⁻¹(W h_m + b_v); 2-D quadrature of exp(−E(x, h))
for the original-form mcRBM; exact RBM marginals by enumerating every binary state. Sample moments are
compared within 5 standard errors.
"""

import jax
import numpy as np
import pytest

from deepvision.models.gated_mrf import MCRBM, MPoT
from deepvision.models.rbm import RBM
from deepvision.samplers import deep_gated_mrf as dgm
from deepvision.samplers import gated_mrf as gmrf_sampling
from rbm_testing import binary_states, random_params

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


def softplus(z):
  return np.logaddexp(0.0, z)


def gaussian_moments(p, h_c, h_m):
  """(μ, Σ) of p(x | h) for one hidden state: Σ⁻¹ = C diag(P h_c) Cᵀ + I, μ = Σ(W h_m + b_v)."""
  p = {k: np.asarray(v, np.float64) for k, v in p.items()}
  precision = p["C"] @ np.diag(p["P"] @ h_c) @ p["C"].T + np.eye(len(p["b_v"]))
  covariance = np.linalg.inv(precision)
  return covariance @ (p["W"] @ h_m + p["b_v"]), covariance


def assert_moments(samples, mean, covariance):
  """Sample mean and covariance within 5 standard errors of (μ, Σ) (iid draws)."""
  n = len(samples)
  sd = np.sqrt(np.diag(covariance))
  assert np.all(np.abs(samples.mean(0) - mean) < 5 * sd / np.sqrt(n)), (samples.mean(0), mean)
  cov_se = np.sqrt((np.outer(sd ** 2, sd ** 2) + covariance ** 2) / n)
  error = np.abs(np.cov(samples.T) - covariance)
  assert np.all(error < 5 * cov_se), (error / cov_se)


def exact_rbm(p):
  """(p(v) over binary_states(V), p(h) over binary_states(H)) of a binary RBM, by enumeration."""
  p = {k: np.asarray(v, np.float64) for k, v in p.items()}
  v, h = binary_states(len(p["b_v"])), binary_states(len(p["b_h"]))
  log_v = v @ p["b_v"] + softplus(v @ p["W"] + p["b_h"]).sum(1)
  log_h = h @ p["b_h"] + softplus(h @ p["W"].T + p["b_v"]).sum(1)
  return [np.exp(a - a.max()) / np.exp(a - a.max()).sum() for a in (log_v, log_h)]


def state_frequencies(states):
  """Empirical distribution over binary_states order (unit 0 the least significant bit)."""
  states = np.asarray(states)
  codes = states.astype(np.int64) @ (2 ** np.arange(states.shape[1]))
  return np.bincount(codes, minlength=2 ** states.shape[1]) / len(states)


def total_variation(p, q):
  return 0.5 * np.abs(p - q).sum()


# Visibles given layer 1 (samplers.gated_mrf) ----------------------------------------------------------------------


@pytest.mark.parametrize("model", [MCRBM(**SMALL, input_norm="paper"), MPoT(**SMALL, gamma=1.7)],
                         ids=["mcrbm_paper", "mpot"])
def test_one_layer_gaussian_visibles_draw_from_the_conditional_gaussian(x64, model):
  """No RBMs: `start` gives the codes z; x ~ N(μ, Σ) at h_c = s·z_c (s = γ for the mPoT), h_m = z_m."""
  layer = gated_layer(model, seed=5, dtype=np.float64)
  codes = np.array([[1.0, 0.0, 1.0, 1.0], [1.0, 1.0, 0.0, 1.0]])
  n = 4000
  x, info = dgm.sample(jax.random.key(6), layer, [], 2 * n, top_gibbs_steps=0,
                       start=np.repeat(codes, n, 0), visible="auto")
  assert info.top is None and np.isnan(info.visible.hmc_acceptance)
  scale = model.gamma if isinstance(model, MPoT) else 1.0
  np.testing.assert_array_equal(info.h_c, scale * np.repeat(codes[:, :2], n, 0))
  for i, z in enumerate(codes):
    mean, covariance = gaussian_moments(layer[1], scale * z[:2], z[2:])
    np.testing.assert_allclose(info.visible.gaussian_mean[i * n], mean, rtol=1e-10)
    assert_moments(np.asarray(x[i * n:(i + 1) * n]), mean, covariance)


def test_hmc_on_the_joint_energy_matches_the_gaussian_for_the_paper_form(x64):
  """Same target, from x = 0: HMC's samples have the moments of N(μ, Σ)."""
  model, p = gated_layer(MCRBM(**SMALL, input_norm="paper"), seed=7, dtype=np.float64)
  h_c, h_m = np.array([[1.0, 1.0], [0.0, 1.0]]), np.array([[1.0, 0.0], [1.0, 1.0]])
  n = 2000
  x, info = gmrf_sampling.sample_visible(jax.random.key(9), (model, p), np.repeat(h_c, n, 0), np.repeat(h_m, n, 0),
                               visible="hmc", hmc_steps=60, hmc_burn_in=20, hmc_step_size=0.1,
                               hmc_init="zeros")
  assert 0.6 < info.hmc_acceptance <= 1 and 0.001 <= info.hmc_step_size <= 0.25
  for i in range(2):
    mean, covariance = gaussian_moments(p, h_c[i], h_m[i])
    assert_moments(np.asarray(x[i * n:(i + 1) * n]), mean, covariance)


def test_original_form_visibles_follow_the_joint_energy_by_quadrature(x64):
  """D = 2: HMC's moments match a grid integral of exp(−E(x, h)) with x̃ = x/sqrt(‖x‖²/2 + ½)."""
  model, p = gated_layer(MCRBM(n_visible=2, n_factors=2, n_cov=2, n_mean=1), seed=10, scale=1.5,
                         dtype=np.float64)
  h_c, h_m = np.array([1.0, 1.0]), np.array([1.0])
  axis = np.linspace(-8, 8, 401)
  grid = np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
  tilde = grid / np.sqrt(np.mean(grid ** 2, 1, keepdims=True) + 0.5)
  energy = (0.5 * (tilde @ p["C"]) ** 2 @ p["P"] @ h_c + 0.5 * np.sum(grid ** 2, 1) - grid @ p["b_v"]
            - grid @ p["W"] @ h_m)
  weights = np.exp(-(energy - energy.min()))
  weights /= weights.sum()
  mean = weights @ grid
  covariance = (grid - mean).T @ ((grid - mean) * weights[:, None])
  # The paper-form Gaussian is a different distribution here: a sampler of it would fail below.
  approx_mean, approx_cov = gaussian_moments(p, h_c, h_m)
  assert np.max(np.abs(approx_cov - covariance)) > 0.2 and np.max(np.abs(approx_mean - mean)) > 0.1
  with pytest.raises(ValueError, match="visible 'gaussian' needs a Gaussian p\\(x \\| h\\).*'original'"):
    gmrf_sampling.sample_visible(jax.random.key(0), (model, p), h_c[None], h_m[None], visible="gaussian")
  n = 4000
  x, info = gmrf_sampling.sample_visible(jax.random.key(11), (model, p), np.tile(h_c, (n, 1)), np.tile(h_m, (n, 1)),
                               visible="auto", hmc_steps=60, hmc_burn_in=20, hmc_step_size=0.1)
  np.testing.assert_allclose(info.gaussian_mean[0], approx_mean, rtol=1e-10)
  assert info.hmc_acceptance > 0.6
  assert_moments(np.asarray(x), mean, covariance)


# The stack: top-level Gibbs and the top-down pass ------------------------------------------------


def test_top_gibbs_and_top_down_pass_match_the_exact_marginals_and_the_documented_pass():
  """mPoT (γ = 2, 4 codes) → RBM 4×3 → RBM 3×2: top states and layer-1 codes against enumeration."""
  gmrf = gated_layer(MPoT(**SMALL, gamma=2.0), seed=12)
  rbms = [rbm_layer(4, 3, 13), rbm_layer(3, 2, 14)]
  (m2, p2), (m3, p3) = rbms
  p_top_visible, p_top_hidden = exact_rbm(p3)
  bottom = {k: np.asarray(v, np.float64) for k, v in p2.items()}
  on = sigmoid(binary_states(3) @ bottom["W"].T + bottom["b_v"])  # p(z_i = 1 | h²), (8, 4)
  z = binary_states(4)
  likelihood = np.prod(np.where(z[None] == 1, on[:, None], 1 - on[:, None]), -1)  # (8, 16)
  p_codes = p_top_visible @ likelihood
  assert p_top_visible.max() > 2 / 8 and p_codes.max() > 2 / 16  # a stuck chain would fail
  n = 20000
  start = np.zeros((n, 3), np.float32)  # every chain starts in the same state
  key = jax.random.key(15)
  x, info = dgm.sample(key, gmrf, rbms, n, top_gibbs_steps=30, start=start)
  assert x.shape == (n, 4) and info.codes.shape == (n, 4) and np.all(np.isfinite(x))
  assert set(np.unique(np.asarray(info.codes))) <= {0.0, 1.0}
  for empirical, exact in ((info.top.position, p_top_visible), (info.top.hidden, p_top_hidden),
                           (info.codes, p_codes)):
    tv = total_variation(state_frequencies(empirical), exact)
    assert tv < 0.03, (tv, exact)
  # The documented pass: codes ~ p(z | h²) of RBM 2 with fold_in(down_key, 1); h_c = γ z_c, h_m = z_m.
  _, down_key, _ = jax.random.split(key, 3)
  codes = m2.apply({"params": p2}, jax.random.fold_in(down_key, 1), info.top.position,
                   method="sample_visible")
  np.testing.assert_array_equal(info.codes, codes)
  np.testing.assert_array_equal(info.h_c, 2.0 * codes[:, :2])
  np.testing.assert_array_equal(info.h_m, codes[:, 2:])
  for i in range(3):  # x is drawn from p(x | h) at those hiddens
    mean, _ = gaussian_moments(gmrf[1], np.asarray(info.h_c[i]), np.asarray(info.h_m[i]))
    np.testing.assert_allclose(info.visible.gaussian_mean[i], mean, rtol=2e-4, atol=1e-5)
  # mean_field: the same top chain, then conditional means down to the codes.
  _, info = dgm.sample(key, gmrf, rbms, n, top_gibbs_steps=30, start=start, mean_field=True)
  h2 = m3.apply({"params": p3}, info.top.hidden, method="visible_mean")
  np.testing.assert_allclose(info.codes, m2.apply({"params": p2}, h2, method="visible_mean"), rtol=1e-6)


# Bad inputs -------------------------------------------------------------------------------------


def test_bad_stacks_and_arguments_are_rejected_before_any_compute():
  gmrf = gated_layer(MCRBM(**SMALL, input_norm="paper"), seed=20)
  rbms = [rbm_layer(4, 3, 21), rbm_layer(3, 2, 22)]
  key = jax.random.key(0)
  with pytest.raises(ValueError, match=r"layer 3 \(an RBM\) has n_visible=2 but layer 2 has n_hidden=3"):
    dgm.sample(key, gmrf, [rbms[0], rbm_layer(2, 2, 0)], 2, top_gibbs_steps=1)
  with pytest.raises(ValueError, match="visible must be one of 'auto', 'gaussian', 'hmc', got 'exact'"):
    dgm.sample(key, gmrf, rbms, 2, top_gibbs_steps=1, visible="exact")
  with pytest.raises(ValueError, match="hmc_init must be one of 'gaussian', 'zeros', got 'data'"):
    dgm.sample(key, gmrf, rbms, 2, top_gibbs_steps=1, hmc_init="data")
  with pytest.raises(ValueError, match=r"hmc_burn_in must be an int in \[0, hmc_steps=10\), got 10"):
    dgm.sample(key, gmrf, rbms, 2, top_gibbs_steps=1, hmc_steps=10, hmc_burn_in=10)
  with pytest.raises(ValueError, match=r"start must hold \(num_samples, n_visible of the top RBM\) = "
                     r"\(2, 3\) states, got shape \(2, 2\)"):
    dgm.sample(key, gmrf, rbms, 2, top_gibbs_steps=1, start=np.zeros((2, 2)))
  with pytest.raises(ValueError, match="a stack without RBMs has no prior .* shape \\(num_samples, 4\\)"):
    dgm.sample(key, gmrf, [], 2, top_gibbs_steps=0)
  with pytest.raises(ValueError, match="top_gibbs_steps must be 0, got 5"):
    dgm.sample(key, gmrf, [], 2, top_gibbs_steps=5, start=np.zeros((2, 4)))
  with pytest.raises(ValueError, match="top_gibbs_steps must be an int >= 0, got -1"):
    dgm.sample(key, gmrf, rbms, 2, top_gibbs_steps=-1)
  with pytest.raises(ValueError, match=r"h_c and h_m must be \(batch, n_cov=2\) and \(batch, n_mean=2\)"):
    gmrf_sampling.sample_visible(key, gmrf, np.zeros((2, 3)), np.zeros((2, 2)))
