r"""Training objectives of energy-based models: the contrastive-divergence surrogate and a sparsity penalty.

For a model p(v) = exp(−F(v)) / Z the gradient of the mean negative log-likelihood of data D is

  ∂/∂θ [ ⟨F(v)⟩_D + log Z ] = ⟨∂F/∂θ⟩_D − ⟨∂F/∂θ⟩_p

(Hinton 2002). The model expectation is estimated with samples ("negatives") from a Markov chain: started
at the data and run k steps (CD-k, Hinton 2002), kept from one update to the next (persistent CD,
Tieleman 2008), or run under θ + θ_fast (fast-weights PCD, Tieleman & Hinton 2009). The surrogate

  L(θ) = ⟨F(v⁺)⟩ − ⟨F(sg(v⁻))⟩,     sg = stop_gradient,

has exactly that gradient; its value is the free-energy gap between data and negatives, not a
log-likelihood (which needs log Z: `deepvision.estimators`).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array


def contrastive_divergence_loss(model: nn.Module, variables: Any, positives: Array,
                                negatives: Array) -> Array:
  """⟨F(v⁺)⟩ − ⟨F(sg(v⁻))⟩: its gradient is the (CD / PCD) log-likelihood gradient estimate.

  Args:
    model: an energy model with a `free_energy` method.
    variables: its variables ({'params': ...}).
    positives: a data batch (B, ...).
    negatives: samples from the model's chains (B', ...); gradients do not flow into them.
  """
  negatives = jax.lax.stop_gradient(negatives)
  positive = model.apply(variables, positives, method="free_energy")
  negative = model.apply(variables, negatives, method="free_energy")
  return jnp.mean(positive) - jnp.mean(negative)


def sparsity_penalty(hidden_probs: Array, target: float) -> Array:
  r"""Σ_j CE(p, q_j) with q_j the batch-mean activity of hidden unit j and p the target activity.

  CE(p, q) = −p log q − (1 − p) log(1 − q). Through q_j = ⟨σ(x_j)⟩ its gradient with respect to one
  example's total input x_j is (q_j − p)/B · σ(x_j)(1 − σ(x_j)) / (q_j(1 − q_j)), which is (q_j − p)/B
  when the example's activity equals the mean: the sparsity update of Lee, Ekanadham & Ng (2008) and of
  Hinton's "Practical guide to training RBMs" (2010, §11), here on the current batch rather than a
  running mean. The gradient vanishes exactly when every unit's mean activity equals the target.

  Args:
    hidden_probs: p(h = 1 | v) for a data batch, (B, H).
    target: desired mean activity p ∈ (0, 1).
  """
  q = jnp.clip(jnp.mean(hidden_probs, axis=0), 1e-6, 1 - 1e-6)
  return -jnp.sum(target * jnp.log(q) + (1 - target) * jnp.log1p(-q))
