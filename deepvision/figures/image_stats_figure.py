"""The image-statistics figure: derivative histograms and radial power spectra of models and photographs.

Three panels (Ranzato et al., "Modeling natural images using gated MRFs", PAMI 2013, §6): the
histograms of the horizontal and of the vertical derivative [1, −1] responses on a log density axis
(natural images: a sharp peak at 0 and straight, heavy tails; a Gaussian model: a parabola; the two
end bins, which also count the responses beyond the range, are not drawn), and the
radially averaged power spectra on log–log axes (natural images: a line of slope about −2). The
reference (held-out photographs) is drawn first, in black. The curves are computed by
`deepvision.diagnostics.image_stats.image_statistics_curves` (diagnostics sit above figures in the
layers, so this module draws arrays it is given).

Example:
  >>> curves = image_stats.image_statistics_curves({"mcRBM": samples}, photographs)
  >>> save_image_statistics_figure("image_stats.png", curves)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import matplotlib.ticker
import numpy as np

from deepvision.figures import viz

DIRECTIONS = ("horizontal", "vertical")


def _check_curves(curves: Mapping[str, Any]) -> list[str]:
  """The names of the sets in `curves`, checked to hold every curve the figure draws."""
  missing = [key for key in ("edges", "densities", "spectra") if key not in curves]
  if missing:
    raise ValueError(f"curves lacks {missing}: pass the dict of image_stats.image_statistics_curves")
  names = list(curves["densities"])
  if not names:
    raise ValueError("curves holds no image sets to draw")
  for name in names:
    if name not in curves["spectra"]:
      raise ValueError(f"curves has densities of {name!r} but no spectrum")
    for direction in DIRECTIONS:
      edges = np.asarray(curves["edges"].get(direction, ()))
      density = np.asarray(curves["densities"][name].get(direction, ()))
      if edges.ndim != 1 or density.shape != (edges.size - 1,) or density.size < 3:
        raise ValueError(f"the {direction} histogram of {name!r} has {density.shape} values for "
                         f"{edges.shape} edges (need one value per bin, at least 3 bins)")
  return names


def save_image_statistics_figure(path: str, curves: Mapping[str, Any], title: str = "image statistics") -> None:
  """Writes the three panels (module docstring) as a PNG of `viz.panel_figure(3)`'s size
  (3 × `viz.PANEL_INCHES` wide, one row, at `viz.DPI`: 1260 × 350 pixels).

  Args:
    path: the PNG to write.
    curves: {"edges": {direction: edges}, "densities": {name: {direction: density}},
      "spectra": {name: (frequencies, power)}} as `image_statistics_curves` returns, the reference
      first (drawn in black).
    title: the figure's title.

  Raises:
    ValueError: curves missing a set, a direction or a spectrum, or with mismatched lengths.
  """
  names = _check_curves(curves)
  fig, axes = viz.panel_figure(3, columns=3)
  styles = {name: ({"color": "black", "linewidth": 2.0} if i == 0 else {}) for i, name in enumerate(names)}
  for ax, direction in zip(axes, DIRECTIONS):
    edges = np.asarray(curves["edges"][direction], np.float64)
    centres = (edges[:-1] + edges[1:]) / 2
    for name in names:
      density = np.asarray(curves["densities"][name][direction], np.float64)
      shown = density > 0  # log axis: empty bins are left out, and so are the two end bins, which
      shown[[0, -1]] = False  # also hold the responses beyond the range (not a density of their width)
      ax.plot(centres[shown], density[shown], label=name, **styles[name])
    ax.set_yscale("log")
    ax.set_title(f"{direction} derivative [1, −1]")
    ax.set_xlabel("response")
    ax.set_ylabel("density (log)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  ax = axes[2]
  for name in names:
    frequencies, power = (np.asarray(v, np.float64) for v in curves["spectra"][name])
    shown = power > 0
    ax.loglog(frequencies[shown], power[shown], label=name, **styles[name])
  ax.set_title("radial power spectrum")
  ax.set_xlabel("frequency (cycles / pixel)")
  ax.set_ylabel("power")
  ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # unlabelled minor ticks: no overlap
  ax.grid(alpha=0.3, which="both")
  ax.legend(fontsize=8)
  fig.suptitle(title, fontsize=13)
  viz.save_figure(fig, path, title, "derivative histograms (log density) and radial power spectra "
                  "(log-log) of: " + ", ".join(names) + f"; reference: {names[0]}")
