r"""Sparse coding with unit-norm atoms, online dictionary learning, and predictive sparse decomposition.

Sparse coding (Olshausen & Field, "Emergence of simple-cell receptive field properties by learning a sparse
code for natural images", Nature 1996) explains an input x ∈ Rⁿ by a few atoms of a dictionary D ∈ R^{n×k}
whose columns have unit norm:

  E(x, z) = ½‖x − Dz‖² + λ‖z‖₁,   z*(x) = argmin_z E(x, z)   (the lasso, solved by `fista.fista`),

and the features of x are its codes z*(x). `free_energy(x) = min_z E(x, z) = E(x, z*)`: by Danskin's theorem
its gradient with respect to D (and x) is that of E at the fixed z*, which is how it is differentiated here
(`stop_gradient` on the codes; reverse mode does not go through FISTA's loop).

Predictive sparse decomposition (Kavukcuoglu, Ranzato & LeCun, "Fast inference in sparse coding algorithms
with applications to object recognition", 2008) adds an encoder F that learns to predict the codes:

  E_PSD(x, z) = ½‖x − Dz‖² + λ‖z‖₁ + (α/2)‖z − F(x)‖²,
  F(x) = g ⊙ tanh(Wᵀx + b)   (the paper's encoder)   or   F(x) = S_θ(Wᵀx)   (a shrinkage encoder:
  S_θ the soft threshold with a learned threshold θ per code, the one-layer case of Gregor & LeCun 2010).

Training minimises E_PSD over z, D and the encoder jointly; afterwards F(x) is the fast feature extractor,
one matrix product instead of a FISTA loop. (The paper writes the squared terms without the ½; that only
rescales λ and α.)

The dictionary update is the online method of Mairal, Bach, Ponce & Sapiro ("Online dictionary learning
for sparse coding", ICML 2009; "Online learning for matrix factorization and sparse coding", JMLR 2010):
past codes are summarised by A = Σ β·zzᵀ and B = Σ β·xzᵀ (`accumulate`, with the JMLR paper's mini-batch
forgetting weights), and D is updated by one sweep of block-coordinate descent on the surrogate
½tr(DᵀDA) − tr(DᵀB), one atom at a time (`update_dictionary`). The surrogate's Hessian in atom j is A_jj·I,
isotropic, so the exact minimiser over the unit sphere is the normalised unconstrained one:

  u_j = d_j + (b_j − D a_j) / A_jj,   d_j ← u_j / ‖u_j‖.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from deepvision.models.fista import fista, lasso_objective, soft_threshold

Array = jax.Array
ENCODERS = ("tanh", "shrink")
UNUSED_ATOM = 1e-6  # an atom whose A_jj (mean squared code) is below this is replaced by a data example


def unit_columns(key: Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> Array:
  """A random matrix whose columns have unit Euclidean norm (directions uniform on the sphere)."""
  w = jax.random.normal(key, shape, dtype)
  return w / jnp.linalg.norm(w, axis=0, keepdims=True)


def accumulate(A: Array, B: Array, x: Array, z: Array, t: Array) -> tuple[Array, Array]:
  """The sufficient statistics after mini-batch t ≥ 1 of size η (Mairal et al. 2010, §3.4.2).

  A ← β_t A + ZᵀZ/η, B ← β_t B + XᵀZ/η with β_t = (θ + 1 − η)/(θ + 1), θ = tη if t < η else η² + t − η:
  early batches are forgotten faster, since their codes came from a poor dictionary.
  """
  eta = x.shape[0]
  theta = jnp.where(t < eta, t * eta, eta * eta + t - eta).astype(A.dtype)
  beta = (theta + 1.0 - eta) / (theta + 1.0)
  return beta * A + z.T @ z / eta, beta * B + x.T @ z / eta


def update_dictionary(D: Array, A: Array, B: Array, replacements: Array) -> Array:
  """One sweep of block-coordinate descent over the atoms (module docstring); unit-norm columns out.

  An atom that the codes have not used (A_jj < `UNUSED_ATOM`) is replaced by the same column of
  `replacements` (n × k, e.g. examples of the batch), normalised, as scikit-learn's online learner does.
  """

  def atom(j, D):
    a_jj = A[j, j]
    u = D[:, j] + (B[:, j] - D @ A[:, j]) / jnp.maximum(a_jj, UNUSED_ATOM)
    u = jnp.where(a_jj >= UNUSED_ATOM, u, replacements[:, j])
    norm = jnp.linalg.norm(u)
    return D.at[:, j].set(jnp.where(norm > 0, u / jnp.maximum(norm, 1e-12), D[:, j]))

  return jax.lax.fori_loop(0, D.shape[1], atom, D)


def _flat(x: Array, n: int) -> Array:
  x = jnp.reshape(x, (x.shape[0], n))
  return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.float32)


class SparseCoding(nn.Module):
  """Lasso codes of a unit-norm dictionary `D` (n_visible × n_atoms); see the module docstring.

  Attributes:
    n_visible: n, the input size.
    n_atoms: k, the number of atoms.
    lam: λ, the weight of ‖z‖₁.
    tol, max_iter: FISTA's stopping rule (`fista.fista`).
  """

  n_visible: int
  n_atoms: int
  lam: float = 0.5
  tol: float = 1e-5
  max_iter: int = 500

  def setup(self):
    self.D = self.param("D", unit_columns, (self.n_visible, self.n_atoms))

  def codes(self, x: Array) -> Array:
    """z*(x) by FISTA, (B, n_atoms)."""
    return fista(_flat(x, self.n_visible), self.D, self.lam, tol=self.tol, max_iter=self.max_iter)[0]

  def energy(self, x: Array, z: Array) -> Array:
    """E(x, z) = ½‖x − Dz‖² + λ‖z‖₁ per example."""
    return lasso_objective(_flat(x, self.n_visible), self.D, z, self.lam)

  def free_energy(self, x: Array) -> Array:
    """min_z E(x, z) per example, differentiated at the fixed codes (Danskin)."""
    return self.energy(x, jax.lax.stop_gradient(self.codes(x)))

  def hidden_probs(self, x: Array) -> Array:
    """The features: the codes z*(x) (not probabilities; the name is the zoo's for features)."""
    return self.codes(x)

  def __call__(self, x: Array, train: bool = False) -> tuple[Array, dict[str, Array]]:
    """The reconstruction Dz*(x), with the codes as the intermediate 'codes'."""
    del train
    z = self.codes(x)
    return z @ self.D.T, {"codes": z}


class PSD(nn.Module):
  """Predictive sparse decomposition: `D` as in `SparseCoding` plus an encoder that predicts the codes.

  Attributes:
    n_visible, n_atoms, lam, tol, max_iter: as in `SparseCoding`.
    alpha: α, the weight of the prediction term (α/2)‖z − F(x)‖².
    encoder: "tanh" (F = g ⊙ tanh(Wᵀx + b); parameters W, b, g) or "shrink" (F = S_θ(Wᵀx); W, theta).
  """

  n_visible: int
  n_atoms: int
  lam: float = 0.5
  alpha: float = 1.0
  encoder: str = "shrink"
  tol: float = 1e-5
  max_iter: int = 500

  def setup(self):
    if self.encoder not in ENCODERS:
      raise ValueError(f"unknown encoder {self.encoder!r}; valid: {', '.join(ENCODERS)}")
    self.D = self.param("D", unit_columns, (self.n_visible, self.n_atoms))
    self.W = self.param("W", nn.initializers.normal(1.0 / self.n_visible ** 0.5), (self.n_visible, self.n_atoms))
    if self.encoder == "tanh":
      self.b = self.param("b", nn.initializers.zeros, (self.n_atoms,))
      self.g = self.param("g", nn.initializers.ones, (self.n_atoms,))
    else:
      self.theta = self.param("theta", nn.initializers.constant(0.5 * self.lam), (self.n_atoms,))

  def predict(self, x: Array) -> Array:
    """F(x), the encoder's codes (B, n_atoms): the fast features."""
    u = _flat(x, self.n_visible) @ self.W
    if self.encoder == "tanh":
      return self.g * jnp.tanh(u + self.b)
    return soft_threshold(u, self.theta)

  def codes(self, x: Array) -> Array:
    """argmin_z E_PSD(x, z) by FISTA, started at F(x)."""
    p = self.predict(x)
    return fista(_flat(x, self.n_visible), self.D, self.lam, z0=p, prediction=p, alpha=self.alpha,
                 tol=self.tol, max_iter=self.max_iter)[0]

  def lasso_codes(self, x: Array) -> Array:
    """z*(x) of the plain lasso with this dictionary (α = 0): what the encoder approximates."""
    return fista(_flat(x, self.n_visible), self.D, self.lam, tol=self.tol, max_iter=self.max_iter)[0]

  def energy(self, x: Array, z: Array) -> Array:
    """E_PSD(x, z) per example."""
    x = _flat(x, self.n_visible)
    return (lasso_objective(x, self.D, z, self.lam)
            + 0.5 * self.alpha * jnp.sum((z - self.predict(x)) ** 2, axis=-1))

  def free_energy(self, x: Array) -> Array:
    """min_z E_PSD(x, z) per example, differentiated at the fixed codes (Danskin)."""
    return self.energy(x, jax.lax.stop_gradient(self.codes(x)))

  def hidden_probs(self, x: Array) -> Array:
    """The features: the encoder's prediction F(x)."""
    return self.predict(x)

  def __call__(self, x: Array, train: bool = False) -> tuple[Array, dict[str, Array]]:
    """The fast reconstruction D F(x), with F(x) as the intermediate 'codes'."""
    del train
    z = self.predict(x)
    return z @ self.D.T, {"codes": z}
