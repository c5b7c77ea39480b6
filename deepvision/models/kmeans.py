r"""k-means features: spherical k-means centroids and the triangle encoder, on patches or whole images.

Coates, Lee & Ng ("An analysis of single-layer networks in unsupervised feature learning", AISTATS 2011)
learn K centroids c_1 … c_K of preprocessed (normalised, whitened) patches by k-means and encode a patch x
with the "triangle" activation

  z_k(x) = ‖x − c_k‖₂,   μ(x) = (1/K) Σ_k z_k(x),   f_k(x) = max(0, μ(x) − z_k(x))   (`triangle`):

a centroid closer than the average one answers with the margin, the others with 0 (about half the features
are zero). For whole images (`convolutional_features`) every p×p patch at stride s is preprocessed as at
training and encoded, and the K response maps are summed over the four quadrants of the image: 4K
features per image.

The centroids are learned by spherical k-means (Coates & Ng, "Learning feature representations with
K-means", Neural Networks: Tricks of the Trade, 2nd ed., 2012; Dhillon & Modha, "Concept decompositions
for large sparse text data using clustering", Machine Learning 2001): unit-norm centroids (rows of C,
K × D), each example assigned to the centroid of largest c_k·x (`assign`), and each centroid replaced by
the normalised sum of its examples (`update_centroids`):

  a(x) = argmax_k c_k·x,   c_k ← Σ_{i: a(x_i)=k} x_i / ‖Σ_{i: a(x_i)=k} x_i‖.

Why the signed c_k·x and not Coates & Ng's |c_k·x|: with unit-norm centroids
‖x − c_k‖² = ‖x‖² + 1 − 2 c_k·x, so the largest c_k·x is the nearest centroid, the one the triangle encoder
ranks first; an example assigned by |c_k·x| to a centroid it points away from would be far from it in the
encoder's distances. The objective is then the distortion with unit-norm centroids,

  J(C) = (1/N) Σ_i min_k ‖x_i − c_k‖² = (1/N) Σ_i (‖x_i‖² + 1 − 2 max_k c_k·x_i)   (`distortion`),

and one Lloyd iteration (`lloyd_step`: assign, then update) never increases it: for fixed assignments the
normalised sum is the exact maximiser of Σ_{i∈k} c·x_i over the unit sphere, and re-assigning each example
to its nearest centroid can only lower its term. (Patches of both polarities get centroids of their own,
as the encoder needs, since it tells them apart.) A centroid no example is assigned to is re-seeded at a
random example of the batch, normalised (deterministic given the key); that does not increase J either,
since it carried no example.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


def unit_rows(key: Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> Array:
  """A random (K, D) matrix whose rows have unit Euclidean norm (directions uniform on the sphere)."""
  w = jax.random.normal(key, shape, dtype)
  return w / jnp.linalg.norm(w, axis=1, keepdims=True)


def normalize_rows(x: Array) -> Array:
  """Rows of x divided by their norms (rows of zeros stay zero)."""
  norms = jnp.linalg.norm(x, axis=-1, keepdims=True)
  return x / jnp.where(norms > 0, norms, 1.0)


def squared_distances(x: Array, centroids: Array) -> Array:
  """‖x_i − c_k‖² for every example and centroid, (B, K), clipped at 0 against rounding."""
  d = (jnp.sum(x * x, axis=-1, keepdims=True) - 2.0 * x @ centroids.T
       + jnp.sum(centroids * centroids, axis=-1))
  return jnp.maximum(d, 0.0)


def triangle(x: Array, centroids: Array) -> Array:
  """f_k(x) = max(0, μ(x) − z_k(x)) with z_k = ‖x − c_k‖₂ and μ their mean over k: (B, K)."""
  z = jnp.sqrt(squared_distances(x, centroids))
  return jnp.maximum(jnp.mean(z, axis=-1, keepdims=True) - z, 0.0)


def assign(x: Array, centroids: Array) -> Array:
  """The centroid of each example, argmax_k c_k·x (the nearest one for unit-norm centroids): (B,) int32."""
  return jnp.argmax(x @ centroids.T, axis=-1).astype(jnp.int32)


def distortion(x: Array, centroids: Array) -> Array:
  """min_k ‖x − c_k‖² per example, (B,): the k-means objective J, averaged over a data set."""
  return jnp.min(squared_distances(x, centroids), axis=-1)


def cluster_sums(x: Array, centroids: Array) -> tuple[Array, Array]:
  """The sufficient statistics of one assignment: the sum of each centroid's examples (K, D) and their
  number (K,)."""
  onehot = jax.nn.one_hot(assign(x, centroids), centroids.shape[0], dtype=x.dtype)
  return onehot.T @ x, jnp.sum(onehot, axis=0)


def update_centroids(centroids: Array, sums: Array, counts: Array, replacements: Array) -> Array:
  """c_k ← sums_k / ‖sums_k‖; a centroid with no example (counts_k = 0, or a zero sum) becomes row k of
  `replacements` (K, D), normalised (if that is zero too, it is kept)."""
  used = (counts > 0) & (jnp.linalg.norm(sums, axis=-1) > 0)
  fresh = jnp.where(used[:, None], sums, replacements)
  fresh_ok = jnp.linalg.norm(fresh, axis=-1, keepdims=True) > 0
  return jnp.where(fresh_ok, normalize_rows(fresh), centroids)


def random_examples(key: Array, x: Array, k: int) -> Array:
  """k rows of x drawn by `key`: distinct rows when x has at least k, else with replacement."""
  n = x.shape[0]
  rows = jax.random.permutation(key, n)[:k] if n >= k else jax.random.randint(key, (k,), 0, n)
  return x[rows]


def lloyd_step(centroids: Array, x: Array, key: Array) -> tuple[Array, dict[str, Array]]:
  """One full-batch spherical k-means iteration on x (N, D): assign, update, re-seed empty centroids at
  random examples of x (drawn by `key`). Returns the new centroids and {'objective': J before the step,
  'empty': the number of centroids re-seeded}."""
  sums, counts = cluster_sums(x, centroids)
  new = update_centroids(centroids, sums, counts, random_examples(key, x, centroids.shape[0]))
  return new, {"objective": jnp.mean(distortion(x, centroids)), "empty": jnp.sum(counts == 0)}


def kmeans_plus_plus(key: Array, x: Array, k: int) -> Array:
  """k seeds (k, D) by k-means++ (Arthur & Vassilvitskii, SODA 2007), normalised: the first a random
  example, each next one an example drawn with probability ∝ its distortion min_j ‖x − c_j‖² to the unit
  seeds so far (examples of zero norm are never drawn unless all are)."""
  norms = jnp.linalg.norm(x, axis=1)
  unit = normalize_rows(x)
  keys = jax.random.split(key, k)
  first = jax.random.categorical(keys[0], jnp.where(norms > 0, 0.0, -jnp.inf))
  seeds = jnp.zeros((k, x.shape[1]), x.dtype).at[0].set(unit[first])
  nearest = jnp.sum((x - unit[first]) ** 2, axis=1)

  def body(j, carry):
    seeds, nearest = carry
    weights = jnp.where(norms > 0, nearest, 0.0)
    logits = jnp.where(weights > 0, jnp.log(jnp.where(weights > 0, weights, 1.0)), -jnp.inf)
    logits = jnp.where(jnp.any(weights > 0), logits, 0.0)
    i = jax.random.categorical(keys[j], logits)
    return seeds.at[j].set(unit[i]), jnp.minimum(nearest, jnp.sum((x - unit[i]) ** 2, axis=1))

  return jax.lax.fori_loop(1, k, body, (seeds, nearest))[0]


@functools.partial(jax.jit, static_argnames=("k", "iterations"))
def spherical_kmeans(x: Array, k: int, key: Array, iterations: int = 10) -> Array:
  """Centroids (k, D) of x (N, D) by `iterations` Lloyd steps from k-means++ seeds (`kmeans_plus_plus`)."""
  init_key, step_key = jax.random.split(key)

  def body(i, c):
    return lloyd_step(c, x, jax.random.fold_in(step_key, i))[0]

  return jax.lax.fori_loop(0, iterations, body, kmeans_plus_plus(init_key, x, k))


# ----------------------------------------------------------------------------- whole images


class PatchPreprocessing(NamedTuple):
  """What is done to each flattened p×p patch before encoding, as at training:

  x ← x − mean(x) if `remove_dc` (the patch's own mean), then x ← (x − mean) @ projection when `mean` is
  given ((D,) and (D, n): PCA whitening has projection U_K diag(λ + ε)^(−1/2), standardisation
  diag(1/σ)). None everywhere: the raw patch.
  """

  remove_dc: bool = False
  mean: Any = None
  projection: Any = None


RAW_PATCHES = PatchPreprocessing()  # nothing done to the patches


def preprocess_patches(x: Array, preprocessing: PatchPreprocessing) -> Array:
  """`PatchPreprocessing` applied to patches (..., D)."""
  if preprocessing.remove_dc:
    x = x - jnp.mean(x, axis=-1, keepdims=True)
  if preprocessing.mean is not None:
    x = (x - jnp.asarray(preprocessing.mean, x.dtype)) @ jnp.asarray(preprocessing.projection, x.dtype)
  return x


def image_patches(images: Array, patch_size: int, stride: int = 1) -> Array:
  """Every p×p patch of images (B, H, W, C) at stride s, flattened in (p, p, C) C order (as
  `data.patches.extract_patches` flattens): (B, R, S, p·p·C), R = ⌊(H − p)/s⌋ + 1 rows of positions."""
  _, h, w, c = images.shape
  rows = jnp.arange(0, h - patch_size + 1, stride)
  cols = jnp.arange(0, w - patch_size + 1, stride)
  offsets = jnp.arange(patch_size)
  r = (rows[:, None] + offsets[None, :])[:, None, :, None]   # (R, 1, p, 1)
  s = (cols[:, None] + offsets[None, :])[None, :, None, :]   # (1, S, 1, p)
  patches = images[:, r, s, :]                                # (B, R, S, p, p, C)
  return patches.reshape(*patches.shape[:3], patch_size * patch_size * c)


def quadrant_sums(maps: Array) -> Array:
  """Sums of response maps (B, R, S, K) over the four quadrants of the positions, (B, 4K) ordered top-left,
  top-right, bottom-left, bottom-right (K features each). The first half of the rows is the first ⌈R/2⌉,
  of the columns the first ⌈S/2⌉ (an odd middle row or column goes to the top / left quadrants)."""
  r, s = (maps.shape[1] + 1) // 2, (maps.shape[2] + 1) // 2
  quadrants = [maps[:, :r, :s], maps[:, :r, s:], maps[:, r:, :s], maps[:, r:, s:]]
  return jnp.concatenate([jnp.sum(q, axis=(1, 2)) for q in quadrants], axis=-1)


def _encode_images(centroids: Array, images: Array, mean: Any, projection: Any, *, patch_size: int,
                   stride: int, remove_dc: bool) -> Array:
  patches = image_patches(images, patch_size, stride)
  x = preprocess_patches(patches, PatchPreprocessing(remove_dc, mean, projection))
  maps = triangle(x.reshape(-1, x.shape[-1]), centroids).reshape(*x.shape[:3], centroids.shape[0])
  return quadrant_sums(maps)


_encode_images_jit = jax.jit(_encode_images, static_argnames=("patch_size", "stride", "remove_dc"))


def convolutional_features(centroids: Any, images: Any, patch_size: int, *,
                           preprocessing: PatchPreprocessing = RAW_PATCHES, stride: int = 1,
                           batch_size: int = 64) -> np.ndarray:
  """Coates et al.'s whole-image features: every p×p patch at `stride`, preprocessed as at training,
  triangle-encoded with `centroids` (K, n), the K maps summed over the image's four quadrants.

  Args:
    centroids: (K, n), n the size of a preprocessed patch.
    images: (N, H, W) or (N, H, W, C) pixels: floats in [0, 1], or uint8 (divided by 255, as
      `data.patches.extract_patches` cuts the training patches).
    patch_size: p, the side of the training patches.
    preprocessing: what was done to the training patches (`PatchPreprocessing`).
    stride: s ≥ 1, the step between patch positions.
    batch_size: images per jitted call (the last call is padded, so one shape compiles).

  Returns:
    float32 (N, 4K): the top-left, top-right, bottom-left and bottom-right sums (`quadrant_sums`).

  Raises:
    ValueError: bad sizes (named with the accepted values), checked before any compute.
  """
  images = np.asarray(images)
  images = images.astype(np.float32) / 255.0 if images.dtype == np.uint8 else images.astype(np.float32)
  if images.ndim == 3:
    images = images[..., None]
  centroids = jnp.asarray(centroids, jnp.float32)
  if images.ndim != 4 or images.shape[0] < 1:
    raise ValueError(f"images must be (N, H, W) or (N, H, W, C) with N ≥ 1, got shape {images.shape}")
  for name, value in (("patch_size", patch_size), ("stride", stride), ("batch_size", batch_size)):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
      raise ValueError(f"{name} must be an integer ≥ 1, got {value!r}")
  h, w, c = images.shape[1:]
  if patch_size > min(h, w):
    raise ValueError(f"patch_size {patch_size} exceeds the {h}×{w} images: it must be at most {min(h, w)}")
  d = patch_size * patch_size * c
  n_in = d if preprocessing.projection is None else np.shape(preprocessing.projection)[0]
  n_out = d if preprocessing.projection is None else np.shape(preprocessing.projection)[1]
  if n_in != d or centroids.ndim != 2 or centroids.shape[1] != n_out:
    raise ValueError(f"{patch_size}×{patch_size}×{c} patches have {d} values; the preprocessing takes {n_in} "
                     f"and gives {n_out}, and the centroids have shape {tuple(centroids.shape)} (expected "
                     f"(K, {n_out}))")
  batch = min(int(batch_size), len(images))
  out = []
  for start in range(0, len(images), batch):
    chunk = images[start:start + batch]
    padded = np.concatenate([chunk, np.zeros((batch - len(chunk), h, w, c), np.float32)]) \
        if len(chunk) < batch else chunk
    features = _encode_images_jit(centroids, padded, preprocessing.mean, preprocessing.projection,
                                  patch_size=int(patch_size), stride=int(stride),
                                  remove_dc=bool(preprocessing.remove_dc))
    out.append(np.asarray(features)[:len(chunk)])
  return np.concatenate(out)


# ----------------------------------------------------------------------------- the module


class KMeans(nn.Module):
  """K unit-norm centroids `C` (n_centroids × n_visible) and their triangle features (module docstring).

  Attributes:
    n_visible: D, the size of one (preprocessed) example.
    n_centroids: K, the number of centroids (and of features).
  """

  n_visible: int
  n_centroids: int

  def __post_init__(self):
    for name in ("n_visible", "n_centroids"):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer ≥ 1, got {value!r}")
    super().__post_init__()

  def setup(self):
    self.C = self.param("C", unit_rows, (self.n_centroids, self.n_visible))

  def _flat(self, x: Array) -> Array:
    x = jnp.reshape(x, (x.shape[0], math.prod(x.shape[1:])))
    if x.shape[1] != self.n_visible:
      raise ValueError(f"KMeans has n_visible={self.n_visible} but the examples have {x.shape[1]} values")
    return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.float32)

  def hidden_probs(self, x: Array) -> Array:
    """The features: the triangle activations f(x), (B, K) (not probabilities; the zoo's name for features)."""
    return triangle(self._flat(x), self.C)

  def assign(self, x: Array) -> Array:
    """The centroid of each example, (B,)."""
    return assign(self._flat(x), self.C)

  def free_energy(self, x: Array) -> Array:
    """The distortion min_k ‖x − c_k‖² per example: k-means as the zero-temperature limit of a mixture of
    isotropic Gaussians, whose energy this is (up to the factor ½)."""
    return distortion(self._flat(x), self.C)

  def __call__(self, x: Array, train: bool = False) -> tuple[Array, dict[str, Array]]:
    """The triangle features, with the distances z_k(x) as the intermediate 'distances'."""
    del train
    x = self._flat(x)
    return triangle(x, self.C), {"distances": jnp.sqrt(squared_distances(x, self.C))}
