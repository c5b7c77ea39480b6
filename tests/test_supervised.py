"""The pure train / eval steps: exact losses, masks, moving averages, key derivation, no recompilation."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from deepvision.train import supervised
from deepvision.train.state import create_train_state


class _Linear(nn.Module):

  @nn.compact
  def __call__(self, x, train=False):
    h = nn.Dropout(0.5, deterministic=not train)(x.reshape(x.shape[0], -1))
    return nn.Dense(3)(h), {}


def _batch(n=4, seed=0):
  rng = np.random.default_rng(seed)
  return {"image": rng.uniform(size=(n, 2, 2, 1)).astype(np.float32),
          "label": rng.integers(0, 3, n).astype(np.int32)}


def _state(ema=False):
  return create_train_state(_Linear(), optax.sgd(0.1), jax.random.key(0), (2, 2, 1), ema=ema)


def test_eval_step_sums_equal_the_closed_form_and_ignore_masked_examples():
  state, batch = _state(), _batch()
  pre = supervised.Preprocess(standardize=False)
  sums = supervised.make_eval_step(pre)(state, batch)
  logits, _ = state.apply_fn({"params": state.params}, batch["image"])
  expected = -jax.nn.log_softmax(logits)[np.arange(4), batch["label"]]
  np.testing.assert_allclose(sums["loss_sum"], expected.sum(), rtol=1e-6)
  assert sums["count"] == 4
  masked = dict(batch, mask=np.array([True, True, False, False]))
  sums = supervised.make_eval_step(pre)(state, masked)
  np.testing.assert_allclose(sums["loss_sum"], expected[:2].sum(), rtol=1e-6)
  assert sums["count"] == 2


def test_train_step_is_deterministic_given_the_state_and_uses_the_step_key():
  step = jax.jit(supervised.make_train_step(supervised.Preprocess(translate=1, noise_std=0.1),
                                            learning_rate_fn=lambda t: 0.1 / (1 + t)))
  state = _state()
  a, metrics = step(state, _batch())
  b, _ = step(state, _batch())
  for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
    np.testing.assert_array_equal(x, y)
  assert int(a.step) == 1 and float(metrics["learning_rate"]) == pytest.approx(0.1)
  # Same batch at another step: other dropout / jitter draws, so another update.
  c, metrics = step(a.replace(params=state.params), _batch())
  assert float(metrics["learning_rate"]) == pytest.approx(0.05)
  assert not np.allclose(jax.tree.leaves(c.params)[1], jax.tree.leaves(a.params)[1])
  assert step._cache_size() == 1  # no recompilation across steps


def test_moving_average_of_parameters():
  decay = 0.9
  step = supervised.make_train_step(supervised.Preprocess(standardize=False), ema_decay=decay)
  state = _state(ema=True)
  new, _ = step(state, _batch())
  for avg, old, cur in zip(jax.tree.leaves(new.ema_params), jax.tree.leaves(state.params),
                           jax.tree.leaves(new.params)):
    np.testing.assert_allclose(avg, decay * old + (1 - decay) * cur, rtol=1e-6)
  plain = _state()
  assert new.eval_params is new.ema_params and plain.eval_params is plain.params


def test_preprocess_rejects_bad_values():
  with pytest.raises(ValueError, match="translate"):
    supervised.Preprocess(translate=-1)
  with pytest.raises(ValueError, match="noise_std"):
    supervised.Preprocess(noise_std=-0.1)
