"""Figures of unit statistics: the samples × units picture of the talk, unit correlations, filters.

`save_unit_figures` draws, per layer, the (N, U) unit activations x of `unit_stats` as an image (rows
samples, columns units: sparse, dead and constant units show as columns) and their Pearson correlation
matrix ρ, and, given parameters, every 4-D convolution kernel as a filter grid ("Deep Learning for Vision:
Tricks of the Trade", Ranzato 2013: "feature maps need to be uncorrelated").

Example:
  >>> save_unit_figures(unit_statistics(model, params, images), workdir, "units", params=params)
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from deepvision.diagnostics.unit_stats import LayerStats, correlation_matrix, unit_activations
from deepvision.figures import viz


def _file_stem(name: str) -> str:
  return "".join(c if c.isalnum() or c in "-." else "_" for c in name)


def save_unit_figures(stats_or_acts: Mapping[str, LayerStats | Any], workdir: str,
                      prefix: str = "units", *, params: Any = None) -> list[str]:
  """Writes, per layer, the samples × units activation image and the correlation matrix.

  Files are `{workdir}/{prefix}_{layer}_activations.png` and `..._correlation.png` ('/' in layer
  names becomes '_'; see `viz.save_activation_image` and `viz.save_correlation_image` for what
  the pixels mean). Given `params`, every 4-D convolution kernel in them is also drawn as a
  filter grid, `{prefix}_filters_{path}.png`. Each figure is titled with its layer; a wide layer
  is drawn as its first `viz.MAX_UNITS` units, a large kernel as its first `viz.MAX_TILES` tiles,
  the title saying so (e.g. "first 256 of 2,048 units").

  Args:
    stats_or_acts: {layer: LayerStats} from `unit_statistics`, or {layer: activation array}
      with activations (N, U) or (N, ..., C).
    workdir: folder for the figures (created if missing).
    prefix: start of every file name.
    params: optional parameters whose convolution kernels are drawn.

  Returns:
    The paths written.
  """
  if not stats_or_acts:
    raise ValueError("no layers to draw")
  stem = lambda *parts: os.path.join(  # noqa: E731
      workdir, "_".join(p for p in (prefix, *map(_file_stem, parts)) if p) + ".png")
  jobs = []  # (path, draw) pairs: every name is checked before anything is written.
  for name, item in stats_or_acts.items():
    if isinstance(item, LayerStats):
      units, rho = item.activations, item.correlation
    else:
      units = unit_activations(item)
      rho = correlation_matrix(units)
    jobs.append((stem(name, "activations"), functools.partial(
        viz.save_activation_image, units, title=f"{name}: samples × units")))
    jobs.append((stem(name, "correlation"), functools.partial(
        viz.save_correlation_image, rho, title=f"{name}: correlation of units")))
  if params is not None:
    for key_path, leaf in jax.tree_util.tree_leaves_with_path(params):
      if np.ndim(leaf) == 4:
        label = jax.tree_util.keystr(key_path, simple=True, separator="/")
        jobs.append((stem("filters", label), functools.partial(
            viz.save_conv_filters, np.asarray(leaf), title=label)))
  paths = [path for path, _ in jobs]
  if len(set(paths)) != len(paths):
    raise ValueError(f"layer names collide once made into file names: {paths}")
  os.makedirs(workdir, exist_ok=True)
  for path, draw in jobs:
    draw(path)
  return paths
