r"""Denoising autoencoder filters on the digits as the masking noise grows (Vincent et al. 2008, fig. 3).

  python -m experiments.dae_corruption --workdir=runs/dae_corruption --out=results/dae_corruption
  python -m experiments.dae_corruption --config=dae_mnist --data_dir=DIR --workdir=runs/dae_corruption_mnist \
      --out=results/dae_corruption_mnist --seeds=1

Trains a denoising-autoencoder config (`--config`: `dae_digits`, 64 × 100 tied sigmoid units on the 8×8
digits, the default; `dae_mnist`, 784 × 500 on 28×28 MNIST from a TFDS data dir) at each masking rate of
`--levels` and `--seeds` seeds, each in `workdir/p{rate}_s{seed}` (a finished run is reused), and measures
the effective filters W_ij·s_i of every hidden unit j, s_i the standard deviation of pixel i on the training
digits (the border pixels are almost always 0: their weights only serve the decoder, which pushes them far
negative, and say nothing of what a unit detects; `_raw` statistics use W itself):

* localisation: the fraction of a filter's energy Σ_i (W_ij s_i)² in its `--top_k` largest pixels, averaged
  over the units, k = V / 8 unless set (k/V for a filter spread evenly over V pixels, 1 for a single pixel;
  `random_filters` is the value for Gaussian random W, the reference);
* spread: the energy-weighted standard deviation of a filter's pixel coordinates, in pixels, averaged over
  the units (a blob or a short stroke is small; the whole 8×8 grid evenly 3.24, 28×28 11.4);
* the test accuracy of logistic regression on the features (L2 chosen on validation).

Writes `OUT.json` (per level: the mean and standard deviation over seeds of each statistic, and every run's
values) and `OUT.png` (the first 24 filters of seed 0 at every level, one row of tiles per level). Cost on a
2-core CPU: under a minute per run (15 runs by default); finished runs are reused.
"""

from __future__ import annotations

import json
import os
import sys
import time

import jax
import numpy as np
from absl import app, flags
from matplotlib.figure import Figure

from deepvision import machine as machine_info
from deepvision.data.energy import prepare_data
from deepvision.figures import energy_viz, viz
from deepvision.train import autoencoder, loop
from experiments import config_catalog

FLAGS = flags.FLAGS


def define_flags() -> None:
  """The launcher's flags (defined when run as a script: the tests import the functions beside other launchers)."""
  flags.DEFINE_string("workdir", "runs/dae_corruption", "Where the runs are trained (and reused).")
  flags.DEFINE_string("out", "results/dae_corruption", "Path of the record and figure, without suffix.")
  flags.DEFINE_list("levels", ["0", "0.1", "0.25", "0.5", "0.75"], "Masking rates.")
  flags.DEFINE_integer("seeds", 3, "Seeds per level (0 … seeds − 1).")
  flags.DEFINE_integer("top_k", 0, "Pixels counted by the localisation statistic (0: an eighth of them).")
  flags.DEFINE_bool("smoke", False, "The smoke config (tiny model, two epochs): for tests.")
  flags.DEFINE_enum("config", "dae_digits", ["dae_digits", "dae_mnist"], "The denoising-autoencoder config.")
  flags.DEFINE_string("data_dir", "", "TFDS data dir (dae_mnist).")


IMAGE_SHAPE = (8, 8, 1)


def localisation(W: np.ndarray, k: int) -> np.ndarray:
  """Per filter (column of W, (V, H)), the fraction of Σ_i W_ij² in its k largest |W_ij|."""
  energy = np.square(np.asarray(W, np.float64))
  top = -np.sort(-energy, axis=0)[:k]
  return top.sum(0) / np.maximum(energy.sum(0), 1e-300)


def spread(W: np.ndarray, image_shape: tuple[int, ...] = IMAGE_SHAPE) -> np.ndarray:
  """Per filter, √(Σ_i w_i ‖r_i − r̄‖²) with w_i = W_ij² / Σ_i W_ij², r_i pixel i's (row, column), r̄ the
  weighted mean position: the filter's spatial extent in pixels."""
  h, w = image_shape[:2]
  rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
  coords = np.stack([rows.ravel(), cols.ravel()], axis=1).astype(np.float64)  # (V, 2)
  weights = np.square(np.asarray(W, np.float64))
  weights = weights / np.maximum(weights.sum(0, keepdims=True), 1e-300)
  mean = weights.T @ coords  # (H, 2)
  squared = np.square(coords[None] - mean[:, None]).sum(-1)  # (H, V)
  return np.sqrt(np.sum(weights.T * squared, axis=1))


def statistics(W: np.ndarray, k: int, pixel_std: np.ndarray,
               image_shape: tuple[int, ...] = IMAGE_SHAPE) -> dict[str, float]:
  """The unit-averaged localisation and spread of the effective filters W·s, and of W (`_raw`)."""
  effective = W * pixel_std[:, None]
  return {"localisation": float(np.mean(localisation(effective, k))),
          "spread": float(np.mean(spread(effective, image_shape))),
          "localisation_raw": float(np.mean(localisation(W, k))), "spread_raw": float(np.mean(spread(W, image_shape)))}


def base_config(name: str = "dae_digits", smoke: bool = False, data_dir: str = ""):
  """The config `name` (`dae_digits` or `dae_mnist`), smoke-sized or not, reading from `data_dir`."""
  config = config_catalog.load(name, "smoke" if smoke else None)
  return loop.override_config(config, {"data_dir": data_dir}) if data_dir else config


def pixel_std(config) -> tuple[np.ndarray, tuple[int, ...]]:
  """The standard deviation of each pixel over the config's training images, and their shape."""
  data = prepare_data(config)
  x = data.splits["train"]
  return x.reshape(len(x), -1).std(0).astype(np.float64), tuple(data.pixel_shape or data.image_shape)


def train(config, rate: float, seed: int, workdir: str) -> tuple[dict, np.ndarray]:
  """The config's run at masking `rate` and `seed`: (final record, W)."""
  config = loop.override_config(config, {"corruption": rate, "seed": seed, "figures": False})
  record, params = autoencoder.run_autoencoder(config, workdir, quiet=True)
  return record, np.asarray(jax.device_get(params)["W"])


def save_figure(filters: dict[str, np.ndarray], summary: dict[str, dict], path: str,
                image_shape: tuple[int, ...] = IMAGE_SHAPE) -> None:
  """One row of tiles per level: the first 24 filters, each scaled on its own."""
  grids = {level: energy_viz.weight_filter_grid(W, image_shape, max_filters=24, columns=24)
           for level, W in filters.items()}
  height = sum(g.shape[0] for g in grids.values())
  width = max(g.shape[1] for g in grids.values())
  scale = 16 * image_shape[0] / 8
  fig = Figure(figsize=(width / scale + 2.2, height / scale + 0.8), dpi=viz.DPI)
  units = next(iter(filters.values())).shape[1]
  title = (f"denoising autoencoder filters on {image_shape[0]}×{image_shape[1]} digits, by masking rate "
           f"(first 24 of {units} units, seed 0)")
  fig.suptitle(title, fontsize=9)
  for row, (level, grid) in enumerate(grids.items()):
    ax = fig.add_subplot(len(grids), 1, row + 1)
    ax.imshow(grid, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    s = summary[level]
    ax.set_ylabel(f"p = {level}\nloc {s['localisation_mean']:.3f}\nacc {s['feature_accuracy_mean']:.3f}",
                  rotation=0, ha="right", va="center", fontsize=7)
  fig.text(0.5, 0.01, "each filter scaled on its own: black its smallest weight, white its largest; "
           "loc: localisation, acc: feature accuracy", ha="center", va="bottom", fontsize=7)
  viz.save_figure(fig, path, title, "rows: masking rates p; loc: localisation; acc: feature accuracy")


def run(levels: list[float], seeds: int, workdir: str, out: str, top_k: int = 0, smoke: bool = False,
        config_name: str = "dae_digits", data_dir: str = "") -> dict:
  """Trains every (level, seed), writes `out`.json and `out`.png; returns the record (top_k 0: V / 8)."""
  runs, filters, summary = [], {}, {}
  start = time.time()
  config = base_config(config_name, smoke, data_dir)
  std, image_shape = pixel_std(config)
  top_k = top_k or max(len(std) // 8, 1)
  for rate in levels:
    level = f"{rate:g}"
    values = []
    for seed in range(seeds):
      t = time.time()
      record, W = train(config, rate, seed, os.path.join(workdir, f"p{level}_s{seed}"))
      stats = {"level": rate, "seed": seed, **statistics(W, top_k, std, image_shape),
               "feature_accuracy": record.get("test/feature_accuracy"),
               "test_recon_loss": record["test/recon_loss"], "seconds": round(time.time() - t, 1)}
      runs.append(stats)
      values.append(stats)
      if seed == 0:
        filters[level] = W
    summary[level] = {f"{key}_{fn.__name__}": float(fn([v[key] for v in values]))
                      for key in ("localisation", "spread", "localisation_raw", "spread_raw", "feature_accuracy",
                                  "test_recon_loss")
                      for fn in (np.mean, np.std)}
  init_W = np.asarray(jax.random.normal(jax.random.key(0), filters[f"{levels[0]:g}"].shape))
  record = {
      "experiment": "dae_corruption", "config": f"experiments/configs/{config_name}.py" + (":smoke" if smoke else ""),
      "statistic": {"localisation": f"mean over units of the fraction of the energy of the effective filter "
                                    f"W_ij * std_i in its top {top_k} of {len(std)} pixels",
                    "spread": "mean over units of the energy-weighted std of the effective filter's pixel "
                              "coordinates (pixels)",
                    "_raw": "the same of W itself",
                    "feature_accuracy": "test accuracy of logistic regression on the features"},
      "random_filters": statistics(init_W, top_k, std, image_shape), "levels": summary, "runs": runs, "seeds": seeds,
      "wall_seconds": round(time.time() - start, 1), "machine": machine_info.describe(),
      "jax": jax.__version__, "command": "python -m experiments.dae_corruption " + " ".join(sys.argv[1:])}
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  with open(out + ".json", "w") as f:
    json.dump(record, f, indent=1)
    f.write("\n")
  save_figure(filters, summary, out + ".png", image_shape)
  return record


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  record = run([float(v) for v in FLAGS.levels], FLAGS.seeds, FLAGS.workdir, FLAGS.out, FLAGS.top_k, FLAGS.smoke,
               FLAGS.config, FLAGS.data_dir)
  for level, s in record["levels"].items():
    print(f"p = {level:>5}: localisation {s['localisation_mean']:.3f} ± {s['localisation_std']:.3f}, spread "
          f"{s['spread_mean']:.2f}, feature accuracy {s['feature_accuracy_mean']:.4f}")
  print(f"random filters: {record['random_filters']}; wrote {FLAGS.out}.json and .png")


if __name__ == "__main__":
  define_flags()
  app.run(main)
