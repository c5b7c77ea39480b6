r"""Exact log partition functions of small RBMs, by enumerating one layer.

For an RBM with V visible and H binary hidden units

  log Z = log Σ_v exp(−F(v)) = log Σ_h exp(−F_h(h)),

where F(v) sums the hiddens out and F_h(h) sums (or, for Gaussian visibles, integrates) the visibles
out analytically (`deepvision.models.rbm`). One sum is enumerated over the 2^n binary states of a layer
in log space, in chunks inside a `lax.map`: 2^min(V, H) free energies for a binary RBM, 2^H for a
Gaussian-Bernoulli one. These exact values are what AIS (`deepvision.estimators.ais`) and the samplers
are tested against (Salakhutdinov & Murray 2008 use the same trick for 20-25 hidden units).
`exact_log_partition_paper_mcrbm` does the same for a small paper-form mcRBM (each hidden state's
x-integral is Gaussian); `log_likelihood` turns any log Z into per-example −F(x) − log Z.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

LAYERS = ("visible", "hidden")
DEFAULT_MAX_UNITS = 20
DEFAULT_CHUNK_SIZE = 2 ** 14


def all_binary_states(n: int, dtype: Any = jnp.float32) -> Array:
  """All 2^n binary vectors of length n, (2^n, n); row k holds the bits of k, unit 0 least significant.

  State order: row k holds the binary digits of k with unit 0 as the least significant bit;
  `exact_visible_log_probs` uses the same order.

  Args:
    n: number of units, 0 ≤ n ≤ 30 (2^30 rows would already take gigabytes).
    dtype: dtype of the result.
  """
  if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or not 0 <= n <= 30:
    raise ValueError(f"all_binary_states needs an int n in [0, 30], got {n!r}")
  return _bits(jnp.arange(2 ** int(n), dtype=jnp.uint32), int(n), dtype)


def _bits(index: Array, n: int, dtype: Any) -> Array:
  """The n low bits of each index as a float (len(index), n) array, unit 0 least significant."""
  shifts = jnp.arange(n, dtype=jnp.uint32)
  return ((index[:, None] >> shifts) & 1).astype(dtype)


def visible_kind(model: nn.Module) -> str:
  """'binary' or 'gaussian', from the model's `visible_kind` attribute (an error for anything else,
  or for a model without an int `n_visible`)."""
  kind = getattr(model, "visible_kind", None)
  if kind not in ("binary", "gaussian"):
    raise ValueError(f"{type(model).__name__} has visible_kind {kind!r}; the estimators handle "
                     "models with visible_kind 'binary' or 'gaussian'")
  check_size_fields(model, ("n_visible",))
  return kind


def check_size_fields(model: nn.Module, fields: tuple[str, ...]) -> None:
  """A ValueError unless every one of `fields` (e.g. 'n_hidden') is an int field of the model."""
  for field in fields:
    if not isinstance(getattr(model, field, None), int):
      raise ValueError(f"{type(model).__name__} needs an int field {field!r}, got "
                       f"{getattr(model, field, None)!r}")


def params_dtype(variables: Any) -> Any:
  """The floating dtype of the model's parameters (float32, or float64 under enable_x64)."""
  leaves = [jnp.asarray(leaf) for leaf in jax.tree.leaves(variables)]
  floats = [leaf.dtype for leaf in leaves if jnp.issubdtype(leaf.dtype, jnp.floating)]
  return jnp.result_type(*floats) if floats else jnp.float32


def _check_chunk_size(chunk_size: int) -> int:
  if (not isinstance(chunk_size, (int, np.integer)) or isinstance(chunk_size, bool)
      or chunk_size < 1 or chunk_size & (chunk_size - 1)):
    raise ValueError(f"chunk_size must be a positive power of 2, got {chunk_size!r}")
  return int(chunk_size).bit_length() - 1


def enumerated_layer(model: nn.Module, layer: str | None = None,
                     max_units: int = DEFAULT_MAX_UNITS) -> str:
  """Which layer `log_partition` enumerates: `layer` if given, else the smaller one ('hidden' on ties
  and always for Gaussian visibles). Raises ValueError if that layer has more than `max_units` units."""
  kind = visible_kind(model)
  check_size_fields(model, ("n_hidden",))
  if layer is not None and layer not in LAYERS:
    raise ValueError(f"layer must be one of {LAYERS} or None, got {layer!r}")
  if kind == "gaussian":
    if layer == "visible":
      raise ValueError(f"{type(model).__name__} has continuous (Gaussian) visibles: only the hidden "
                       "layer can be enumerated (layer='hidden' or None)")
    layer = "hidden"
  elif layer is None:
    layer = "visible" if model.n_visible < model.n_hidden else "hidden"
  n = model.n_visible if layer == "visible" else model.n_hidden
  if not isinstance(max_units, int) or max_units < 0:
    raise ValueError(f"max_units must be an int >= 0, got {max_units!r}")
  if n > max_units:
    raise ValueError(f"exact log Z of {type(model).__name__} ({model.n_visible} visible × "
                     f"{model.n_hidden} hidden) would enumerate the {layer} layer of {n} units "
                     f"(2^{n} states), more than max_units={max_units}; raise max_units if you "
                     "really mean it, or estimate log Z with deepvision.estimators.ais")
  return layer


def _chunked_map(fn, n: int, chunk_bits: int, dtype: Any) -> Array:
  """fn(states (2^c, n)) -> (2^c, ...) over all 2^n states, chunk by chunk; stacked (2^(n-c), 2^c, ...)."""
  chunk_bits = min(chunk_bits, n)
  low = _bits(jnp.arange(2 ** chunk_bits, dtype=jnp.uint32), chunk_bits, dtype)

  def chunk(c):
    high = _bits(c[None], n - chunk_bits, dtype)
    return fn(jnp.concatenate([low, jnp.broadcast_to(high, (low.shape[0], n - chunk_bits))], axis=1))

  return jax.lax.map(chunk, jnp.arange(2 ** (n - chunk_bits), dtype=jnp.uint32))


@functools.partial(jax.jit, static_argnames=("model", "layer", "chunk_bits"))
def _log_partition(model, variables, layer, chunk_bits):
  dtype = params_dtype(variables)
  if layer == "visible":
    n, method = model.n_visible, "free_energy"
  else:
    n, method = model.n_hidden, "hidden_free_energy"
  log_sums = _chunked_map(
      lambda states: jax.nn.logsumexp(-model.apply(variables, states, method=method)),
      n, chunk_bits, dtype)
  return jax.nn.logsumexp(log_sums)


def log_partition(model: nn.Module, variables: Any, *, layer: str | None = None,
                  max_units: int = DEFAULT_MAX_UNITS, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Array:
  """Exact log Z = log Σ_v exp(−F(v)) = log Σ_h exp(−F_h(h)), by enumerating one layer.

  Works for any module with `free_energy(v)` and `hidden_free_energy(h)` methods, integer fields
  `n_visible` and `n_hidden`, and a class attribute `visible_kind` ('binary' or 'gaussian'). States are
  generated in chunks of `chunk_size`, so memory stays bounded (chunk_size × layer size) however many
  states there are.

  Example:
    >>> model = zoo.create("rbm_tiny")
    >>> variables = model.init(jax.random.key(0), jnp.zeros((1, 6)), method="free_energy")
    >>> log_z = log_partition(model, variables)                     # enumerates the 4 hidden units
    >>> ll = exact_log_likelihood(model, variables, data)           # mean log p(v) of the data

  Args:
    model: an RBM-like module (see the module docstring).
    variables: its variables ({'params': ...}); computed in their dtype (float64 under enable_x64).
    layer: 'visible' (sum exp(−F(v)) over binary v), 'hidden' (sum exp(−F_h(h))), or None for the
      smaller layer (the hidden one for Gaussian visibles, which cannot be enumerated).
    max_units: refuse (ValueError, before any compute) to enumerate more units than this; the cost
      is 2^units free energies.
    chunk_size: states per chunk, a power of 2; memory is about chunk_size × (V + H) numbers.

  Returns:
    log Z, a scalar array.
  """
  layer = enumerated_layer(model, layer, max_units)
  return _log_partition(model, variables, layer, _check_chunk_size(chunk_size))


def _check_binary(model: nn.Module, what: str) -> None:
  if visible_kind(model) != "binary":
    raise ValueError(f"{what} needs binary visible units; {type(model).__name__} has "
                     f"{model.visible_kind} visibles")


@functools.partial(jax.jit, static_argnames=("model", "chunk_bits"))
def _visible_log_probs(model, variables, log_z, chunk_bits):
  dtype = params_dtype(variables)
  neg_f = _chunked_map(lambda v: -model.apply(variables, v, method="free_energy"),
                       model.n_visible, chunk_bits, dtype)
  return neg_f.reshape(-1) - log_z


def exact_visible_log_probs(model: nn.Module, variables: Any, *, max_units: int = DEFAULT_MAX_UNITS,
                            chunk_size: int = DEFAULT_CHUNK_SIZE) -> Array:
  """log p(v) = −F(v) − log Z for every binary visible vector, in `all_binary_states` order, (2^V,).

  For binary RBMs; the reference distribution that samplers are tested against. Raises ValueError if
  V > max_units.
  """
  _check_binary(model, "exact_visible_log_probs")
  if model.n_visible > max_units:
    raise ValueError(f"exact_visible_log_probs would enumerate the visible layer of "
                     f"{model.n_visible} units (2^{model.n_visible} states), more than "
                     f"max_units={max_units}")
  chunk_bits = _check_chunk_size(chunk_size)
  log_z = log_partition(model, variables, max_units=max_units, chunk_size=chunk_size)
  return _visible_log_probs(model, variables, log_z, chunk_bits)


def check_visible_data(model: nn.Module, variables: Any, data: Any, what: str = "data") -> Array:
  """data as a (B, V) batch: a ValueError for a wrong feature size or (binary models) values outside
  [0, 1], naming what was found. Runs eagerly, before any compute on the data; traced data (under
  jit) gets the shape check only."""
  if isinstance(data, jax.core.Tracer):
    if data.ndim < 2 or int(np.prod(data.shape[1:])) != model.n_visible:
      raise ValueError(f"{what} must be a batch (B, {model.n_visible}) (or images of "
                       f"{model.n_visible} values) for {type(model).__name__}, got shape {data.shape}")
    return data.reshape(data.shape[0], model.n_visible).astype(params_dtype(variables))
  array = np.asarray(data)
  if array.ndim < 2 or array.shape[0] < 1 or int(np.prod(array.shape[1:])) != model.n_visible:
    raise ValueError(f"{what} must be a non-empty batch (B, {model.n_visible}) (or images of "
                     f"{model.n_visible} values) for {type(model).__name__}, got shape {array.shape}")
  array = array.reshape(array.shape[0], model.n_visible)
  if not np.issubdtype(array.dtype, np.floating) and not np.issubdtype(array.dtype, np.integer) \
      and array.dtype != np.bool_:
    raise ValueError(f"{what} must be numeric, got dtype {array.dtype}")
  if not np.all(np.isfinite(array)):
    raise ValueError(f"{what} contains non-finite values")
  value_range = getattr(model, "visible_range", None)
  if value_range is not None:
    low, high = float(array.min()), float(array.max())
    if low < value_range[0] or high > value_range[1]:
      raise ValueError(f"{what} for {type(model).__name__} must lie in [{value_range[0]}, "
                       f"{value_range[1]}], found values in [{low}, {high}]")
  return jnp.asarray(array, params_dtype(variables))


def exact_log_likelihood(model: nn.Module, variables: Any, data: Any, *,
                         max_units: int = DEFAULT_MAX_UNITS,
                         chunk_size: int = DEFAULT_CHUNK_SIZE) -> Array:
  """Mean log-likelihood of `data`, mean_n(−F(v_n)) − log Z, with the exact log Z.

  A log-probability for binary visibles, a log-density for Gaussian ones. Differentiable in the
  parameters (its gradient is ⟨−∂F/∂θ⟩_data + ⟨∂F/∂θ⟩_model).

  Args:
    model, variables: as for `log_partition`.
    data: (B, V) or images of V values; in [0, 1] for binary models.
    max_units, chunk_size: as for `log_partition`.
  """
  data = check_visible_data(model, variables, data)
  log_z = log_partition(model, variables, max_units=max_units, chunk_size=chunk_size)
  return jnp.mean(-model.apply(variables, data, method="free_energy")) - log_z


def log_likelihood(model: nn.Module, variables: Any, x: Any, log_z: Any) -> Array:
  """Per-example log p(x) = −F(x) − log Z, (B,), given log Z (exact, or an `AISResult`'s `log_z`).

  A log-density for continuous visibles (nats per example), a log-probability for binary ones.

  Args:
    model: a module with `free_energy` and an int `n_visible`.
    variables: its variables.
    x: (B, V) or images of V values (checked like `check_visible_data`).
    log_z: a number or scalar array, or anything with a `log_z` attribute (an `AISResult`).
  """
  check_size_fields(model, ("n_visible",))
  log_z = getattr(log_z, "log_z", log_z)
  if np.ndim(log_z) != 0:
    raise ValueError(f"log_z must be a scalar (or an AISResult), got shape {np.shape(log_z)}")
  x = check_visible_data(model, variables, x, "x")
  return -model.apply(variables, x, method="free_energy") - jnp.asarray(log_z, x.dtype)


_PAPER_MCRBM_PARAMS = ("C", "P", "W", "b_c", "b_m", "b_v")


def _paper_mcrbm_params(params: Any, max_units: int) -> dict[str, np.ndarray]:
  """The mcRBM params as float64 NumPy arrays, checked: names, shapes, P ≥ 0, N + M ≤ max_units."""
  params = params.get("params", params) if hasattr(params, "get") else params
  missing = [name for name in _PAPER_MCRBM_PARAMS if not hasattr(params, "get") or name not in params]
  if missing:
    raise ValueError(f"exact_log_partition_paper_mcrbm: params lack {', '.join(missing)}; expected "
                     f"{', '.join(_PAPER_MCRBM_PARAMS)} (an MCRBM's 'params' collection)")
  p = {name: np.asarray(params[name], np.float64) for name in _PAPER_MCRBM_PARAMS}
  d, f = p["C"].shape if p["C"].ndim == 2 else (None, None)
  n, m = p["b_c"].size, p["b_m"].size
  expected = {"C": (d, f), "P": (f, n), "W": (d, m), "b_c": (n,), "b_m": (m,), "b_v": (d,)}
  for name, shape in expected.items():
    if d is None or p[name].shape != shape:
      raise ValueError(f"exact_log_partition_paper_mcrbm: params[{name!r}] has shape "
                       f"{p[name].shape}; expected C (D, F), P (F, N), W (D, M), b_c (N,), b_m (M,), "
                       f"b_v (D,)")
  if not all(np.all(np.isfinite(value)) for value in p.values()):
    raise ValueError("exact_log_partition_paper_mcrbm: params contain non-finite values")
  if np.any(p["P"] < 0):
    raise ValueError(f"exact_log_partition_paper_mcrbm: P must be non-negative (as training keeps "
                     f"it), found {float(p['P'].min())}; with negative pooling weights Z may be "
                     "infinite")
  if not isinstance(max_units, int) or max_units < 0:
    raise ValueError(f"max_units must be an int >= 0, got {max_units!r}")
  if n + m > max_units:
    raise ValueError(f"exact_log_partition_paper_mcrbm would enumerate N + M = {n} + {m} hidden units "
                     f"(2^{n + m} states), more than max_units={max_units}; estimate log Z with "
                     "deepvision.estimators.ais.ais_log_partition_continuous instead")
  return p


def exact_log_partition_paper_mcrbm(params: Any, *, max_units: int = DEFAULT_MAX_UNITS,
                                    chunk_size: int = 4096) -> float:
  r"""Exact log Z of a paper-form mcRBM (`MCRBM(input_norm='paper')`), in float64 NumPy.

  With x̃ = x (Ranzato & Hinton 2010), the energy is quadratic in x for every hidden state h:

    E(x, h) = ½ xᵀΛx − ηᵀx − b_cᵀh_c − b_mᵀh_m,   Λ = C diag(P h_c) Cᵀ + I,   η = W h_m + b_v

  (Σ_k h_c_k ½ Σ_f P_fk (C_fᵀx)² = ½ xᵀC diag(P h_c) Cᵀx), so the x-integral is Gaussian,

    ∫ exp(−E(x, h)) dx = exp(b_cᵀh_c + b_mᵀh_m) (2π)^{D/2} |Λ|^{−1/2} exp(½ ηᵀΛ⁻¹η),

  and log Z = logsumexp over all 2^(N+M) binary h of its log. Λ ⪰ I since P ≥ 0 and h_c ≥ 0.
  Not for the 'original' form (its covariance branch sees a normalised x, and p(x | h) is not
  Gaussian) nor the mPoT (Gamma hiddens): estimate those with AIS.

  Args:
    params: an MCRBM's 'params' collection (C, P, W, b_c, b_m, b_v), or {'params': ...}.
    max_units: refuse (ValueError) to enumerate more than this many hidden units N + M.
    chunk_size: hidden states per batch of D×D Cholesky factorisations (memory ~ chunk_size·D²).

  Returns:
    log Z as a Python float.
  """
  p = _paper_mcrbm_params(params, max_units)
  if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
    raise ValueError(f"chunk_size must be an int >= 1, got {chunk_size!r}")
  d, n, m = p["C"].shape[0], p["b_c"].size, p["b_m"].size
  units = n + m
  log_terms = []
  for start in range(0, 2 ** units, int(chunk_size)):
    index = np.arange(start, min(start + int(chunk_size), 2 ** units), dtype=np.int64)
    h = ((index[:, None] >> np.arange(units)) & 1).astype(np.float64)
    h_c, h_m = h[:, :n], h[:, n:]
    gains = h_c @ p["P"].T  # (S, F)
    precision = np.einsum("df,sf,ef->sde", p["C"], gains, p["C"]) + np.eye(d)
    eta = h_m @ p["W"].T + p["b_v"]  # (S, D)
    cholesky = np.linalg.cholesky(precision)
    log_det = 2 * np.sum(np.log(np.diagonal(cholesky, axis1=1, axis2=2)), axis=1)
    solved = np.linalg.solve(precision, eta[:, :, None])[:, :, 0]
    log_terms.append(h_c @ p["b_c"] + h_m @ p["b_m"] + 0.5 * d * np.log(2 * np.pi)
                     - 0.5 * log_det + 0.5 * np.sum(eta * solved, axis=1))
  log_terms = np.concatenate(log_terms)
  top = np.max(log_terms)
  return float(top + np.log(np.sum(np.exp(log_terms - top))))
