r"""How localised and how oriented a bank of image filters is: two numbers per filter.

Orientation selectivity is measured as in physiology, from responses to sinusoidal gratings (Ringach,
Shapley & Hawken, "Orientation selectivity in macaque V1: diversity and laminar dependence", J. Neurosci.
2002). A grating of orientation θ, spatial frequency f (cycles per pixel) and phase φ is
g(p) = cos(2πf⟨p − c, (cos θ, sin θ)⟩ + φ) on the pixel grid p (c its centre). The response of a filter a
at θ is its phase-invariant energy at the best frequency,

  r(θ) = max_f |Σ_p a(p) e^{i 2πf⟨p − c, (cos θ, sin θ)⟩}|   (the cosine and sine phases in quadrature),

and its orientation-selectivity index is one minus the circular variance of r over θ ∈ [0, π),

  OSI = |Σ_θ r(θ) e^{2iθ}| / Σ_θ r(θ)   ∈ [0, 1]:

1 for a filter that answers one orientation only, 0 for one that answers all alike (a blob, a checkerboard).

Localisation is the spatial spread of the filter's energy e(p) = a(p)² / Σ a²: with centroid m = Σ e(p) p,
the spread s² = Σ e(p)‖p − m‖², compared with that of energy spread evenly over the patch,

  localisation = 1 − s² / s²_uniform   (s²_uniform = (h² − 1)/12 + (w² − 1)/12),

0 for a filter whose energy covers the patch (a PCA component, a Fourier mode), towards 1 for one whose
energy sits on a few pixels.
"""

from __future__ import annotations

import numpy as np

ORIENTATIONS = 16
FREQUENCIES = tuple(np.linspace(0.08, 0.5, 15))  # cycles per pixel, up to Nyquist


def _check(filters: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
  filters = np.asarray(filters, np.float64)
  h, w = shape
  if filters.ndim != 2 or filters.shape[0] != h * w:
    raise ValueError(f"filters must be (h·w, n) = ({h * w}, n) columns of {h}×{w} filters, got {filters.shape}")
  return filters


def _coordinates(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
  h, w = shape
  rows, cols = np.meshgrid(np.arange(h) - (h - 1) / 2, np.arange(w) - (w - 1) / 2, indexing="ij")
  return cols.ravel(), -rows.ravel()  # x to the right, y up


def orientation_tuning(filters: np.ndarray, shape: tuple[int, int], orientations: int = ORIENTATIONS,
                       frequencies: tuple[float, ...] = FREQUENCIES) -> tuple[np.ndarray, np.ndarray]:
  """r(θ) of every filter (module docstring).

  Args:
    filters: (h·w, n), one filter per column, each a C-order h×w image.
    shape: (h, w).
    orientations: the number of θ evenly spaced in [0, π).
    frequencies: the spatial frequencies (cycles per pixel) to take the best of.

  Returns:
    (theta, r): the orientations (T,) and the responses (n, T).
  """
  filters = _check(filters, shape)
  x, y = _coordinates(shape)
  theta = np.arange(orientations) * np.pi / orientations
  f = np.asarray(frequencies, np.float64)
  phase = 2 * np.pi * f[None, :, None] * (x[None, None, :] * np.cos(theta)[:, None, None]
                                          + y[None, None, :] * np.sin(theta)[:, None, None])
  waves = np.exp(1j * phase)  # (T, F, P)
  amplitude = np.abs(np.einsum("tfp,pn->ntf", waves, filters))  # (n, T, F)
  best = amplitude.max(axis=1).argmax(axis=-1)  # the preferred frequency of each filter
  return theta, np.take_along_axis(amplitude, best[:, None, None], axis=2)[..., 0]


def orientation_selectivity(filters: np.ndarray, shape: tuple[int, int], **kwargs) -> np.ndarray:
  """The OSI of every filter (n,), in [0, 1]; keyword arguments go to `orientation_tuning`."""
  theta, r = orientation_tuning(filters, shape, **kwargs)
  total = r.sum(axis=1)
  vector = np.abs((r * np.exp(2j * theta)[None, :]).sum(axis=1))
  return np.where(total > 0, vector / np.maximum(total, 1e-300), 0.0)


def localisation(filters: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
  """1 − s²/s²_uniform of every filter (n,) (module docstring)."""
  filters = _check(filters, shape)
  x, y = _coordinates(shape)
  energy = filters ** 2
  energy = energy / np.maximum(energy.sum(axis=0, keepdims=True), 1e-300)
  mx, my = x @ energy, y @ energy
  spread = (((x[:, None] - mx) ** 2 + (y[:, None] - my) ** 2) * energy).sum(axis=0)
  h, w = shape
  return 1.0 - spread / ((h * h - 1) / 12 + (w * w - 1) / 12)


def summary(filters: np.ndarray, shape: tuple[int, int]) -> dict[str, float]:
  """The means of both statistics over the filters: {'orientation_index', 'localisation'}."""
  return {"orientation_index": float(np.mean(orientation_selectivity(filters, shape))),
          "localisation": float(np.mean(localisation(filters, shape)))}
