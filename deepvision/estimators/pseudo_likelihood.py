r"""Pseudo-likelihood of binary RBMs: a tractable proxy for the log-likelihood (Besag 1975).

  PL(v) = Σ_i log p(v_i | v_−i) = Σ_i log σ(F(ṽ^(i)) − F(v)),

where ṽ^(i) is v with unit i flipped, v_i → 1 − v_i, because for binary v_i

  p(v_i | v_−i) = exp(−F(v)) / (exp(−F(v)) + exp(−F(ṽ^(i)))) = σ(F(ṽ^(i)) − F(v)).

`pseudo_log_likelihood` evaluates all V flips (for `RBM`s in closed form); the one-sample estimate
V·log σ(F(ṽ^(i)) − F(v)), i uniform, is `stochastic_pseudo_log_likelihood` (scikit-learn's).
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from deepvision.estimators import partition
from deepvision.models.rbm import RBM

Array = jax.Array

# Numbers held at once for the flips of one lax.map batch of examples (V × V or V × H per example).
_MAX_FLIPPED_ELEMENTS = 2 ** 22


def _check(model: nn.Module, variables: Any, v: Any, what: str) -> Array:
  kind = partition.visible_kind(model)
  if kind != "binary":
    raise ValueError(f"{what} needs binary visible units (flipping v_i → 1 − v_i); "
                     f"{type(model).__name__} has {kind} visibles")
  return partition.check_visible_data(model, variables, v, "v")


@functools.partial(jax.jit, static_argnames=("model",))
def _exact(model, variables, v):
  n = model.n_visible
  if isinstance(model, RBM):  # closed form for the V flips, O(V·H) per example
    params = variables["params"]

    def one(x):  # x (V,)
      logits = model.apply(variables, x[None], method="hidden_logits")[0]  # (H,)
      delta = 1 - 2 * x
      flipped = logits + delta[:, None] * params["W"]  # (V, H): the logits with unit i flipped
      free_energy_change = -delta * params["b_v"] - jnp.sum(
          jax.nn.softplus(flipped) - jax.nn.softplus(logits), axis=-1)
      return jnp.sum(jax.nn.log_sigmoid(free_energy_change))

    per_example = n * model.n_hidden
  else:  # any binary model: V + 1 free energies per example
    eye = jnp.eye(n, dtype=v.dtype)
    free_energy = lambda x: model.apply(variables, x, method="free_energy")  # noqa: E731

    def one(x):  # row i of the flipped batch is x with unit i set to 1 − x_i
      flipped = x + eye * (1 - 2 * x)
      return jnp.sum(jax.nn.log_sigmoid(free_energy(flipped) - free_energy(x[None])))

    per_example = n * n
  batch_size = max(1, min(v.shape[0], _MAX_FLIPPED_ELEMENTS // per_example))
  return jax.lax.map(one, v, batch_size=batch_size)


def pseudo_log_likelihood(model: nn.Module, variables: Any, v: Any) -> Array:
  """Exact pseudo-log-likelihood Σ_i log σ(F(ṽ^(i)) − F(v)) of each example, (B,).

  Works for any module with `free_energy(v)`, `n_visible`, and `visible_kind == 'binary'`, at a cost of
  V + 1 free energies per example (O(B·V²·H) for an RBM-like model). For `RBM` modules the V flips are
  evaluated in closed form instead, O(B·V·H): with l = b_h + vᵀW and δ_i = 1 − 2v_i,

    F(ṽ^(i)) − F(v) = −δ_i b_v_i − Σ_j [softplus(l_j + δ_i W_ij) − softplus(l_j)].

  The flip 1 − v_i also applies to data in [0, 1] (grey levels used as probabilities), as in
  scikit-learn's `BernoulliRBM.score_samples`, which then no longer scores a distribution but stays
  comparable.

  Args:
    model: a binary RBM-like module.
    variables: its variables.
    v: (B, V) (or images of V values) in [0, 1].

  Raises:
    ValueError: for Gaussian visibles, a wrong feature size or values outside [0, 1], before compute.
  """
  v = _check(model, variables, v, "pseudo_log_likelihood")
  return _exact(model, variables, v)


@functools.partial(jax.jit, static_argnames=("model",))
def _stochastic(model, variables, v, key):
  n = model.n_visible
  unit = jax.random.randint(key, (v.shape[0],), 0, n)
  flip = jax.nn.one_hot(unit, n, dtype=v.dtype)
  flipped = v + flip * (1 - 2 * v)
  free_energy = lambda x: model.apply(variables, x, method="free_energy")  # noqa: E731
  return n * jax.nn.log_sigmoid(free_energy(flipped) - free_energy(v))


def stochastic_pseudo_log_likelihood(model: nn.Module, variables: Any, v: Any, key: Array) -> Array:
  """V·log σ(F(ṽ^(i)) − F(v)) with one uniformly drawn unit i flipped per example, (B,).

  An unbiased estimate of `pseudo_log_likelihood` at the cost of two free energies per example (the
  flipped unit i uniform, the log-probability scaled by V): scikit-learn's one-sample estimator in
  `BernoulliRBM.score_samples`.

  Args:
    model, variables, v: as for `pseudo_log_likelihood`.
    key: typed PRNG key choosing the flipped units.
  """
  v = _check(model, variables, v, "stochastic_pseudo_log_likelihood")
  return _stochastic(model, variables, v, key)
