"""Localisation and orientation selectivity: known filters, and atoms learned from sparse Gabor mixtures."""

import jax
import jax.numpy as jnp
import numpy as np

from deepvision.estimators import receptive_fields as rf
from deepvision.models.fista import fista
from deepvision.models.sparse_coding import accumulate, update_dictionary

SHAPE = (8, 8)


def _gabor(theta, x0=0.0, y0=0.0, sigma=1.5, frequency=0.25):
  rows, x = np.mgrid[0:8, 0:8] - 3.5
  y = -rows  # y up, as in `orientation_tuning`
  u = (x - x0) * np.cos(theta) + (y - y0) * np.sin(theta)
  return (np.exp(-((x - x0) ** 2 + (y - y0) ** 2) / (2 * sigma ** 2)) * np.cos(2 * np.pi * frequency * u)).ravel()


def test_a_gabor_is_oriented_and_localised_a_checkerboard_and_a_plane_wave_are_not():
  y, x = np.mgrid[0:8, 0:8]
  others = [np.cos(np.pi * x / 2) * np.cos(np.pi * y / 2), np.cos(2 * np.pi * x / 8),
            np.exp(-((x - 3.5) ** 2 + (y - 3.5) ** 2) / 2.0)]
  filters = np.stack([_gabor(0.7)] + [f.ravel() for f in others], axis=1)
  osi, loc = rf.orientation_selectivity(filters, SHAPE), rf.localisation(filters, SHAPE)
  assert osi[0] > 0.6 and loc[0] > 0.6  # Gabor
  assert osi[1] < 0.1  # checkerboard: two orientations alike
  assert osi[2] > 0.6 and abs(loc[2]) < 0.05  # plane wave: oriented (up to the 8-pixel window), not localised
  assert osi[3] < 0.1 and loc[3] > 0.7  # round blob: localised, not oriented
  theta, r = rf.orientation_tuning(filters[:, :1], SHAPE)
  assert abs(theta[np.argmax(r[0])] - 0.7) <= np.pi / 16  # the tuning peaks at the Gabor's orientation


def test_atoms_learned_from_sparse_gabor_mixtures_are_localised_and_oriented_where_pca_is_not():
  rng = np.random.default_rng(0)
  k = 24
  truth = np.stack([_gabor(rng.uniform(0, np.pi), *rng.uniform(-2, 2, 2)) for _ in range(k)], axis=1)
  truth /= np.linalg.norm(truth, axis=0)
  codes = rng.laplace(size=(6000, k)) * (rng.uniform(size=(6000, k)) < 0.1)
  x = (codes @ truth.T + 0.01 * rng.normal(size=(6000, 64))).astype(np.float32)
  lam = 0.1

  @jax.jit
  def epoch(carry, batches):
    def step(carry, xb):
      D, A, B, t = carry
      z = fista(xb, D, lam, tol=1e-4, max_iter=300)[0]
      A, B = accumulate(A, B, xb, z, t)
      return (update_dictionary(D, A, B, xb[:D.shape[1]].T), A, B, t + 1), None
    return jax.lax.scan(step, carry, batches)[0]

  D0 = x[:k].T / np.linalg.norm(x[:k].T, axis=0)
  carry = (jnp.asarray(D0), jnp.zeros((k, k)), jnp.zeros((64, k)), jnp.asarray(1))
  for _ in range(2):
    carry = epoch(carry, jnp.asarray(x.reshape(-1, 200, 64)))
  atoms = np.asarray(carry[0])
  centred = x - x.mean(0)
  pca = np.linalg.svd(centred, full_matrices=False)[2][:k].T
  learned, components = rf.summary(atoms, SHAPE), rf.summary(pca, SHAPE)
  assert learned["localisation"] > components["localisation"] + 0.3
  assert learned["orientation_index"] > components["orientation_index"] + 0.1
  assert np.median(np.abs(truth.T @ atoms).max(axis=1)) > 0.9  # the generating atoms are found
