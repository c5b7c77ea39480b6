"""DBN sampling: top-level Gibbs against exact enumeration, and the documented top-down pass."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepvision.models.rbm import RBM
from deepvision.samplers import dbn


def _layer(model, seed, scale=1.0):
  """A layer with N(0, scale²) weights and biases (numpy: no compilation), units far from uniform."""
  rng = np.random.default_rng(seed)
  shapes = {"W": (model.n_visible, model.n_hidden), "b_v": (model.n_visible,), "b_h": (model.n_hidden,)}
  return model, {name: (scale * rng.standard_normal(shape)).astype(np.float32)
                 for name, shape in shapes.items()}


def _stack(sizes, seed=0, scale=1.0):
  return [_layer(RBM(n_visible=v, n_hidden=h), seed + l, scale)
          for l, (v, h) in enumerate(zip(sizes[:-1], sizes[1:]))]


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
