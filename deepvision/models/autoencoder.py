"""Denoising autoencoder with tied weights (Vincent, Larochelle, Bengio & Manzagol 2008).

A corrupted input x̃ (each pixel zeroed with probability p, `corrupt`) is encoded and the clean x decoded:

  h = σ(x̃ W + b_h),   x̂ = σ(h Wᵀ + b_v),   L(x) = −Σ_i [x_i log x̂_i + (1 − x_i) log(1 − x̂_i)]

on inputs in [0, 1]; the features are h of the clean input (`hidden_probs`), as for an RBM, whose
parameters (`W`, `b_v`, `b_h`) and sizes (`n_visible`, `n_hidden`) it shares.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

Array = jax.Array


def corrupt(key: Array, x: Array, rate: float) -> Array:
  """x with each entry set to 0 with probability `rate` (masking noise)."""
  return jnp.where(jax.random.bernoulli(key, rate, x.shape), 0.0, x)


class DenoisingAutoencoder(nn.Module):
  """One hidden layer of `n_hidden` sigmoid units, decoder weights tied to the encoder's."""

  n_visible: int
  n_hidden: int
  init_scale: float = 0.01

  def setup(self):
    self.W = self.param("W", nn.initializers.normal(self.init_scale), (self.n_visible, self.n_hidden))
    self.b_v = self.param("b_v", nn.initializers.zeros, (self.n_visible,))
    self.b_h = self.param("b_h", nn.initializers.zeros, (self.n_hidden,))

  def _flat(self, x: Array) -> Array:
    x = jnp.reshape(x, (x.shape[0], self.n_visible))
    return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.float32)

  def hidden_probs(self, x: Array) -> Array:
    """h = σ(x W + b_h): the features."""
    return jax.nn.sigmoid(self._flat(x) @ self.W + self.b_h)

  def reconstruction_logits(self, x: Array) -> Array:
    """h Wᵀ + b_v for h = `hidden_probs(x)`: x̂ = σ(logits)."""
    return self.hidden_probs(x) @ self.W.T + self.b_v

  def reconstruction_loss(self, clean: Array, corrupted: Array) -> Array:
    """Per example, the cross-entropy of the clean input under the reconstruction of the corrupted one."""
    return optax.sigmoid_binary_cross_entropy(self.reconstruction_logits(corrupted), self._flat(clean)).sum(-1)

  def __call__(self, x: Array, train: bool = False) -> tuple[Array, dict[str, Array]]:
    """The reconstruction x̂ of `x` (uncorrupted), with the features as the intermediate 'hidden'."""
    del train
    h = self.hidden_probs(x)
    return jax.nn.sigmoid(h @ self.W.T + self.b_v), {"hidden": h}
