"""Autoencoder math: the losses, the sparse and contractive penalties and the corruption, in closed form.

References are written independently of the module: the penalties from their formulas in NumPy, the
contractive one as the squared Frobenius norm of `jax.jacfwd` of the encoder; gradients against finite
differences in float64; the noise by its sample moments, with tolerances of 5 standard errors for the
sample size (a false failure has probability under 1e-6).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from deepvision import zoo
from deepvision.models.autoencoder import (ContractiveAutoencoder, DenoisingAutoencoder, SparseAutoencoder,
                                           TiedAutoencoder, contraction, corrupt, corrupt_input, gaussian_noise,
                                           kl_sparsity)

VARIANTS = {
    "sigmoid": TiedAutoencoder(n_visible=5, n_hidden=3),
    "linear": TiedAutoencoder(n_visible=5, n_hidden=3, decoder="linear"),
    "denoising": DenoisingAutoencoder(n_visible=5, n_hidden=3),
    "sparse": SparseAutoencoder(n_visible=5, n_hidden=3, sparsity_target=0.1, sparsity_weight=0.7),
    "contractive": ContractiveAutoencoder(n_visible=5, n_hidden=3, contraction_weight=0.4),
}


def _params(model, x):
  """float64 parameters of order 1 (not the tiny initial ones), so every term matters."""
  params = model.init(jax.random.key(2), x)["params"]
  keys = iter(jax.random.split(jax.random.key(3), 3))
  return {name: jax.random.normal(next(keys), p.shape, jnp.float64) for name, p in params.items()}


def test_every_autoencoder_in_the_zoo_has_the_rbm_parameters_and_a_tiny_variant():
  autoencoders = zoo.names_of(TiedAutoencoder)
  assert set(autoencoders) == {"ae", "ae_tiny", "ae_linear", "ae_linear_tiny", "dae", "dae_tiny", "sparse_ae",
                               "sparse_ae_tiny", "contractive_ae", "contractive_ae_tiny"}
  for name in autoencoders:
    assert name.endswith("_tiny") or f"{name}_tiny" in autoencoders
    params = zoo.abstract_variables(zoo.create(name))["params"]
    n_v, n_h = (64, 100) if not name.endswith("_tiny") else (6, 4)
    assert {k: v.shape for k, v in params.items()} == {"W": (n_v, n_h), "b_v": (n_v,), "b_h": (n_h,)}
  assert zoo.create("ae_linear").decoder == "linear" and zoo.create("ae").decoder == "sigmoid"
  with pytest.raises(ValueError, match="decoder must be one of"):
    TiedAutoencoder(n_visible=2, n_hidden=2, decoder="tanh").init(jax.random.key(0), jnp.zeros((1, 2)))


@pytest.mark.usefixtures("x64")
def test_reconstruction_losses_are_the_closed_forms():
  x = jax.random.uniform(jax.random.key(1), (4, 5), jnp.float64)
  noisy = corrupt(jax.random.key(4), x, 0.4)
  for name in ("sigmoid", "linear"):
    model = VARIANTS[name]
    p = _params(model, x)
    h = 1 / (1 + np.exp(-(np.asarray(noisy) @ p["W"] + p["b_h"])))
    a = h @ np.asarray(p["W"]).T + p["b_v"]
    if name == "sigmoid":
      r = 1 / (1 + np.exp(-a))
      expected = -(x * np.log(r) + (1 - x) * np.log(1 - r)).sum(-1)
    else:
      expected = 0.5 * ((x - a) ** 2).sum(-1)
    got = model.apply({"params": p}, x, noisy, method="reconstruction_loss")
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    total, parts = model.apply({"params": p}, x, noisy, method="objective")
    np.testing.assert_allclose([total, parts["penalty"]], [expected.mean(), 0.0], rtol=1e-10, atol=0)


@pytest.mark.usefixtures("x64")
def test_kl_penalty_is_its_formula():
  rng = np.random.default_rng(0)
  h = rng.uniform(0.01, 0.99, (7, 4))
  rho = 0.05
  expected = 0.0
  for j in range(4):
    rho_hat = h[:, j].mean()
    expected += rho * np.log(rho / rho_hat) + (1 - rho) * np.log((1 - rho) / (1 - rho_hat))
  np.testing.assert_allclose(kl_sparsity(jnp.asarray(h), rho), expected, rtol=1e-12)
  # zero exactly at the target, positive elsewhere
  np.testing.assert_allclose(kl_sparsity(jnp.full((3, 4), rho), rho), 0.0, atol=1e-15)
  model = VARIANTS["sparse"]
  x = jax.random.uniform(jax.random.key(1), (6, 5), jnp.float64)
  p = _params(model, x)
  hidden = model.apply({"params": p}, x, method="hidden_probs")
  penalty = model.apply({"params": p}, x, method="penalty")
  np.testing.assert_allclose(penalty, 0.7 * kl_sparsity(hidden, 0.1), rtol=1e-12)


@pytest.mark.usefixtures("x64")
def test_contractive_penalty_is_the_frobenius_norm_of_the_encoder_jacobian():
  model = VARIANTS["contractive"]
  x = jax.random.uniform(jax.random.key(1), (4, 5), jnp.float64)
  p = _params(model, x)
  encode = lambda v: model.apply({"params": p}, v[None], method="hidden_probs")[0]  # noqa: E731
  jacobians = jax.vmap(jax.jacfwd(encode))(x)  # (4, n_hidden, n_visible)
  assert jacobians.shape == (4, 3, 5)
  frobenius = np.sum(np.asarray(jacobians) ** 2, axis=(1, 2))
  hidden = model.apply({"params": p}, x, method="hidden_probs")
  np.testing.assert_allclose(contraction(hidden, p["W"]), frobenius, rtol=1e-12)
  np.testing.assert_allclose(model.apply({"params": p}, x, method="penalty"), 0.4 * frobenius.mean(), rtol=1e-12)


@pytest.mark.usefixtures("x64")
@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_objective_gradient_matches_finite_differences(name):
  model = VARIANTS[name]
  x = jax.random.uniform(jax.random.key(1), (6, 5), jnp.float64)
  noisy = corrupt_input(jax.random.key(5), x, 0.3, 0.1)
  p = _params(model, x)
  objective = lambda p, clean, noisy: model.apply({"params": p}, clean, noisy, method="objective")[0]  # noqa: E731
  check_grads(objective, (p, x, noisy), order=1, modes=("rev",), eps=1e-6)


@pytest.mark.parametrize("rate", [0.1, 0.25, 0.5])
def test_masking_noise_zeroes_the_given_fraction(rate):
  x = jnp.ones((200, 500))
  for noisy in (corrupt(jax.random.key(3), x, rate), corrupt_input(jax.random.key(3), x, rate, 0.0)):
    kept = float(jnp.mean(noisy))
    assert abs(kept - (1 - rate)) < 5 * np.sqrt(rate * (1 - rate) / x.size)
    assert set(np.unique(np.asarray(noisy))) <= {0.0, 1.0}


@pytest.mark.parametrize("std", [0.1, 0.5, 2.0])
def test_gaussian_noise_has_zero_mean_and_the_given_variance(std):
  x = jnp.full((200, 500), 0.3)
  n = x.size
  for noisy in (gaussian_noise(jax.random.key(6), x, std), corrupt_input(jax.random.key(6), x, 0.0, std)):
    eps = np.asarray(noisy, np.float64) - 0.3
    # the sample mean has standard error σ/√n, the sample variance σ²·√(2/(n − 1)) (normal data)
    assert abs(eps.mean()) < 5 * std / np.sqrt(n)
    assert abs(eps.var(ddof=1) - std ** 2) < 5 * std ** 2 * np.sqrt(2 / (n - 1))
  assert corrupt_input(jax.random.key(6), x, 0.0, 0.0) is x
