"""Unit statistics: are the hidden units sparse, alive, unsaturated and uncorrelated?

The talk's check for a network that trains well: "hidden units are sparse across samples and across
features"; a badly trained one has "many hidden units [that] ignore the input and/or exhibit strong
correlations". `unit_statistics` measures it for every intermediate activation and `format_table`
prints it (`unit_figures` draws it). A unit's activation x[n, u] is a dense unit's value, or a feature
map's spatially averaged magnitude mean_{i,j} |a[n, i, j, c]|. With threshold t:

  activity across samples   p_u = (1/N) Σ_n 1[|x[n, u]| > t]   (sparse units: small p_u; dead: p_u = 0)
  activity across units     q_n = (1/U) Σ_u 1[|x[n, u]| > t]   (sparse codes: small q_n)
  constant unit             std_n x[n, u] ≤ 1e-6 · max_n |x[n, u]| (it ignores the input)
  saturated unit            (1/N) Σ_n 1[|x[n, u]| > 0.99 · B_u] > 0.95, for a layer with bound B
  correlation               ρ_uv = Pearson correlation of x[:, u] and x[:, v] across samples

Example:
  >>> stats = unit_statistics(zoo.create("lcn_convnet_digits_tiny"), params, images)
  >>> print(format_table(stats))
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from deepvision.models import convnets

FeaturesFn = Callable[[Any, jax.Array], Mapping[str, jax.Array]]

#: Default activity threshold: a unit counts as active when |x| exceeds this (about "non-zero",
#: with room for rounding noise). Raise it for layers whose typical magnitude is large.
DEFAULT_THRESHOLD = 1e-3
#: A unit is saturated on a sample when |x| > SATURATION_LEVEL · bound ...
SATURATION_LEVEL = 0.99
#: ... and saturated when that holds on more than this fraction of the samples.
SATURATION_FRACTION = 0.95
#: A unit is constant when its std across samples is at most this times its largest |x|.
CONSTANT_TOLERANCE = 1e-6


@dataclasses.dataclass(frozen=True, eq=False)
class LayerStats:
  """Statistics of the units of one layer over a set of samples (formulas in the module doc).

  A convolutional activation (N, ..., C) (any number of spatial axes) has one unit per map. ρ involving
  a constant unit is NaN; mean |ρ| is over pairs u ≠ v of non-constant units; mean and std are over
  every element of the raw activation. B comes from the layer's kind (`saturation_bounds`) or `bounds=`,
  never from the observed range. Activity is most telling on rectified layers (ReLU, |tanh|, pooled
  maps): a signed layer (a convolution before rectification, an LCN output) reads as fully active.

  Attributes:
    name: the layer's name (its key in the intermediates).
    kind: 'maps' (a convolutional layer: one unit per feature map) or 'units' (a dense layer).
    shape: the activation shape of one sample, e.g. (8, 8, 4).
    num_units: U, the number of feature maps or dense units.
    num_samples: N.
    threshold: t, the activity threshold.
    bound: B, the bound of the non-linearity per unit (U,), or None for an unbounded layer.
    activations: x, the (N, U) unit activations (float32), rows samples, columns units.
    activity_across_samples: p, (U,): per unit, the fraction of samples on which it is active.
    activity_across_units: q, (N,): per sample, the fraction of units active.
    dead_units: indices of the units never active.
    constant_units: indices of the units whose activation does not vary across samples.
    saturated_units: indices of the saturated units, or None when the layer has no bound.
    correlation: ρ, (U, U) Pearson correlations across samples; NaN where undefined.
    mean_abs_correlation: mean |ρ_uv| over u ≠ v (NaN with fewer than two non-constant units).
    mean, std, minimum, maximum: of the raw activation's elements.
  """

  name: str
  kind: str
  shape: tuple[int, ...]
  num_units: int
  num_samples: int
  threshold: float
  bound: np.ndarray | None
  activations: np.ndarray
  activity_across_samples: np.ndarray
  activity_across_units: np.ndarray
  dead_units: np.ndarray
  constant_units: np.ndarray
  saturated_units: np.ndarray | None
  correlation: np.ndarray
  mean_abs_correlation: float
  mean: float
  std: float
  minimum: float
  maximum: float

  @property
  def activity_across_samples_mean(self) -> float:
    return float(self.activity_across_samples.mean())

  @property
  def activity_across_samples_min(self) -> float:
    return float(self.activity_across_samples.min())

  @property
  def activity_across_samples_max(self) -> float:
    return float(self.activity_across_samples.max())

  @property
  def activity_across_units_mean(self) -> float:
    return float(self.activity_across_units.mean())

  @property
  def num_dead(self) -> int:
    return len(self.dead_units)

  @property
  def num_constant(self) -> int:
    return len(self.constant_units)

  @property
  def num_saturated(self) -> int | None:
    return None if self.saturated_units is None else len(self.saturated_units)


# ---------------------------------------------------------------------------------------------
# Per-sample reductions (run on each batch, inside jit) and the final statistics (NumPy, float64).


def _reduce(activation, xp) -> dict[str, Any]:
  """Per-sample summaries of one layer: unit activations x and the moments of the raw values."""
  a = activation.astype(xp.float32)
  flat = a.reshape(a.shape[0], -1)
  units = a if a.ndim == 2 else xp.abs(a).mean(axis=tuple(range(1, a.ndim - 1)))
  return {"units": units, "mean": flat.mean(axis=1), "var": flat.var(axis=1),
          "min": flat.min(axis=1), "max": flat.max(axis=1)}


def unit_activations(activation: Any) -> np.ndarray:
  """x: an (N, U) dense activation as it is; an (N, ..., C) map activation as mean |a| per map."""
  activation = np.asarray(activation)
  if activation.ndim < 2:
    raise ValueError(f"an activation needs a batch axis and a unit axis, got shape "
                     f"{activation.shape}")
  return _reduce(activation, np)["units"]


def _constant(x: np.ndarray) -> np.ndarray:
  """Per column of an (N, U) array: std ≤ CONSTANT_TOLERANCE · max |x| (it ignores the input)."""
  x = np.asarray(x, np.float64)
  return x.std(axis=0) <= CONSTANT_TOLERANCE * np.abs(x).max(axis=0)


def correlation_matrix(units: np.ndarray) -> np.ndarray:
  """ρ: Pearson correlations across samples between the columns of an (N, U) array.

  Entries involving a constant column (std ≤ 1e-6 · max |x|) are NaN; others are clipped to
  [−1, 1].
  """
  x = np.asarray(units, np.float64)
  std = x.std(axis=0)
  varies = ~_constant(x)
  z = (x - x.mean(axis=0)) / np.where(varies, std, 1.0)
  rho = np.clip(z.T @ z / x.shape[0], -1.0, 1.0)
  rho[~varies, :] = np.nan
  rho[:, ~varies] = np.nan
  return rho


def _statistics(name: str, shape: tuple[int, ...], summaries: Mapping[str, np.ndarray],
                threshold: float, bound: np.ndarray | None) -> LayerStats:
  """LayerStats from the per-sample summaries of all samples (see `_reduce`)."""
  x = np.asarray(summaries["units"], np.float32)
  num_samples, num_units = x.shape
  magnitude = np.abs(x)
  active = magnitude > threshold
  per_unit = active.mean(axis=0)
  saturated = None
  if bound is not None:
    near_bound = magnitude > SATURATION_LEVEL * bound
    saturated = np.flatnonzero(near_bound.mean(axis=0) > SATURATION_FRACTION)
  rho = correlation_matrix(x)
  off_diagonal = np.abs(rho[~np.eye(num_units, dtype=bool)])
  off_diagonal = off_diagonal[~np.isnan(off_diagonal)]
  means = np.asarray(summaries["mean"], np.float64)
  variance = np.asarray(summaries["var"], np.float64).mean() + means.var()
  return LayerStats(
      name=name, kind="units" if len(shape) == 1 else "maps", shape=tuple(shape),
      num_units=num_units, num_samples=num_samples, threshold=float(threshold), bound=bound,
      activations=x, activity_across_samples=per_unit, activity_across_units=active.mean(axis=1),
      dead_units=np.flatnonzero(per_unit == 0), constant_units=np.flatnonzero(_constant(x)),
      saturated_units=saturated, correlation=rho,
      mean_abs_correlation=float(off_diagonal.mean()) if off_diagonal.size else math.nan,
      mean=float(means.mean()), std=float(math.sqrt(max(variance, 0.0))),
      minimum=float(np.min(summaries["min"])), maximum=float(np.max(summaries["max"])))


# ---------------------------------------------------------------------------------------------
# Checks and bounds.


def _check_threshold(threshold: Any) -> float:
  if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.number)) \
      or not math.isfinite(threshold) or threshold < 0:
    raise ValueError(f"threshold must be a finite number >= 0, got {threshold!r}")
  return float(threshold)


def _check_bound(name: str, value: Any, num_units: int) -> np.ndarray:
  bound = np.asarray(value, np.float64)
  if bound.ndim == 0:
    bound = np.full((num_units,), float(bound))
  if bound.shape != (num_units,) or not np.all(np.isfinite(bound)) or np.any(bound <= 0):
    raise ValueError(f"the bound of layer {name!r} must be a positive number or {num_units} "
                     f"positive numbers (one per unit), got {value!r}")
  return bound


def saturation_bounds(model: nn.Module | None, params: Any) -> dict[str, np.ndarray | float]:
  """The bounds of the bounded non-linearities of `model`, known from its layer kinds.

  Bounds are never guessed from the observed range (that would call the largest ReLU responses
  saturated). Known: every layer of `LeNet5_1998` (1.7159·tanh(2a/3): bound 1.7159); the
  'stage{i}/rect' layers of a `MultiStageConvNet` with 'tanh' or 'tanh_abs' rectification
  (g·tanh: bound |g| per map, from the trained gains); the outputs of `hidden_probs` of energy
  models (sigmoid probabilities: bound 1). Other layers are unbounded unless given `bounds=`.
  """
  if isinstance(model, convnets.LeNet5_1998):
    return {name: 1.7159 for name in ("C1", "S2", "C3", "S4", "C5", "F6", "features")}
  if isinstance(model, convnets.MultiStageConvNet):
    return {f"stage{i}/rect": np.abs(np.asarray(params[f"gain{i}"], np.float64))
            for i, stage in enumerate(model.stages(), start=1)
            if stage["rectification"] in ("tanh", "tanh_abs")}
  return {}


def _expected_image_shape(model: nn.Module | None) -> tuple[int, ...] | None:
  if getattr(model, "input_shape", None) is not None:
    return tuple(model.input_shape)
  if getattr(model, "n_visible", None) is not None:
    return (model.n_visible,)
  return None


def _check_images(images: Any, model: nn.Module | None) -> np.ndarray:
  images = np.asarray(images)
  expected = _expected_image_shape(model)
  if images.ndim < 2 or not np.issubdtype(images.dtype, np.floating):
    raise ValueError(f"images must be a float array (num_samples, ...), got shape "
                     f"{images.shape} {images.dtype}")
  if expected is not None and tuple(images.shape[1:]) != expected:
    raise ValueError(f"{type(model).__name__} expects images of shape (num_samples, "
                     f"{', '.join(map(str, expected))}), got {images.shape}")
  if images.shape[0] == 0:
    raise ValueError(f"unit statistics need at least one image, got an empty set of shape "
                     f"{images.shape}")
  return images


def _hidden_probs_features(model: nn.Module) -> FeaturesFn:
  """features_fn of an energy model: its `hidden_probs`, named 'hidden' (or 'hidden/KEY')."""

  def features_fn(params, images):
    probs = model.apply({"params": params}, images, method="hidden_probs")
    if isinstance(probs, Mapping):
      return {f"hidden/{key}": value for key, value in probs.items()}
    if isinstance(probs, (tuple, list)):
      return {f"hidden/{i}": value for i, value in enumerate(probs)}
    return {"hidden": probs}

  return features_fn


def _model_features(model: nn.Module) -> FeaturesFn:
  def features_fn(params, images):
    out = model.apply({"params": params}, images, train=False)
    if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], Mapping)):
      raise ValueError(f"{type(model).__name__} does not return (logits, intermediates); pass "
                       "features_fn=lambda params, images: {name: activation, ...}")
    return out[1]

  return features_fn


# ---------------------------------------------------------------------------------------------
# The entry points.


def unit_statistics(model: nn.Module | None, params: Any, images: Any, *,
                    batch_size: int = 256, threshold: float = DEFAULT_THRESHOLD,
                    features_fn: FeaturesFn | None = None,
                    bounds: Mapping[str, float | Sequence[float]] | None = None,
                    layers: Sequence[str] | None = None) -> dict[str, LayerStats]:
  """Statistics of every layer's units over `images` (the definitions are in the module doc).

  Args:
    model: a Linen module returning `(logits, intermediates)` from `apply(..., train=False)`,
      or an energy model with a `hidden_probs` method; None when `features_fn` is given.
    params: the model's 'params' collection (e.g. `state.params`).
    images: (N, ...) float images as the model sees them (after any preprocessing, e.g.
      `Preprocess()(images, train=False)`); N ≥ 1.
    batch_size: images per forward pass; the last batch is padded so nothing recompiles.
    threshold: t ≥ 0; a unit is active on a sample when |x| > t.
    features_fn: `features_fn(params, images) -> {name: activation}` (traceable by `jax.jit`),
      used instead of the model's intermediates, e.g. an energy model's hidden units.
    bounds: bounds B of bounded non-linearities by layer name (a number, or one per unit); they
      extend and override `saturation_bounds(model, params)`.
    layers: names of the layers to measure (default: all, in the order the model returns them).

  Returns:
    {layer name: LayerStats}, in the order of the model's intermediates.

  Raises:
    ValueError: before any compute, for images of the wrong shape or dtype, an empty image set,
      a negative threshold, a batch size < 1, unknown layer names in `layers` or `bounds`,
      or malformed bounds.
  """
  threshold = _check_threshold(threshold)
  if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
    raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
  if features_fn is None and model is None:
    raise ValueError("give a model or a features_fn")
  images = _check_images(images, model if features_fn is None else None)
  probabilities = features_fn is None and hasattr(model, "hidden_probs")
  known: dict[str, Any] = {}
  if probabilities:
    features_fn = _hidden_probs_features(model)
  elif features_fn is None:
    features_fn = _model_features(model)
    known = saturation_bounds(model, params)

  num_samples = images.shape[0]
  batch = min(int(batch_size), num_samples)
  order: list[list[str]] = []

  def traced(params, images):  # Records the layers' order: eval_shape returns sorted dicts.
    features = features_fn(params, images)
    if isinstance(features, Mapping):
      order.append(list(features))
    return features

  shapes = jax.eval_shape(traced, params, jax.ShapeDtypeStruct(
      (batch, *images.shape[1:]), images.dtype))
  if not isinstance(shapes, Mapping):
    raise ValueError(f"features must be a dict {{name: activation}}, got {type(shapes).__name__}")
  shapes = {name: shapes[name] for name in order[0]}
  if probabilities:  # Every output of hidden_probs is a probability: bound 1.
    known = dict.fromkeys(shapes, 1.0)
  for name, shape in shapes.items():
    if len(shape.shape) < 2 or shape.shape[0] != batch:
      raise ValueError(f"activation {name!r} has shape {shape.shape}; expected (batch={batch}, "
                       "units) or (batch, ..., maps)")
  names = list(shapes) if layers is None else list(layers)
  unknown = sorted(set(names) - set(shapes))
  unknown_bounds = sorted(set(bounds or {}) - set(shapes))
  if unknown or unknown_bounds:
    raise ValueError(f"unknown layer name(s) {', '.join(map(repr, unknown + unknown_bounds))}; "
                     f"the layers are: {', '.join(shapes)}")
  if not names:
    raise ValueError("layers is empty; the layers are: " + ", ".join(shapes))
  merged = {**known, **(bounds or {})}
  layer_bounds = {name: _check_bound(name, merged[name], shapes[name].shape[-1])
                  for name in names if name in merged}

  @jax.jit
  def summarise(params, images):
    features = features_fn(params, images)
    return {name: _reduce(features[name], jnp) for name in names}

  pieces = []
  for start in range(0, num_samples, batch):
    chunk = images[start:start + batch]
    count = chunk.shape[0]
    if count < batch:
      chunk = np.concatenate([chunk, np.zeros((batch - count, *chunk.shape[1:]), chunk.dtype)])
    out = jax.device_get(summarise(params, chunk))
    pieces.append(jax.tree.map(lambda a, n=count: a[:n], out))
  joined = jax.tree.map(lambda *parts: np.concatenate(parts), *pieces)
  return {name: _statistics(name, tuple(shapes[name].shape[1:]), joined[name], threshold,
                            layer_bounds.get(name))
          for name in names}


def layer_statistics(name: str, activation: Any, *, threshold: float = DEFAULT_THRESHOLD,
                     bound: float | Sequence[float] | None = None) -> LayerStats:
  """LayerStats of one activation array (N, U) or (N, ..., C) already computed."""
  threshold = _check_threshold(threshold)
  activation = np.asarray(activation)
  if activation.ndim < 2 or activation.shape[0] == 0:
    raise ValueError(f"activation {name!r} must be (N >= 1, units) or (N, ..., maps), got "
                     f"shape {activation.shape}")
  if bound is not None:
    bound = _check_bound(name, bound, activation.shape[-1])
  return _statistics(name, activation.shape[1:], _reduce(activation, np), threshold, bound)


def format_table(stats: Mapping[str, LayerStats]) -> str:
  """A text table: one row per layer.

  Columns: shape per sample; units; activity across samples (mean [min, max] of p_u); activity
  across units (mean of q_n); dead, constant and saturated units ('-': no bound); mean |ρ|;
  mean and std of the activation.
  """
  if not stats:
    raise ValueError("no layer statistics to format")
  first = next(iter(stats.values()))
  header = ["layer", "shape", "units", "active/unit [min, max]", "active/sample", "dead",
            "const", "sat", "mean|corr|", "mean", "std"]
  rows = []
  for s in stats.values():
    rows.append([
        s.name, "×".join(map(str, s.shape)), str(s.num_units),
        f"{s.activity_across_samples_mean:.2f} [{s.activity_across_samples_min:.2f}, "
        f"{s.activity_across_samples_max:.2f}]",
        f"{s.activity_across_units_mean:.2f}", str(s.num_dead), str(s.num_constant),
        "-" if s.num_saturated is None else str(s.num_saturated),
        "-" if math.isnan(s.mean_abs_correlation) else f"{s.mean_abs_correlation:.2f}",
        f"{s.mean:.3g}", f"{s.std:.3g}"])
  widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
  line = lambda cells: "  ".join(  # noqa: E731
      cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(cells, widths)))
  title = (f"unit statistics over {first.num_samples} samples; active: |x| > {first.threshold:g}, "
           "x = mean |a| per map for conv layers")
  return "\n".join([title, line(header), *map(line, rows)])
