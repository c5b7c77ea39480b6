"""Deep belief nets: features, the classifier built from a stack, sampling against exact enumeration."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepvision.models import dbn
from deepvision.models.rbm import RBM, GaussianRBM


def _layer(model, seed, scale=1.0):
  """A layer with N(0, scale²) weights and biases (numpy: no compilation), units far from uniform."""
  rng = np.random.default_rng(seed)
  shapes = {"W": (model.n_visible, model.n_hidden), "b_v": (model.n_visible,), "b_h": (model.n_hidden,)}
  if getattr(model, "learn_sigma", False):
    shapes["log_sigma"] = (model.n_visible,)
  return model, {name: (scale * rng.standard_normal(shape)).astype(np.float32)
                 for name, shape in shapes.items()}


def _stack(sizes, seed=0, scale=1.0):
  return [_layer(RBM(n_visible=v, n_hidden=h), seed + l, scale)
          for l, (v, h) in enumerate(zip(sizes[:-1], sizes[1:]))]


def _sigmoid(z):
  return 1.0 / (1.0 + np.exp(-z))


def test_features_equal_the_composition_of_hidden_probabilities():
  layers = _stack((6, 5, 4, 3))
  x = np.asarray(jax.random.uniform(jax.random.key(1), (7, 2, 3, 1)))
  h = x.reshape(7, 6).astype(np.float64)
  np.testing.assert_array_equal(dbn.features(layers, x, depth=0), x.reshape(7, 6))
  for depth, (_, params) in enumerate(layers, start=1):
    h = _sigmoid(h @ np.asarray(params["W"], np.float64) + np.asarray(params["b_h"], np.float64))
    out = dbn.features(layers, x, depth=depth)
    assert out.shape == (7, layers[depth - 1][0].n_hidden)
    np.testing.assert_allclose(out, h, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(dbn.features(layers, x), dbn.features(layers, x, depth=3))


def test_features_and_stacks_are_checked():
  layers = _stack((6, 5, 4))
  with pytest.raises(ValueError, match=r"depth must be an int in \[0, 2\]"):
    dbn.features(layers, np.zeros((1, 6)), depth=3)
  with pytest.raises(ValueError, match="layer 2 has n_visible=3 but layer 1 has n_hidden=5"):
    dbn.features([layers[0], _stack((3, 2))[0]], np.zeros((1, 6)))
  with pytest.raises(ValueError, match="non-empty"):
    dbn.features([], np.zeros((1, 6)))


def test_classifier_from_stack_computes_the_features_exactly():
  layers = _stack((6, 5, 4, 3))
  model = dbn.DBNClassifier(input_shape=(2, 3, 1), hidden=(5, 4, 3), num_classes=4)
  init = jax.jit(model.init)(jax.random.key(3), jnp.zeros((1, 2, 3, 1)))["params"]
  params = dbn.classifier_params_from_stack(layers, init)
  x = jax.random.uniform(jax.random.key(4), (9, 2, 3, 1))
  logits, inter = model.apply({"params": params}, x)
  assert logits.shape == (9, 4)
  for l in (1, 2, 3):
    np.testing.assert_array_equal(inter[f"layer_{l}"], dbn.features(layers, x, depth=l))
  np.testing.assert_array_equal(inter["features"], inter["layer_3"])
  # The output layer keeps its initial values; the initial parameters are not modified.
  for name in ("kernel", "bias"):
    assert params["classifier"][name] is init["classifier"][name]
  assert not np.array_equal(init["layer_1"]["kernel"], params["layer_1"]["kernel"])
  np.testing.assert_array_equal(logits, inter["layer_3"] @ init["classifier"]["kernel"]
                                + init["classifier"]["bias"])


def test_classifier_from_a_gaussian_bottom_with_learned_sigma():
  bottom = _layer(GaussianRBM(n_visible=6, n_hidden=5, learn_sigma=True), 5, 0.5)
  layers = [bottom, _stack((5, 3), seed=6)[0]]
  model = dbn.DBNClassifier(input_shape=(6,), hidden=(5, 3), num_classes=2)
  init = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 6)))["params"]
  params = dbn.classifier_params_from_stack(layers, init)
  x = jax.random.normal(jax.random.key(7), (4, 6))
  _, inter = model.apply({"params": params}, x)
  np.testing.assert_allclose(inter["layer_2"], dbn.features(layers, x), rtol=1e-5, atol=1e-6)


def test_classifier_shapes_counts_and_errors():
  """Shapes only (`jax.eval_shape`): nothing is compiled."""
  model = dbn.DBNClassifier(input_shape=(8, 8, 1), hidden=(16, 8), num_classes=10)
  params = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 8, 8, 1)))["params"]
  counts = {name: sum(p.size for p in layer.values()) for name, layer in params.items()}
  assert counts == {"layer_1": 64 * 16 + 16, "layer_2": 16 * 8 + 8, "classifier": 8 * 10 + 10}
  logits, inter = jax.eval_shape(model.apply, {"params": params}, jnp.ones((3, 64)))
  assert logits.shape == (3, 10) and set(inter) == {"layer_1", "layer_2", "features"}
  with pytest.raises(ValueError, match=r"expects float inputs \(batch, 64\)"):
    jax.eval_shape(model.apply, {"params": params}, jnp.ones((3, 8, 7, 1)))
  with pytest.raises(ValueError, match="hidden must hold positive ints"):
    jax.eval_shape(dbn.DBNClassifier(input_shape=(4,), hidden=(3, 0)).init, jax.random.key(0),
                   jnp.zeros((1, 4)))
  with pytest.raises(ValueError, match="the stack has 3 layers"):
    dbn.classifier_params_from_stack(_stack((64, 16, 8, 4)), params)
  with pytest.raises(ValueError, match=r"layer_2 has a kernel of shape \(16, 8\) but RBM 2 has W of shape "
                     r"\(16, 5\)"):
    dbn.classifier_params_from_stack(_stack((64, 16, 5)), params)


def test_top_level_gibbs_matches_exact_enumeration():
  """Top RBM 4 × 3 (16 visible states): the chains' visible states follow p(v) ∝ exp(−F(v))."""
  layers = _stack((5, 4, 3), seed=2)
  top, top_params = layers[-1]
  states = np.asarray(list(itertools.product((0.0, 1.0), repeat=4)), np.float32)
  log_p = -np.asarray(top.apply({"params": top_params}, states, method="free_energy"), np.float64)
  exact = np.exp(log_p - log_p.max())
  exact /= exact.sum()
  assert exact.max() > 2.0 / 16  # far from uniform, so a chain stuck at its start would fail
  num = 20000
  start = jnp.zeros((num, 4))  # every chain starts in the same state
  state = dbn.sample_top(layers, jax.random.key(9), num, gibbs_steps=30, start=start)
  codes = np.asarray(state.position, np.int64) @ (2 ** np.arange(3, -1, -1))
  empirical = np.bincount(codes, minlength=16) / num
  tv = 0.5 * np.abs(empirical - exact).sum()
  assert tv < 0.03, (tv, empirical, exact)
  assert state.hidden.shape == (num, 3)


def test_sample_is_the_top_chain_then_the_documented_top_down_pass():
  layers = _stack((6, 5, 4, 3), seed=4)
  (m1, p1), (m2, p2), (m3, p3) = layers
  key = jax.random.key(11)
  chain_key, down_key = jax.random.split(key)
  state = dbn.sample_top(layers, chain_key, 8, gibbs_steps=5)
  assert set(np.unique(np.asarray(state.position))) <= {0.0, 1.0}

  # mean_field: every layer below the top hidden layer is its conditional mean given the one above.
  h2 = m3.apply({"params": p3}, state.hidden, method="visible_mean")
  h1 = m2.apply({"params": p2}, h2, method="visible_mean")
  v = m1.apply({"params": p1}, h1, method="visible_mean")
  np.testing.assert_allclose(dbn.sample(layers, key, 8, 5, mean_field=True), v, rtol=1e-6, atol=1e-7)

  # Default: the top RBM's binary visible sample h², a binary h¹ ~ p(h¹ | h²) drawn with
  # fold_in(down_key, 2), then the mean E[v | h¹] at the bottom.
  h1 = m2.apply({"params": p2}, jax.random.fold_in(down_key, 2), state.position, method="sample_visible")
  expected = m1.apply({"params": p1}, h1, method="visible_mean")
  np.testing.assert_allclose(dbn.sample(layers, key, 8, 5), expected, rtol=1e-6, atol=1e-7)

  binary = dbn.sample(layers, key, 8, 5, mean_visible=False)
  assert binary.shape == (8, 6) and set(np.unique(np.asarray(binary))) <= {0.0, 1.0}
  with pytest.raises(ValueError, match="gibbs_steps must be an int >= 0"):
    dbn.sample(layers, key, 8, -1)
  with pytest.raises(ValueError, match=r"start must hold .* \(8, 4\) states, got shape \(8, 3\)"):
    dbn.sample(layers, key, 8, 5, start=np.zeros((8, 3)))
