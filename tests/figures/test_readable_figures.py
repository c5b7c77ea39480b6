"""Every figure writer of the library, driven on small inputs: each PNG has a title (drawn and in its
metadata), stays under 2 MB and a bounded size; large inputs are summarised and say so."""

import ast
import json
import os

import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from deepvision.diagnostics import image_stats, unit_figures
from deepvision.figures import (
  energy_viz,
  gated_mrf_viz,
  image_stats_figure,
  run_curves,
  viz,
)
from experiments import dae_corruption, dbn, inpainting, occlusion

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCANNED = ["deepvision/diagnostics/unit_figures.py"] + sorted(
    f"{folder}/{name}" for folder in ("deepvision/figures", "experiments")
    for name in os.listdir(os.path.join(ROOT, folder)) if name.endswith(".py"))
MAX_BYTES = 2 * 1024 * 1024
RNG = np.random.default_rng(0)
RECORDS = [{"step": s, "train/loss": 1 / s, "val/loss": 1.2 / s, "train/accuracy": 1 - 1 / s,
            "val/accuracy": 1 - 1.1 / s} for s in range(1, 40)]


def _fills(count, size, model):
  mask = np.ones((count, size), bool)
  mask[:, : size // 2] = False
  return {"observed": mask, "best_gaussian": "gaussian_cond", "gaussian_cond": RNG.random((count, size)),
          "gmrf": RNG.random((count, size)), "model": model}


def _finetune_dirs(tmp):
  for name in ("finetune", "scratch"):
    os.makedirs(os.path.join(tmp, name))
    with open(os.path.join(tmp, name, "metrics.jsonl"), "w") as f:
      f.writelines(json.dumps(r) + "\n" for r in RECORDS)
  dbn.save_finetune_curves(tmp)
  return [os.path.join(tmp, "curves.png")]


def _save_figure(path):
  fig = Figure(figsize=(3, 2))
  fig.add_subplot().plot([0, 1], [1, 0])
  fig.suptitle("a plain figure")
  viz.save_figure(fig, path, "a plain figure")


def _one(write):
  """A writer of one PNG at `tmp/out.png`, as a function of tmp returning [path]."""
  def run(tmp):
    path = os.path.join(tmp, "out.png")
    write(path)
    return [path]
  return run


# Every function that writes a PNG: "file:function" → a driver writing it on small inputs into a
# folder and returning the PNGs. test_every_writer_is_listed fails when a new `def save_` is not here.
WRITERS = {
    "deepvision/figures/viz.py:save_figure": _one(_save_figure),
    "deepvision/figures/viz.py:save_conv_filters": _one(
        lambda p: viz.save_conv_filters(RNG.normal(size=(3, 3, 4, 8)), p, title="conv2/kernel")),
    "deepvision/figures/viz.py:save_curves": _one(lambda p: viz.save_curves(RECORDS, p)),
    "deepvision/figures/viz.py:save_activation_image": _one(
        lambda p: viz.save_activation_image(RNG.random((30, 12)), p, title="fc: samples × units")),
    "deepvision/figures/viz.py:save_correlation_image": _one(
        lambda p: viz.save_correlation_image(np.corrcoef(RNG.normal(size=(20, 6)).T), p)),
    "deepvision/figures/energy_viz.py:save_grid": _one(
        lambda p: energy_viz.save_grid(RNG.random((20, 30)), p, "a grid")),
    "deepvision/figures/energy_viz.py:save_weight_filters": _one(
        lambda p: energy_viz.save_weight_filters(RNG.normal(size=(64, 20)), (8, 8), p)),
    "deepvision/figures/energy_viz.py:save_sample_chains": _one(
        lambda p: energy_viz.save_sample_chains(RNG.random((5, 3, 16)), (4, 4), p)),
    "deepvision/figures/energy_viz.py:save_image_grid": _one(
        lambda p: energy_viz.save_image_grid(RNG.random((9, 16)), (4, 4), p, "data")),
    "deepvision/figures/energy_viz.py:save_histograms": _one(
        lambda p: energy_viz.save_histograms({"W": RNG.normal(size=50), "b": RNG.normal(size=5)}, p)),
    "deepvision/figures/gated_mrf_viz.py:save_pooling": _one(
        lambda p: gated_mrf_viz.save_pooling(RNG.random((8, 4)), p)),
    "deepvision/figures/gated_mrf_viz.py:save_pooled_filters": _one(
        lambda p: gated_mrf_viz.save_pooled_filters(RNG.normal(size=(16, 8)), RNG.random((8, 4)), (4, 4), p)),
    "deepvision/figures/gated_mrf_viz.py:save_sample_comparison": _one(
        lambda p: gated_mrf_viz.save_sample_comparison({"data": RNG.random((4, 16)),
                                                        "samples": RNG.random((4, 16))}, (4, 4), p)),
    "deepvision/figures/gated_mrf_viz.py:save_image_rows": _one(
        lambda p: gated_mrf_viz.save_image_rows({"original": RNG.random((3, 16)),
                                                 "filled": RNG.random((3, 16))}, (4, 4), p)),
    "deepvision/figures/image_stats_figure.py:save_image_statistics_figure": _one(
        lambda p: image_stats_figure.save_image_statistics_figure(p, image_stats.image_statistics_curves(
            {"noise": RNG.normal(size=(2, 16, 16))}, RNG.normal(size=(2, 16, 16)).cumsum(axis=2)))),
    "deepvision/figures/run_curves.py:save_runs_curves": _one(
        lambda p: run_curves.save_runs_curves({"a": RECORDS, "b": RECORDS[::2]}, p)),
    "deepvision/diagnostics/unit_figures.py:save_unit_figures": lambda tmp: unit_figures.save_unit_figures(
        {"conv1": RNG.normal(size=(10, 4, 4, 3)), "fc": RNG.normal(size=(10, 5))}, tmp, "units",
        params={"conv1": {"kernel": RNG.normal(size=(3, 3, 1, 3))}}),
    "experiments/dae_corruption.py:save_figure": _one(
        lambda p: dae_corruption.save_figure({"0": RNG.normal(size=(64, 30)), "0.5": RNG.normal(size=(64, 30))},
                                             {level: {"localisation_mean": 0.3, "feature_accuracy_mean": 0.9}
                                              for level in ("0", "0.5")}, p)),
    "experiments/dbn.py:save_finetune_curves": _finetune_dirs,
    "experiments/inpainting.py:save_inpainting_figure": _one(
        lambda p: inpainting.save_inpainting_figure(RNG.random((3, 4, 4)), {"half": _fills(3, 16, "mcRBM")},
                                                    "mcRBM", p, 3)),
    "experiments/occlusion.py:save_figure": _one(
        lambda p: occlusion.save_figure({"block": {k: RNG.random((3, 16)) for k in ("truth", "raw", "gaussian",
                                                                                     "gmrf")}},
                                        (4, 4), p, 3, "mPoT")),
}
# Writers that need a trained model and only draw through the writers above (checked below: they
# call no savefig / imsave of their own).
COMPOSITE = {
    "deepvision/figures/energy_figures.py:save_figures", "deepvision/figures/energy_figures.py:save_gated_mrf_figures",
    "experiments/dbn.py:save_figures", "experiments/sdae.py:save_figures", "experiments/deep_gmrf.py:save_figures",
    "experiments/deep_gmrf.py:save_large_sample",
}


def _functions():
  """{"file:function": ast node} of every top-level function of the scanned files."""
  found = {}
  for name in SCANNED:
    with open(os.path.join(ROOT, name)) as f:
      tree = ast.parse(f.read())
    for node in tree.body:
      if isinstance(node, ast.FunctionDef):
        found[f"{name}:{node.name}"] = node
  return found


def test_every_writer_is_listed_and_only_save_figure_calls_savefig():
  functions = _functions()
  writers = {name for name in functions if name.split(":")[1].startswith("save_")}
  assert writers == set(WRITERS) | COMPOSITE, (
      f"new figure writers to add to WRITERS (or COMPOSITE): {sorted(writers - set(WRITERS) - COMPOSITE)}; "
      f"listed but gone: {sorted(set(WRITERS) | COMPOSITE - writers)}")
  callers = {name for name, node in functions.items() for call in ast.walk(node)
             if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
             and call.func.attr in ("savefig", "imsave")}
  assert callers == {"deepvision/figures/viz.py:save_figure"}  # so every PNG gets its metadata title


def _check_png(path):
  """PIL reads it; a "Title" in its metadata; under 2 MB; at most MAX_PNG_PIXELS a side; and the
  top rows (where the title is drawn) hold dark pixels. Returns the PIL image's size and title."""
  assert os.path.getsize(path) < MAX_BYTES, path
  with Image.open(path) as image:
    image.verify()
  with Image.open(path) as image:
    title = image.text.get("Title", "")
    width, height = image.size
    band = np.asarray(image.convert("L"))[:max(10, height // 12)]
  assert title.strip(), f"{path}: no Title in its metadata"
  assert 0 < width <= viz.MAX_PNG_PIXELS and 0 < height <= viz.MAX_PNG_PIXELS, (path, image.size)
  assert band.min() < 128, f"{path}: no title drawn at the top"
  return (width, height), title


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_every_png_has_a_title_and_a_bounded_size(writer, tmp_path):
  paths = WRITERS[writer](str(tmp_path))
  assert paths and all(p.endswith(".png") for p in paths)
  for path in paths:
    _check_png(path)


def test_a_large_correlation_matrix_is_summarised_and_small(tmp_path):
  rho = np.corrcoef(RNG.normal(size=(64, 2048)).T)
  path = str(tmp_path / "corr.png")
  viz.save_correlation_image(rho, path, title="conv2: correlation of units")
  (width, height), title = _check_png(path)
  assert title == "conv2: correlation of units (first 256 of 2,048 units)"
  assert (height, width) == viz.matrix_png_shape((256, 256))
  assert os.path.getsize(path) < 400_000  # the 2048 × 2048 picture was 8.2 MB


def test_a_wide_activation_image_shows_the_first_units_and_samples(tmp_path):
  path = str(tmp_path / "acts.png")
  viz.save_activation_image(RNG.random((600, 2048)), path, title="conv2: samples × units")
  (width, height), title = _check_png(path)
  assert title == "conv2: samples × units (first 256 of 2,048 units, first 512 of 600 samples)"
  assert (height, width) == viz.matrix_png_shape((512, 256))
  with pytest.raises(ValueError, match="max_units must be a positive integer, got 0"):
    viz.save_activation_image(np.ones((2, 2)), str(tmp_path / "x.png"), max_units=0)
  assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("shape, shown, columns", [
    ((3, 3, 32, 64), 256, 32),    # one row per output channel: the first 8 outputs × 32 inputs
    ((3, 3, 64, 64), 256, 16),    # more than 32 inputs: ⌈√256⌉ columns
    ((5, 5, 3, 300), 256, 16),    # colour: one tile per output channel
    ((5, 5, 1, 16), 16, 4),       # small kernels: all tiles
])
def test_conv_kernels_draw_at_most_the_cap(shape, shown, columns, tmp_path):
  tiles, cols, total = viz.conv_filter_tiles(np.ones(shape))
  _, _, cin, cout = shape
  assert len(tiles) == shown <= viz.MAX_TILES and cols == columns
  assert total == (cout if cin == 3 else cin * cout)
  path = str(tmp_path / "k.png")
  viz.save_conv_filters(RNG.normal(size=shape), path, title="conv")
  _, title = _check_png(path)
  assert title.startswith(f"conv: first 256 of {total:,} kernels" if shown < total else f"conv: {total} kernels")


def test_conv_kernel_tiles_are_output_major():
  kernel = np.arange(2 * 2 * 4 * 5, dtype=float).reshape(2, 2, 4, 5)
  tiles, columns, total = viz.conv_filter_tiles(kernel, max_tiles=8)
  assert columns == 4 and total == 20 and len(tiles) == 8  # the first two output channels, 4 inputs each
  np.testing.assert_array_equal(tiles[6], kernel[:, :, 2, 1])  # tile 6: output 1, input 2
  with pytest.raises(ValueError, match=r"HWIO conv kernel .* got shape \(3, 3\)"):
    viz.conv_filter_tiles(np.ones((3, 3)))


@pytest.mark.parametrize("panels, rows", [(1, 1), (3, 1), (5, 2), (7, 3)])
def test_curve_panels_wrap_at_three_per_row(panels, rows, tmp_path):
  keys = [("train/loss", "val/loss")] + [(f"m{k}",) for k in range(panels - 1)]
  path = str(tmp_path / "curves.png")
  viz.save_curves(RECORDS, path, keys=keys)
  (width, height), title = _check_png(path)
  assert viz.panel_layout(panels) == (rows, min(panels, 3))
  columns = min(panels, 3)
  # each panel PANEL_INCHES, plus a band for the title: five panels are two rows, not a 5:1 strip
  assert width == round(viz.PANEL_INCHES[0] * columns * viz.DPI)
  assert height == round((viz.PANEL_INCHES[1] * rows + 0.5) * viz.DPI)
  if panels == 5:
    assert height / width > 0.4
  assert title.startswith("curves: loss")
  with pytest.raises(ValueError, match="keys must be a non-empty sequence"):
    viz.save_curves(RECORDS, path, keys=())


def test_a_huge_grid_is_shrunk_and_says_so(tmp_path):
  grid = RNG.random((3000, 500))
  path = str(tmp_path / "big.png")
  energy_viz.save_grid(grid, path, "big")
  (width, height), title = _check_png(path)
  assert energy_viz.grid_zoom(grid.shape) == -2 and title == "big (shown at 1/2 scale)"
  assert (height, width) == energy_viz.grid_png_shape(grid.shape) == (energy_viz.TITLE_PIXELS + 1500, 250)
  np.testing.assert_allclose(energy_viz.shrink(np.arange(9.0).reshape(3, 3), 2),
                             [[2.0, 2.25], [3.75, 2.75]])  # blocks averaged, the edges padded white (1)


def test_a_figure_that_fails_to_draw_leaves_the_old_file(tmp_path, monkeypatch):
  path = tmp_path / "curves.png"
  path.write_bytes(b"old")

  def broken(self, fname, **kwargs):
    with open(fname, "wb") as f:
      f.write(b"half")
    raise RuntimeError("renderer failed")

  monkeypatch.setattr(Figure, "savefig", broken)
  with pytest.raises(RuntimeError, match="renderer failed"):
    viz.save_curves(RECORDS, str(path))
  assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["curves.png"]
