"""Multiply-adds and connections counted on a traced jaxpr, primitive by primitive.

`trace` turns a Linen model's `apply` into a closed jaxpr (`jax.make_jaxpr` on `jax.eval_shape`'d
variables) under `flax.linen.intercept_methods`, recording every submodule call with its input and output
shapes; `walk` yields each primitive equation (a `Leaf`) with its cost, per example. MACs: a matrix product
(`dot_general`) one per product, counting only the non-zero entries of a constant operand (so LCN's banded
Gaussian-window matrices count the window taps inside the image); `conv_general_dilated` output elements ×
window × input features; a sum reduction one per input summed; an FFT of N = Π fft_lengths points
(`fft`, per transform) the radix-2 count of (N/2) log₂ N butterflies of 5 real multiply-adds each, halved for
the real transforms (RFFT, IRFFT); elementwise operations, max reductions and operations on constants 0. Connections (LeCun et al. 1998, "Gradient-based learning applied to document
recognition"): the MACs plus the inputs of max reductions. Control flow: a `scan` body counts `length`
times, a `cond` its most expensive branch, a `while` body once (its trip count is unknown at trace time).
`deepvision.diagnostics.flops` groups the leaves into layers.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from typing import Any

import flax.linen as nn
import jax
import jax.extend.core as jex
import jax.numpy as jnp
import numpy as np


# ---------------------------------------------------------------------------------------------
# Tracing.


def size(aval: Any) -> int:
  """The number of elements of an array or abstract value."""
  return math.prod(aval.shape)


def avals(tree: Any) -> list[jax.ShapeDtypeStruct]:
  """The shapes and dtypes of the array leaves of `tree`."""
  return [jax.ShapeDtypeStruct(leaf.shape, leaf.dtype) for leaf in jax.tree.leaves(tree)
          if hasattr(leaf, "shape") and hasattr(leaf, "dtype")]


@dataclasses.dataclass
class ModuleCall:
  """One call of a submodule's `__call__` during `trace`: its scope path, the module, its shapes."""

  path: tuple[str, ...]
  module: nn.Module
  inputs: list[jax.ShapeDtypeStruct]
  outputs: list[jax.ShapeDtypeStruct]


def trace(model: nn.Module, x: jax.ShapeDtypeStruct, method: str | None):
  """(closed jaxpr of apply, output shapes, variables' shapes, submodule calls)."""
  variables = jax.eval_shape(
      lambda: model.init(jax.random.key(0), jnp.zeros(x.shape, x.dtype), method=method))
  calls: list[ModuleCall] = []

  def record(next_fun, args, kwargs, context):
    out = next_fun(*args, **kwargs)
    if context.method_name == "__call__" and context.module.path:
      calls.append(ModuleCall(tuple(context.module.path), context.module, avals(args), avals(out)))
    return out

  def apply(variables, x):
    return model.apply(variables, x, method=method)

  with nn.override_named_call(True), nn.intercept_methods(record):
    closed, out_shape = jax.make_jaxpr(apply, return_shape=True)(variables, x)
  return closed, out_shape, variables, calls


# ---------------------------------------------------------------------------------------------
# Counting on the jaxpr.

_UNKNOWN = object()  # A constant whose value is not computed.
_VALUE_RULES = {
    "convert_element_type": lambda v, p: v.astype(p["new_dtype"]),
    "reshape": lambda v, p: v.reshape(p["new_sizes"]),
    "transpose": lambda v, p: np.transpose(v, p["permutation"]),
    "broadcast_in_dim": lambda v, p: np.broadcast_to(
        np.expand_dims(v, [d for d in range(len(p["shape"]))
                           if d not in p["broadcast_dimensions"]]), p["shape"]),
}
#: Primitives that only move or retype values (a stretch of them joins the layer before).
LAYOUT_PRIMITIVES = frozenset({"reshape", "squeeze", "expand_dims", "transpose", "copy", "copy_p",
                               "convert_element_type"})
#: Primitive-name prefixes that make a layer of their own: products, reductions, pooling, gathers.
STRUCTURAL_PREFIXES = ("reduce", "argm", "cum", "dot_general", "conv_general", "sort",
                       "select_and", "scatter", "gather")


@dataclasses.dataclass
class Leaf:
  """One primitive equation (no sub-jaxpr), attributed to a top-level equation."""

  position: int
  stack: tuple[str, ...]
  primitive: str
  macs: int
  connections: int


def _const_value(var: Any, consts: dict) -> Any:
  if isinstance(var, jex.Literal):
    return np.asarray(var.val)
  return consts.get(var)


def _dot_general_macs(eqn: Any, consts: dict) -> int:
  lhs, rhs = eqn.invars
  (lhs_contract, rhs_contract), (lhs_batch, rhs_batch) = eqn.params["dimension_numbers"]
  out = eqn.outvars[0].aval
  contracted = math.prod(lhs.aval.shape[d] for d in lhs_contract)
  dense = size(out) * contracted
  for const, other, other_used in ((lhs, rhs, (*rhs_contract, *rhs_batch)),
                                   (rhs, lhs, (*lhs_contract, *lhs_batch))):
    value = _const_value(const, consts)
    if isinstance(value, np.ndarray) and value.shape == const.aval.shape:
      free = math.prod(s for d, s in enumerate(other.aval.shape) if d not in other_used)
      return min(dense, int(np.count_nonzero(value)) * free)
  return dense


def _fft_macs(eqn: Any) -> int:
  """2.5 N log₂ N multiply-adds per complex transform of N points (5 N log₂ N flops), half for a real one."""
  points = math.prod(eqn.params["fft_lengths"])
  kind = getattr(eqn.params["fft_type"], "name", str(eqn.params["fft_type"]))
  # The real side of RFFT (input) and IRFFT (output) holds N values per transform; FFT / IFFT are N to N.
  side = eqn.outvars[0].aval if kind == "IRFFT" else eqn.invars[0].aval
  transforms = size(side) // points
  per_transform = 2.5 * points * math.log2(points) * (0.5 if kind in ("RFFT", "IRFFT") else 1.0)
  return round(transforms * per_transform)


def _primitive_costs(eqn: Any, consts: dict) -> tuple[int, int]:
  """(MACs, connections) of one primitive equation."""
  name = eqn.primitive.name
  if name == "dot_general":
    macs = _dot_general_macs(eqn, consts)
    return macs, macs
  if name == "conv_general_dilated":
    rhs = eqn.invars[1].aval
    out_features = rhs.shape[eqn.params["dimension_numbers"].rhs_spec[0]]
    macs = size(eqn.outvars[0].aval) * (size(rhs) // out_features)
    return macs, macs
  if name == "fft":
    macs = _fft_macs(eqn)
    return macs, macs
  if name == "reduce_sum":
    macs = size(eqn.invars[0].aval)
    return macs, macs
  if name == "reduce_window_sum":
    macs = size(eqn.outvars[0].aval) * math.prod(eqn.params["window_dimensions"])
    return macs, macs
  if name in ("reduce_max", "reduce_min", "argmax", "argmin", "reduce"):
    return 0, size(eqn.invars[0].aval)
  if name in ("reduce_window_max", "reduce_window_min", "reduce_window"):
    return 0, size(eqn.outvars[0].aval) * math.prod(eqn.params["window_dimensions"])
  return 0, 0


def _sub_jaxprs(eqn: Any) -> list[tuple[Any, int, list]]:
  """(closed-or-open jaxpr, multiplicity, outer vars bound to its invars) of an equation."""
  params = eqn.params
  if "branches" in params:  # cond: the caller keeps the most expensive branch.
    return [(branch, 1, list(eqn.invars[1:])) for branch in params["branches"]]
  found = []
  for key, value in params.items():
    if isinstance(value, (jex.ClosedJaxpr, jex.Jaxpr)):
      multiplier = int(params.get("length", 1)) if key == "jaxpr" else 1
      found.append((value, multiplier, list(eqn.invars)))
  return found


def walk(jaxpr: Any, consts: dict, stack: tuple[str, ...], position: int | None,
          multiplier: int) -> Iterator[Leaf]:
  """The primitive equations of `jaxpr`, recursively, with their costs.

  `consts` maps variables known to be constant (not derived from the model's inputs or
  variables) to their value, or to _UNKNOWN; it is updated as equations are visited.
  """
  if isinstance(jaxpr, jex.ClosedJaxpr):
    consts = dict(consts)
    consts.update({v: np.asarray(c) if hasattr(c, "shape") else _UNKNOWN
                   for v, c in zip(jaxpr.jaxpr.constvars, jaxpr.consts)})
    jaxpr = jaxpr.jaxpr
  for index, eqn in enumerate(jaxpr.eqns):
    where = index if position is None else position
    eqn_stack = stack + tuple(s for s in str(eqn.source_info.name_stack).split("/") if s)
    inputs = [_const_value(v, consts) if isinstance(v, jex.Literal) or v in consts else None
              for v in eqn.invars]
    all_constant = all(value is not None for value in inputs)
    subs = _sub_jaxprs(eqn)
    if subs and not all_constant:
      branches = []
      for sub, times, outer in subs:
        inner = sub.jaxpr if isinstance(sub, jex.ClosedJaxpr) else sub
        bound = {}
        if len(inner.invars) == len(outer):
          for var, outer_var in zip(inner.invars, outer):
            value = _const_value(outer_var, consts) if (
                isinstance(outer_var, jex.Literal) or outer_var in consts) else None
            if value is not None and (value is _UNKNOWN or (
                isinstance(value, np.ndarray) and value.shape == var.aval.shape)):
              bound[var] = value
            elif value is not None:
              bound[var] = _UNKNOWN
        sub_consts = {**consts, **bound}
        branches.append(list(walk(sub, sub_consts, eqn_stack, where, multiplier * times)))
      if "branches" in eqn.params:
        branches = [max(branches, key=lambda leaves: sum(l.macs for l in leaves))]
      for leaves in branches:
        yield from leaves
    elif not all_constant:
      macs, connections = _primitive_costs(eqn, consts)
      yield Leaf(where, eqn_stack, eqn.primitive.name, macs * multiplier,
                  connections * multiplier)
    if all_constant:
      rule = _VALUE_RULES.get(eqn.primitive.name)
      value = _UNKNOWN
      if rule is not None and isinstance(inputs[0], np.ndarray):
        try:
          value = np.asarray(rule(inputs[0], eqn.params))
        except (TypeError, ValueError):
          value = _UNKNOWN
      for out in eqn.outvars:
        consts[out] = value
