"""Natural-image patches and per-feature standardisation: the data of natural-image RBMs.

Energy-based models of natural images (Gaussian RBMs, mcRBM, mPoT) are trained on small grey
patches cut at random from photographs (Ranzato & Hinton, "Modeling pixel means and
covariances using factorized third-order Boltzmann machines", CVPR 2010; Ranzato, Mnih,
Susskind & Hinton, "Modeling natural images using gated MRFs", PAMI 2013), usually with each
patch's mean removed and every pixel standardised to zero mean and unit variance (Hinton, "A
practical guide to training restricted Boltzmann machines", 2010, §13.2: Gaussian visible
units are easiest to learn with unit-variance data).

Example:
  >>> patches = natural_image_patches(8, 10_000, seed=0, remove_dc=True)   # (10000, 8, 8, 1)
  >>> scaler = Standardizer.fit(patches, eps=1e-2)
  >>> x = scaler.transform(patches.reshape(len(patches), -1))            # (10000, 64)
  >>> json.dumps(scaler.to_dict())                                       # saved with a run
"""

from __future__ import annotations

import dataclasses
import numbers
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from deepvision.data import datasets

IMAGE_WEIGHTINGS = ("positions", "images")


def _check_positive_int(name: str, value: Any) -> int:
  if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
    raise ValueError(f"{name} must be a positive integer, got {value!r}")
  return int(value)


def _grey_images(images: Sequence[Any]) -> list[np.ndarray]:
  """The images as (H, W) arrays (views, no copy), checked for shape and dtype."""
  images = [np.asarray(image) for image in images]
  if not images:
    raise ValueError("images is empty: give at least one (H, W) or (H, W, 1) image")
  grey = []
  for i, image in enumerate(images):
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[-1] == 1)):
      raise ValueError(f"image {i} has shape {image.shape}: expected a grey image of shape "
                       "(H, W) or (H, W, 1); turn colour images grey first")
    if image.dtype != np.uint8 and not np.issubdtype(image.dtype, np.floating):
      raise ValueError(f"image {i} has dtype {image.dtype}: expected uint8 (0-255) or floating "
                       "point (taken to be in [0, 1])")
    grey.append(image.reshape(image.shape[:2]))
  return grey


def extract_patches(
    images: Sequence[Any],
    patch_size: int,
    num_patches: int,
    seed: int | np.random.Generator,
    *,
    remove_dc: bool = False,
    image_weighting: str = "positions",
) -> np.ndarray:
  """Square grey patches cut at random positions from a list of images of any size.

  Image i of size H_i × W_i has P_i = (H_i − p + 1)(W_i − p + 1) valid top-left corners for a
  p × p patch (none if it is smaller than the patch: such images are skipped). Each patch is
  drawn independently (with replacement):

  * `image_weighting="positions"` (default): uniformly over all valid positions of all images,
    P(i, r, c) = 1 / Σ_j P_j. Every patch of the pool is equally likely, so a large image gives
    more patches than a small one, in proportion to its area.
  * `image_weighting="images"`: an image uniformly among those that fit, then a position
    uniformly within it, P(i, r, c) = 1 / (n P_i) with n the number of fitting images. Every
    image contributes equally, whatever its size.

  uint8 pixels are divided by 255; floating-point pixels are taken to be in [0, 1] already and
  kept as they are. With `remove_dc=True` each patch's mean is subtracted, x ← x − mean(x)
  (the "DC component"; usual before modelling natural-image patches, whose mean brightness
  varies far more than their structure): values then lie in [−1, 1] and each patch sums to 0.

  Args:
    images: grey images, each (H, W) or (H, W, 1), uint8 or float; sizes may differ. An
      (N, H, W[, 1]) array works too.
    patch_size: p, the side of the square patches.
    num_patches: how many patches to cut.
    seed: seed of the numpy `Generator` (or a Generator): the same seed gives the same patches.
    remove_dc: subtract each patch's mean.
    image_weighting: "positions" or "images" (see above).

  Returns:
    float32 (num_patches, p, p, 1) patches, in [0, 1] (or [−1, 1] with `remove_dc`).

  Raises:
    ValueError: a patch_size or num_patches below 1, a patch larger than every image, an
      empty image list, an image with more than one channel or of another dtype, an unknown
      image_weighting. All are checked before any patch is cut.
  """
  patch_size = _check_positive_int("patch_size", patch_size)
  num_patches = _check_positive_int("num_patches", num_patches)
  if image_weighting not in IMAGE_WEIGHTINGS:
    raise ValueError(f"unknown image_weighting {image_weighting!r}; valid choices: "
                     f"{', '.join(IMAGE_WEIGHTINGS)}")
  grey = _grey_images(images)
  heights = np.array([g.shape[0] for g in grey]) - patch_size + 1
  widths = np.array([g.shape[1] for g in grey]) - patch_size + 1
  fits = (heights > 0) & (widths > 0)
  if not fits.any():
    largest = max(range(len(grey)), key=lambda i: min(grey[i].shape))
    raise ValueError(
        f"patch_size {patch_size} is larger than every image: the largest image is "
        f"{grey[largest].shape} (image {largest}), which allows patches up to "
        f"{min(grey[largest].shape)}")
  positions = np.where(fits, heights * widths, 0)

  rng = np.random.default_rng(seed)
  if image_weighting == "positions":
    flat = rng.integers(0, positions.sum(), size=num_patches)
    ends = np.cumsum(positions)
    which = np.searchsorted(ends, flat, side="right")
    local = flat - (ends[which] - positions[which])
    rows, cols = local // widths[which], local % widths[which]
  else:
    fitting = np.flatnonzero(fits)
    which = fitting[rng.integers(0, len(fitting), size=num_patches)]
    rows = rng.integers(0, heights[which])
    cols = rng.integers(0, widths[which])

  patches = np.empty((num_patches, patch_size, patch_size), np.float32)
  for i in np.unique(which):
    chosen = np.flatnonzero(which == i)
    windows = np.lib.stride_tricks.sliding_window_view(grey[i], (patch_size, patch_size))
    patches[chosen] = datasets.to_unit_float(windows[rows[chosen], cols[chosen]])
  if remove_dc:
    patches -= patches.mean(axis=(1, 2), keepdims=True)
  return patches[..., None]


def natural_image_patches(
    patch_size: int,
    num_patches: int,
    seed: int | np.random.Generator,
    data_dir: str | os.PathLike | None = None,
    split: str = "train",
    *,
    remove_dc: bool = False,
    image_weighting: str = "positions",
) -> np.ndarray:
  """`extract_patches` from the grey photographs of `dv_natural_images`.

  The sixteen images (172×448 up to 872×1000, see `deepvision.data.builders.natural_images`)
  are read on every call (about 0.1 s); nothing is cached. With the default weighting by
  positions the large Hubble deep field gives about a fifth of the patches.

  Args:
    patch_size, num_patches, seed, remove_dc, image_weighting: as in `extract_patches`.
    data_dir: the data directory (default: see `deepvision.data.datasets`).
    split: the split to read ('train' is the only one; TFDS slices such as 'train[:4]' work).

  Returns:
    float32 (num_patches, patch_size, patch_size, 1) patches in [0, 1] ([−1, 1] with remove_dc).
  """
  patch_size = _check_positive_int("patch_size", patch_size)
  num_patches = _check_positive_int("num_patches", num_patches)
  if image_weighting not in IMAGE_WEIGHTINGS:
    raise ValueError(f"unknown image_weighting {image_weighting!r}; valid choices: "
                     f"{', '.join(IMAGE_WEIGHTINGS)}")
  source = datasets.get_source("dv_natural_images", split, data_dir)
  images = [source[i]["image"] for i in range(len(source))]
  return extract_patches(images, patch_size, num_patches, seed, remove_dc=remove_dc,
                         image_weighting=image_weighting)


@dataclasses.dataclass(frozen=True, eq=False)
class Standardizer:
  """Per-feature standardisation x ↦ (x − μ) / s, fitted on data, saved as JSON.

  Features are the trailing dimensions of the data it was fitted on, e.g. (8, 8, 1) for
  image patches or (64,) for flattened vectors. `transform` and `inverse` accept a batch of
  either form: (..., *feature_shape) or the same flattened, (..., prod(feature_shape)) in C
  order (the order of `reshape`, as RBMs flatten their visible vectors); the output keeps the
  input's shape.

  Attributes:
    mean: μ, one value per feature (float64, shape `feature_shape`).
    std: s = √(var + eps) per feature (float64, same shape, all > 0).
  """

  mean: np.ndarray
  std: np.ndarray

  def __post_init__(self):
    mean = np.array(self.mean, np.float64)
    std = np.array(self.std, np.float64)
    if mean.shape != std.shape:
      raise ValueError(f"mean and std must have the same shape, got {mean.shape} and {std.shape}")
    if not np.all(np.isfinite(mean)):
      raise ValueError(f"mean must be finite, got {int(np.sum(~np.isfinite(mean)))} non-finite values")
    if not np.all(np.isfinite(std) & (std > 0)):
      raise ValueError("std must be finite and > 0 for every feature, got "
                       f"{int(np.sum(~np.isfinite(std) | ~(std > 0)))} bad values")
    mean.setflags(write=False)
    std.setflags(write=False)
    object.__setattr__(self, "mean", mean)
    object.__setattr__(self, "std", std)

  @property
  def feature_shape(self) -> tuple[int, ...]:
    return self.mean.shape

  @property
  def num_features(self) -> int:
    return self.mean.size

  @classmethod
  def fit(cls, x: Any, eps: float = 1e-8) -> Standardizer:
    """Mean and standard deviation of each feature over the first axis of x.

    μ = (1/N) Σ_n x_n,   s = √((1/N) Σ_n (x_n − μ)² + eps).

    Args:
      x: (N, *feature_shape) data, N ≥ 2.
      eps: added to each variance, ≥ 0. It bounds the gain 1/s of nearly constant features
        (e.g. the border pixels of digits, or every pixel of DC-removed patches of flat sky);
        for pixels in [0, 1] eps ≈ 1e-2 is a common choice, the default only avoids 1/0.
        With eps = 0 a constant feature is an error.

    Raises:
      ValueError: fewer than 2 examples, non-finite data, eps < 0, or a zero std.
    """
    x = np.asarray(x)
    if x.ndim < 1 or x.shape[0] < 2:
      raise ValueError(f"fit needs an (N, ...) array with N ≥ 2 examples, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
      raise ValueError(f"fit needs real numbers, got dtype {x.dtype}")
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not eps >= 0:
      raise ValueError(f"eps must be a number ≥ 0, got {eps!r}")
    x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
      raise ValueError(f"fit got {int(np.sum(~np.isfinite(x)))} non-finite values")
    mean = x.mean(axis=0)
    std = np.sqrt(x.var(axis=0) + eps)
    if np.any(std == 0):
      raise ValueError(f"{int(np.sum(std == 0))} feature(s) are constant and eps is 0, e.g. "
                       f"feature {np.unravel_index(np.argmax(std == 0), std.shape)}: give eps > 0")
    return cls(mean, std)

  def _broadcastable(self, x: Any, what: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, mean, std) with mean and std shaped to broadcast against x."""
    x = np.asarray(x)
    shape = self.feature_shape
    if x.shape[x.ndim - len(shape):] == shape and x.ndim >= len(shape):
      return x, self.mean, self.std
    if x.ndim >= 1 and x.shape[-1] == self.num_features:
      return x, self.mean.reshape(-1), self.std.reshape(-1)
    raise ValueError(
        f"{what} got an array of shape {x.shape}, but the Standardizer was fitted on features "
        f"of shape {shape} ({self.num_features} features): expected (..., "
        f"{', '.join(map(str, shape))}) or flattened (..., {self.num_features})")

  @staticmethod
  def _out_dtype(x: np.ndarray) -> np.dtype:
    return np.dtype(np.float64) if x.dtype == np.float64 else np.dtype(np.float32)

  def transform(self, x: Any) -> np.ndarray:
    """(x − μ) / s, float32 (float64 for float64 input), same shape as x."""
    x, mean, std = self._broadcastable(x, "transform")
    return ((x - mean) / std).astype(self._out_dtype(x))

  def inverse(self, z: Any) -> np.ndarray:
    """z · s + μ: undoes `transform`, float32 (float64 for float64 input), same shape as z."""
    z, mean, std = self._broadcastable(z, "inverse")
    return (z * std + mean).astype(self._out_dtype(z))

  def to_dict(self) -> dict[str, list]:
    """{'mean': nested lists, 'std': nested lists} (JSON-friendly; exact through JSON)."""
    return {"mean": self.mean.tolist(), "std": self.std.tolist()}

  @classmethod
  def from_dict(cls, d: Mapping[str, Any]) -> Standardizer:
    """The inverse of `to_dict`."""
    missing = {"mean", "std"} - set(d)
    if missing:
      raise ValueError(f"a Standardizer dict needs keys 'mean' and 'std'; missing {sorted(missing)}")
    return cls(np.asarray(d["mean"], np.float64), np.asarray(d["std"], np.float64))

