r"""The Field of Experts: Student-t experts on learned linear filters, replicated over the whole image.

Roth & Black, "Fields of Experts: a framework for learning image priors", CVPR 2005, and IJCV 2009;
as a generative model of whole images, Schmidt, Gao & Roth, "A generative perspective on MRFs in low-level
vision", CVPR 2010 (whose 3×3 model has 8 filters, as the zoo's `field_of_experts`). With N zero-mean
filters J_i of k_h × k_w pixels and expert weights α_i > 0, on H × W grey images:

  F(x) = Σ_i α_i Σ_p log(1 + (J_i ⋆ x)_p² / 2) + (ε/2) ‖x‖²,
  (J_i ⋆ x)_p = Σ_{a, b} J_i[a, b] x[p_0 + a, p_1 + b]   (correlation),

over the (H − k_h + 1)(W − k_w + 1) positions p where the filter fits inside the image ('valid': no
padding, no wrapping; pixels near the border are seen by fewer cliques, as in Roth & Black's training on
crops). The filters are zero-mean (the used filter is J_i minus its mean when `zero_mean`), so F without
its quadratic term is invariant to adding a constant; ε > 0 (a fixed field) makes exp(−F) normalisable,
exp(−F) ≤ exp(−ε‖x‖²/2). log Z has no closed form: the model is trained by contrastive divergence / PCD
with HMC on F (`deepvision.train.contrastive`), as Schmidt et al. sample it (they use an auxiliary-variable
Gibbs sampler).

Initial filters (`filter_init`): 'dct', the 2-D DCT-II basis of the k_h × k_w patch without its constant
(DC) atom, lowest frequencies first (Roth & Black's basis of choice up to their whitening); 'random',
zero-mean Gaussian filters. The experts are Gaussian scale mixtures (as in `pairwise_mrf`), and
`hidden_probs` gives E[h_ip | x] = α_i / (1 + (J_i ⋆ x)_p²/2). With one 1×2 filter [1, −1]/σ the FoE is
the horizontal half of the pair-wise MRF.
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from deepvision.models.grey_images import (
  GreyImageModel,
  positive_number,
  student_t_energy,
  student_t_posterior,
)
from deepvision.models.tiling import positive_int
from deepvision.registry import check_choice

Array = jax.Array
FILTER_INITS = ("dct", "random")


def dct_filters(filter_shape: tuple[int, int], n: int) -> np.ndarray:
  """The first n atoms of the orthonormal 2-D DCT-II basis of k_h × k_w patches, DC excluded: (n, k_h, k_w).

  Atoms are ordered by u + v (then u), u and v their vertical and horizontal frequencies.

  Raises:
    ValueError: n > k_h·k_w − 1 (the non-constant atoms).
  """
  height, width = filter_shape
  if n > height * width - 1:
    raise ValueError(f"the {height}×{width} DCT basis has {height * width - 1} atoms besides the constant "
                     f"one; asked for n_filters={n}: use filter_init='random' or larger filters")

  def basis(size: int) -> np.ndarray:  # rows: frequencies, orthonormal DCT-II
    k, t = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    rows = np.cos(np.pi * (t + 0.5) * k / size) * np.sqrt(2.0 / size)
    rows[0] /= np.sqrt(2.0)
    return rows

  rows, cols = basis(height), basis(width)
  order = sorted(((u, v) for u in range(height) for v in range(width) if (u, v) != (0, 0)),
                 key=lambda uv: (uv[0] + uv[1], uv[0]))
  return np.stack([np.outer(rows[u], cols[v]) for u, v in order[:n]])


def correlate(x: Array, filters: Array) -> Array:
  """(J_i ⋆ x)_p over the valid positions: x (B, H, W), filters (N, k_h, k_w) → (B, N, H', W')."""
  return jax.lax.conv_general_dilated(x[:, None], filters[:, None].astype(x.dtype), (1, 1), "VALID",
                                      precision=jax.lax.Precision.HIGHEST)


class FieldOfExperts(GreyImageModel):
  r"""A Field of Experts over H × W grey images (energy in the module docstring).

  Parameters: `J` (N, k_h, k_w), the filters (used minus their mean when `zero_mean`); `log_alpha` (N,),
  log α_i (positive by the log parametrisation).

  Attributes:
    image_shape: (H, W), at least the filter's size.
    n_filters: N ≥ 1.
    filter_shape: (k_h, k_w), e.g. (3, 3) or (5, 5); (1, 2) and (2, 1) give pair-wise cliques.
    epsilon: ε > 0, the weight of the quadratic term that makes the model normalisable.
    filter_init: 'dct' (needs N ≤ k_h·k_w − 1) or 'random'.
    filter_init_scale: the standard deviation of the 'random' filters' entries (before the mean is
      removed); the 'dct' atoms have unit norm.
    alpha_init: the initial α_i.
    zero_mean: use J_i − mean(J_i) (True: the filters stay zero-mean under any update) or J_i itself.

  Methods take image batches (B, H, W), (B, H, W, 1) or flat (B, H·W) and are called through `apply`.
  """

  n_filters: int = 8
  filter_shape: tuple[int, int] = (3, 3)
  epsilon: float = 0.01
  filter_init: str = "dct"
  filter_init_scale: float = 0.5
  alpha_init: float = 1.0
  zero_mean: bool = True

  def __post_init__(self):
    if isinstance(self.filter_shape, list):
      object.__setattr__(self, "filter_shape", tuple(self.filter_shape))
    super().__post_init__()
    name = type(self).__name__
    positive_int(f"{name}.n_filters", self.n_filters)
    if not isinstance(self.filter_shape, tuple) or len(self.filter_shape) != 2:
      raise ValueError(f"{name}.filter_shape must be a pair (k_h, k_w) of positive ints, got "
                       f"{self.filter_shape!r}")
    kh = positive_int(f"{name}.filter_shape[0]", self.filter_shape[0])
    kw = positive_int(f"{name}.filter_shape[1]", self.filter_shape[1])
    if kh * kw < 2:
      raise ValueError(f"{name}.filter_shape {self.filter_shape} has one tap: a zero-mean 1×1 filter is 0")
    if kh > self.image_shape[0] or kw > self.image_shape[1]:
      raise ValueError(f"{name}.filter_shape {self.filter_shape} does not fit in the image "
                       f"{tuple(self.image_shape)}: k_h <= H and k_w <= W")
    check_choice(f"{name}.filter_init", self.filter_init, FILTER_INITS)
    if self.filter_init == "dct":
      dct_filters(self.filter_shape, self.n_filters)
    if type(self.zero_mean) is not bool:  # 0 and 1 are not flags here
      raise ValueError(f"{name}.zero_mean must be True or False, got {self.zero_mean!r}")
    for field in ("epsilon", "filter_init_scale", "alpha_init"):
      positive_number(f"{name}.{field}", getattr(self, field))

  def setup(self):
    shape = (self.n_filters, *self.filter_shape)
    if self.filter_init == "dct":
      atoms = dct_filters(self.filter_shape, self.n_filters)
      init = lambda key, shape, dtype=jnp.float32: jnp.asarray(atoms, dtype)
    else:
      normal = nn.initializers.normal(self.filter_init_scale)
      init = lambda key, shape, dtype=jnp.float32: _without_mean(normal(key, shape, dtype))
    self.J = self.param("J", init, shape)
    self.log_alpha = self.param(
        "log_alpha", lambda key, shape, dtype=jnp.float32: jnp.full(shape, math.log(self.alpha_init), dtype),
        (self.n_filters,))

  @property
  def num_positions(self) -> int:
    """(H − k_h + 1)(W − k_w + 1), the positions of each filter."""
    return ((self.image_shape[0] - self.filter_shape[0] + 1)
            * (self.image_shape[1] - self.filter_shape[1] + 1))

  def filters(self) -> Array:
    """The filters used, J_i − mean(J_i) (zero_mean) or J_i: (N, k_h, k_w)."""
    return _without_mean(self.J) if self.zero_mean else self.J

  def responses(self, x: Any) -> Array:
    """(J_i ⋆ x)_p, (B, N, H − k_h + 1, W − k_w + 1)."""
    return correlate(self.images(x), self.filters())

  def expert_energies(self, x: Any) -> Array:
    """α_i Σ_p log(1 + (J_i ⋆ x)_p²/2) per image and expert, (B, N)."""
    alpha = jnp.exp(self.log_alpha)[:, None, None]
    return jnp.sum(student_t_energy(self.responses(x), alpha), axis=(-2, -1))

  def free_energy(self, x: Any) -> Array:
    """F(x) = Σ_i α_i Σ_p log(1 + (J_i ⋆ x)_p²/2) + (ε/2)‖x‖², (B,)."""
    x = self.images(x)
    return jnp.sum(self.expert_energies(x), axis=-1) + 0.5 * self.epsilon * jnp.sum(x * x, axis=(-2, -1))

  def hidden_probs(self, x: Any) -> Array:
    """E[h_ip | x] = α_i/(1 + (J_i ⋆ x)_p²/2), (B, positions, N), positions row-major (Gamma posterior
    means, not probabilities)."""
    alpha = jnp.exp(self.log_alpha)[:, None, None]
    means = student_t_posterior(self.responses(x), alpha)
    return means.reshape(means.shape[0], self.n_filters, -1).transpose(0, 2, 1)

  def __call__(self, x: Any, train: bool = False) -> tuple[Array, dict[str, Array]]:
    """(E[h | x] (B, positions, N), {'experts': the same}): the features."""
    del train
    features = self.hidden_probs(x)
    return features, {"experts": features}


def _without_mean(filters: Array) -> Array:
  return filters - jnp.mean(filters, axis=(-2, -1), keepdims=True)
