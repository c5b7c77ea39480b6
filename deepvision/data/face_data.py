r"""Faces to fill in, from a config: `config.faces` and `config.inpainting` checked, faces prepared.

The inpainting measure of `deepvision.estimators.inpainting` at the scale of the embedded faces
(`dv_faces`: scikit-image's 25×25 LFW crops; Ranzato, Mnih, Susskind & Hinton, PAMI 2013, fill in
occluded faces). Every face is cropped to `faces.crop`² pixels and average-pooled by `faces.pool`
(`crop_and_pool`), the training faces augmented by shifts and flips (`augment_faces`):

    out[n, i, j] = (1/pool²) Σ_{a,b < pool} image[n, top + pool·i + a, left + pool·j + b]

The experiment and the evaluation of the shipped weights both read the config through here (`load_faces`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import ml_collections
import numpy as np

from deepvision import schema
from deepvision.data import datasets
from deepvision.data.whiten import PCAWhitening
from deepvision.data.occlusion import OCCLUSION_KINDS
from deepvision.registry import UnknownNameError
from deepvision.data.energy import EnergyData, whiten_settings
from deepvision.errors import ConfigError
from deepvision.schema import at_least, boolean, distinct, one_of, real, spec

FACE_LABEL = 1  # dv_faces: 0 = non_face, 1 = face


MASK_KINDS = ("central_square",) + OCCLUSION_KINDS
INPAINT_METHODS = ("hmc", "gibbs")


def _split(value: Any) -> str:
  if not isinstance(value, str) or not value:
    raise ValueError("must name a split of dv_faces (e.g. 'train+validation', 'test')")
  return value


@dataclasses.dataclass(frozen=True)
class InpaintSettings:
  """`inpainting`: how the held-out faces are occluded and filled (a schema block)."""

  masks: tuple[str, ...] = spec(("central_square", "bottom_half", "random_square"), distinct(MASK_KINDS))
  square_size: int = spec(6, at_least(1), "the square masks' side, smaller than the faces")
  method: str = spec("hmc", one_of(INPAINT_METHODS), "gibbs needs a Gaussian p(x | h)")
  num_steps: int = spec(300, at_least(1), "the sampler's transitions in all")
  burn_in: int = spec(100, at_least(0), "the first ones, discarded")
  num_leapfrog: int = spec(20, at_least(1))
  step_size: float = spec(0.05, real(0.0, low_open=True), "HMC: in [0.001, 0.25], adapted during burn-in")
  gaussian_ridge: float = spec(1e-4, real(0.0))
  num_shown: int = spec(10, at_least(1), "faces shown in inpainted_faces.png")

  def __post_init__(self):
    if self.burn_in >= self.num_steps:
      raise ValueError(f"burn_in={self.burn_in} must be smaller than num_steps={self.num_steps}")
    if self.method == "hmc" and not 0.001 <= self.step_size <= 0.25:
      raise ValueError(f"step_size must lie in [0.001, 0.25] (the adapted HMC range), got {self.step_size!r}")


@dataclasses.dataclass(frozen=True)
class FaceSettings:
  """`faces`: how faces become training and held-out pixels (`load_faces`, `augment_faces`; a schema block)."""

  train_split: str = spec("train+validation", _split)
  test_split: str = spec("test", _split, "held out: never trained on")
  crop: int = spec(24, at_least(2), "crop² pixels of the 25×25 faces")
  pool: int = spec(2, at_least(1), "then averaged over pool² blocks")
  shifts: int = spec(1, at_least(0), "training crops shifted by up to this many pixels")
  flips: bool = spec(True, boolean, "and mirrored")

  def __post_init__(self):
    if self.train_split == self.test_split:
      raise ValueError(f"train_split and test_split are both {self.test_split!r}: the held-out faces must "
                       "not be trained on")
    if self.crop > 25 or self.crop + self.shifts > 25:
      raise ValueError(f"crop: a {self.crop}×{self.crop} crop shifted by up to {self.shifts} pixels does not "
                       "fit in the 25×25 faces (crop + shifts must be <= 25)")
    if self.crop % self.pool or self.crop // self.pool < 2:
      raise ValueError(f"pool={self.pool} must divide crop={self.crop} into images of at least 2×2 pixels")

  @property
  def image_shape(self) -> tuple[int, int, int]:
    side = self.crop // self.pool
    return (side, side, 1)


def face_settings(config: ml_collections.ConfigDict) -> FaceSettings:
  """`config.faces`, checked; ConfigError naming the bad value. The faces are 25×25."""
  if "faces" not in config:
    raise ConfigError("the inpainting trainer needs a config.faces block (train_split, test_split, crop, "
                      "pool, shifts, flips); see experiments/configs/gmrf_faces.py")
  if config.dataset != "dv_faces":
    raise ConfigError(f"the inpainting trainer fills in faces of 'dv_faces'; config.dataset is "
                      f"{config.dataset!r}")
  return schema.load(FaceSettings, config.faces, "config.faces")


def inpaint_settings(config: ml_collections.ConfigDict, faces: FaceSettings) -> InpaintSettings:
  """`config.inpainting`, checked against the face size and the model; ConfigError naming the bad value."""
  if "inpainting" not in config:
    raise ConfigError("the inpainting trainer needs a config.inpainting block; see "
                      "experiments/configs/gmrf_faces.py")
  settings = schema.load(InpaintSettings, config.inpainting, "config.inpainting")
  side = faces.image_shape[0]
  if settings.square_size >= side:
    raise ConfigError(f"config.inpainting.square_size={settings.square_size} must be smaller than the "
                      f"{side}×{side} faces")
  if settings.method == "gibbs":
    kwargs = dict(config.get("model_kwargs", {}))
    if config.model.startswith("mcrbm") and kwargs.get("input_norm", "original") != "paper":
      raise ConfigError("config.inpainting.method='gibbs' needs a Gaussian p(x | h): an mpot or an mcrbm with "
                        "model_kwargs.input_norm='paper'; use method='hmc' for the original-form mcRBM")
  return settings


def crop_and_pool(images: np.ndarray, crop: int, pool: int, top: int = 0, left: int = 0) -> np.ndarray:
  """(N, H, W, 1) images cropped to crop×crop at (top, left), then averaged over pool×pool blocks.

  By default 24 → 12×12: 144 pixels, a size a gated MRF with a few hundred factors models in seconds per
  epoch, where 625-pixel faces would need far more factors than 80 faces can fit.
  """
  patch = images[:, top:top + crop, left:left + crop]
  side = crop // pool
  return patch.reshape(len(images), side, pool, side, pool, -1).mean(axis=(2, 4))


def augment_faces(images: np.ndarray, faces: FaceSettings) -> np.ndarray:
  """Every crop offset in {0..shifts}² of every face and, with flips, their mirror images, float32.

  With so few faces the training set is augmented: every crop offset (top, left) in {0, …, faces.shifts}²
  and, with `faces.flips`, the mirror images (faces are nearly symmetric).

  Returns (N · (shifts + 1)² · (2 if flips else 1), h, w, 1), grouped by augmentation (all faces at
  offset (0, 0) first).
  """
  views = [crop_and_pool(images, faces.crop, faces.pool, top, left)
           for top in range(faces.shifts + 1) for left in range(faces.shifts + 1)]
  if faces.flips:
    views += [v[:, :, ::-1] for v in views]
  return np.concatenate(views).astype(np.float32)


def load_faces(config: ml_collections.ConfigDict, faces: FaceSettings) -> tuple[np.ndarray, np.ndarray]:
  """(augmented training faces, held-out faces), float32 (N, h, w, 1) in [0, 1]; faces only.

  The *face* images (label 1) of `faces.train_split` train the models (`augment_faces`); those of
  `faces.test_split` are held out, cropped at (0, 0), not mirrored (the default splits give 80 training
  faces, 8 examples each, and 20 held-out faces). Both the experiment that trains the model and the
  evaluation of the shipped weights (`deepvision.pretrained.evaluation`) read the config through here,
  so they see the same pixels.
  """
  def read(split: str, role: str) -> np.ndarray:
    try:
      images, labels = datasets.load_arrays(config.dataset, split, data_dir=config.get("data_dir") or None)
    except (ValueError, UnknownNameError) as e:
      raise ConfigError(f"config.faces.{role}: {e}") from None
    chosen = images[labels == FACE_LABEL]
    if len(chosen) < 2:
      raise ConfigError(f"config.faces.{role}={split!r} holds {len(chosen)} faces; at least 2 are needed")
    return chosen
  train = read(faces.train_split, "train_split")
  test = read(faces.test_split, "test_split")
  return augment_faces(train, faces), crop_and_pool(test, faces.crop, faces.pool).astype(np.float32)


def face_data(config: ml_collections.ConfigDict, train: np.ndarray, test: np.ndarray) -> EnergyData:
  """The whitened faces a gated MRF trains on: PCA fitted on the training faces, (N, K, 1, 1).

  The PCA whitening (`whiten.variance`) is fitted on the augmented training faces.
  """
  whiten = whiten_settings(config)
  try:
    whitener = PCAWhitening.fit(train.astype(np.float64), variance=whiten.variance, epsilon=whiten.epsilon)
  except ValueError as e:
    raise ConfigError(f"config.whiten (PCA whitening of the training faces): {e}") from None
  shape = (whitener.num_components, 1, 1)
  splits = {role: whitener.transform(x.astype(np.float64)).astype(np.float32).reshape(len(x), *shape)
            for role, x in (("train", train), ("test", test))}
  return EnergyData(splits, {}, shape, whitening=whitener.to_dict(), pixel_shape=tuple(train.shape[1:]))
