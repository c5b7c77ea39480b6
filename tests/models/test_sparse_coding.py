"""Sparse coding: FISTA against scikit-learn's lasso, its O(1/k²) rate, batching, the dictionary update."""

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.decomposition import SparseCoder

from deepvision import zoo
from deepvision.models.fista import (
  fista,
  fista_init,
  fista_step,
  lasso_objective,
  lipschitz,
)
from deepvision.models.sparse_coding import accumulate, update_dictionary


def _problem(n=20, k=40, b=10, seed=0):
  rng = np.random.default_rng(seed)
  D = rng.normal(size=(n, k))
  return D / np.linalg.norm(D, axis=0), rng.normal(size=(b, n))


def test_fista_codes_equal_scikit_learns_lasso_lars_codes():
  # SparseCoder's lasso minimises (1/2n)‖x − Dz‖² + (alpha/n)‖z‖₁ (it divides transform_alpha by the n
  # features): n times that is ½‖x − Dz‖² + alpha‖z‖₁, so transform_alpha = λ is the same problem.
  D, x = _problem()
  lam = 0.3
  expected = SparseCoder(dictionary=D.T, transform_algorithm="lasso_lars", transform_alpha=lam).transform(x)
  with jax.enable_x64(True):
    z, info = fista(jnp.asarray(x), jnp.asarray(D), lam, tol=1e-10, max_iter=20000)
    z = np.asarray(z)
  assert float(info.converged) == 1.0
  np.testing.assert_allclose(z, expected, atol=1e-4)
  assert 0.1 < np.mean(expected != 0) < 0.9  # a lasso problem with both zero and non-zero codes
  objective = lambda z: 0.5 * np.sum((x - z @ D.T) ** 2) + lam * np.abs(z).sum()  # noqa: E731
  assert objective(z) <= objective(expected) + 1e-9


def test_objective_gap_falls_at_the_rate_of_beck_and_teboulle_theorem_4_4():
  D, x = _problem(seed=1)
  lam = 0.3
  with jax.enable_x64(True):
    x, D = jnp.asarray(x), jnp.asarray(D)
    z_star = fista(x, D, lam, tol=1e-12, max_iter=50000)[0]
    L = lipschitz(D)
    z0 = jnp.zeros_like(z_star)

    def step(state, _):
      state = fista_step(state, x, D, lam, L)
      return state, lasso_objective(x, D, state.z, lam).sum()

    objectives = np.asarray(jax.lax.scan(step, fista_init(z0), length=400)[1])
    best = float(lasso_objective(x, D, z_star, lam).sum())
    bound_constant = 2 * float(L) * float(jnp.sum((z0 - z_star) ** 2))
  k = np.arange(1, len(objectives) + 1)
  gap = objectives - best
  assert np.all(gap >= -1e-9)
  assert np.all(gap * (k + 1) ** 2 <= bound_constant)  # F(z_k) − F(z*) ≤ 2L‖z0 − z*‖² / (k + 1)²
  assert gap[-1] < 1e-3 * gap[0]


def test_codes_of_an_example_do_not_depend_on_its_batch_and_the_cap_holds():
  D, x = _problem(seed=2)
  D, x = jnp.asarray(D, jnp.float32), jnp.asarray(x, jnp.float32)
  batched = fista(x, D, 0.3, tol=1e-5, max_iter=3000)[0]
  alone = jnp.concatenate([fista(x[i:i + 1], D, 0.3, tol=1e-5, max_iter=3000)[0] for i in range(3)])
  np.testing.assert_allclose(batched[:3], alone, atol=1e-5)
  _, info = fista(x, D, 0.3, tol=0.0, max_iter=7)
  assert int(info.iterations) == 7 and float(info.converged) == 0.0


def test_dictionary_update_keeps_unit_atoms_and_never_raises_the_surrogate():
  rng = np.random.default_rng(3)
  n, k = 12, 20
  D0, x = _problem(n, k, 64, seed=4)
  z = np.asarray(fista(jnp.asarray(x), jnp.asarray(D0), 0.2, tol=1e-6, max_iter=2000)[0])
  A, B = accumulate(jnp.zeros((k, k)), jnp.zeros((n, k)), jnp.asarray(x, jnp.float32),
                    jnp.asarray(z, jnp.float32), jnp.asarray(1))
  surrogate = lambda D: 0.5 * jnp.trace(D.T @ D @ A) - jnp.trace(D.T @ B)  # noqa: E731
  D = jnp.asarray(D0, jnp.float32)
  replacements = jnp.asarray(rng.normal(size=(n, k)), jnp.float32)
  for _ in range(3):
    new = update_dictionary(D, A, B, replacements)
    np.testing.assert_allclose(jnp.linalg.norm(new, axis=0), 1.0, rtol=1e-5)
    assert float(surrogate(new)) <= float(surrogate(D)) + 1e-5
    D = new
  unused = jnp.zeros((k, k)).at[1:, 1:].set(A[1:, 1:])  # atom 0 never used: replaced by column 0
  replaced = update_dictionary(jnp.asarray(D0, jnp.float32), unused, B, replacements)
  np.testing.assert_allclose(replaced[:, 0], replacements[:, 0] / jnp.linalg.norm(replacements[:, 0]), rtol=1e-5)


def test_zoo_variants_have_the_documented_parameters():
  params = zoo.abstract_variables(zoo.create("sparse_coding"))["params"]
  assert zoo.count_params(params) == 52 * 128 and set(params) == {"D"}
  psd = zoo.abstract_variables(zoo.create("psd"))["params"]
  assert set(psd) == {"D", "W", "theta"} and zoo.count_params(psd) == 2 * 52 * 52 + 52
  tanh = zoo.abstract_variables(zoo.create("psd_tiny", encoder="tanh"))["params"]
  assert set(tanh) == {"D", "W", "b", "g"}
  model = zoo.create("sparse_coding_tiny")
  variables = model.init(jax.random.key(0), jnp.zeros((1, 6)))
  np.testing.assert_allclose(jnp.linalg.norm(variables["params"]["D"], axis=0), 1.0, rtol=1e-5)
