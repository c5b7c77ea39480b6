r"""The pair-wise MRF of whole images with Student-t potentials on neighbour differences.

The classic heavy-tailed smoothness prior (Geman & Geman, PAMI 1984; the Student-t / Lorentzian potential
of Black & Rangarajan, IJCV 1996; as a generative image model compared with the FoE by Schmidt, Gao & Roth,
"A generative perspective on MRFs in low-level vision", CVPR 2010). On H × W grey images with free
boundaries (the edges are the H(W − 1) horizontal and (H − 1)W vertical neighbour pairs inside the image;
nothing wraps), with α_d, σ_d per direction d ∈ {horizontal, vertical}:

  F(x) = Σ_d α_d Σ_{(i, j) ∈ edges_d} log(1 + (x_i − x_j)² / (2σ_d²)) + (ε/2) ‖x‖².

The differences are invariant to adding a constant to every pixel, so without the quadratic term (ε > 0, a
fixed field, small: 0.01 by default for images standardised to unit variance) exp(−F) would not be
normalisable; with it exp(−F) ≤ exp(−ε‖x‖²/2). log Z has no closed form.

Each potential is a Gaussian scale mixture, (1 + r²/2)^(−α) ∝ ∫ Gamma(h; α, 1) e^(−h r²/2) dh with
r = (x_i − x_j)/σ_d, so `hidden_probs` gives the posterior means E[h | x] = α_d / (1 + r²/2) (the edge
"strengths", small across edges), as the FoE and mPoT's covariance units.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

from deepvision.models.grey_images import (
  GreyImageModel,
  positive_number,
  student_t_energy,
  student_t_posterior,
)

Array = jax.Array
DIRECTIONS = ("horizontal", "vertical")


def neighbour_differences(x: Array) -> tuple[Array, Array]:
  """(x[:, i, j + 1] − x[:, i, j] (B, H, W − 1), x[:, i + 1, j] − x[:, i, j] (B, H − 1, W)) of (B, H, W)."""
  return x[:, :, 1:] - x[:, :, :-1], x[:, 1:, :] - x[:, :-1, :]


class PairwiseMRF(GreyImageModel):
  r"""Student-t potentials on horizontal and vertical neighbour differences (module docstring).

  Parameters: `log_alpha` (2,) and `log_sigma` (2,), log α_d and log σ_d for d = (horizontal, vertical)
  (positive by the log parametrisation).

  Attributes:
    image_shape: (H, W), at least 2 pixels.
    epsilon: ε > 0, the weight of the quadratic term that makes the model normalisable.
    alpha_init: the initial α_d (both directions).
    sigma_init: the initial σ_d (both directions).

  Methods take image batches (B, H, W), (B, H, W, 1) or flat (B, H·W) and are called through `apply`.
  """

  epsilon: float = 0.01
  alpha_init: float = 1.0
  sigma_init: float = 0.5

  def __post_init__(self):
    super().__post_init__()
    name = type(self).__name__
    if self.image_shape[0] * self.image_shape[1] < 2:
      raise ValueError(f"{name}.image_shape {tuple(self.image_shape)} has no neighbour pairs: it needs "
                       "at least 2 pixels")
    for field in ("epsilon", "alpha_init", "sigma_init"):
      positive_number(f"{name}.{field}", getattr(self, field))

  def setup(self):
    def constant(value):
      return lambda key, shape, dtype=jnp.float32: jnp.full(shape, value, dtype)

    self.log_alpha = self.param("log_alpha", constant(math.log(self.alpha_init)), (len(DIRECTIONS),))
    self.log_sigma = self.param("log_sigma", constant(math.log(self.sigma_init)), (len(DIRECTIONS),))

  def _scaled_differences(self, x: Array) -> tuple[Array, Array]:
    """r = (x_i − x_j)/σ_d for both directions."""
    sigma = jnp.exp(self.log_sigma)
    horizontal, vertical = neighbour_differences(x)
    return horizontal / sigma[0], vertical / sigma[1]

  def edge_energies(self, x: Any) -> Array:
    """α_d Σ_{edges_d} log(1 + (x_i − x_j)²/(2σ_d²)) per image and direction, (B, 2)."""
    alpha = jnp.exp(self.log_alpha)
    responses = self._scaled_differences(self.images(x))
    return jnp.stack([jnp.sum(student_t_energy(r, alpha[d]), axis=(-2, -1))
                      for d, r in enumerate(responses)], axis=-1)

  def free_energy(self, x: Any) -> Array:
    """F(x) = Σ_d α_d Σ_edges log(1 + (x_i − x_j)²/(2σ_d²)) + (ε/2)‖x‖², (B,)."""
    x = self.images(x)
    return jnp.sum(self.edge_energies(x), axis=-1) + 0.5 * self.epsilon * jnp.sum(x * x, axis=(-2, -1))

  def hidden_probs(self, x: Any) -> Array:
    """E[h | x] = α_d/(1 + r²/2) of every edge, (B, H(W − 1) + (H − 1)W): horizontal edges first, each
    direction row-major. (Not probabilities: the Gamma scale variables' posterior means.)"""
    alpha = jnp.exp(self.log_alpha)
    responses = self._scaled_differences(self.images(x))
    return jnp.concatenate([student_t_posterior(r, alpha[d]).reshape(r.shape[0], -1)
                            for d, r in enumerate(responses)], axis=-1)

  def __call__(self, x: Any, train: bool = False) -> tuple[Array, dict[str, Array]]:
    """(E[h | x] (B, edges), {'edges': the same}): the edge strengths are the features."""
    del train
    features = self.hidden_probs(x)
    return features, {"edges": features}
