"""Checkpoints round-trip the train state (typed keys included), keep N, and refuse non-finite states."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from deepvision.checkpoint import Checkpointer, NonFiniteStateError
from deepvision.train.state import create_train_state


class _Tiny(nn.Module):

  @nn.compact
  def __call__(self, x, train=False):
    return nn.Dense(3)(x.reshape(x.shape[0], -1)), {}


def _state(seed=0):
  return create_train_state(_Tiny(), optax.sgd(0.1, momentum=0.9), jax.random.key(seed), (2, 2, 1))


def _advance(state, n):
  grads = jax.tree.map(jnp.ones_like, state.params)
  for _ in range(n):
    state = state.apply_gradients(grads=grads)
  return state


def test_round_trip_is_exact_including_key_and_optimizer(tmp_path):
  ckpt = Checkpointer(tmp_path / "ckpt", keep=2)
  state = _advance(_state(1), 3)
  ckpt.save(state, {"epoch": 2, "position": 7})
  restored, data = ckpt.restore(_state(0))
  assert data == {"epoch": 2, "position": 7}
  assert int(restored.step) == 3
  assert jax.random.key_data(restored.key).tolist() == jax.random.key_data(state.key).tolist()
  for a, b in zip(jax.tree.leaves((state.params, state.opt_state)),
                  jax.tree.leaves((restored.params, restored.opt_state))):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  ckpt.close()


def test_keeps_the_newest_n(tmp_path):
  ckpt = Checkpointer(tmp_path / "ckpt", keep=2)
  state = _state()
  for _ in range(4):
    state = _advance(state, 1)
    ckpt.save(state, {})
  assert ckpt.all_steps() == [3, 4]
  assert ckpt.latest_step() == 4
  ckpt.close()


def test_non_finite_state_is_never_saved(tmp_path):
  ckpt = Checkpointer(tmp_path / "ckpt")
  good = _advance(_state(), 1)
  ckpt.save(good, {})
  bad = _advance(good, 1)
  bad = bad.replace(params=jax.tree.map(lambda p: p.at[0].set(jnp.nan), bad.params))
  with pytest.raises(NonFiniteStateError, match="step 2"):
    ckpt.save(bad, {})
  assert ckpt.all_steps() == [1]
  ckpt.close()


def test_bad_keep_and_missing_checkpoint(tmp_path):
  with pytest.raises(ValueError, match="keep"):
    Checkpointer(tmp_path / "a", keep=0)
  ckpt = Checkpointer(tmp_path / "b")
  with pytest.raises(FileNotFoundError, match="no checkpoint"):
    ckpt.restore(_state())
  ckpt.close()
