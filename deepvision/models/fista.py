r"""FISTA: the fast iterative shrinkage-thresholding algorithm for lasso codes (Beck & Teboulle 2009).

For a batch of inputs x (one per row) and a dictionary D (n × k, one atom per column) the codes minimise,
example by example,

  F(z) = f(z) + λ‖z‖₁,   f(z) = ½‖x − Dz‖² + (α/2)‖z − p‖²,

the lasso (α = 0) or, with a prediction p and a weight α > 0, the energy of predictive sparse decomposition
(`sparse_coding.PSD`). f has an L-Lipschitz gradient, ∇f(z) = Dᵀ(Dz − x) + α(z − p) with
L = λ_max(DᵀD) + α, and one step is

  z_k = S_{λ/L}(y_k − ∇f(y_k)/L),   t_{k+1} = (1 + √(1 + 4t_k²))/2,
  y_{k+1} = z_k + ((t_k − 1)/t_{k+1})(z_k − z_{k−1}),

with S_τ(u) = sign(u)·max(|u| − τ, 0) the soft threshold, y_1 = z_0 and t_1 = 1. Theorem 4.4 of Beck &
Teboulle ("A fast iterative shrinkage-thresholding algorithm for linear inverse problems", SIAM J. Imaging
Sciences 2009) bounds the gap after k steps: F(z_k) − F(z*) ≤ 2L‖z_0 − z*‖² / (k + 1)².

`fista` runs the steps in one `lax.while_loop` over the whole batch until every example has converged
(‖z_k − z_{k−1}‖ ≤ tol · max(1, ‖z_k‖)) or `max_iter` steps; an example that has converged stops moving,
so its codes do not depend on the other examples of its batch. `fista_init` / `fista_step` are the pieces,
for a caller that wants every iterate (the rate test scans them).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array


def soft_threshold(u: Array, tau: Array | float) -> Array:
  """S_τ(u) = sign(u)·max(|u| − τ, 0), the proximal map of τ‖·‖₁."""
  return jnp.sign(u) * jnp.maximum(jnp.abs(u) - tau, 0.0)


def lasso_objective(x: Array, D: Array, z: Array, lam: float) -> Array:
  """Per example (rows of x and z), ½‖x − Dz‖² + λ‖z‖₁."""
  return 0.5 * jnp.sum((x - z @ D.T) ** 2, axis=-1) + lam * jnp.sum(jnp.abs(z), axis=-1)


def lipschitz(D: Array) -> Array:
  """λ_max(DᵀD) = ‖D‖₂², the Lipschitz constant of the lasso's smooth part (from the smaller Gram matrix)."""
  gram = D @ D.T if D.shape[0] <= D.shape[1] else D.T @ D
  return jnp.linalg.eigvalsh(gram)[-1]


class FistaState(NamedTuple):
  """z: the iterate z_k (B, k); y: the extrapolated point y_{k+1}; t: t_{k+1}; step: k (per example)."""

  z: Array
  y: Array
  t: Array
  step: Array


class FistaInfo(NamedTuple):
  """iterations: steps taken (the slowest example's); converged: fraction of examples within tol."""

  iterations: Array
  converged: Array


def fista_init(z0: Array) -> FistaState:
  """The state before the first step, from the starting codes z_0 (B, k)."""
  ones = jnp.ones(z0.shape[:-1], z0.dtype)
  return FistaState(z0, z0, ones, jnp.zeros(z0.shape[:-1], jnp.int32))


def fista_step(state: FistaState, x: Array, D: Array, lam: float, L: Array, prediction: Array | None = None,
               alpha: float = 0.0) -> FistaState:
  """One FISTA step (module docstring) for every example of the batch."""
  y = state.y
  grad = (y @ D.T - x) @ D
  if prediction is not None:
    grad = grad + alpha * (y - prediction)
  z = soft_threshold(y - grad / L, lam / L)
  t = 0.5 * (1.0 + jnp.sqrt(1.0 + 4.0 * state.t ** 2))
  y = z + ((state.t - 1.0) / t)[..., None] * (z - state.z)
  return FistaState(z, y, t, state.step + 1)


def fista(x: Array, D: Array, lam: float, *, z0: Array | None = None, prediction: Array | None = None,
          alpha: float = 0.0, tol: float = 1e-5, max_iter: int = 500,
          L: Array | None = None) -> tuple[Array, FistaInfo]:
  """Codes of a batch by FISTA (module docstring), in one `lax.while_loop`.

  Args:
    x: (B, n) inputs, one per row.
    D: (n, k) dictionary, one atom per column.
    lam: λ ≥ 0, the weight of ‖z‖₁.
    z0: (B, k) starting codes (default: zeros; PSD starts at its encoder's prediction).
    prediction: (B, k) codes p that the term (α/2)‖z − p‖² pulls towards (PSD), or None.
    alpha: α ≥ 0, that term's weight.
    tol: an example stops when ‖z_k − z_{k−1}‖ ≤ tol · max(1, ‖z_k‖).
    max_iter: the cap on steps.
    L: the Lipschitz constant, if known (default: `lipschitz(D) + α`).

  Returns:
    (z, info): the codes (B, k) and a `FistaInfo`.
  """
  if z0 is None:
    z0 = jnp.zeros((x.shape[0], D.shape[1]), jnp.result_type(x, D))
  if L is None:
    L = lipschitz(D) + (alpha if prediction is not None else 0.0)
  tol = jnp.asarray(tol, z0.dtype)

  def active(state: FistaState, previous: Array) -> Array:
    change = jnp.linalg.norm(state.z - previous, axis=-1)
    return change > tol * jnp.maximum(1.0, jnp.linalg.norm(state.z, axis=-1))

  def cond(carry):
    state, moving = carry
    return jnp.any(moving) & (jnp.max(state.step) < max_iter)

  def body(carry):
    state, moving = carry
    new = fista_step(state, x, D, lam, L, prediction, alpha)
    keep = moving[..., None]
    new = FistaState(jnp.where(keep, new.z, state.z), jnp.where(keep, new.y, state.y),
                     jnp.where(moving, new.t, state.t), jnp.where(moving, new.step, state.step))
    return new, moving & active(new, state.z)

  state = fista_init(z0)
  state, moving = jax.lax.while_loop(cond, body, (state, jnp.ones(z0.shape[:-1], bool)))
  return state.z, FistaInfo(jnp.max(state.step), 1.0 - jnp.mean(moving.astype(z0.dtype)))
