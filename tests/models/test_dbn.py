"""Deep belief nets: features and the classifier built from a stack (sampling: tests/samplers)."""

from __future__ import annotations

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
