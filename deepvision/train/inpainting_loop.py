r"""The `inpainting` trainer: a gated MRF of small faces fills in occluded held-out faces, against a Gaussian.

Ranzato, Mnih, Susskind & Hinton ("Modeling natural images using gated MRFs", PAMI 2013) fill in
occluded faces by sampling the missing pixels from the gated MRF's conditional p(x_m | x_o). This
trainer measures that at the scale of the embedded faces (`dv_faces`: scikit-image's 25×25 LFW crops):

  1. faces: the *face* images (label 1) of `faces.train_split` train the models; those of
     `faces.test_split` are held out and never seen in training (the default splits give 80 training
     and 20 held-out faces). Every face is cropped to `faces.crop`² pixels and average-pooled by
     `faces.pool` (24 → 12×12 by default: 144 pixels, a size a gated MRF with a few hundred factors
     models in seconds per epoch, where 625-pixel faces would need far more factors than 80 faces can
     fit). With so few faces the training set is augmented: every crop offset in
     {0, …, faces.shifts}² (shifts of one pixel at 25×25, half a pixel after pooling) and, with
     `faces.flips`, the mirror images (faces are nearly symmetric), 8 examples per face by default.
     Held-out faces are cropped at offset (0, 0), not mirrored.
  2. model: PCA whitening fitted on the training faces (`whiten.variance`), then a gated MRF (`mcrbm`,
     original or paper form, or `mpot`) trained by `run_contrastive` in `workdir/model` (PCD with HMC
     negatives and the original recipe; resumable, its own metrics and figures).
  3. inpainting: every held-out face is occluded by each kind of `inpainting.masks` ('central_square'
     of side `inpainting.square_size` in the middle, or a kind of `deepvision.data.occlusion`:
     halves, 'random_square'); the missing pixels are filled with the posterior mean E[x_m | x_o]
     estimated in pixel space (`samplers.conditional`, `pixel_space_energy`: the model's density of
     the kept PCA coordinates times the PCA residual N(0, σ_r² I)) by HMC (`inpainting.method='hmc'`,
     any gated MRF) or Gibbs sampling of h and x_m (`'gibbs'`, paper-form mcRBM or mPoT), started at
     the Gaussian's fill.
  4. baselines, fitted on exactly the same (augmented) training pixels and filling with their
     conditional means μ_m + Σ_mo Σ_oo⁻¹ (x_o − μ_o) (`GaussianModel.inpaint`):
       * 'gaussian': the PCA-residual Gaussian N(m, U diag(λ) Uᵀ + σ_r²(I − UUᵀ)), i.e. the gated
         MRF's own pixel-space density with its free energy F(z) replaced by ½‖z‖² (probabilistic PCA,
         Tipping & Bishop 1999): the same whitening, the same residual, one change;
       * 'gaussian_full': the sample covariance of the pixels plus `inpainting.gaussian_ridge`·I,
         every direction kept (a Gaussian may do better with all of them than with K).
     Both are the minimum-squared-error fill under their own model; the gated MRF is compared
     against the better one.
  5. records (`metrics.jsonl`, one final record): per mask `test/mse_gmrf_<mask>`,
     `test/mse_gaussian_<mask>`, `test/mse_gaussian_full_<mask>` — the mean over held-out faces of
     the squared error per missing pixel (pixels in [0, 1]) — each with `_stderr` (standard error over
     faces), and the paired difference `test/mse_gain_<mask>` = MSE(best Gaussian) − MSE(gated MRF)
     per face, with its standard error; the HMC acceptance rate `inpaint/acceptance_<mask>`; the
     model's final record under `model/`.
  6. figure `inpainted_faces.png`: the first `inpainting.num_shown` held-out faces, rows top to
     bottom: original, then for each mask the occluded face, the best Gaussian's fill and the gated
     MRF's fill, on one grey scale.

Transition t of the inpainting chains of mask i draws from `fold_in(fold_in(key, i), t)`; the masks of
'random_square' from `fold_in(key, i)` too, so a run is reproducible and a re-run (which finds the model
trained and only repeats steps 3-6) writes the same record.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np


from deepvision.data import datasets
from deepvision.data.occlusion import OCCLUSION_KINDS, occlude, occlusion_mask
from deepvision.data.whiten import PCAWhitening
from deepvision.models.gaussian import GaussianModel
from deepvision.registry import UnknownNameError
from deepvision.samplers import conditional
from deepvision.train import contrastive_loop, loop, workdir as workdirs
from deepvision.train.energy_data import EnergyData, whiten_epsilon, whiten_variance
from deepvision.train.writers import MetricsWriter

ConfigError = loop.ConfigError
FACE_LABEL = 1  # dv_faces: 0 = non_face, 1 = face
MASK_KINDS = ("central_square",) + OCCLUSION_KINDS
INPAINT_METHODS = ("hmc", "gibbs")
GAUSSIANS = ("gaussian", "gaussian_full")
RUN_IDENTITY = contrastive_loop.RUN_IDENTITY + ("faces",)


# ----------------------------------------------------------------------------- settings


@dataclasses.dataclass(frozen=True)
class FaceSettings:
  """How faces become training and held-out pixels (`config.faces`; module docstring, step 1)."""

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


@dataclasses.dataclass(frozen=True)
class InpaintSettings:
  """How the held-out faces are occluded and filled (`config.inpainting`; module docstring, 3-6)."""

  masks: tuple[str, ...]
  square_size: int
  method: str
  num_steps: int
  burn_in: int
  num_leapfrog: int
  step_size: float
  gaussian_ridge: float
  num_shown: int


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
    kwargs = loop.model_kwargs(config)
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


# ----------------------------------------------------------------------------- faces


def crop_and_pool(images: np.ndarray, crop: int, pool: int, top: int = 0, left: int = 0) -> np.ndarray:
  """(N, H, W, 1) images cropped to crop×crop at (top, left), then averaged over pool×pool blocks.

    out[n, i, j] = (1/pool²) Σ_{a,b < pool} images[n, top + pool·i + a, left + pool·j + b]
  """
  patch = images[:, top:top + crop, left:left + crop]
  side = crop // pool
  return patch.reshape(len(images), side, pool, side, pool, -1).mean(axis=(2, 4))


def augment_faces(images: np.ndarray, faces: FaceSettings) -> np.ndarray:
  """Every crop offset in {0..shifts}² of every face and, with flips, their mirror images, float32.

  Returns (N · (shifts + 1)² · (2 if flips else 1), h, w, 1), grouped by augmentation (all faces at
  offset (0, 0) first).
  """
  views = [crop_and_pool(images, faces.crop, faces.pool, top, left)
           for top in range(faces.shifts + 1) for left in range(faces.shifts + 1)]
  if faces.flips:
    views += [v[:, :, ::-1] for v in views]
  return np.concatenate(views).astype(np.float32)


def load_faces(config: ml_collections.ConfigDict, faces: FaceSettings) -> tuple[np.ndarray, np.ndarray]:
  """(augmented training faces, held-out faces), float32 (N, h, w, 1) in [0, 1]; faces only."""
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
  """The whitened faces `run_contrastive` trains on: PCA fitted on the training faces, (N, K, 1, 1)."""
  try:
    whitener = PCAWhitening.fit(train.astype(np.float64), variance=whiten_variance(config),
                                epsilon=whiten_epsilon(config))
  except ValueError as e:
    raise ConfigError(f"config.whiten (PCA whitening of the training faces): {e}") from None
  shape = (whitener.num_components, 1, 1)
  splits = {role: whitener.transform(x.astype(np.float64)).astype(np.float32).reshape(len(x), *shape)
            for role, x in (("train", train), ("test", test))}
  return EnergyData(splits, {}, shape, whitening=whitener.to_dict(), pixel_shape=tuple(train.shape[1:]))


# ----------------------------------------------------------------------------- baselines and masks


def residual_variance(whitener: PCAWhitening) -> float:
  """σ_r² = (Σ_{k>K} λ_k) / (D − K): the mean discarded eigenvalue (probabilistic PCA's ML estimate).

  `pixel_space_energy`'s default, recomputed here for the Gaussian baseline; 0 when K = D.
  """
  kept = float(np.sum(whitener.eigenvalues))
  dropped = whitener.input_dim - whitener.num_components
  return 0.0 if dropped == 0 else max(kept / whitener.variance_kept - kept, 0.0) / dropped


def gaussian_baselines(train: np.ndarray, whitener: PCAWhitening, ridge: float) -> dict[str, GaussianModel]:
  """The two Gaussian baselines of the module docstring (step 4), fitted on the training pixels.

    'gaussian':      N(m, U diag(λ + ε) Uᵀ + σ_r² (I − U Uᵀ))   (the whitening's own Gaussian)
    'gaussian_full': N(m̂, Σ̂ + ridge · I)                           (sample mean and covariance)
  """
  flat = train.reshape(len(train), -1).astype(np.float64)
  u = whitener.components
  covariance = (u * (whitener.eigenvalues + whitener.epsilon)) @ u.T
  variance = residual_variance(whitener)
  if variance > 0:
    covariance += variance * (np.eye(len(u)) - u @ u.T)
  return {"gaussian": GaussianModel(np.asarray(whitener.mean, np.float64), (covariance + covariance.T) / 2),
          "gaussian_full": GaussianModel.fit(flat, ridge=ridge)}


def central_square_mask(image_shape: tuple[int, ...], side: int, batch: int) -> np.ndarray:
  """(batch, *image_shape) bool, False on the side×side square in the middle (rounded up-left)."""
  height, width = image_shape[:2]
  top, left = (height - side) // 2, (width - side) // 2
  observed = np.ones(image_shape, bool)
  observed[top:top + side, left:left + side] = False
  return np.broadcast_to(observed, (batch, *image_shape)).copy()


def make_masks(kind: str, image_shape: tuple[int, ...], key: jax.Array, batch: int,
               square_size: int) -> np.ndarray:
  """(batch, D) bool observed masks of `kind` (MASK_KINDS) for flat images of `image_shape`."""
  if kind == "central_square":
    mask = central_square_mask(image_shape, square_size, batch)
  else:
    mask = np.asarray(occlusion_mask(kind, image_shape, key, batch, square_size=square_size))
  return mask.reshape(batch, -1)


def missing_mse(filled: np.ndarray, truth: np.ndarray, observed: np.ndarray) -> np.ndarray:
  """Per example, the mean squared error over its missing pixels: Σ_m (x̂ − x)² / |m|, (B,) float64."""
  error = (np.asarray(filled, np.float64) - np.asarray(truth, np.float64)) ** 2
  missing = ~observed
  return np.sum(error * missing, axis=1) / np.sum(missing, axis=1)


def mean_and_stderr(values: np.ndarray) -> tuple[float, float]:
  """(mean, standard error s/√n with the n − 1 sample deviation; 0 for one value)."""
  values = np.asarray(values, np.float64)
  spread = float(np.std(values, ddof=1)) / math.sqrt(len(values)) if len(values) > 1 else 0.0
  return float(np.mean(values)), spread


# ----------------------------------------------------------------------------- inpainting


def fill_with_model(model: Any, params: Any, whitener: PCAWhitening, pixels: np.ndarray,
                    observed: np.ndarray, start: np.ndarray, key: jax.Array,
                    settings: InpaintSettings) -> tuple[np.ndarray, float]:
  """(E[x_m | x_o] estimated by the gated MRF in pixel space (B, D) float32, HMC acceptance or NaN)."""
  x = jnp.asarray(np.where(observed, pixels, np.nan), jnp.float32)
  common = dict(num_steps=settings.num_steps, burn_in=settings.burn_in, init=jnp.asarray(start, jnp.float32),
                whitening=whitener)
  if settings.method == "gibbs":
    filled = conditional.inpaint_gibbs(model, {"params": params}, x, observed, key, **common)
    return np.asarray(filled), float("nan")
  filled, info = conditional.inpaint_hmc(model, {"params": params}, x, observed, key,
                                         num_leapfrog=settings.num_leapfrog, step_size=settings.step_size,
                                         return_info=True, **common)
  return np.asarray(filled), float(info.acceptance_rate)


def evaluate_inpainting(model: Any, params: Any, whitener: PCAWhitening, train: np.ndarray,
                        test: np.ndarray, settings: InpaintSettings, key: jax.Array
                        ) -> tuple[dict[str, float], dict[str, dict[str, np.ndarray]]]:
  """Every mask of `settings` on every held-out face: the records and the fills (module docstring, 3-5).

  Returns:
    (metrics, fills): fills[mask] = {'observed': (B, D) bool, 'gaussian': ..., 'gaussian_full': ...,
    'gmrf': ...} with (B, D) float32 fills whose observed pixels are the input's, bit for bit.
  """
  pixels = test.reshape(len(test), -1).astype(np.float32)
  baselines = gaussian_baselines(train, whitener, settings.gaussian_ridge)
  metrics, fills = {}, {}
  for i, kind in enumerate(settings.masks):
    mask_key = jax.random.fold_in(key, i)
    observed = make_masks(kind, test.shape[1:], mask_key, len(test), settings.square_size)
    occluded = np.where(observed, pixels, np.nan).astype(np.float32)
    fills[kind] = {"observed": observed}
    errors = {}
    for name, gaussian in baselines.items():
      fills[kind][name] = gaussian.inpaint(occluded, observed).astype(np.float32)
      errors[name] = missing_mse(fills[kind][name], pixels, observed)
    best = min(GAUSSIANS, key=lambda name: float(np.mean(errors[name])))
    fills[kind]["best_gaussian"] = best
    fills[kind]["gmrf"], acceptance = fill_with_model(model, params, whitener, pixels, observed,
                                                      fills[kind]["gaussian"],
                                                      jax.random.fold_in(mask_key, 1), settings)
    errors["gmrf"] = missing_mse(fills[kind]["gmrf"], pixels, observed)
    for name in ("gmrf",) + GAUSSIANS:
      metrics[f"test/mse_{name}_{kind}"], metrics[f"test/mse_{name}_{kind}_stderr"] = mean_and_stderr(errors[name])
    metrics[f"test/mse_gain_{kind}"], metrics[f"test/mse_gain_{kind}_stderr"] = mean_and_stderr(
        errors[best] - errors["gmrf"])
    if settings.method == "hmc":
      metrics[f"inpaint/acceptance_{kind}"] = acceptance
  return metrics, fills


def save_inpainting_figure(test: np.ndarray, fills: dict[str, dict[str, np.ndarray]], model_name: str,
                           path: str, num_shown: int) -> None:
  """inpainted_faces.png: original, then per mask occluded | best Gaussian fill | gated-MRF fill."""
  from deepvision.diagnostics import energy_viz  # pylint: disable=g-import-not-at-top
  count = min(num_shown, len(test))
  pixels = test[:count].reshape(count, -1)
  low, high = float(np.min(pixels)), float(np.max(pixels))
  rows = {"original": pixels}
  for kind, fill in fills.items():
    observed = fill["observed"][:count]
    rows[f"{kind}: occluded"] = np.asarray(occlude(pixels, observed, fill=low))
    rows[f"{kind}: {fill['best_gaussian']}"] = fill[fill["best_gaussian"]][:count]
    rows[f"{kind}: {model_name}"] = fill["gmrf"][:count]
  energy_viz.save_image_rows(rows, test.shape[1:], path,
                             title=f"original; per mask: occluded, Gaussian, {model_name}",
                             value_range=(low, high if high > low else low + 1))


# ----------------------------------------------------------------------------- the trainer


def model_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The config `run_contrastive` trains the gated MRF with: this one, trainer 'contrastive'."""
  sub = ml_collections.ConfigDict(config.to_dict())
  sub.trainer = "contrastive"
  return sub


def run_inpainting(config: ml_collections.ConfigDict, workdir: str, quiet: bool = False) -> dict:
  """Trains the gated MRF of `config` on faces and evaluates inpainting (module docstring); resumable.

  Returns:
    The final record written to `workdir/metrics.jsonl`.
  """
  faces = face_settings(config)
  settings = inpaint_settings(config, faces)
  if config.preprocess != "whiten":
    raise ConfigError(f"the inpainting trainer works on PCA-whitened faces: config.preprocess must be "
                      f"'whiten', got {config.preprocess!r}")
  train, test = load_faces(config, faces)
  data = face_data(config, train, test)
  sub = model_config(config)
  plan = contrastive_loop.plan_contrastive(sub, data)  # every model / training field, before compute
  started = os.path.isdir(os.path.join(os.path.abspath(workdir), "model", "checkpoints"))
  workdir = workdirs.prepare(config, workdir, RUN_IDENTITY + ("inpainting",), resumable=started)
  if not quiet:
    print(f"{len(train)} training faces (augmented) and {len(test)} held-out faces of "
          f"{faces.image_shape[0]}×{faces.image_shape[1]} pixels; K = {data.whitener.num_components} "
          "whitened components.")
  model_record, params = contrastive_loop.run_contrastive(sub, os.path.join(workdir, "model"), data=data,
                                                          quiet=quiet)
  whitener = data.whitener
  key = jax.random.fold_in(jax.random.key(config.seed), 2)  # the inpainting's own key
  metrics, fills = evaluate_inpainting(plan.model, params, whitener, train, test, settings, key)
  summary = {f"model/{k}": v for k, v in model_record.items() if k not in ("step", "final")}
  writer = MetricsWriter(workdir)
  record = writer.write(model_record["step"], {**metrics, **summary, "final": True})
  writer.close()
  if config.get("figures", True):
    save_inpainting_figure(test, fills, config.model, os.path.join(workdir, "inpainted_faces.png"),
                           settings.num_shown)
  if not quiet:
    for kind in settings.masks:
      print(f"{kind}: MSE per missing pixel, {config.model} "
            f"{record[f'test/mse_gmrf_{kind}']:.5f} ± {record[f'test/mse_gmrf_{kind}_stderr']:.5f}, "
            + ", ".join(f"{name} {record[f'test/mse_{name}_{kind}']:.5f} ± "
                        f"{record[f'test/mse_{name}_{kind}_stderr']:.5f}" for name in GAUSSIANS))
  return record


@loop.TRAINERS.register("inpainting")
def train_inpainting(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains a gated MRF of faces and compares its inpainting with Gaussians; see the module docstring."""
  return run_inpainting(config, workdir)
