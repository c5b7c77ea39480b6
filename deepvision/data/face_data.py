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
import math
import numbers
from typing import Any

import ml_collections
import numpy as np

from deepvision.data import datasets
from deepvision.data.whiten import PCAWhitening
from deepvision.data.occlusion import OCCLUSION_KINDS
from deepvision.registry import UnknownNameError
from deepvision.data.energy import EnergyData, whiten_settings
from deepvision.errors import ConfigError

FACE_LABEL = 1  # dv_faces: 0 = non_face, 1 = face


MASK_KINDS = ("central_square",) + OCCLUSION_KINDS
INPAINT_METHODS = ("hmc", "gibbs")


@dataclasses.dataclass(frozen=True)
class InpaintSettings:
  """How the held-out images are occluded and filled (a checked `config.inpainting` block)."""

  masks: tuple[str, ...]
  square_size: int
  method: str
  num_steps: int
  burn_in: int
  num_leapfrog: int
  step_size: float
  gaussian_ridge: float
  num_shown: int



@dataclasses.dataclass(frozen=True)
class FaceSettings:
  """How faces become training and held-out pixels (`config.faces`; `load_faces`, `augment_faces`)."""

  train_split: str
  test_split: str
  crop: int
  pool: int
  shifts: int
  flips: bool

  @property
  def image_shape(self) -> tuple[int, int, int]:
    side = self.crop // self.pool
    return (side, side, 1)


def _int(block: str, field: str, value: Any, minimum: int) -> int:
  if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
    raise ConfigError(f"config.{block}.{field} must be an int >= {minimum}, got {value!r}")
  return int(value)


def _real(block: str, field: str, value: Any, minimum: float, inclusive: bool = True) -> float:
  ok = (not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(value)
        and (value >= minimum if inclusive else value > minimum))
  if not ok:
    raise ConfigError(f"config.{block}.{field} must be a finite number {'>=' if inclusive else '>'} "
                      f"{minimum:g}, got {value!r}")
  return float(value)


def face_settings(config: ml_collections.ConfigDict) -> FaceSettings:
  """`config.faces`, checked; ConfigError naming the bad value. The faces are 25×25."""
  block = config.get("faces", None)
  if block is None:
    raise ConfigError("the inpainting trainer needs a config.faces block (train_split, test_split, crop, "
                      "pool, shifts, flips); see experiments/configs/gmrf_faces.py")
  if config.dataset != "dv_faces":
    raise ConfigError(f"the inpainting trainer fills in faces of 'dv_faces'; config.dataset is "
                      f"{config.dataset!r}")
  splits = {}
  for field in ("train_split", "test_split"):
    value = block.get(field, None)
    if not isinstance(value, str) or not value:
      raise ConfigError(f"config.faces.{field} must name a split of dv_faces (e.g. 'train+validation', "
                        f"'test'), got {value!r}")
    splits[field] = value
  if splits["train_split"] == splits["test_split"]:
    raise ConfigError(f"config.faces.train_split and test_split are both {splits['test_split']!r}: the "
                      "held-out faces must not be trained on")
  crop = _int("faces", "crop", block.get("crop", 24), 2)
  pool = _int("faces", "pool", block.get("pool", 2), 1)
  shifts = _int("faces", "shifts", block.get("shifts", 1), 0)
  if crop > 25 or crop + shifts > 25:
    raise ConfigError(f"config.faces: a {crop}×{crop} crop shifted by up to {shifts} pixels does not fit "
                      "in the 25×25 faces (crop + shifts must be <= 25)")
  if crop % pool or crop // pool < 2:
    raise ConfigError(f"config.faces.pool={pool} must divide config.faces.crop={crop} into images of at "
                      "least 2×2 pixels")
  flips = block.get("flips", True)
  if not isinstance(flips, bool):
    raise ConfigError(f"config.faces.flips must be True or False, got {flips!r}")
  return FaceSettings(splits["train_split"], splits["test_split"], crop, pool, shifts, flips)


def inpaint_settings(config: ml_collections.ConfigDict, faces: FaceSettings) -> InpaintSettings:
  """`config.inpainting`, checked against the face size and the model; ConfigError naming the bad value."""
  block = config.get("inpainting", None)
  if block is None:
    raise ConfigError("the inpainting trainer needs a config.inpainting block; see "
                      "experiments/configs/gmrf_faces.py")
  masks = block.get("masks", ())
  masks = tuple(masks) if isinstance(masks, (tuple, list)) else (masks,)
  if not masks or len(set(masks)) != len(masks) or any(m not in MASK_KINDS for m in masks):
    raise ConfigError(f"config.inpainting.masks must be distinct kinds among {', '.join(MASK_KINDS)}, "
                      f"got {block.get('masks')!r}")
  side = faces.image_shape[0]
  square = _int("inpainting", "square_size", block.get("square_size", side // 2), 1)
  if square >= side:
    raise ConfigError(f"config.inpainting.square_size={square} must be smaller than the {side}×{side} faces")
  method = block.get("method", "hmc")
  if method not in INPAINT_METHODS:
    raise ConfigError(f"config.inpainting.method must be one of {', '.join(INPAINT_METHODS)}, got {method!r}")
  if method == "gibbs":
    kwargs = dict(config.get("model_kwargs", {}))
    if config.model.startswith("mcrbm") and kwargs.get("input_norm", "original") != "paper":
      raise ConfigError("config.inpainting.method='gibbs' needs a Gaussian p(x | h): an mpot or an mcrbm with "
                        "model_kwargs.input_norm='paper'; use method='hmc' for the original-form mcRBM")
  num_steps = _int("inpainting", "num_steps", block.get("num_steps", 300), 1)
  burn_in = _int("inpainting", "burn_in", block.get("burn_in", 100), 0)
  if burn_in >= num_steps:
    raise ConfigError(f"config.inpainting.burn_in={burn_in} must be smaller than num_steps={num_steps}")
  step_size = _real("inpainting", "step_size", block.get("step_size", 0.05), 0.0, inclusive=False)
  if method == "hmc" and not 0.001 <= step_size <= 0.25:
    raise ConfigError(f"config.inpainting.step_size must lie in [0.001, 0.25] (the adapted HMC range), got "
                      f"{step_size!r}")
  return InpaintSettings(
      masks=masks, square_size=square, method=method, num_steps=num_steps, burn_in=burn_in,
      num_leapfrog=_int("inpainting", "num_leapfrog", block.get("num_leapfrog", 20), 1),
      step_size=step_size,
      gaussian_ridge=_real("inpainting", "gaussian_ridge", block.get("gaussian_ridge", 1e-4), 0.0),
      num_shown=_int("inpainting", "num_shown", block.get("num_shown", 10), 1))


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
