r"""Restricted Boltzmann machines: binary (`RBM`) and Gaussian-Bernoulli (`GaussianRBM`).

Linen modules over flat visible vectors v (`n_visible`) with `n_hidden` binary hiddens and the
parameters of reference/gated-mrf.md: `W` (n_visible × n_hidden), `b_v`, `b_h`. Binary RBM (Smolensky
1986; Hinton 2002), v ∈ {0,1}^V, h ∈ {0,1}^H:

  E(v, h) = −b_vᵀv − b_hᵀh − vᵀWh,   F(v) = −b_vᵀv − Σ_j softplus(b_h_j + (vᵀW)_j)
  p(h_j = 1 | v) = σ(b_h_j + (vᵀW)_j),   p(v_i = 1 | h) = σ(b_v_i + (Wh)_i)

Gaussian-Bernoulli RBM (Hinton & Salakhutdinov 2006; Cho, Ilin & Raiko 2011 for learned σ):

  E(v, h) = Σ_i (v_i − b_v_i)² / (2σ_i²) − b_hᵀh − Σ_ij (v_i/σ_i) W_ij h_j
  p(h_j = 1 | v) = σ(b_h_j + Σ_i v_i W_ij / σ_i),   p(v | h) = N(b_v + σ ⊙ Wh, diag σ²)

with σ = 1 (data standardised per feature) or learned as `log_sigma`; p(v) ∝ exp(−F(v)),
p(h) ∝ exp(−F_h(h)) (the free energies are written out in each class).
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array


def _flat(model: nn.Module, x: Any, size: int, what: str) -> Array:
  """x as a float (B, size) batch; images (B, ...) of `size` elements are flattened."""
  x = jnp.asarray(x)
  if x.ndim >= 2 and math.prod(x.shape[1:]) == size and x.ndim > 2:
    x = x.reshape(x.shape[0], size)
  if x.ndim != 2 or x.shape[1] != size:
    raise ValueError(f"{type(model).__name__} expects {what} of shape (batch, {size}) (or images of "
                     f"{size} elements), got {tuple(x.shape)}")
  if not jnp.issubdtype(x.dtype, jnp.floating):
    x = x.astype(jnp.float32)
  return x


class _BinaryHiddenLayer:
  """What every RBM here shares: W, b_v, b_h, the input checks, and binary hidden units given v.

  A mixin of the Linen modules below (fields `n_visible`, `n_hidden`, `init_scale`); each defines its own
  `hidden_logits`.
  """

  def _setup_rbm_params(self) -> None:
    for field in ("n_visible", "n_hidden"):
      value = getattr(self, field)
      if not isinstance(value, int) or value < 1:
        raise ValueError(f"{type(self).__name__}.{field} must be a positive int, got {value!r}")
    self.W = self.param("W", nn.initializers.normal(self.init_scale), (self.n_visible, self.n_hidden))
    self.b_v = self.param("b_v", nn.initializers.zeros, (self.n_visible,))
    self.b_h = self.param("b_h", nn.initializers.zeros, (self.n_hidden,))

  def visible(self, v: Any) -> Array:
    """v checked and flattened to (B, n_visible)."""
    return _flat(self, v, self.n_visible, "visible vectors")

  def hidden(self, h: Any) -> Array:
    return _flat(self, h, self.n_hidden, "hidden vectors")

  def hidden_probs(self, v: Any) -> Array:
    """p(h_j = 1 | v) = σ(hidden_logits(v)), (B, H): the features of the RBM."""
    return jax.nn.sigmoid(self.hidden_logits(v))

  def sample_hidden(self, key: Array, v: Any) -> Array:
    """h ~ p(h | v), float {0, 1} (B, H)."""
    probs = self.hidden_probs(v)
    return jax.random.bernoulli(key, probs).astype(probs.dtype)

  def __call__(self, v: Any, train: bool = False) -> tuple[Array, dict[str, Array]]:
    del train
    probs = self.hidden_probs(v)
    return probs, {"hidden": probs}


class RBM(_BinaryHiddenLayer, nn.Module):
  """Binary-binary RBM; see the module docstring for the energy and conditionals.

    F(v)    = −b_vᵀv − Σ_j softplus(b_h_j + (vᵀW)_j)        (free energy: h summed out)
    F_h(h)  = −b_hᵀh − Σ_i softplus(b_v_i + (Wh)_i)          (v summed out)

  log Z = log Σ_v exp(−F(v)) = log Σ_h exp(−F_h(h)), which `deepvision.estimators.partition` enumerates
  for small models. Every method takes the visible (or hidden) batch and is called through `apply`, e.g.
  `model.apply(variables, v, method="free_energy")`; images (B, H, W, C) with H·W·C = n_visible are
  flattened; `__call__(v)` returns `(hidden_probs, {'hidden': hidden_probs})` like the other zoo models.
  Samplers take a key: `model.apply(variables, key, v, method="sample_hidden")`.

  Attributes:
    n_visible: number of visible units V.
    n_hidden: number of hidden units H.
    init_scale: W is initialised N(0, init_scale²) (Hinton's guide: 0.01); biases start at 0.
  """

  n_visible: int
  n_hidden: int
  init_scale: float = 0.01

  # Data must lie in [0, 1] (binary values, or probabilities used as mean-field inputs).
  visible_range = (0.0, 1.0)
  visible_kind = "binary"

  def setup(self):
    self._setup_rbm_params()

  def hidden_logits(self, v: Any) -> Array:
    """b_h + vᵀW, (B, H): the total input of each hidden unit."""
    return self.visible(v) @ self.W + self.b_h

  def visible_logits(self, h: Any) -> Array:
    """b_v + Wh, (B, V)."""
    return self.hidden(h) @ self.W.T + self.b_v

  def visible_mean(self, h: Any) -> Array:
    """E[v | h] = σ(b_v + Wh), (B, V)."""
    return jax.nn.sigmoid(self.visible_logits(h))

  def sample_visible(self, key: Array, h: Any) -> Array:
    """v ~ p(v | h), float {0, 1} (B, V)."""
    mean = self.visible_mean(h)
    return jax.random.bernoulli(key, mean).astype(mean.dtype)

  def energy(self, v: Any, h: Any) -> Array:
    """E(v, h) per example, (B,)."""
    v, h = self.visible(v), self.hidden(h)
    return -(v @ self.b_v) - (h @ self.b_h) - jnp.sum((v @ self.W) * h, axis=-1)

  def free_energy(self, v: Any) -> Array:
    """F(v) = −b_vᵀv − Σ_j softplus(b_h_j + (vᵀW)_j) per example, (B,)."""
    v = self.visible(v)
    return -(v @ self.b_v) - jnp.sum(jax.nn.softplus(v @ self.W + self.b_h), axis=-1)

  def hidden_free_energy(self, h: Any) -> Array:
    """F_h(h) = −b_hᵀh − Σ_i softplus(b_v_i + (Wh)_i) per example, (B,): v summed out."""
    h = self.hidden(h)
    return -(h @ self.b_h) - jnp.sum(jax.nn.softplus(h @ self.W.T + self.b_v), axis=-1)


class GaussianRBM(_BinaryHiddenLayer, nn.Module):
  """Gaussian visible, binary hidden RBM; see the module docstring for the energy.

    F(v)    = Σ_i (v_i − b_v_i)² / (2σ_i²) − Σ_j softplus(b_h_j + Σ_i v_i W_ij / σ_i)
    F_h(h)  = −b_hᵀh − Σ_i [b_v_i (Wh)_i / σ_i + (Wh)_i² / 2] − Σ_i log(√(2π) σ_i)

  log Z = log Σ_h exp(−F_h(h)) (v integrated out).

  Attributes:
    n_visible: number of visible units V.
    n_hidden: number of hidden units H.
    learn_sigma: learn a per-visible standard deviation σ_i = exp(log_sigma_i) (initialised to 1);
      otherwise σ = 1, which assumes data standardised to unit variance per feature.
    init_scale: W is initialised N(0, init_scale²); biases start at 0.
  """

  n_visible: int
  n_hidden: int
  learn_sigma: bool = False
  init_scale: float = 0.01

  visible_range = None  # any real value
  visible_kind = "gaussian"

  def setup(self):
    self._setup_rbm_params()
    if self.learn_sigma:
      self.log_sigma = self.param("log_sigma", nn.initializers.zeros, (self.n_visible,))

  @property
  def sigma(self) -> Array:
    """σ, (V,): exp(log_sigma) when learned, else ones."""
    if self.learn_sigma:
      return jnp.exp(self.log_sigma)
    return jnp.ones((self.n_visible,), self.W.dtype)

  def hidden_logits(self, v: Any) -> Array:
    """b_h + (v/σ)ᵀW, (B, H)."""
    return (self.visible(v) / self.sigma) @ self.W + self.b_h

  def visible_mean(self, h: Any) -> Array:
    """E[v | h] = b_v + σ ⊙ Wh, (B, V)."""
    return (self.hidden(h) @ self.W.T) * self.sigma + self.b_v

  def sample_visible(self, key: Array, h: Any) -> Array:
    """v ~ N(b_v + σ ⊙ Wh, diag σ²), (B, V)."""
    mean = self.visible_mean(h)
    return mean + self.sigma * jax.random.normal(key, mean.shape, mean.dtype)

  def energy(self, v: Any, h: Any) -> Array:
    v, h = self.visible(v), self.hidden(h)
    quadratic = jnp.sum((v - self.b_v) ** 2 / (2 * self.sigma ** 2), axis=-1)
    return quadratic - h @ self.b_h - jnp.sum(((v / self.sigma) @ self.W) * h, axis=-1)

  def free_energy(self, v: Any) -> Array:
    """F(v) = Σ_i (v_i − b_v_i)²/(2σ_i²) − Σ_j softplus(b_h_j + Σ_i v_i W_ij/σ_i), (B,)."""
    v = self.visible(v)
    quadratic = jnp.sum((v - self.b_v) ** 2 / (2 * self.sigma ** 2), axis=-1)
    return quadratic - jnp.sum(jax.nn.softplus((v / self.sigma) @ self.W + self.b_h), axis=-1)

  def hidden_free_energy(self, h: Any) -> Array:
    """F_h(h) = −log ∫ exp(−E(v, h)) dv, (B,) (a Gaussian integral per visible unit)."""
    h = self.hidden(h)
    a = h @ self.W.T  # (B, V)
    log_norm = jnp.sum(jnp.log(jnp.sqrt(2 * jnp.pi) * self.sigma))
    return -(h @ self.b_h) - jnp.sum(self.b_v * a / self.sigma + 0.5 * a ** 2, axis=-1) - log_norm
