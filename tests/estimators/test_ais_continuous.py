"""AIS for continuous visibles (gated MRFs) against exact log Z: enumeration and grid quadrature.

References, independent of the estimators: the paper-form mcRBM's log Z by enumerating its hidden
states (itself checked against a D = 2 grid quadrature of exp(−F)), and for the original
(normalised-input) mcRBM and the mPoT, whose x-integrals have no closed form, the same quadrature.
The free energies of the references are NumPy transcriptions of reference/gated-mrf.md. Everything
numerical runs in float64 on tiny models with random (not small) parameters, P ≥ 0.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepvision.estimators import ais, partition
from deepvision.models.gated_mrf import MCRBM, MPoT
from deepvision.models.rbm import GaussianRBM
from rbm_testing import random_params, random_variables

TINY = dict(n_visible=4, n_factors=3, n_cov=3, n_mean=2)
PLANE = dict(n_visible=2, n_factors=3, n_cov=3, n_mean=2)  # D = 2: quadrature on a grid
GAMMA = 1.5


def gated_params(model, seed, scale=1.5):
  """Random float64 params, every entry scale·N(0, 1), P = |·| (non-negative as in training)."""
  params = random_params(model, seed, scale=scale)
  params["P"] = np.abs(params["P"])
  return params


def softplus(z):
  return np.logaddexp(0.0, z)


def mcrbm_free_energy(p, x, form):
  x_tilde = x if form == "paper" else x / np.sqrt(np.sum(x * x, 1, keepdims=True) / x.shape[1] + 0.5)
  pooled = 0.5 * (x_tilde @ p["C"]) ** 2 @ p["P"]
  return (0.5 * np.sum(x * x, 1) - x @ p["b_v"] - softplus(p["b_c"] - pooled).sum(1)
          - softplus(x @ p["W"] + p["b_m"]).sum(1))


def mpot_free_energy(p, x, gamma):
  rates = 1 + 0.5 * (x @ p["C"]) ** 2 @ p["P"]
  return (gamma * np.log(rates).sum(1) + 0.5 * np.sum(x * x, 1) - x @ p["b_v"]
          - softplus(x @ p["W"] + p["b_m"]).sum(1))


def grid(half_width=14.0, spacing=0.05):
  """A square grid of the plane, (n², 2), and the area of one cell."""
  axis = np.arange(-half_width, half_width + spacing / 2, spacing)
  return np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2), spacing ** 2


def log_quadrature(free_energy):
  """log ∫ exp(−F(x)) dx over the plane (the rectangle rule: exact to rounding for integrands this
  smooth that vanish at the grid's edges, which the test checks)."""
  points, area = grid()
  log_integrand = -free_energy(points)
  side = math.isqrt(points.shape[0])
  on_grid = log_integrand.reshape(side, side)
  top = log_integrand.max()
  assert max(on_grid[[0, -1]].max(), on_grid[:, [0, -1]].max()) < top - 40  # nothing left outside
  return top + math.log(np.sum(np.exp(log_integrand - top)) * area)


def log_mean_exp(a):
  return a.max() + math.log(np.mean(np.exp(a - a.max())))


def assert_within(result, exact, tolerance):
  assert abs(result.log_z - exact) <= tolerance, (result.log_z, exact)
  assert result.log_z_lower <= exact <= result.log_z_upper, (result, exact)


# The exact reference -----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_exact_paper_mcrbm_log_z_equals_grid_quadrature(seed):
  p = gated_params(MCRBM(**PLANE, input_norm="paper"), seed)
  exact = partition.exact_log_partition_paper_mcrbm(p)
  assert exact == pytest.approx(log_quadrature(lambda x: mcrbm_free_energy(p, x, "paper")), abs=1e-9)
  # The same from the variables dict, and in chunks of 5 of the 32 hidden states.
  assert partition.exact_log_partition_paper_mcrbm({"params": p}, chunk_size=5) == pytest.approx(
      exact, abs=1e-12)


def test_exact_paper_mcrbm_log_z_without_interactions():
  # C = 0 and W = 0: the hiddens decouple from x,
  # Z = (2π)^{D/2} e^{½‖b_v‖²} Π_k (1 + e^{b_c_k}) Π_j (1 + e^{b_m_j}).
  p = gated_params(MCRBM(**TINY, input_norm="paper"), seed=3)
  p["C"], p["W"] = np.zeros_like(p["C"]), np.zeros_like(p["W"])
  expected = (2 * math.log(2 * math.pi) + 0.5 * p["b_v"] @ p["b_v"] + softplus(p["b_c"]).sum()
              + softplus(p["b_m"]).sum())
  assert partition.exact_log_partition_paper_mcrbm(p) == pytest.approx(expected, abs=1e-12)


def test_log_likelihood_is_a_normalised_density(x64):
  model = MCRBM(**PLANE, input_norm="paper")
  p = gated_params(model, seed=4)
  log_z = partition.exact_log_partition_paper_mcrbm(p)
  points, area = grid(spacing=0.1)
  log_density = np.asarray(partition.log_likelihood(model, {"params": p}, points, log_z))
  np.testing.assert_allclose(log_density, -mcrbm_free_energy(p, points, "paper") - log_z, rtol=1e-12)
  assert np.sum(np.exp(log_density)) * area == pytest.approx(1.0, abs=1e-9)
  result = ais.summarize_log_weights(np.array([log_z]))  # an AISResult works as log_z
  np.testing.assert_allclose(partition.log_likelihood(model, {"params": p}, points[:3], result),
                             log_density[:3], rtol=1e-12)


# AIS against the references -----------------------------------------------------------------------


def test_ais_matches_exact_log_z_of_a_paper_mcrbm(x64):
  model = MCRBM(**TINY, input_norm="paper")
  p = gated_params(model, seed=5)
  exact = partition.exact_log_partition_paper_mcrbm(p)
  result = ais.ais_log_partition_continuous(model, {"params": p}, jax.random.key(0),
                                            betas=ais.linear_betas(1000), num_runs=100,
                                            step_size=0.2)
  assert result.log_z_base == pytest.approx(2 * math.log(2 * math.pi) + 0.5 * p["b_v"] @ p["b_v"],
                                            abs=1e-12)
  assert exact - result.log_z_base > 3.0  # far from the base: not won by importance sampling alone
  assert result.num_temperatures == 1000 and result.log_weights.shape == (100,)
  assert 0.5 < result.acceptance_rate < 1.0
  assert_within(result, exact, 0.05)
  assert result.log_z_upper - result.log_z_lower < 0.1


@pytest.mark.parametrize("kind", ["original_mcrbm", "mpot"])
def test_ais_matches_quadrature_on_the_plane(x64, kind):
  if kind == "mpot":
    model, trajectories = MPoT(**PLANE, gamma=GAMMA), 2
    p = gated_params(model, seed=6)
    reference = log_quadrature(lambda x: mpot_free_energy(p, x, GAMMA))
  else:
    model, trajectories = MCRBM(**PLANE), 1
    p = gated_params(model, seed=7)
    reference = log_quadrature(lambda x: mcrbm_free_energy(p, x, "original"))
  result = ais.ais_log_partition_continuous(model, {"params": p}, jax.random.key(1),
                                            betas=ais.linear_betas(1000), num_runs=200,
                                            step_size=0.2, num_trajectories=trajectories)
  assert abs(reference - result.log_z_base) > 1.0
  assert 0.5 < result.acceptance_rate < 1.0
  assert_within(result, reference, 0.05)


def test_ais_with_autodiff_gradients_in_float32_matches_a_gaussian_rbm():
  # No closed-form gradient (jax.vjp of free_energy), float32, σ ≠ 1 (the base N(b_v, I) is not the
  # model's Gaussian part): the exact log Z sums the 4 hidden units out.
  model = GaussianRBM(n_visible=3, n_hidden=4, learn_sigma=True)
  variables = random_variables(model, seed=8)
  exact = float(partition.log_partition(model, variables))
  result = ais.ais_log_partition_continuous(model, variables, jax.random.key(2),
                                            betas=ais.linear_betas(1000), num_runs=200,
                                            step_size=0.2)
  assert result.log_weights.dtype == np.float64 and exact - result.log_z_base > 2.0
  assert_within(result, exact, 0.05)


def test_two_temperatures_are_importance_sampling_from_the_base(x64):
  # β ∈ {0, 1}: no transition; log w_m = log Z_0 − F(x_m) + F_0(x_m) = −F(x_m) − log N(x_m; b_v, I)
  # for the documented draws x_m = b_v + N(0, I) from the first half of the key.
  model = MCRBM(**TINY)
  p = gated_params(model, seed=9)
  key = jax.random.key(3)
  result = ais.ais_log_partition_continuous(model, {"params": p}, key, betas=[0.0, 1.0],
                                            num_runs=50)
  x = p["b_v"] + np.asarray(jax.random.normal(jax.random.split(key)[0], (50, 4), jnp.float64))
  log_base_density = -0.5 * np.sum((x - p["b_v"]) ** 2, 1) - 2 * math.log(2 * math.pi)
  log_w = -mcrbm_free_energy(p, x, "original") - log_base_density
  np.testing.assert_allclose(result.log_weights, log_w, rtol=1e-12)
  assert result.log_z == pytest.approx(log_mean_exp(log_w), abs=1e-12)
  assert math.isnan(result.acceptance_rate) and result.num_temperatures == 2


def test_adapting_a_too_small_step_size_mixes_better_and_stays_accurate(x64):
  # From ε = 0.01 nearly every trajectory is accepted but barely moves: the adaptation raises ε until
  # about 10% are rejected, and the log weights spread less than with ε kept at 0.01 (same draws).
  model = MPoT(**PLANE, gamma=GAMMA)
  p = gated_params(model, seed=6)
  reference = log_quadrature(lambda x: mpot_free_energy(p, x, GAMMA))
  run = lambda adapt: ais.ais_log_partition_continuous(  # noqa: E731
      model, {"params": p}, jax.random.key(4), betas=ais.linear_betas(1000), num_runs=200,
      step_size=0.01, num_trajectories=2, adapt_step_size=adapt)
  adapted, fixed = run(True), run(False)
  assert fixed.acceptance_rate > 0.99 and adapted.acceptance_rate < 0.97
  assert adapted.log_z_std < 0.5 * fixed.log_z_std
  assert_within(adapted, reference, 0.1)


# Bad arguments ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, message", [
    (dict(num_runs=0), "num_runs must be an int >= 1, got 0"),
    (dict(num_trajectories=1.5), "num_trajectories must be an int >= 1, got 1.5"),
    (dict(num_leapfrog=0), "num_leapfrog must be an int >= 1, got 0"),
    (dict(step_size=0.0), "step_size must be a finite number > 0, got 0.0"),
    (dict(step_size=float("nan")), "step_size must be a finite number > 0, got nan"),
    (dict(step_size=[0.1, 0.2]), r"step_size must be a number > 0, got \[0.1, 0.2\]"),
    (dict(step_size=0.5, adapt_step_size=True), r"within step_size_bounds=\(0.001, 0.25\)"),
    (dict(adapt_step_size="yes"), "adapt_step_size must be True or False, got 'yes'"),
    (dict(betas=[0.0, 0.7, 0.5, 1.0]), r"strictly increasing; betas\[2\] = 0.5"),
    (dict(betas=[0.0, 0.5]), r"end at exactly 1"),
    (dict(num_visible=5), r"num_visible=5 differs from MCRBM.n_visible=4"),
])
def test_bad_arguments_are_errors(kwargs, message):
  model = MCRBM(**TINY)
  with pytest.raises(ValueError, match=message):
    ais.ais_log_partition_continuous(model, {"params": gated_params(model, 0)}, jax.random.key(0),
                                     **kwargs)


def test_bad_models_and_params_are_errors():
  model = MCRBM(**TINY)
  p = gated_params(model, 0)
  key = jax.random.key(0)
  with pytest.raises(ValueError, match=r"params\['b_v'\] must have shape \(4,\).*\(3,\)"):
    ais.ais_log_partition_continuous(model, {"params": {**p, "b_v": np.zeros(3)}}, key)
  with pytest.raises(ValueError, match="has no free_energy method"):
    ais.ais_log_partition_continuous(object(), {"params": p}, key, num_visible=4)
  negative = p["P"].copy()
  negative[1, 2] = -0.5
  with pytest.raises(ValueError, match="P must be non-negative.*-0.5"):
    partition.exact_log_partition_paper_mcrbm({**p, "P": negative})
  with pytest.raises(ValueError, match="params lack b_c"):
    partition.exact_log_partition_paper_mcrbm({k: v for k, v in p.items() if k != "b_c"})
  with pytest.raises(ValueError, match=r"params\['W'\] has shape \(3, 2\)"):
    partition.exact_log_partition_paper_mcrbm({**p, "W": np.zeros((3, 2))})
  with pytest.raises(ValueError, match=r"N \+ M = 3 \+ 2 hidden units \(2\^5 states\), more than "
                                       r"max_units=4"):
    partition.exact_log_partition_paper_mcrbm(p, max_units=4)
  with pytest.raises(ValueError, match=r"log_z must be a scalar.*\(2,\)"):
    partition.log_likelihood(model, {"params": p}, np.zeros((1, 4)), np.zeros(2))
