"""Logistic regression on fixed features: the optimum is stationary, predictions follow the logits."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from deepvision.models.logistic import fit_logistic_regression


def _blobs(n=300, d=5, classes=3, seed=0):
  rng = np.random.default_rng(seed)
  centres = rng.normal(0, 2.0, (classes, d))
  labels = rng.integers(0, classes, n)
  return (centres[labels] + rng.normal(0, 1.0, (n, d))).astype(np.float32), labels


def test_solution_is_a_stationary_point_of_the_regularised_loss():
  x, y = _blobs()
  fit = fit_logistic_regression(x, y, l2=1e-2, tolerance=1e-7)

  def loss(p):
    logits = x @ p["weights"] + p["bias"]
    return (jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))
            + 0.5e-2 * jnp.sum(p["weights"] ** 2))

  grad = jax.grad(loss)({"weights": fit.weights, "bias": fit.bias})
  assert max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(grad)) < 1e-4
  assert fit.loss == pytest.approx(float(loss({"weights": fit.weights, "bias": fit.bias})), rel=1e-5)
  # Well-separated blobs: nearly every training point is classified right, by the argmax of the logits.
  assert fit.accuracy(x, y) > 0.9
  np.testing.assert_array_equal(fit.predict(x), np.argmax(x @ np.asarray(fit.weights) + fit.bias, -1))


def test_stronger_regularisation_shrinks_the_weights():
  x, y = _blobs()
  norms = [float(jnp.linalg.norm(fit_logistic_regression(x, y, l2=l2).weights)) for l2 in (1e-3, 1e-1, 10.0)]
  assert norms[0] > norms[1] > norms[2]


@pytest.mark.parametrize("labels,match", [(np.zeros(7, int), "shape"), (-np.ones(10, int), "non-negative"),
                                          (np.zeros(10), "ints")])
def test_bad_labels_are_named(labels, match):
  with pytest.raises(ValueError, match=match):
    fit_logistic_regression(np.zeros((10, 3)), labels)


def test_bad_settings_are_named():
  x, y = _blobs(n=20)
  with pytest.raises(ValueError, match="l2"):
    fit_logistic_regression(x, y, l2=-1.0)
  with pytest.raises(ValueError, match="NaN"):
    fit_logistic_regression(np.full((20, 5), np.nan), y)
