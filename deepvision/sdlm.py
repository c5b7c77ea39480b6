"""The stochastic diagonal Levenberg–Marquardt step (LeCun, Bottou, Bengio & Haffner 1998, Appendix C).

Each parameter w_k moves at its own rate

  ε_k = η / (μ + h_kk),      Δw_k = −ε_k ∂E/∂w_k,

where h_kk estimates the diagonal of the loss's Gauss–Newton matrix (the second derivative with the
network's own curvature dropped) and the damping μ bounds the rate where the curvature is small (the
paper: μ = 0.02; h re-estimated on 500 patterns before each pass). Here h is a running average of one
unbiased estimate ĥ per step, h ← (1 − γ) h + γ ĥ, bias-corrected as Adam's moments are, and ĥ reaches
the transformation as the extra argument `curvature` of `update` (optax's extra-args protocol).

Two estimates of ĥ, each one backward pass through the step's own forward pass: the paper's, the Gauss–
Newton matrix of the Euclidean distance of the features to the right class's RBF code (Hessian 2I in the
features, whatever the label: `euclidean_diagonal_sample`), and that of a softmax cross-entropy on the
logits, the Fisher E_{ŷ∼p(·|x)}[g_ŷ g_ŷᵀ] (Martens 2014, "New insights and perspectives on the natural
gradient method": `fisher_diagonal_sample`). The Fisher vanishes where the softmax is confident, right or
wrong, so on LeNet-5's RBF logits (spanning hundreds) it leaves the rate at η/μ where the net is most wrong.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

PAPER_DAMPING = 0.02  # μ of the paper's Appendix C
DEFAULT_DECAY = 0.01  # γ, the weight of each new curvature estimate in the running average
CURVATURES = ("euclidean", "fisher")  # the Gauss–Newton estimates below, by name; the first is the paper's


class ScaleBySdlmState(NamedTuple):
  """`curvature`: the running (not yet bias-corrected) average of ĥ; `count`: estimates absorbed."""

  curvature: Any
  count: jax.Array


def scale_by_sdlm(damping: float = PAPER_DAMPING, decay: float = DEFAULT_DECAY) -> optax.GradientTransformationExtraArgs:
  """Divides each gradient by μ + h, h the bias-corrected running average of the `curvature` estimates.

  Args:
    damping: μ > 0, the paper's safeguard: rates never exceed 1/μ times the base rate.
    decay: γ in (0, 1], the weight of each new estimate (1: use the newest estimate alone).

  Returns:
    A transformation whose `update(updates, state, params=None, *, curvature)` takes ĥ, a tree shaped
    like the updates of non-negative diagonal Gauss–Newton estimates.
  """
  if not damping > 0:
    raise ValueError(f"sdlm damping must be > 0 (the paper's μ = {PAPER_DAMPING}), got {damping!r}")
  if not 0 < decay <= 1:
    raise ValueError(f"sdlm decay must be in (0, 1] (the weight of each new curvature estimate), got {decay!r}")

  def init_fn(params):
    return ScaleBySdlmState(jax.tree.map(jnp.zeros_like, params), jnp.zeros((), jnp.int32))

  def update_fn(updates, state, params=None, *, curvature=None, **extra_args):
    del params, extra_args
    if curvature is None:
      raise ValueError("the sdlm step needs the Gauss–Newton estimate: tx.update(grads, state, params, "
                       "curvature=h) (see fisher_diagonal_sample)")
    count = state.count + 1
    average = jax.tree.map(lambda h, new: (1.0 - decay) * h + decay * new, state.curvature, curvature)
    correction = 1.0 - (1.0 - decay) ** count.astype(jnp.float32)
    updates = jax.tree.map(lambda g, h: g / (damping + h / correction).astype(g.dtype), updates, average)
    return updates, ScaleBySdlmState(average, count)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def sdlm(learning_rate: optax.ScalarOrSchedule, damping: float = PAPER_DAMPING, decay: float = DEFAULT_DECAY,
         momentum: float | None = None) -> optax.GradientTransformationExtraArgs:
  """The SDLM step η / (μ + h) · g, optionally followed by a momentum trace (the paper uses none)."""
  parts = [scale_by_sdlm(damping, decay)]
  if momentum:
    parts.append(optax.trace(decay=momentum))
  parts.append(optax.scale_by_learning_rate(learning_rate))
  return optax.chain(*parts)


def euclidean_diagonal_sample(features_vjp, features: jax.Array, key: jax.Array) -> Any:
  """One unbiased estimate of the Gauss–Newton diagonal of (1/N) Σ_n ‖f_n − c_n‖², the paper's criterion.

  LeNet-5's RBF unit of the right class computes ‖f − c‖² from the F6 features f, whose Hessian in f is
  2I whatever the label: h = (2/N) Σ_n Σ_j (∂f_nj/∂w)². With Rademacher v_n, s = Σ_n J_nᵀ v_n is one
  backward pass and E[s²] = Σ_n Σ_j (∂f_nj/∂w)² (the cross terms have mean zero).

  Args:
    features_vjp: the `vjp` function of params ↦ features (N, D).
    features: the batch's features.
    key: the draw of the Rademacher signs.
  """
  signs = jax.random.rademacher(key, features.shape, features.dtype)
  (summed,) = features_vjp(signs)
  return jax.tree.map(lambda s: 2.0 * jnp.square(s) / features.shape[0], summed)


def fisher_diagonal_sample(logits_vjp, logits: jax.Array, key: jax.Array) -> Any:
  """One unbiased estimate of the diagonal Gauss–Newton (Fisher) matrix of the mean cross-entropy.

  With labels ŷ_n drawn from softmax(z_n), s = Σ_n J_nᵀ (p_n − e_ŷn) is one backward pass; the terms
  are independent with mean zero, so E[s²] / N = (1/N) Σ_n J_nᵀ (diag p_n − p_n p_nᵀ) J_n |diag, the
  Gauss–Newton diagonal of (1/N) Σ_n CE_n.

  Args:
    logits_vjp: the `vjp` function of params ↦ logits (from `jax.vjp`), shared with the gradient.
    logits: (N, K) logits of the batch.
    key: the draw of the model's labels.
  """
  sampled = jax.random.categorical(key, jax.lax.stop_gradient(logits))
  probs = jax.nn.softmax(jax.lax.stop_gradient(logits))
  cotangent = probs - jax.nn.one_hot(sampled, logits.shape[-1], dtype=probs.dtype)
  (summed,) = logits_vjp(cotangent)
  return jax.tree.map(lambda s: jnp.square(s) / logits.shape[0], summed)
