"""Conditional sampling (inpainting) against exact conditional means: enumeration, quadrature, Gaussians.

References are written in NumPy from the energies of reference/gated-mrf.md, independently of the
modules: for the paper-form mcRBM p(x_m | x_o) is a mixture over the 2^(N+M) hidden states of
Gaussians (x integrated out in closed form); for the original-form mcRBM and the mPoT, E[x_m | x_o]
is a trapezoid quadrature of exp(−F) over the missing coordinates; with b_c large and W = 0 the
paper-form mcRBM is a Gaussian whose conditionals `GaussianModel` gives. Monte Carlo estimates run
one chain per example on copies of each test point; their tolerance is a multiple of the standard
error measured across the independent chains. Everything numerical runs in float64.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from deepvision.data.whiten import PCAWhitening
from deepvision.models.gated_mrf import MCRBM, MPoT
from deepvision.models.gaussian import GaussianModel
from deepvision.samplers.conditional import inpaint_gibbs, inpaint_hmc
from deepvision.samplers.hmc import model_energy
from deepvision.samplers.pixel_space import pixel_space_energy
from rbm_testing import binary_states, random_params

SIZES = dict(n_visible=4, n_factors=3, n_cov=3, n_mean=2)
CHAINS = 512
Z_SCORE = 4.5  # a few coordinates per test: a 4.5-standard-error miss is a failure, not bad luck


def gated_params(model, seed):
  params = random_params(model, seed)
  params["P"] = np.abs(params["P"])
  return params


def softplus(a):
  return np.logaddexp(0.0, a)


def replicate(x, masks, chains=CHAINS):
  return np.repeat(x, chains, axis=0), np.repeat(masks, chains, axis=0)


def chain_mean_and_error(estimates, points, chains=CHAINS):
  """Mean over the chains of each point and its standard error, (points, D) each."""
  estimates = np.asarray(estimates).reshape(points, chains, -1)
  return estimates.mean(1), estimates.std(1, ddof=1) / np.sqrt(chains)


def assert_within_error(estimates, exact, masks, chains=CHAINS, floor=1e-4):
  mean, error = chain_mean_and_error(estimates, len(exact), chains)
  missing = ~masks
  z = np.abs(mean - exact)[missing] / (error[missing] + floor)
  assert z.max() < Z_SCORE, (mean[missing], exact[missing], error[missing])
  return error[missing]


# Exact references ------------------------------------------------------------------------------


def paper_mcrbm_conditional_mean(p, x, observed):
  """E[x_m | x_o] of the paper-form mcRBM by enumerating h = (h_c, h_m).

  For fixed h, E(x, h) = ½xᵀΛx − ηᵀx − b_cᵀh_c − b_mᵀh_m with Λ = C diag(P h_c) Cᵀ + I and
  η = W h_m + b_v; integrating x_m out, p(h, x_o) ∝ |Λ_mm|^(−½) exp(½bᵀΛ_mm⁻¹b − ½x_oᵀΛ_oo x_o +
  η_oᵀx_o + b_cᵀh_c + b_mᵀh_m) with b = η_m − Λ_mo x_o, and E[x_m | x_o, h] = Λ_mm⁻¹ b.
  Returns (the mixture mean, the spread of the per-h means around it).
  """
  n_cov = p["b_c"].size
  o, m = np.flatnonzero(observed), np.flatnonzero(~observed)
  log_weights, means = [], []
  for state in binary_states(n_cov + p["b_m"].size):
    h_c, h_m = state[:n_cov], state[n_cov:]
    precision = p["C"] @ np.diag(p["P"] @ h_c) @ p["C"].T + np.eye(x.size)
    eta = p["W"] @ h_m + p["b_v"]
    block = precision[np.ix_(m, m)]
    b = eta[m] - precision[np.ix_(m, o)] @ x[o]
    mean = np.linalg.solve(block, b)
    log_weights.append(-0.5 * np.linalg.slogdet(block)[1] + 0.5 * b @ mean
                       - 0.5 * x[o] @ precision[np.ix_(o, o)] @ x[o] + eta[o] @ x[o]
                       + p["b_c"] @ h_c + p["b_m"] @ h_m)
    means.append(mean)
  weights = np.exp(np.array(log_weights) - max(log_weights))
  weights /= weights.sum()
  means = np.array(means)
  exact = np.array(x, np.float64)
  exact[m] = weights @ means
  return exact, np.sqrt(weights @ (means - exact[m]) ** 2)


def original_mcrbm_free_energy(p, x):
  x_tilde = x / np.sqrt(np.sum(x * x, -1, keepdims=True) / x.shape[-1] + 0.5)
  u = 0.5 * (x_tilde @ p["C"]) ** 2 @ p["P"]
  return (0.5 * np.sum(x * x, -1) - x @ p["b_v"] - softplus(p["b_c"] - u).sum(-1)
          - softplus(x @ p["W"] + p["b_m"]).sum(-1))


def mpot_free_energy(p, x, gamma):
  a = 1 + 0.5 * (x @ p["C"]) ** 2 @ p["P"]
  return (gamma * np.log(a).sum(-1) + 0.5 * np.sum(x * x, -1) - x @ p["b_v"]
          - softplus(x @ p["W"] + p["b_m"]).sum(-1))


def quadrature_conditional_mean(free_energy, x, observed, half_width=10.0, points=801):
  """E[x_m | x_o] ∝ ∫ x_m exp(−F(x)) dx_m by the trapezoid rule on a grid (1 or 2 missing values)."""
  m = np.flatnonzero(~observed)
  axis = np.linspace(-half_width, half_width, points)
  grids = np.meshgrid(*([axis] * m.size), indexing="ij")
  xs = np.tile(x, (grids[0].size, 1))
  for i, grid in zip(m, grids):
    xs[:, i] = grid.ravel()
  log_density = -free_energy(xs).reshape(grids[0].shape)
  trapezoid = np.ones(points)
  trapezoid[[0, -1]] = 0.5
  weights = np.ones_like(log_density)
  for d in range(m.size):
    weights = weights * trapezoid.reshape([-1 if e == d else 1 for e in range(m.size)])
  density = weights * np.exp(log_density - log_density.max())
  density /= density.sum()
  edge = max(np.take(density, [0, -1], axis=d).max() for d in range(m.size))
  assert edge < 1e-8 * density.max()  # the grid holds the mass
  exact = np.array(x, np.float64)
  exact[m] = [np.sum(density * grid) for grid in grids]
  return exact


def gaussian_mcrbm(seed, n_visible=4):
  """A paper-form mcRBM that is a Gaussian: b_c = 60 (h_c = 1 always), W = 0 (h_m irrelevant).

  Then p(x) = N(Λ⁻¹b_v, Λ⁻¹), Λ = C diag(P·1) Cᵀ + I (the softplus of b_c − u is b_c − u to 1e-20).
  """
  model = MCRBM(n_visible=n_visible, n_factors=3, n_cov=3, n_mean=2, input_norm="paper")
  p = gated_params(model, seed)
  p["b_c"] = np.full(3, 60.0)
  p["W"] = np.zeros_like(p["W"])
  precision = p["C"] @ np.diag(p["P"].sum(1)) @ p["C"].T + np.eye(n_visible)
  covariance = np.linalg.inv(precision)
  return model, p, GaussianModel(covariance @ p["b_v"], (covariance + covariance.T) / 2)


# Exactness ------------------------------------------------------------------------------------


def assert_observed_bitwise(out, x, masks):
  out = np.asarray(out).reshape(x.shape)
  np.testing.assert_array_equal(out[masks].view(np.uint64), x[masks].view(np.uint64))
  assert np.all(np.isfinite(out))


def test_gibbs_and_hmc_find_the_exact_conditional_mean_of_a_paper_form_mcrbm(x64):
  model = MCRBM(**SIZES, input_norm="paper")
  p = gated_params(model, seed=1)
  x = np.random.default_rng(5).normal(size=(2, 4))
  x[0, 0] = -0.0  # a sign bit that any arithmetic on observed values would lose
  masks = np.array([[True, True, False, False], [False, True, True, True]])  # per-example masks
  exact, spread = zip(*(paper_mcrbm_conditional_mean(p, xi, mi) for xi, mi in zip(x, masks)))
  exact, spread = np.array(exact), np.concatenate(spread)
  xs, ms = replicate(x, masks)
  holes = np.where(ms, xs, np.nan)  # missing values are never read
  gibbs = inpaint_gibbs(model, {"params": p}, holes, ms, jax.random.key(0), num_steps=200, burn_in=20)
  assert_observed_bitwise(gibbs, xs, ms)
  error = assert_within_error(gibbs, exact, masks)
  # The test discriminates: the tolerance is far below how much the mixture's components disagree.
  assert np.all(Z_SCORE * error < 0.3 * spread), (error, spread)
  hmc, info = inpaint_hmc(model, {"params": p}, holes, ms, jax.random.key(1), num_steps=300, burn_in=100,
                          num_leapfrog=10, return_info=True)
  assert_observed_bitwise(hmc, xs, ms)
  assert_within_error(hmc, exact, masks)
  assert 0.5 < float(info.acceptance_rate) <= 1.0


@pytest.mark.parametrize("kind", ["mcrbm_original_hmc", "mpot_gibbs"])
def test_samplers_of_non_gaussian_conditionals_match_quadrature(x64, kind):
  if kind.startswith("mcrbm"):
    model = MCRBM(**SIZES, input_norm="original")
    p = gated_params(model, seed=3)
    free_energy = lambda v: original_mcrbm_free_energy(p, v)
  else:
    model = MPoT(**SIZES, gamma=1.5)
    p = gated_params(model, seed=4)
    free_energy = lambda v: mpot_free_energy(p, v, 1.5)
  x = np.random.default_rng(6).normal(size=(2, 4))
  masks = np.array([[True, True, False, True], [False, True, False, True]])
  exact = np.array([quadrature_conditional_mean(free_energy, xi, mi) for xi, mi in zip(x, masks)])
  xs, ms = replicate(x, masks)
  key = jax.random.key(2)
  if kind.endswith("gibbs"):
    estimates = inpaint_gibbs(model, {"params": p}, xs, ms, key, num_steps=200, burn_in=20)
  else:
    estimates = inpaint_hmc(model, {"params": p}, xs, ms, key, num_steps=300, burn_in=100,
                            num_leapfrog=10)
  assert_within_error(estimates, exact, masks)


def test_with_a_gaussian_model_both_give_the_gaussian_conditional(x64):
  model, p, gaussian = gaussian_mcrbm(seed=7)
  x = np.random.default_rng(8).normal(size=(2, 4))
  masks = np.array([[True, False, True, False], [False, False, False, True]])
  exact, conditional_cov = gaussian.conditional(x, masks)
  xs, ms = replicate(x, masks)
  gibbs = inpaint_gibbs(model, {"params": p}, xs, ms, jax.random.key(0), num_steps=3, burn_in=1)
  # Rao-Blackwellised, every conditional mean E[x_m | x_o, h] is the Gaussian's conditional mean.
  np.testing.assert_allclose(np.asarray(gibbs).reshape(2, CHAINS, 4), np.repeat(exact[:, None], CHAINS, 1),
                             rtol=1e-10, atol=1e-10)
  hmc = inpaint_hmc(model, {"params": p}, xs, ms, jax.random.key(1), num_steps=300, burn_in=100,
                    num_leapfrog=10)
  assert_within_error(hmc, exact, masks)
  # One Gibbs draw is an exact sample of x_m | x_o: its covariance is Σ_mm − Σ_mo Σ_oo⁻¹ Σ_om.
  draws = np.asarray(inpaint_gibbs(model, {"params": p}, xs, ms, jax.random.key(2), num_steps=1,
                                   burn_in=0, average=False)).reshape(2, CHAINS, 4)
  for b in range(2):
    m = np.flatnonzero(~masks[b])
    centred = draws[b][:, m] - exact[b, m]  # about the exact mean
    sample_cov = centred.T @ centred / CHAINS
    target = conditional_cov[b][np.ix_(m, m)]
    # Standard error of each entry of a sample covariance: sqrt((Σ_ii Σ_jj + Σ_ij²) / n).
    error = np.sqrt((np.outer(np.diag(target), np.diag(target)) + target ** 2) / CHAINS)
    assert np.all(np.abs(sample_cov - target) < Z_SCORE * error), (sample_cov, target)
    assert np.all(np.abs(centred.mean(0)) < Z_SCORE * np.sqrt(np.diag(target) / CHAINS))


# Pixel space ----------------------------------------------------------------------------------


def correlated_pixels(seed, n=4000, dim=6):
  """Draws of one fixed Gaussian over `dim` pixels (eigenvalues 4 … 0.09), from `seed`."""
  fixed = np.random.default_rng(dim)
  rotation, _ = np.linalg.qr(fixed.normal(size=(dim, dim)))
  mixing, offset = rotation * np.geomspace(2.0, 0.3, dim), fixed.normal(size=dim)
  return np.random.default_rng(seed).normal(size=(n, dim)) @ mixing.T + offset


def pca_residual_covariance(pixels, kept):
  """Σ with its D − K smallest eigenvalues replaced by their mean (probabilistic PCA's ML fit)."""
  centred = pixels - pixels.mean(0)
  values, vectors = np.linalg.eigh(centred.T @ centred / len(pixels))
  values, vectors = values[::-1], vectors[:, ::-1]
  if kept < values.size:
    values = np.concatenate([values[:kept], np.full(values.size - kept, values[kept:].mean())])
  return (vectors * values) @ vectors.T


def test_pixel_energy_gradient_matches_autodiff_and_finite_differences(x64):
  pixels = correlated_pixels(0)
  whitening = PCAWhitening.fit(pixels, variance=0.9)
  assert whitening.num_components < 6
  model = MCRBM(n_visible=whitening.num_components, n_factors=3, n_cov=3, n_mean=2)  # original form
  variables = {"params": gated_params(model, seed=2)}
  x = jnp.asarray(pixels[:5])
  for energy, inputs in ((pixel_space_energy(model, variables, whitening), x),
                         (model_energy(model, variables), jnp.asarray(whitening.transform(pixels[:5])))):
    value, grad = jax.jit(energy.energy_and_grad_fn)(inputs)
    np.testing.assert_allclose(value, jax.jit(energy.energy_fn)(inputs), rtol=1e-12)
    autodiff = jax.jit(jax.grad(lambda v: jnp.sum(energy.energy_fn(v))))(inputs)
    np.testing.assert_allclose(grad, autodiff, rtol=1e-10, atol=1e-12)
  check_grads(jax.jit(pixel_space_energy(model, variables, whitening).energy_fn), (x,), order=1,
              modes=("rev",), eps=1e-5)


@pytest.mark.parametrize("variance", [1.0, 0.8])
def test_pixel_energy_of_a_gaussian_model_is_the_pca_gaussian_density(x64, variance):
  pixels = correlated_pixels(1)
  whitening = PCAWhitening.fit(pixels, variance=variance)
  kept = whitening.num_components
  model = MCRBM(n_visible=kept, n_factors=2, n_cov=2, n_mean=2, input_norm="paper")
  p = gated_params(model, seed=3)
  p["C"], p["W"] = np.zeros_like(p["C"]), np.zeros_like(p["W"])  # F(z) = ½‖z‖² − b_vᵀz + const
  energy = pixel_space_energy(model, {"params": p}, whitening).energy_fn
  # z ~ N(b_v, I), i.e. pixels ~ N(m + U diag(√λ) b_v, Σ with the discarded eigenvalues averaged).
  covariance = pca_residual_covariance(pixels, kept)
  if variance == 1.0:
    assert kept == 6
    np.testing.assert_allclose(covariance, np.cov(pixels.T, bias=True), rtol=1e-12, atol=1e-12)
  mean = whitening.mean + whitening.components @ (np.sqrt(whitening.eigenvalues) * p["b_v"])
  reference = GaussianModel(mean, covariance)
  x = correlated_pixels(2, n=50)  # held out
  total = np.asarray(energy(jnp.asarray(x))) + reference.log_prob(x)  # −log p + log p = constant
  np.testing.assert_allclose(total - total.mean(), 0.0, atol=1e-9 * np.abs(total).max())


def test_pixel_space_inpainting_of_a_gaussian_model_is_the_pixel_gaussian_conditional(x64):
  pixels = correlated_pixels(3, dim=5)
  whitening = PCAWhitening.fit(pixels, variance=0.9)
  kept = whitening.num_components
  model, p, latent = gaussian_mcrbm(seed=9, n_visible=kept)
  u, s = whitening.components, whitening.scales
  residual_variance = 0.3
  pixel_gaussian = GaussianModel(
      whitening.mean + u @ (s * latent.mean),
      (u * s) @ latent.covariance @ (u * s).T + residual_variance * (np.eye(5) - u @ u.T))
  x = pixels[:2]
  masks = np.array([[True, False, True, False, True], [False, True, True, True, False]])
  exact, _ = pixel_gaussian.conditional(x, masks)
  xs, ms = replicate(x, masks)
  kwargs = dict(whitening=whitening, residual_variance=residual_variance)
  gibbs = inpaint_gibbs(model, {"params": p}, xs, ms, jax.random.key(0), num_steps=2, burn_in=1, **kwargs)
  np.testing.assert_allclose(np.asarray(gibbs).reshape(2, CHAINS, 5), np.repeat(exact[:, None], CHAINS, 1),
                             rtol=1e-9, atol=1e-9)
  hmc = inpaint_hmc(model, {"params": p}, xs, ms, jax.random.key(1), num_steps=300, burn_in=100,
                    num_leapfrog=10, **kwargs)
  assert_within_error(hmc, exact, masks)


def test_whitening_that_drops_only_zero_variance_needs_a_residual_variance(x64):
  pixels = correlated_pixels(4)
  pixels -= pixels.mean(1, keepdims=True)  # DC removed: one direction with no variance
  whitening = PCAWhitening.fit(pixels, variance=1.0)
  model = MCRBM(n_visible=whitening.num_components, n_factors=2, n_cov=2, n_mean=2)
  variables = {"params": gated_params(model, seed=0)}
  with pytest.raises(ValueError, match="residual_variance"):
    pixel_space_energy(model, variables, whitening)
  pixel_space_energy(model, variables, whitening, residual_variance=1e-2)
  with pytest.raises(ValueError, match="n_visible=3 but the whitening keeps K=5"):
    pixel_space_energy(MCRBM(n_visible=3, n_factors=2, n_cov=2, n_mean=2), variables, whitening)


# Contract -------------------------------------------------------------------------------------


def test_float32_hmc_keeps_dtype_shape_and_observed_bits_and_starts_at_init():
  model = MCRBM(**SIZES)
  variables = {"params": {k: v.astype(np.float32) for k, v in gated_params(model, seed=1).items()}}
  x = np.random.default_rng(0).normal(size=(3, 2, 2)).astype(np.float32)
  x[0, 0, 0] = -0.0
  mask = np.array([[[True, False], [True, True]], [[False, False], [True, True]],
                   [[True, True], [False, True]]])
  init = np.full(x.shape, 3.0, np.float32)
  out = inpaint_hmc(model, variables, np.where(mask, x, np.nan), mask, jax.random.key(0), num_steps=1,
                    burn_in=0, num_leapfrog=1, step_size=1e-3, average=False, init=init)
  out = np.asarray(out)
  assert out.shape == x.shape and out.dtype == np.float32
  np.testing.assert_array_equal(out[mask].view(np.uint32), x[mask].view(np.uint32))
  np.testing.assert_allclose(out[~mask], 3.0, atol=0.02)  # one leapfrog step of 1e-3 from init


@pytest.mark.parametrize("mask, message", [
    (np.ones((2, 3), bool), r"shape \(2, 3\)"),
    (np.array([1, 0, 1, 0]), "bool"),
    (np.ones(4, bool), "nothing missing"),
    (np.array([[True, False, True, False], [False] * 4]), "nothing observed for 1 example"),
])
@pytest.mark.parametrize("sampler", [inpaint_gibbs, inpaint_hmc])
def test_bad_masks_raise_before_any_compute(mask, message, sampler):
  model = MCRBM(**SIZES, input_norm="paper")
  variables = {"params": gated_params(model, seed=0)}
  with pytest.raises(ValueError, match=message):
    sampler(model, variables, np.zeros((2, 4)), mask, jax.random.key(0), num_steps=2, burn_in=1)


def test_gibbs_refuses_the_original_form_and_bad_arguments_raise():
  model = MCRBM(**SIZES)
  variables = {"params": gated_params(model, seed=0)}
  x, mask = np.zeros((2, 4)), np.array([True, False, True, False])
  with pytest.raises(ValueError, match="input_norm 'original'.*use inpaint_hmc"):
    inpaint_gibbs(model, variables, x, mask, jax.random.key(0), num_steps=2, burn_in=1)
  run = lambda **kw: inpaint_hmc(model, variables, x, mask, jax.random.key(0),
                                 **{"num_steps": 2, "burn_in": 1, **kw})
  with pytest.raises(ValueError, match="burn_in must be smaller"):
    run(burn_in=2)
  with pytest.raises(ValueError, match="step_size"):
    run(step_size=0.0)
  with pytest.raises(ValueError, match=r"expected \(B, 4\)"):
    inpaint_hmc(model, variables, np.zeros((2, 5)), np.ones(5, bool), jax.random.key(0), num_steps=2,
                burn_in=1)
  with pytest.raises(ValueError, match="positive definite"):
    run(covariance=-np.eye(4))
  with pytest.raises(ValueError, match="needs a whitening"):
    run(residual_variance=1.0)
