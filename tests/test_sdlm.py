"""The stochastic diagonal Levenberg–Marquardt step (LeCun et al. 1998, Appendix C) and its curvature."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from deepvision import config_blocks, optim, schema, sdlm
from deepvision.train import supervised
from deepvision.train.state import TrainState


def _quadratic(hessian):
  """f(w) = ½ wᵀ A w: gradient A w, Hessian A."""
  return lambda w: 0.5 * w @ hessian @ w


@pytest.mark.parametrize("decay", [1.0, 0.1])
def test_rates_are_the_damped_inverse_diagonal_hessian_on_a_quadratic(decay):
  rng = np.random.default_rng(0)
  root = rng.normal(size=(5, 5))
  hessian = jnp.asarray(root @ root.T + np.diag([0.1, 1.0, 3.0, 10.0, 30.0]), jnp.float32)
  loss = _quadratic(hessian)
  eta, mu = 0.3, sdlm.PAPER_DAMPING
  tx = sdlm.sdlm(eta, damping=mu, decay=decay)
  w = jnp.asarray(rng.normal(size=5), jnp.float32)
  state = tx.init(w)
  for _ in range(4):  # a constant estimate stays exact through the bias-corrected running average
    grad = jax.grad(loss)(w)
    updates, state = tx.update(grad, state, w, curvature=jnp.diag(hessian))
    rates = -updates / grad
    np.testing.assert_allclose(rates, eta / (mu + np.diag(hessian)), rtol=1e-5)
    w = optax.apply_updates(w, updates)


def test_a_full_step_on_a_diagonal_quadratic_is_newtons():
  hessian = jnp.diag(jnp.asarray([0.5, 2.0, 40.0]))
  w = jnp.asarray([1.0, -2.0, 0.5])
  tx = sdlm.sdlm(1.0, damping=1e-6, decay=1.0)
  updates, _ = tx.update(jax.grad(_quadratic(hessian))(w), tx.init(w), w, curvature=jnp.diag(hessian))
  np.testing.assert_allclose(optax.apply_updates(w, updates), 0.0, atol=1e-5)


def test_running_average_weights_new_estimates_by_decay():
  tx = sdlm.scale_by_sdlm(damping=1.0, decay=0.25)
  state = tx.init(jnp.zeros(1))
  ones = jnp.ones(1)
  _, state = tx.update(ones, state, curvature=jnp.asarray([4.0]))
  updates, state = tx.update(ones, state, curvature=jnp.asarray([8.0]))
  average = (0.75 * 0.25 * 4.0 + 0.25 * 8.0) / (1 - 0.75**2)  # bias-corrected, as Adam's moments
  np.testing.assert_allclose(updates, 1.0 / (1.0 + average), rtol=1e-6)
  assert int(state.count) == 2


def test_update_without_curvature_and_bad_settings_are_errors():
  tx = sdlm.scale_by_sdlm()
  with pytest.raises(ValueError, match="needs the Gauss–Newton estimate"):
    tx.update(jnp.ones(2), tx.init(jnp.ones(2)))
  with pytest.raises(ValueError, match="damping must be > 0"):
    sdlm.scale_by_sdlm(damping=0.0)
  with pytest.raises(ValueError, match=r"decay must be in \(0, 1\]"):
    sdlm.scale_by_sdlm(decay=1.5)


def test_fisher_sample_is_unbiased_for_the_gauss_newton_diagonal():
  """Softmax regression z_n = Wᵀx_n: the Gauss–Newton diagonal of the mean cross-entropy is
  (1/N) Σ_n x_ni² p_nk (1 − p_nk) in closed form; the estimates average to it."""
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.normal(size=(6, 4)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(4, 3)), jnp.float32)
  logits, logits_vjp = jax.vjp(lambda w: x @ w, w)
  p = jax.nn.softmax(logits)
  exact = (x**2).T @ (p * (1 - p)) / x.shape[0]
  draws = jax.vmap(lambda key: sdlm.fisher_diagonal_sample(logits_vjp, logits, key))(
      jax.random.split(jax.random.key(0), 20_000))
  mean, error = draws.mean(0), draws.std(0) / np.sqrt(draws.shape[0])
  assert np.all(np.abs(mean - exact) < 5 * error + 1e-6), (mean, exact)
  assert np.all(draws >= 0)


def test_euclidean_sample_is_the_papers_gauss_newton_diagonal():
  """Features f_n = Wᵀx_n, criterion ‖f − c‖² (Hessian 2I): the Gauss–Newton diagonal is (2/N) Σ_n x_ni²
  for every column k; with one example every draw is exact, with several they average to it."""
  rng = np.random.default_rng(3)
  w = jnp.asarray(rng.normal(size=(4, 5)), jnp.float32)
  def draws_for(x, count):
    features, features_vjp = jax.vjp(lambda w: x @ w, w)
    return jax.vmap(lambda key: sdlm.euclidean_diagonal_sample(features_vjp, features, key))(
        jax.random.split(jax.random.key(x.shape[0]), count))

  for n in (1, 6):
    x = jnp.asarray(rng.normal(size=(n, 4)), jnp.float32)
    exact = jnp.broadcast_to(2.0 * (x**2).sum(0)[:, None] / n, w.shape)
    draws = draws_for(x, 20_000)
    if n == 1:
      np.testing.assert_allclose(draws, jnp.broadcast_to(exact, draws.shape), rtol=1e-5)
    else:
      error = draws.std(0) / np.sqrt(draws.shape[0])
      assert np.all(np.abs(draws.mean(0) - exact) < 5 * error + 1e-6)


def _sdlm_config(**optimizer):
  config = schema.defaults(config_blocks.Supervised)
  config.optimizer.name = "sdlm"
  config.optimizer.nesterov = False
  config.optimizer.momentum = 0.0
  config.optimizer.schedule = "constant"
  for key, value in optimizer.items():
    config.optimizer[key] = value
  return config


def test_make_optimizer_builds_sdlm_and_checks_its_fields():
  config = _sdlm_config(sdlm_damping=0.5, sdlm_decay=1.0, learning_rate=0.2)
  assert optim.curvature_of(config) == "euclidean"
  assert optim.curvature_of(schema.defaults(config_blocks.Supervised)) is None
  tx = optim.make_optimizer(config, 10)
  params = {"w": jnp.ones(3)}
  updates, _ = tx.update({"w": jnp.full(3, 2.0)}, tx.init(params), params, curvature={"w": jnp.full(3, 1.5)})
  np.testing.assert_allclose(updates["w"], -0.2 * 2.0 / (0.5 + 1.5), rtol=1e-6)
  with pytest.raises(ValueError, match="without nesterov"):
    optim.make_optimizer(_sdlm_config(nesterov=True), 10)
  with pytest.raises(ValueError, match=r"sdlm_damping.*must be a number in \(0"):
    schema.load(config_blocks.Supervised, _sdlm_config(sdlm_damping=-1.0))
  contrastive = schema.defaults(config_blocks.Contrastive)
  contrastive.optimizer.name = "sdlm"  # the energy-model trainers have no Gauss–Newton estimate
  with pytest.raises(ValueError, match="optimizer.name"):
    schema.load(config_blocks.Contrastive, contrastive)


def test_train_step_feeds_the_estimate_to_the_optimiser():
  """One supervised step with curvature='fisher' moves a softmax regression by −η g / (μ + ĥ), ĥ the
  estimate drawn with the step's own key; the gradient is the cross-entropy's."""

  class Linear(nn.Module):
    @nn.compact
    def __call__(self, x, train=False):
      flat = x.reshape(x.shape[0], -1)
      return nn.Dense(3, name="out")(flat), {"features": flat}

  rng = np.random.default_rng(2)
  batch = {"image": jnp.asarray(rng.normal(size=(8, 2, 2, 1)), jnp.float32),
           "label": jnp.asarray(rng.integers(0, 3, size=8))}
  model = Linear()
  params = model.init(jax.random.key(0), batch["image"])["params"]
  tx = sdlm.sdlm(0.5, damping=0.1, decay=1.0)
  state = TrainState.create(apply_fn=model.apply, params=params, tx=tx, key=jax.random.key(3))
  state = state.replace(step=jnp.zeros((), jnp.int32))
  preprocess = supervised.Preprocess(standardize=False)
  new_state, metrics = supervised.make_train_step(preprocess, curvature="fisher")(state, batch)

  def loss(p):
    return supervised.cross_entropy(model.apply({"params": p}, batch["image"])[0], batch["label"]).mean()

  grads = jax.grad(loss)(params)
  curvature = new_state.opt_state[0].curvature  # decay 1: the newest estimate itself
  expected = jax.tree.map(lambda p, g, h: p - 0.5 * g / (0.1 + h), params, grads, curvature)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), new_state.params, expected)
  assert float(jnp.abs(curvature["out"]["kernel"]).sum()) > 0
  np.testing.assert_allclose(metrics["train/loss"], loss(params), rtol=1e-6)
  assert int(new_state.step) == 1
