"""Block Gibbs sampling for RBMs: all hidden units given the visibles, then all visibles given the hiddens.

For an RBM the units of one layer are conditionally independent given the other, so one transition

  h ~ p(h | v),   v' ~ p(v | h)

leaves p(v, h) invariant and the chain (v_t) converges to p(v) (Geman & Geman 1984; Hinton 2002). The
state keeps the visible sample (`position`) and the hidden sample that produced it. Works for any model
with `sample_hidden(key, v)`, `sample_visible(key, h)` and `hidden_probs(v)` methods (`RBM`,
`GaussianRBM`, the binary RBM layers of a DBN).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from deepvision.samplers.base import SamplingAlgorithm

Array = jax.Array


class GibbsState(NamedTuple):
  """position: visible samples (chains, V); hidden: the hidden samples drawn to reach them (chains, H)."""

  position: Array
  hidden: Array


class GibbsInfo(NamedTuple):
  """mean_hidden_prob: mean of p(h = 1 | v) over chains and units at the start of the transition."""

  mean_hidden_prob: Array


def block_gibbs(model: nn.Module, variables: Any, mean_field_visible: bool = False) -> SamplingAlgorithm:
  """The block Gibbs sampler of `model` with parameters `variables` ({'params': ...}).

  Args:
    model: an RBM-like module (see the module docstring).
    variables: its variables.
    mean_field_visible: set v' to E[v | h] instead of a sample (a common variance-reduction choice for the
      visible side of the negative phase; the chain then no longer samples p(v) exactly). Default False.
  """

  def init(position: Any) -> GibbsState:
    v = model.apply(variables, position, method="visible")
    h = jnp.zeros((v.shape[0], model.n_hidden), v.dtype)
    return GibbsState(v, h)

  def step(key: Array, state: GibbsState) -> tuple[GibbsState, GibbsInfo]:
    hidden_key, visible_key = jax.random.split(key)
    probs = model.apply(variables, state.position, method="hidden_probs")
    h = jax.random.bernoulli(hidden_key, probs).astype(probs.dtype)
    if mean_field_visible:
      v = model.apply(variables, h, method="visible_mean")
    else:
      v = model.apply(variables, visible_key, h, method="sample_visible")
    return GibbsState(v, h), GibbsInfo(jnp.mean(probs))

  return SamplingAlgorithm(init, step)
