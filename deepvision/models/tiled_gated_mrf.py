r"""A tiled (convolutional) mean-covariance RBM over whole images: `TiledMCRBM`.

Ranzato, Mnih, Susskind & Hinton ("Modeling natural images using gated MRFs", PAMI 2013) sample images
larger than their training patches from a gated MRF with filters replicated over the image; this is one
such layout, designed here, of the patch mcRBM (Ranzato & Hinton, CVPR 2010) on the tiles of
`deepvision.models.tiling` (Ngiam et al., NIPS 2010). With x_t the p² pixels of tile t and its covariance
input x̃_t = x_t / sqrt(‖x_t‖²/p² + 1/2) ('original') or x̃_t = x_t ('paper'):

  F(x) = ½‖x‖² − b_vᵀx + Σ_t F_t(x_t),
  F_t(x_t) = −Σ_k softplus(b_c_k − ½ Σ_f P_fk (C_fᵀx̃_t)²) − Σ_j softplus(W_jᵀx_t + b_m_j).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from deepvision.models import gated_mrf_energy, gated_mrf_pooling
from deepvision.models.grey_images import grey_batch
from deepvision.models.tiling import (bank_index, contract, contract_transposed, extract_tiles, per_tile,
                                      positive_int, tile_grid)

Array = jax.Array

VISIBLE_BIASES = ("shared", "per_pixel")
_BANK_PARAMS = ("C", "P", "W", "b_c", "b_m")


class _TileResponses:
  """The quantities of every tile that F, its gradient and the features share."""

  def __init__(self, tiles: Array, bank: dict[str, Array], input_norm: str):
    n_factors = bank["C"].shape[-1]
    self.filters = jnp.concatenate([bank["C"], bank["W"]], axis=-1)  # (…, p², F + M)
    responses = contract(tiles, self.filters)
    self.scale = None
    s = responses[..., :n_factors]
    if input_norm == "original":
      self.scale = jnp.sqrt(jnp.mean(tiles * tiles, axis=-1, keepdims=True) + gated_mrf_energy.NORM_OFFSET)
      s = s / self.scale
    self.tiles, self.factor_responses, self.pooling = tiles, s, bank["P"]
    self.cov_logits = bank["b_c"] - 0.5 * contract(s * s, bank["P"])
    self.mean_logits = responses[..., n_factors:] + bank["b_m"]

  def free_energies(self) -> Array:
    """F_t per tile, (B, T_h, T_w)."""
    return (-jnp.sum(jax.nn.softplus(self.cov_logits), axis=-1)
            - jnp.sum(jax.nn.softplus(self.mean_logits), axis=-1))

  def tile_gradients(self) -> Array:
    """∂F_t/∂x_t per tile, (B, T_h, T_w, p²)."""
    s = self.factor_responses
    r = s * contract_transposed(jax.nn.sigmoid(self.cov_logits), self.pooling)  # ∂F_t/∂s_t
    mean_probs = jax.nn.sigmoid(self.mean_logits)
    if self.scale is None:
      return contract_transposed(jnp.concatenate([r, -mean_probs], axis=-1), self.filters)
    back = contract_transposed(jnp.concatenate([r / self.scale, -mean_probs], axis=-1),
                                self.filters)
    radial = jnp.sum(s * r, axis=-1, keepdims=True) / (self.tiles.shape[-1] * self.scale ** 2)
    return back - radial * self.tiles


# ----------------------------------------------------------------------------------------------
# The Linen module.


class TiledMCRBM(nn.Module):
  r"""An mcRBM tiled over H × W grey images; energy in the module docstring, layout in `tiling`.

  Free energy. x̃_t's 'original' form is the contrast normalisation of the original mcRBM code, per tile.
  The quadratic term and the visible bias are counted once over the image, not once per tile, so the
  energy is that of one Gaussian-based MRF whose factor and mean filters are replicated. In terms of the
  patch model: F_t(x_t) = F_MCRBM(x_t; b_v = 0) − ½‖x_t‖² (the patch model's free energy without its own
  visible terms). The energy is E(x, h) = ½‖x‖² − b_vᵀx + Σ_t E_t(x_t, h_t), so p(h | x) factorises over
  tiles: each tile's hidden units given x are the patch model's given x_t (`hidden_probs`). The paper's
  exact layout is not reproduced.

  Filter sets (`tiling` = τ). τ = 1: one bank C (p², F), P (F, N), W (p², M), b_c (N), b_m (M) shared by
  every tile: a convolutional model, equivariant to shifts by s. τ > 1: τ² banks, a leading axis of
  size τ² on each of those parameters (C (τ², p², F) ...); tile (i, j) uses bank τ·(i mod τ) + (j mod τ),
  so the model is equivariant to shifts by τ·s only (Ngiam et al.'s tiled convolution with tile size τ).

  Visible bias (`visible_bias`). 'shared' (default): one scalar b_v, −b_vᵀx = −b_v Σ_i x_i, keeping the
  model stationary; 'per_pixel': b_v of H·W entries (row-major), −Σ_i b_v_i x_i.

  Pixel space. The model works on standardised pixels, x = (image − μ)/σ with one scalar μ and σ for the
  whole data set (stationary statistics; a per-pixel `Standardizer` would break the shift structure), not
  on PCA-whitened patches: PCA whitening is a linear map fitted to the covariance of p × p patches (often
  also reducing their dimension), defined on one patch at a time; overlapping tiles share pixels, and no
  image-level map whitens every tile at once, so a whitened tile model would not define one energy over
  the image. The per-tile contrast normalisation above plays the role it plays in the original mcRBM code
  (which normalised its whitened inputs the same way).

  Train small, sample large. `from_patch_model` builds a tiled model from a patch `MCRBM` trained on
  unwhitened standardised p × p patches (b_v: the mean of the patch b_v, or per pixel the mean over the
  tiles covering it of the patch entry at that offset). The result is exact for one tile (stride = p,
  H = W = p) but not a copy of the patch density on larger images: the overlapping tiles add up their
  covariance terms ((p/s)² per interior pixel) while the Gaussian term is counted once, so the imported
  model is a starting point for training at the image level (PCD with HMC on `free_energy`).

  Sampling: Hybrid Monte Carlo on F with the closed-form ∂F/∂x below
  (`deepvision.samplers.gated_mrf.sample_tiled`), from N(0, I) or from given images.

  Gradient. With L_t = sqrt(‖x_t‖²/p² + 1/2), s_t = Cᵀx_t/L_t, σ_c = σ(b_c − ½Pᵀs_t²),
  σ_m = σ(Wᵀx_t + b_m), r_t = s_t ⊙ (Pσ_c):

    ∂F/∂x = x − b_v + Σ_t S_tᵀ[C r_t/L_t − x_t (s_tᵀr_t)/(p² L_t²) − W σ_m],

  ('paper': L_t = 1 and no second term; C, P, W, b_c, b_m are tile t's bank), where S_tᵀ puts a tile's
  p² values back at its pixels (summing where tiles overlap): the adjoint of the tile extraction.
  Tiles are extracted by reshapes and slices of g × g blocks, g = gcd(p, s) (no gather, no
  convolution), and S_tᵀ is the transpose of that linear map (timings of both choices:
  benchmarks/README.md).

  Attributes:
    image_shape: (H, W); (H − p) and (W − p) must be multiples of the stride.
    patch_size: p, the side of the square tiles (p ≤ min(H, W)).
    stride: s, 1 ≤ s ≤ p, the step between tiles (s < p: tiles overlap, filters act at several
      offsets; s = p: disjoint tiles).
    n_factors: F, factor filters per bank.
    n_cov: N, binary covariance units per tile.
    n_mean: M, binary mean units per tile.
    input_norm: 'original' (default): each tile's covariance input is x_t/sqrt(‖x_t‖²/p² + 1/2);
      'paper': x_t itself.
    tiling: τ ≥ 1, the filter sets repeat every τ tiles in each direction: 1 is convolutional (one
      bank), τ > 1 gives τ² banks (Ngiam et al.'s tiled convolution); τ ≤ min(T_h, T_w).
    visible_bias: 'shared' (a scalar b_v) or 'per_pixel' (H·W entries).
    pooling_init, factor_init_scale, mean_init_scale, cov_bias_init, mean_bias_init: as in
      `gated_mrf.MCRBM` (every bank starts the same way, with its own random draws).

  Methods take image batches (B, H, W), (B, H, W, 1) or flat (B, H·W) and are called through
  `apply`; `free_energy_and_grad` returns ∂F/∂x in the shape x was given.
  """

  image_shape: tuple[int, int]
  patch_size: int
  stride: int
  n_factors: int
  n_cov: int
  n_mean: int
  input_norm: str = "original"
  tiling: int = 1
  visible_bias: str = "shared"
  pooling_init: str = "identity"
  factor_init_scale: float = 0.02
  mean_init_scale: float = 0.05
  cov_bias_init: float = 2.0
  mean_bias_init: float = -2.0

  visible_range = None
  visible_kind = "gaussian"

  def __post_init__(self):
    if isinstance(self.image_shape, list):  # config files hold lists; a tuple keeps the module hashable
      object.__setattr__(self, "image_shape", tuple(self.image_shape))
    super().__post_init__()
    name = type(self).__name__
    rows, cols = tile_grid(self.image_shape, self.patch_size, self.stride)
    for field in ("n_factors", "n_cov", "n_mean", "tiling"):
      positive_int(f"{name}.{field}", getattr(self, field))
    if self.tiling > min(rows, cols):
      raise ValueError(f"{name}.tiling={self.tiling} exceeds the {rows}×{cols} tile grid: some "
                       f"filter sets would never be used; use tiling <= {min(rows, cols)}")
    gated_mrf_energy.check_choice(f"{name}.input_norm", self.input_norm, gated_mrf_energy.INPUT_NORMS)
    gated_mrf_energy.check_choice(f"{name}.visible_bias", self.visible_bias, VISIBLE_BIASES)
    gated_mrf_energy.check_choice(f"{name}.pooling_init", self.pooling_init, gated_mrf_pooling.POOLING_INITS)
    if self.pooling_init == "identity" and self.n_factors != self.n_cov:
      raise ValueError(f"{name}: pooling_init 'identity' needs n_factors == n_cov, got "
                       f"n_factors={self.n_factors}, n_cov={self.n_cov}; use 'topographic'")
    if self.pooling_init == "topographic":
      gated_mrf_pooling.topographic_mask(self.n_factors, self.n_cov)

  # Sizes -------------------------------------------------------------------------------------

  @property
  def n_visible(self) -> int:
    """H·W, the number of pixels (the flat input size)."""
    return self.image_shape[0] * self.image_shape[1]

  @property
  def grid(self) -> tuple[int, int]:
    """(T_h, T_w), the tile grid."""
    return tile_grid(self.image_shape, self.patch_size, self.stride)

  @property
  def num_tiles(self) -> int:
    return self.grid[0] * self.grid[1]

  @property
  def num_filter_sets(self) -> int:
    return self.tiling * self.tiling

  def _bank_shape(self, *shape: int) -> tuple[int, ...]:
    return shape if self.tiling == 1 else (self.num_filter_sets, *shape)

  # Parameters --------------------------------------------------------------------------------

  def setup(self):
    d, f, n, m = self.patch_size ** 2, self.n_factors, self.n_cov, self.n_mean
    pooling = gated_mrf_pooling.pooling_initializer(self.pooling_init, f, n)

    def bank_pooling(key, shape, dtype=jnp.float32):
      single = pooling(key, shape[-2:], dtype)
      return jnp.broadcast_to(single, shape)

    self.C = self.param("C", nn.initializers.normal(self.factor_init_scale), self._bank_shape(d, f))
    self.P = self.param("P", bank_pooling, self._bank_shape(f, n))
    self.W = self.param("W", nn.initializers.normal(self.mean_init_scale), self._bank_shape(d, m))
    self.b_c = self.param("b_c", nn.initializers.constant(self.cov_bias_init), self._bank_shape(n))
    self.b_m = self.param("b_m", nn.initializers.constant(self.mean_bias_init),
                          self._bank_shape(m))
    bias_shape = () if self.visible_bias == "shared" else (self.n_visible,)
    self.b_v = self.param("b_v", nn.initializers.zeros, bias_shape)

  def pooling_mask(self) -> np.ndarray | None:
    """The mask `gated_mrf_pooling.project_pooling` should keep P under (per bank for tiling > 1)."""
    if self.pooling_init == "topographic":
      return gated_mrf_pooling.topographic_mask(self.n_factors, self.n_cov)
    return None

  def _tile_bank(self) -> dict[str, Array]:
    """C, P, W, b_c, b_m as every tile uses them: shared, or indexed per tile (T_h, T_w, ...)."""
    index = None if self.tiling == 1 else bank_index(*self.grid, self.tiling)
    return {name: per_tile(getattr(self, name), index) for name in _BANK_PARAMS}

  # Inputs ------------------------------------------------------------------------------------

  def images(self, x: Any) -> Array:
    """x checked and shaped (B, H, W), float (`grey_images.grey_batch`)."""
    return grey_batch(x, self.image_shape, type(self).__name__)

  def visible(self, x: Any) -> Array:
    """x checked and flattened to (B, H·W) (as the other energy models' `visible`)."""
    x = self.images(x)
    return x.reshape(x.shape[0], -1)

  def tiles(self, x: Any) -> Array:
    """The tiles x_t, (B, T_h, T_w, p²) (`extract_tiles`)."""
    return extract_tiles(self.images(x), self.patch_size, self.stride)

  # Energies and features ---------------------------------------------------------------------

  def _responses(self, x: Array) -> _TileResponses:
    return _TileResponses(extract_tiles(x, self.patch_size, self.stride), self._tile_bank(),
                          self.input_norm)

  def _visible_terms(self, x: Array) -> Array:
    """½‖x‖² − b_vᵀx per image, (B,), for x (B, H, W)."""
    flat = x.reshape(x.shape[0], -1)
    linear = self.b_v * jnp.sum(flat, axis=-1) if self.visible_bias == "shared" else flat @ self.b_v
    return 0.5 * jnp.sum(flat * flat, axis=-1) - linear

  def tile_free_energies(self, x: Any) -> Array:
    """F_t(x_t) per tile, (B, T_h, T_w): the covariance and mean terms, without ½‖x‖² − b_vᵀx."""
    return self._responses(self.images(x)).free_energies()

  def free_energy(self, x: Any) -> Array:
    """F(x) = ½‖x‖² − b_vᵀx + Σ_t F_t(x_t), (B,)."""
    x = self.images(x)
    return self._visible_terms(x) + jnp.sum(self._responses(x).free_energies(), axis=(1, 2))

  def free_energy_and_grad(self, x: Any) -> tuple[Array, Array]:
    """(F(x) (B,), ∂F/∂x in x's shape) in closed form (class docstring), for HMC."""
    shape = jnp.shape(x)
    x = self.images(x)
    tiles, fold = jax.vjp(functools.partial(extract_tiles, patch_size=self.patch_size,
                                            stride=self.stride), x)
    responses = _TileResponses(tiles, self._tile_bank(), self.input_norm)
    free_energy = self._visible_terms(x) + jnp.sum(responses.free_energies(), axis=(1, 2))
    bias = self.b_v if self.visible_bias == "shared" else self.b_v.reshape(self.image_shape)
    (grad,) = fold(responses.tile_gradients())
    return free_energy, (grad + x - bias).reshape(shape)

  def hidden_probs(self, x: Any) -> Array:
    """[σ_c, σ_m] of every tile, (B, T_h·T_w, N + M), tiles in row-major order: the features."""
    responses = self._responses(self.images(x))
    probs = jnp.concatenate([jax.nn.sigmoid(responses.cov_logits),
                             jax.nn.sigmoid(responses.mean_logits)], axis=-1)
    return probs.reshape(probs.shape[0], self.num_tiles, -1)

  def __call__(self, x: Any, train: bool = False) -> tuple[Array, dict[str, Array]]:
    del train
    probs = self.hidden_probs(x)
    return probs, {"cov": probs[..., :self.n_cov], "mean": probs[..., self.n_cov:]}

  # Building from a patch model ---------------------------------------------------------------

  @classmethod
  def from_patch_model(cls, patch_params: Any, image_shape: tuple[int, int], stride: int, *,
                       input_norm: str = "original", tiling: int = 1,
                       visible_bias: str = "shared",
                       pooling_init: str = "identity") -> tuple[TiledMCRBM, dict[str, Any]]:
    """A tiled model and its variables from the params of a patch `MCRBM` (train small, sample large).

    The patch model must be trained on unwhitened p × p patches (n_visible = p²), in the pixel
    space of the images to sample, with the same `input_norm`. Every filter bank gets the patch
    model's C, P, W, b_c, b_m; b_v becomes the mean of the patch b_v ('shared') or, per pixel, the
    mean over the tiles covering it of the patch b_v entry at that pixel's offset ('per_pixel').
    For one tile (H = W = p) the tiled model's F equals the patch model's exactly; see the module
    docstring for what changes on larger images.

    Args:
      patch_params: the patch model's 'params' (C (p², F), P, W, b_c, b_m, b_v (p²)), or
        {'params': ...}.
      image_shape: (H, W) of the images to model.
      stride: s, 1 ≤ s ≤ p.
      input_norm, tiling, visible_bias, pooling_init: fields of the tiled model (pooling_init only
        matters for `pooling_mask`; use 'topographic' if the patch model was topographic).

    Returns:
      (model, {'params': ...}).

    Raises:
      ValueError: missing entries, a C whose rows are not a square number p², shapes that do not
        agree, or a geometry `tile_grid` rejects.
    """
    params = patch_params.get("params", patch_params) if hasattr(patch_params, "get") else None
    names = ("C", "P", "W", "b_c", "b_m", "b_v")
    if params is None or any(name not in params for name in names):
      raise ValueError(f"from_patch_model: patch_params must hold {', '.join(names)} (an MCRBM's "
                       f"'params'), got {patch_params if params is None else sorted(params)}")
    params = {name: jnp.asarray(params[name]) for name in names}
    if params["C"].ndim != 2:
      raise ValueError(f"from_patch_model: C must be a (p², F) matrix, got shape {params['C'].shape}")
    dim, n_factors = params["C"].shape
    patch = math.isqrt(dim)
    if patch * patch != dim:
      raise ValueError(f"from_patch_model: the patch model has {dim} visible units, not a square "
                       f"p²: it must model unwhitened p × p patches")
    n_cov, n_mean = params["b_c"].shape[0], params["b_m"].shape[0]
    expected = {"P": (n_factors, n_cov), "W": (dim, n_mean), "b_v": (dim,)}
    for name, shape in expected.items():
      if params[name].shape != shape:
        raise ValueError(f"from_patch_model: {name} has shape {params[name].shape}, expected "
                         f"{shape} for C {params['C'].shape}, b_c ({n_cov},), b_m ({n_mean},)")
    model = cls(image_shape=tuple(image_shape), patch_size=patch, stride=stride,
                n_factors=n_factors, n_cov=n_cov, n_mean=n_mean, input_norm=input_norm,
                tiling=tiling, visible_bias=visible_bias, pooling_init=pooling_init)
    tiled = {name: params[name] if tiling == 1 else
             jnp.broadcast_to(params[name], (tiling * tiling, *params[name].shape))
             for name in _BANK_PARAMS}
    if visible_bias == "shared":
      tiled["b_v"] = jnp.mean(params["b_v"])
    else:
      rows, cols = model.grid
      images = jnp.zeros((1, *model.image_shape), params["b_v"].dtype)
      _, fold = jax.vjp(functools.partial(extract_tiles, patch_size=patch, stride=stride), images)
      per_tile = jnp.broadcast_to(params["b_v"], (1, rows, cols, dim))
      (bias_sum,) = fold(per_tile)
      (coverage,) = fold(jnp.ones_like(per_tile))
      tiled["b_v"] = (bias_sum / coverage).reshape(-1)
    return model, {"params": tiled}
