r"""The `inpainting` trainer: a gated MRF of small faces fills in occluded held-out faces, against Gaussians.

Ranzato, Mnih, Susskind & Hinton ("Modeling natural images using gated MRFs", PAMI 2013) fill in occluded
faces with the gated MRF's conditional mean E[x_m | x_o]. This pipeline, on the embedded faces (`dv_faces`):
  1. faces (`deepvision.data.face_data`): the training faces cropped, pooled, shifted and mirrored, the
     held-out faces never trained on, PCA whitening fitted on the training faces;
  2. `workdir/model`: the gated MRF of the config trained by `run_contrastive` on the whitened faces;
  3. the measure (`deepvision.estimators.inpainting`): per mask the squared error per missing pixel of
     the gated MRF's fill, of the Gaussian baselines' conditional means μ_m + Σ_mo Σ_oo⁻¹ (x_o − μ_o)
     (`deepvision.estimators.gaussian_baselines`), of the training mean of each missing pixel (the
     floor), and the paired gain over the better Gaussian;
  4. `metrics.jsonl`, one final record (`test/mse_<gmrf|gaussian|gaussian_full|train_mean|gain>_<mask>`, with
     `_stderr`; `inpaint/acceptance_<mask>`; the model's final record under `model/`), and
     `inpainted_faces.png`: originals, then per mask the occluded faces, the best Gaussian's and the
     gated MRF's fills.
A re-run finds the model trained and repeats only the (seeded) evaluation, writing the same record.
"""

from __future__ import annotations

import os

import jax
import ml_collections
import numpy as np

from deepvision.data.occlusion import occlude
from deepvision.estimators.gaussian_baselines import GAUSSIANS
from deepvision.estimators.inpainting import evaluate_inpainting
from deepvision.figures import gated_mrf_viz
from deepvision.train import contrastive_loop, loop, workdir as workdirs
from deepvision.train.errors import ConfigError
from deepvision.data.face_data import face_data, face_settings, inpaint_settings, load_faces
from deepvision.train.writers import MetricsWriter

RUN_IDENTITY = contrastive_loop.RUN_IDENTITY + ("faces",)
MODEL_DIR = "model"  # the gated MRF's own run, inside the work dir


# ----------------------------------------------------------------------------- figure


def save_inpainting_figure(test: np.ndarray, fills: dict[str, dict[str, np.ndarray]], model_name: str,
                           path: str, num_shown: int) -> None:
  """inpainted_faces.png: original, then per mask occluded | best Gaussian fill | gated-MRF fill."""
  count = min(num_shown, len(test))
  pixels = test[:count].reshape(count, -1)
  low, high = float(np.min(pixels)), float(np.max(pixels))
  rows = {"original": pixels}
  for kind, fill in fills.items():
    observed = fill["observed"][:count]
    rows[f"{kind}: occluded"] = np.asarray(occlude(pixels, observed, fill=low))
    rows[f"{kind}: {fill['best_gaussian']}"] = fill[fill["best_gaussian"]][:count]
    rows[f"{kind}: {model_name}"] = fill["gmrf"][:count]
  gated_mrf_viz.save_image_rows(rows, test.shape[1:], path,
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
  started = os.path.isdir(os.path.join(os.path.abspath(workdir), MODEL_DIR, "checkpoints"))
  workdir = workdirs.prepare(config, workdir, RUN_IDENTITY + ("inpainting",), resumable=started)
  if not quiet:
    print(f"{len(train)} training faces (augmented) and {len(test)} held-out faces of "
          f"{faces.image_shape[0]}×{faces.image_shape[1]} pixels; K = {data.whitener.num_components} "
          "whitened components.")
  model_record, params = contrastive_loop.run_contrastive(sub, os.path.join(workdir, MODEL_DIR), data=data,
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
                        f"{record[f'test/mse_{name}_{kind}_stderr']:.5f}" for name in GAUSSIANS + ("train_mean",)))
  return record


@loop.TRAINERS.register("inpainting")
def train_inpainting(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains a gated MRF of faces and compares its inpainting with Gaussians; see the module docstring."""
  return run_inpainting(config, workdir)


train_inpainting.model_subdir = MODEL_DIR  # where `pretrained.runs.run_directory` finds the model's checkpoints
