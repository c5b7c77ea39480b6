"""Gated MRFs (mcRBM, mPoT) against brute force, quadrature, closed forms and finite differences.

Everything numerical runs in float64 on tiny models with random (not small) parameters, P ≥ 0. The
references are written in NumPy from the energies of reference/gated-mrf.md, independently of the
modules: sums over every binary hidden state, trapezoid quadrature over the Gamma hiddens, the
published closed-form gradients, and central finite differences.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from deepvision import zoo
from deepvision.models import gated_mrf
from deepvision.models.gated_mrf import MCRBM, MPoT
from rbm_testing import binary_states, random_params

FORMS = ("original", "paper")
TINY = dict(n_visible=4, n_factors=3, n_cov=3, n_mean=2)
# F ≠ N with a topographic P: catches transposed pooling in the gradients.
RECT = dict(n_visible=6, n_factors=16, n_cov=4, n_mean=3, pooling_init="topographic")

apply = jax.jit(lambda model, params, *args, method: model.apply({"params": params}, *args,
                                                                   method=method),
                static_argnames=("model", "method"))


def gated_params(model, seed):
  """Random float64 params, every entry N(0, 1), P = |N(0, 1)| (non-negative as in training)."""
  params = random_params(model, seed)
  params["P"] = np.abs(params["P"])
  return params


def logsumexp(a, axis):
  top = np.max(a, axis=axis, keepdims=True)
  return np.squeeze(top, axis) + np.log(np.sum(np.exp(a - top), axis=axis))


def assert_rel(actual, expected, tol):
  actual, expected = np.asarray(actual), np.asarray(expected)
  assert actual.shape == expected.shape
  error = np.linalg.norm(actual - expected) / np.linalg.norm(expected)
  assert error <= tol, f"relative error {error:.3g} > {tol}"


# NumPy references ------------------------------------------------------------------------------


def cov_input(x, form):
  return x if form == "paper" else x / np.sqrt(np.sum(x * x, 1, keepdims=True) / x.shape[1] + 0.5)


def pooled(p, xt):
  """u = ½ Pᵀ (Cᵀx̃)², (B, N)."""
  return 0.5 * (xt @ p["C"]) ** 2 @ p["P"]


def mean_energy(p, x, h_m):
  """½xᵀx − h_mᵀWᵀx − b_mᵀh_m − b_vᵀx, row by row."""
  return (0.5 * np.sum(x * x, 1) - np.sum((x @ p["W"]) * h_m, 1) - h_m @ p["b_m"] - x @ p["b_v"])


def mcrbm_energy(p, x, h_c, h_m, form):
  u = pooled(p, cov_input(x, form))
  return np.sum(h_c * u, 1) - h_c @ p["b_c"] + mean_energy(p, x, h_m)


def mpot_energy(p, x, h_c, h_m, gamma):
  a = 1 + pooled(p, x)
  return np.sum(h_c * a + (1 - gamma) * np.log(h_c), 1) + mean_energy(p, x, h_m)


def sigmoid(z):
  return 1 / (1 + np.exp(-z))


def mcrbm_reference_grads(p, x, form):
  """The published closed forms of ∂F/∂x (per example) and ∂(Σ_b F)/∂θ."""
  d = x.shape[1]
  scale = np.sqrt(np.sum(x * x, 1, keepdims=True) / d + 0.5) if form == "original" else 1.0
  xt = x / scale
  s = xt @ p["C"]
  sig_c = sigmoid(p["b_c"] - 0.5 * (s * s) @ p["P"])
  sig_m = sigmoid(x @ p["W"] + p["b_m"])
  r = (sig_c @ p["P"].T) * s  # (Pσ_c) ⊙ s
  g = r @ p["C"].T
  dx = g / scale + x - p["b_v"] - sig_m @ p["W"].T
  if form == "original":
    dx = dx - x * np.sum(x * g, 1, keepdims=True) / (d * scale ** 3)
  params = {"C": xt.T @ r, "P": 0.5 * (s * s).T @ sig_c, "b_c": -sig_c.sum(0),
            "W": -x.T @ sig_m, "b_m": -sig_m.sum(0), "b_v": -x.sum(0)}
  return dx, params


def mpot_reference_grads(p, x, gamma):
  s = x @ p["C"]
  mean_c = gamma / (1 + 0.5 * (s * s) @ p["P"])
  sig_m = sigmoid(x @ p["W"] + p["b_m"])
  r = (mean_c @ p["P"].T) * s
  dx = r @ p["C"].T + x - p["b_v"] - sig_m @ p["W"].T
  params = {"C": x.T @ r, "P": 0.5 * (s * s).T @ mean_c, "W": -x.T @ sig_m, "b_m": -sig_m.sum(0),
            "b_v": -x.sum(0)}
  return dx, params


def models_and_closed_forms():
  """(id, model, closed form of F and ∂F/∂x on the params dict) for every model under test."""
  cases = []
  for sizes, tag in ((TINY, "tiny"), (RECT, "rect")):
    for form in FORMS:
      closed_form = functools.partial(gated_mrf.mcrbm_free_energy_and_grad, input_norm=form)
      cases.append(pytest.param(MCRBM(**sizes, input_norm=form), closed_form,
                                id=f"mcrbm_{form}_{tag}"))
    cases.append(pytest.param(MPoT(**sizes, gamma=1.7),
                              functools.partial(gated_mrf.mpot_free_energy_and_grad, gamma=1.7),
                              id=f"mpot_{tag}"))
  return cases


# Free energies against exact sums and quadrature -----------------------------------------------


@pytest.mark.parametrize("form", FORMS)
def test_mcrbm_free_energy_and_posteriors_match_brute_force(x64, form):
  model = MCRBM(**TINY, input_norm=form)
  p = gated_params(model, seed=1)
  x = 1.5 * np.random.default_rng(2).normal(size=(5, 4))
  states = binary_states(3 + 2)  # (32, 5): every (h_c, h_m)
  h_c, h_m = np.tile(states[:, :3], (5, 1)), np.tile(states[:, 3:], (5, 1))
  xs = np.repeat(x, len(states), axis=0)
  energies = mcrbm_energy(p, xs, h_c, h_m, form)
  np.testing.assert_allclose(apply(model, p, xs, h_c, h_m, method="energy"), energies, rtol=1e-12)
  log_joint = -energies.reshape(5, len(states))
  np.testing.assert_allclose(apply(model, p, x, method="free_energy"), -logsumexp(log_joint, 1),
                             rtol=1e-12)
  posterior = np.exp(log_joint - logsumexp(log_joint, 1)[:, None])  # p(h | x), (5, 32)
  marginals = posterior @ states  # p(h_k = 1 | x)
  probs, acts = apply(model, p, x, method="__call__")
  np.testing.assert_allclose(probs, marginals, rtol=1e-10)
  np.testing.assert_allclose(apply(model, p, x, method="hidden_probs"), marginals, rtol=1e-10)
  np.testing.assert_allclose(acts["cov"], marginals[:, :3], rtol=1e-10)
  np.testing.assert_allclose(apply(model, p, x, method="mean_hidden_probs"), marginals[:, 3:],
                             rtol=1e-10)
  np.testing.assert_allclose(apply(model, p, x, method="covariance_input"), cov_input(x, form),
                             rtol=1e-14)


def log_integral_over_positive_line(log_integrand_of_h, points=40001):
  """log ∫_0^∞ exp(f(h)) dh by the trapezoid rule in t = log h (smooth, decays both ways)."""
  t = np.linspace(-90.0, 9.0, points)
  values = log_integrand_of_h(np.exp(t)) + t  # dh = h dt
  top = values.max(axis=-1, keepdims=True)
  w = np.full(points, t[1] - t[0])
  w[[0, -1]] /= 2
  return np.squeeze(top, -1) + np.log(np.exp(values - top) @ w)


@pytest.mark.parametrize("gamma", [1.0, 2.5, 0.6])
def test_mpot_free_energy_and_posterior_mean_match_quadrature(x64, gamma):
  """−log Σ_h_m ∫ exp(−E) dh_c = F(x) − N·log Γ(γ); ∫ h p(h | x) dh = γ/a."""
  model = MPoT(**TINY, gamma=gamma)
  p = gated_params(model, seed=3)
  x = np.random.default_rng(4).normal(size=(3, 4))
  rates = 1 + pooled(p, x)  # (3, N): E is separable in the h_c_k, so the integral factorises
  per_unit = lambda h, a: -(h * a + (1 - gamma) * np.log(h))  # noqa: E731
  log_z_cov = log_integral_over_positive_line(lambda h: per_unit(h, rates[..., None]))
  log_first_moment = log_integral_over_positive_line(
      lambda h: per_unit(h, rates[..., None]) + np.log(h))
  log_mean = logsumexp(np.stack([-mean_energy(p, x, np.broadcast_to(h, (3, 2)))
                                 for h in binary_states(2)], 1), 1)
  exact = -(log_z_cov.sum(1) + log_mean)
  free_energy = apply(model, p, x, method="free_energy")
  np.testing.assert_allclose(free_energy - 3 * math.lgamma(gamma), exact, rtol=1e-10)
  np.testing.assert_allclose(apply(model, p, x, method="cov_hidden_mean"),
                             np.exp(log_first_moment - log_z_cov), rtol=1e-9)
  probs, acts = apply(model, p, x, method="__call__")
  np.testing.assert_allclose(probs[:, :3], gamma / rates, rtol=1e-12)
  np.testing.assert_allclose(acts["mean"], sigmoid(x @ p["W"] + p["b_m"]), rtol=1e-12)
  h_c = np.random.default_rng(5).gamma(2.0, size=(3, 3))
  h_m = np.array([[0.0, 1.0], [1.0, 1.0], [1.0, 0.0]])
  np.testing.assert_allclose(apply(model, p, x, h_c, h_m, method="energy"),
                             mpot_energy(p, x, h_c, h_m, gamma), rtol=1e-12)


# Gradients -------------------------------------------------------------------------------------


@pytest.mark.parametrize("form", FORMS)
def test_mcrbm_published_gradients_equal_autodiff(x64, form):
  model = MCRBM(**RECT, input_norm=form)
  p = gated_params(model, seed=6)
  x = np.random.default_rng(7).normal(size=(5, 6))
  dx, dparams = mcrbm_reference_grads(p, x, form)
  total = lambda p, x: jnp.sum(model.apply({"params": p}, x, method="free_energy"))  # noqa: E731
  auto_params, auto_x = jax.jit(jax.grad(total, argnums=(0, 1)))(p, x)
  assert_rel(auto_x, dx, 1e-6)
  for name, expected in dparams.items():
    assert_rel(auto_params[name], expected, 1e-6)


def test_mpot_published_gradients_equal_autodiff(x64):
  model = MPoT(**RECT, gamma=1.7)
  p = gated_params(model, seed=8)
  x = np.random.default_rng(9).normal(size=(5, 6))
  dx, dparams = mpot_reference_grads(p, x, 1.7)
  total = lambda p, x: jnp.sum(model.apply({"params": p}, x, method="free_energy"))  # noqa: E731
  auto_params, auto_x = jax.jit(jax.grad(total, argnums=(0, 1)))(p, x)
  assert_rel(auto_x, dx, 1e-6)
  for name, expected in dparams.items():
    assert_rel(auto_params[name], expected, 1e-6)


@pytest.mark.parametrize("model, closed_form", models_and_closed_forms())
def test_closed_form_free_energy_and_grad_equal_module_and_autodiff(x64, model, closed_form):
  p = gated_params(model, seed=10)
  x = np.random.default_rng(11).normal(size=(4, model.n_visible))

  @jax.jit
  def everything(p, x):
    free_energy = lambda x: model.apply({"params": p}, x, method="free_energy")  # noqa: E731
    return (closed_form(p, x), free_energy(x), jax.grad(lambda x: jnp.sum(free_energy(x)))(x),
            model.apply({"params": p}, x, method="free_energy_and_grad"),
            closed_form({"params": p}, x))  # the variables dict works too

  (value, grad), module_value, autodiff_grad, method_out, wrapped_out = everything(p, x)
  np.testing.assert_allclose(value, module_value, rtol=1e-12)
  assert_rel(grad, autodiff_grad, 1e-12)
  for other in (method_out, wrapped_out):
    np.testing.assert_allclose(other[0], value, rtol=1e-12)
    np.testing.assert_allclose(other[1], grad, rtol=1e-12)


@pytest.mark.parametrize("model, closed_form", models_and_closed_forms())
def test_gradients_pass_central_finite_differences(x64, model, closed_form):
  """∂F/∂x (closed form) and ∂(Σ_b w_b F)/∂θ (autodiff) against central differences, ε = 1e-5."""
  p = gated_params(model, seed=12)
  x = np.random.default_rng(13).normal(size=(3, model.n_visible))
  eps = 1e-5
  flat, unravel = ravel_pytree(p)
  weights = np.arange(1.0, 4.0)  # keep per-example errors from cancelling in the total
  total = lambda flat: jnp.sum(  # noqa: E731
      weights * model.apply({"params": unravel(flat)}, x, method="free_energy"))
  # Every perturbed x_b is one row of a batch; every perturbed θ one vmapped total.
  b, d = np.divmod(np.arange(x.size), x.shape[1])
  x_steps = np.zeros((x.size,) + x.shape)
  x_steps[np.arange(x.size), b, d] = eps
  param_steps = eps * np.eye(flat.size)

  @jax.jit
  def everything(x_shifted, flat_shifted):
    return (closed_form(p, x)[1], jax.vmap(lambda x: closed_form(p, x)[0])(x_shifted),
            jax.grad(total)(flat), jax.vmap(total)(flat_shifted))

  grad_x, x_values, grad_params, param_values = everything(
      np.concatenate([x + x_steps, x - x_steps]), np.concatenate([flat + param_steps,
                                                                  flat - param_steps]))
  plus, minus = np.split(np.asarray(x_values), 2)
  assert_rel(grad_x.ravel(), (plus - minus)[np.arange(x.size), b] / (2 * eps), 1e-6)
  plus, minus = np.split(np.asarray(param_values), 2)
  assert_rel(grad_params, (plus - minus) / (2 * eps), 1e-6)


# Conditionals and samplers ---------------------------------------------------------------------


@pytest.mark.parametrize("model", [MCRBM(**RECT, input_norm="paper"), MPoT(**RECT, gamma=1.7)],
                         ids=["mcrbm_paper", "mpot"])
def test_energy_is_quadratic_in_x_with_the_conditional_gaussian(x64, model):
  """E(x, h) − E(μ, h) = ½(x − μ)ᵀΛ(x − μ), Λ = C diag(P h_c) Cᵀ + I, for every x."""
  p = gated_params(model, seed=14)
  rng = np.random.default_rng(15)
  batch = 3
  h_c = (rng.uniform(size=(batch, 4)) < 0.5).astype(float) if isinstance(model, MCRBM) else (
      rng.gamma(1.7, size=(batch, 4)))
  h_m = (rng.uniform(size=(batch, 3)) < 0.5).astype(float)
  mean, precision = apply(model, p, h_c, h_m, method="conditional_gaussian")
  expected = np.stack([p["C"] @ np.diag(p["P"] @ h) @ p["C"].T + np.eye(6) for h in h_c])
  np.testing.assert_allclose(precision, expected, rtol=1e-12)
  x = 2 * rng.normal(size=(batch, 6))
  energy = lambda x: apply(model, p, x, h_c, h_m, method="energy")  # noqa: E731
  diff = x - mean
  np.testing.assert_allclose(energy(x) - energy(mean),
                             0.5 * np.einsum("bi,bij,bj->b", diff, expected, diff), rtol=1e-10)


def test_original_form_has_no_gaussian_conditional():
  model = zoo.create("mcrbm_tiny")
  variables = {"params": random_params(model, 0, dtype=np.float32)}
  with pytest.raises(ValueError, match="input_norm 'original': p\\(x \\| h\\) is not Gaussian.*HMC"):
    model.apply(variables, jnp.ones((2, 3)), jnp.ones((2, 2)), method="conditional_gaussian")


def test_mcrbm_hidden_samples_have_the_posterior_frequencies(x64):
  model = MCRBM(**TINY)
  p = gated_params(model, seed=16)
  draws = 20_000
  x = np.random.default_rng(17).normal(size=(2, 4))
  h_c, h_m = apply(model, p, jax.random.key(18), np.repeat(x, draws, 0), method="sample_hidden")
  assert set(np.unique(h_c)) <= {0.0, 1.0} and set(np.unique(h_m)) <= {0.0, 1.0}
  frequencies = np.concatenate([h_c, h_m], 1).reshape(2, draws, 5).mean(1)
  probs = np.asarray(apply(model, p, x, method="hidden_probs"))
  std = np.sqrt(probs * (1 - probs) / draws)
  assert np.all(np.abs(frequencies - probs) < 5 * std + 1e-12)


def test_mpot_hidden_samples_have_the_gamma_posterior_moments(x64):
  gamma = 2.5
  model = MPoT(**TINY, gamma=gamma)
  p = gated_params(model, seed=19)
  draws = 20_000
  x = np.random.default_rng(20).normal(size=(2, 4))
  h_c, h_m = apply(model, p, jax.random.key(21), np.repeat(x, draws, 0), method="sample_hidden")
  rates = 1 + pooled(p, x)
  h_c = np.asarray(h_c).reshape(2, draws, 3)
  assert np.all(h_c > 0)
  # Gamma(γ, rate a): mean γ/a, std √γ/a; variance γ/a² (its estimate has std ≈ √(2 + 6/γ)·γ/a²/√n).
  assert np.all(np.abs(h_c.mean(1) - gamma / rates) < 5 * np.sqrt(gamma) / rates / np.sqrt(draws))
  variance_std = np.sqrt(2 + 6 / gamma) * gamma / rates ** 2 / np.sqrt(draws)
  assert np.all(np.abs(h_c.var(1) - gamma / rates ** 2) < 5 * variance_std)
  probs = sigmoid(x @ p["W"] + p["b_m"])
  frequencies = np.asarray(h_m).reshape(2, draws, 2).mean(1)
  assert np.all(np.abs(frequencies - probs) < 5 * np.sqrt(probs * (1 - probs) / draws))


# The training recipe's projections and the pooling -------------------------------------------


def test_topographic_mask_is_3x3_windows_with_stride_2_on_a_torus():
  mask = gated_mrf.topographic_mask(576, 144)
  assert mask.shape == (576, 144) and set(np.unique(mask)) == {0.0, 1.0}
  for unit in range(144):
    i, j = divmod(unit, 12)
    rows, cols = np.divmod(np.flatnonzero(mask[:, unit]), 24)
    block = {((2 * i + a) % 24, (2 * j + b) % 24) for a in range(3) for b in range(3)}
    assert set(zip(rows, cols)) == block
  # Factors on even rows/columns sit in one window per axis, the others in two (overlap).
  assert sorted(np.unique(mask.sum(1))) == [1.0, 2.0, 4.0]
  spread = gated_mrf.topographic_mask(256, 144)  # the zoo's mcrbm: every factor pooled
  assert np.all(spread.sum(0) == 9) and np.all(spread.sum(1) >= 1)


@pytest.mark.parametrize("n_factors, n_cov, match", [
    (10, 4, "square number of factors"), (16, 5, "square number of covariance units"),
    (16, 25, "exceed"), (64, 4, "unpooled")])
def test_topographic_mask_rejects_impossible_sizes(n_factors, n_cov, match):
  with pytest.raises(ValueError, match=match):
    gated_mrf.topographic_mask(n_factors, n_cov)


def test_project_pooling_is_a_masked_column_normalised_projection():
  rng = np.random.default_rng(22)
  mask = gated_mrf.topographic_mask(16, 4)
  P = rng.normal(size=(16, 4))
  P[:, 3] = -np.abs(P[:, 3])  # no positive entry: the column stays zero
  projected = np.asarray(gated_mrf.project_pooling(P, mask))
  assert np.all(projected >= 0) and np.all(projected[mask == 0] == 0)
  np.testing.assert_allclose(projected.sum(0), [1, 1, 1, 0], rtol=1e-6)
  kept = np.maximum(P, 0) * mask
  np.testing.assert_allclose(projected[:, :3], kept[:, :3] / kept[:, :3].sum(0), rtol=1e-6)
  np.testing.assert_allclose(gated_mrf.project_pooling(projected, mask), projected, rtol=1e-6)
  jitted = jax.jit(gated_mrf.project_pooling)(P, mask)  # a traced mask is accepted
  np.testing.assert_allclose(jitted, projected, rtol=1e-6)
  np.testing.assert_allclose(gated_mrf.project_pooling(P)[:, :3],
                             np.maximum(P, 0)[:, :3] / np.maximum(P, 0)[:, :3].sum(0), rtol=1e-6)


def test_project_pooling_rejects_bad_masks():
  with pytest.raises(ValueError, match=r"mask shape \(4, 16\) differs from P's shape \(16, 4\)"):
    gated_mrf.project_pooling(np.ones((16, 4)), np.ones((4, 16)))
  with pytest.raises(ValueError, match="non-negative, got minimum value -1"):
    gated_mrf.project_pooling(np.ones((2, 2)), np.array([[1.0, -1.0], [0.0, 1.0]]))
  with pytest.raises(ValueError, match=r"P must be a \(n_factors, n_cov\) matrix, got shape \(4,\)"):
    gated_mrf.project_pooling(np.ones(4))


def test_normalize_factor_columns_rescales_to_the_running_common_norm(x64):
  C = np.random.default_rng(23).normal(size=(5, 7)) * np.arange(1.0, 8.0)
  C[:, 2] = 0
  norms = np.linalg.norm(C, axis=0)
  C_new, n_new = gated_mrf.normalize_factor_columns(C, 1.3)
  assert float(n_new) == pytest.approx(0.95 * 1.3 + 0.05 * norms.mean(), rel=1e-14)
  new_norms = np.linalg.norm(C_new, axis=0)
  np.testing.assert_allclose(np.delete(new_norms, 2), float(n_new), rtol=1e-14)
  assert np.all(np.asarray(C_new)[:, 2] == 0)
  keep = norms > 0
  np.testing.assert_allclose(np.asarray(C_new)[:, keep] * norms[keep] / float(n_new), C[:, keep],
                             rtol=1e-13)
  C_jit, n_jit = jax.jit(gated_mrf.normalize_factor_columns)(C, 1.3, 0.9)
  assert float(n_jit) == pytest.approx(0.9 * 1.3 + 0.1 * norms.mean(), rel=1e-14)
  with pytest.raises(ValueError, match="decay must lie in \\[0, 1\\], got 1.5"):
    gated_mrf.normalize_factor_columns(C, 1.0, decay=1.5)
  with pytest.raises(ValueError, match="running_norm must be a scalar"):
    gated_mrf.normalize_factor_columns(C, np.ones(7))


def test_initialisation_follows_the_original_recipe():
  model = zoo.create("mcrbm")
  params = jax.jit(model.init)(jax.random.key(24, impl="rbg"), jnp.zeros((1, 105)))["params"]
  assert list(params) == ["C", "P", "W", "b_c", "b_m", "b_v"]
  assert np.std(params["C"]) == pytest.approx(0.02, rel=0.05)
  assert np.std(params["W"]) == pytest.approx(0.05, rel=0.05)
  assert np.all(params["b_c"] == 2) and np.all(params["b_m"] == -2) and np.all(params["b_v"] == 0)
  mask = model.pooling_mask()
  np.testing.assert_allclose(params["P"], mask / 9, rtol=1e-6)
  np.testing.assert_array_equal(gated_mrf.project_pooling(params["P"], mask), params["P"])
  tiny = jax.jit(MPoT(**TINY).init)(jax.random.key(25), jnp.zeros((1, 4)))["params"]
  assert set(tiny) == {"C", "P", "W", "b_m", "b_v"} and MPoT(**TINY).pooling_mask() is None
  np.testing.assert_array_equal(tiny["P"], np.eye(3))


# Zoo entries and bad input ---------------------------------------------------------------------


def test_zoo_entries_and_parameter_counts():
  counts = {name: zoo.count_params(zoo.abstract_variables(zoo.create(name))["params"])
            for name in ("mcrbm", "mcrbm_tiny", "mpot", "mpot_tiny")}
  # C D·F + P F·N + W D·M + b_c N + b_m M + b_v D (mPoT: no b_c).
  assert counts == {"mcrbm": 105 * 256 + 256 * 144 + 105 * 100 + 144 + 100 + 105,
                    "mcrbm_tiny": 4 * 3 + 3 * 3 + 4 * 2 + 3 + 2 + 4,
                    "mpot": 105 * 256 + 256 * 144 + 105 * 100 + 100 + 105,
                    "mpot_tiny": 4 * 3 + 3 * 3 + 4 * 2 + 2 + 4}
  assert counts["mcrbm"] == 74_593 and counts["mpot"] == 74_449
  text = zoo.describe("mcrbm")
  assert "total      74,593" in text and "cov (1, 144)" in text and "output (1, 244)" in text
  mpot = zoo.create("mpot", gamma=2.0)
  assert isinstance(mpot, MPoT) and mpot.gamma == 2.0 and mpot.pooling_init == "topographic"


@pytest.mark.parametrize("kwargs, match", [
    (dict(TINY, n_cov=4), "'identity' needs n_factors == n_cov, got n_factors=3, n_cov=4"),
    (dict(TINY, input_norm="whitened"), "input_norm must be one of 'original', 'paper', got 'whitened'"),
    (dict(TINY, pooling_init="random"), "pooling_init must be one of 'identity', 'topographic'"),
    (dict(TINY, pooling_init="topographic"), "square number of factors, got 3"),
    (dict(TINY, n_mean=0), "n_mean must be a positive int, got 0"),
])
def test_bad_fields_are_rejected_at_init(kwargs, match):
  with pytest.raises(ValueError, match=match):
    MCRBM(**kwargs).init(jax.random.key(0), jnp.zeros((1, 4)))


@pytest.mark.parametrize("gamma", [0.0, -1.0, float("nan")])
def test_mpot_rejects_a_non_positive_gamma(gamma):
  with pytest.raises(ValueError, match="gamma must be a finite positive number"):
    MPoT(**TINY, gamma=gamma).init(jax.random.key(0), jnp.zeros((1, 4)))
  with pytest.raises(ValueError, match="gamma must be a finite positive number"):
    gated_mrf.mpot_free_energy_and_grad(random_params(MPoT(**TINY), 0), np.zeros((1, 4)), gamma)


def test_bad_inputs_name_the_expected_shapes():
  model = zoo.create("mcrbm_tiny")
  variables = {"params": random_params(model, 0, dtype=np.float32)}
  with pytest.raises(ValueError, match=r"MCRBM expects visible vectors of shape \(batch, 4\).*"
                                       r"got \(2, 5\)"):
    model.apply(variables, jnp.zeros((2, 5)), method="free_energy")
  images = jnp.zeros((2, 2, 2))  # images of 4 elements are flattened
  assert model.apply(variables, images, method="hidden_probs").shape == (2, 5)
  with pytest.raises(ValueError, match="batch sizes differ: x 2, h_c 3, h_m 2"):
    model.apply(variables, jnp.zeros((2, 4)), jnp.zeros((3, 3)), jnp.zeros((2, 2)), method="energy")
  with pytest.raises(ValueError, match=r"mean hidden states of shape \(batch, 2\)"):
    model.apply(variables, jnp.zeros((2, 4)), jnp.zeros((2, 3)), jnp.zeros((2, 3)), method="energy")
  params = variables["params"]
  with pytest.raises(ValueError, match=r"x must be a float \(batch, 4\) array, got shape \(4,\)"):
    gated_mrf.mcrbm_free_energy_and_grad(params, jnp.zeros(4))
  with pytest.raises(ValueError, match="params lack b_c"):
    gated_mrf.mcrbm_free_energy_and_grad({k: v for k, v in params.items() if k != "b_c"},
                                         jnp.zeros((1, 4)))
  with pytest.raises(ValueError, match="input_norm must be one of 'original', 'paper', got 'raw'"):
    gated_mrf.mcrbm_free_energy_and_grad(params, jnp.zeros((1, 4)), input_norm="raw")
