r"""Multinomial logistic regression on fixed features: how good are a model's features for classification?

The classic evaluation of unsupervised features (RBM, DBN and gated-MRF posteriors): freeze the features,
fit a linear softmax classifier on the training examples, report accuracy on the test examples.

  p(y = c | x) = softmax(xᵀA + b)_c,
  L(A, b) = −(1/N) Σ_n log p(y_n | x_n) + (λ/2) ‖A‖²_F

is convex; it is minimised to convergence with full-batch L-BFGS (`optax.lbfgs`, with its zoom line
search), so the result depends on the features and λ only, not on an optimisation schedule. λ plays the
role of 1/(C·N) in scikit-learn's `LogisticRegression(C=...)`.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class LogisticRegression:
  """A fitted classifier: `weights` (D, C), `bias` (C,), and the final training loss."""

  weights: Array
  bias: Array
  loss: float

  def logits(self, features: Any) -> Array:
    return jnp.asarray(features, jnp.float32).reshape(len(features), -1) @ self.weights + self.bias

  def predict(self, features: Any) -> np.ndarray:
    """The most probable class of each example, int (N,)."""
    return np.asarray(jnp.argmax(self.logits(features), axis=-1))

  def accuracy(self, features: Any, labels: Any) -> float:
    """Fraction of examples whose predicted class equals the label."""
    return float(np.mean(self.predict(features) == np.asarray(labels)))


def _check(features: Any, labels: Any) -> tuple[Array, Array]:
  x = jnp.asarray(features, jnp.float32)
  if x.ndim < 2 or len(x) == 0:
    raise ValueError(f"features must be a non-empty batch (N, D...), got shape {tuple(x.shape)}")
  x = x.reshape(len(x), -1)
  y = np.asarray(labels)
  if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer) or y.min() < 0:
    raise ValueError(f"labels must be non-negative ints of shape ({len(x)},), got {y.shape} {y.dtype}")
  if not bool(jnp.all(jnp.isfinite(x))):
    raise ValueError("features contain NaN or Inf")
  return x, jnp.asarray(y, jnp.int32)


def fit_logistic_regression(features: Any, labels: Any, l2: float = 1e-4, num_classes: int | None = None,
                            max_steps: int = 500, tolerance: float = 1e-6) -> LogisticRegression:
  """Minimises the L2-regularised softmax cross-entropy with L-BFGS.

  Args:
    features: (N, D) (or (N, ...), flattened) training features.
    labels: (N,) integer classes.
    l2: λ ≥ 0, the weight of (λ/2)‖A‖² (the bias is not penalised).
    num_classes: C (default: max label + 1).
    max_steps: L-BFGS iterations at most.
    tolerance: stop when the gradient norm falls below this.

  Returns:
    The fitted `LogisticRegression`.
  """
  x, y = _check(features, labels)
  if not l2 >= 0:
    raise ValueError(f"l2 must be >= 0, got {l2!r}")
  if not isinstance(max_steps, int) or max_steps < 1:
    raise ValueError(f"max_steps must be an int >= 1, got {max_steps!r}")
  classes = int(num_classes or int(y.max()) + 1)
  params = _minimise(x, y, jnp.float32(l2), jnp.float32(tolerance), classes, max_steps)
  return LogisticRegression(params["weights"], params["bias"], float(_loss(params, x, y, l2)))


def _loss(params: dict[str, Array], x: Array, y: Array, l2: Array) -> Array:
  logits = x @ params["weights"] + params["bias"]
  data = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))
  return data + 0.5 * l2 * jnp.sum(params["weights"] ** 2)


@functools.partial(jax.jit, static_argnums=(4, 5))
def _minimise(x: Array, y: Array, l2: Array, tolerance: Array, classes: int, max_steps: int
              ) -> dict[str, Array]:
  """L-BFGS from zero weights; compiled once per data shape (l2 and the tolerance are traced)."""
  loss_fn = functools.partial(_loss, x=x, y=y, l2=l2)
  solver = optax.lbfgs()
  value_and_grad = optax.value_and_grad_from_state(loss_fn)

  def cond(carry):
    _, _, step, grad_norm = carry
    return (step < max_steps) & (grad_norm > tolerance)

  def body(carry):
    p, state, step, _ = carry
    value, grad = value_and_grad(p, state=state)
    updates, state = solver.update(grad, state, p, value=value, grad=grad, value_fn=loss_fn)
    return optax.apply_updates(p, updates), state, step + 1, optax.tree.norm(grad)

  params = {"weights": jnp.zeros((x.shape[1], classes)), "bias": jnp.zeros((classes,))}
  params, _, _, _ = jax.lax.while_loop(cond, body, (params, solver.init(params), 0, jnp.inf))
  return params
