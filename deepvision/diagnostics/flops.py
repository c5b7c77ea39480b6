"""Per-layer cost table: parameters, multiply-adds, activation memory and connections.

The talk's answer to "the net underperforms" and "training is too slow" alike: count FLOPs and
parameters, layer by layer. `layer_table(model)` returns one `LayerCost` per layer, per example,
without computing anything: the model is traced to a jaxpr and its primitives costed (`jaxpr_costs`).
Every direct submodule is a layer; the parameter-free functions between submodules are attributed
through the model's named intermediates (`_rows`). A convolution `deepvision.nn.conv.Conv` costs the
direct algorithm's output elements × k_h·k_w·C_in MACs; training costs 3 × forward for layers with
weights, 2 × without. Connections (LeCun et al. 1998, "Gradient-based learning applied to document
recognition"): per output unit, its inputs + 1 for a bias, summed; LeNet-5 1998 gives exactly the
paper's 340,908 connections and 60,000 parameters.

Example:
  >>> print(format_table(layer_table("lenet5_1998")))
  >>> costs = layer_table(my_module, input_shape=(32, 32, 3))
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.extend.core as jex
import jax.numpy as jnp
import numpy as np

from deepvision import zoo
from deepvision.diagnostics import jaxpr_costs
from deepvision.nn.conv import Conv

TRAINING_FACTOR_WITH_WEIGHTS = 3
TRAINING_FACTOR_WITHOUT_WEIGHTS = 2


@dataclasses.dataclass(frozen=True)
class LayerCost:
  """The costs of one layer, per example.

  Conventions:

  * parameters: trainable scalars of the layer ('params' collection); parameters the model owns
    directly (such as the gains g of |g·tanh(x)|) count in the layer that reads them.
  * multiply-adds (MACs): of a convolution `deepvision.nn.conv.Conv`, the direct algorithm's: output
    elements × k_h·k_w·C_in (taps on 'SAME' zero padding included, as a direct convolution computes
    them; the banded algorithm's extra zero products are not counted). Elsewhere counted from the jaxpr
    (`jaxpr_costs`): a channel mean over C maps costs C per pixel, average pooling the window per
    output, LeNet's S layers 4 per output, LCN's separable Gaussian window k per pixel and pass away
    from the border.
  * training MACs: forward + backward ≈ 3 × forward for layers with weights (the input gradient and
    the weight gradient each cost about one forward pass; the first layer's input gradient is included
    although training does not need it), 2 × forward for layers without (the input gradient only).
  * activation memory: the layer's output elements × bytes per element (what the backward pass keeps
    per example, up to the temporaries inside a layer).
  * connections (LeCun et al. 1998): for each output unit, its number of inputs plus 1 for a bias,
    summed over output units; shared weights still count once per connection. For convolutions and
    dense layers this is MACs + one per output unit of every submodule with a 'bias' parameter; for
    function layers the MACs plus the inputs of max reductions (a 2×2 max pool: 4 per output).

  Attributes:
    name: the submodule's name ('conv1', 'C3') or the intermediate's ('stage1/lcn').
    kind: the submodule's class name, or 'ops' for a layer of functions.
    output_shape: the output's shape without the batch axis.
    params: trainable parameters.
    macs_forward: forward multiply-adds.
    macs_training: forward + backward multiply-adds.
    activation_bytes: output elements × bytes per element.
    connections: LeCun et al. 1998's connections (inputs + bias, per output unit, summed).
  """

  name: str
  kind: str
  output_shape: tuple[int, ...]
  params: int
  macs_forward: int
  macs_training: int
  activation_bytes: int
  connections: int


def total(costs: Sequence[LayerCost]) -> LayerCost:
  """The sum of `costs` as a `LayerCost` named 'total' (output_shape: the last layer's)."""
  return LayerCost(
      name="total", kind="", output_shape=costs[-1].output_shape if costs else (),
      params=sum(c.params for c in costs), macs_forward=sum(c.macs_forward for c in costs),
      macs_training=sum(c.macs_training for c in costs),
      activation_bytes=sum(c.activation_bytes for c in costs),
      connections=sum(c.connections for c in costs))


def format_table(costs: Sequence[LayerCost], title: str | None = None) -> str:
  """A printable table of `costs` with a total row."""
  header = ("layer", "kind", "output", "params", "MACs", "train MACs", "act. bytes",
            "connections")
  rows = [header] + [
      (c.name, c.kind, "×".join(map(str, c.output_shape)) or "scalar", f"{c.params:,}",
       f"{c.macs_forward:,}", f"{c.macs_training:,}", f"{c.activation_bytes:,}",
       f"{c.connections:,}")
      for c in [*costs, total(costs)]]
  widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
  lines = [] if title is None else [title]
  for n, row in enumerate(rows):
    if n == len(rows) - 1:
      lines.append("  ".join("-" * w for w in widths))
    lines.append("  ".join(cell.ljust(w) if i < 3 else cell.rjust(w)
                           for i, (cell, w) in enumerate(zip(row, widths))).rstrip())
  return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Submodule rules: MACs of modules whose implementation does not show the algorithm's count.


def _conv_macs(module: Conv, inputs: Sequence[jax.ShapeDtypeStruct],
               outputs: Sequence[jax.ShapeDtypeStruct]) -> int:
  """Direct convolution: output elements × k_h·k_w·C_in."""
  kh, kw = module.kernel_size
  return jaxpr_costs.size(outputs[0]) * kh * kw * inputs[0].shape[-1]


MODULE_RULES: dict[type, Callable[..., int]] = {Conv: _conv_macs}


# ---------------------------------------------------------------------------------------------
# Rows.


@dataclasses.dataclass
class _Row:
  name: str
  kind: str
  first: int
  outputs: list[jax.ShapeDtypeStruct]
  params: int = 0
  macs: int = 0
  connections: int = 0
  structural: bool = False  # Has a matrix product, reduction, pooling or gather.

  def cost(self) -> LayerCost:
    factor = TRAINING_FACTOR_WITH_WEIGHTS if self.params else TRAINING_FACTOR_WITHOUT_WEIGHTS
    shape = tuple(self.outputs[0].shape[1:]) if self.outputs else ()
    activation = sum(jaxpr_costs.size(a) // max(a.shape[0], 1) * np.dtype(a.dtype).itemsize
                     for a in self.outputs if a.shape)
    return LayerCost(name=self.name, kind=self.kind, output_shape=shape, params=self.params,
                     macs_forward=self.macs, macs_training=factor * self.macs,
                     activation_bytes=activation, connections=self.connections)


def _strip(component: str) -> str:
  return component.split(".")[0]


def _count(tree: Any) -> int:
  return sum(jaxpr_costs.size(leaf) for leaf in jax.tree.leaves(tree))


def _has_bias(variables: dict, path: tuple[str, ...]) -> bool:
  tree = variables.get("params", {})
  for name in path:
    if not isinstance(tree, dict) or name not in tree:
      return False
    tree = tree[name]
  return isinstance(tree, dict) and "bias" in tree and not isinstance(tree["bias"], dict)


def _rows(model: nn.Module, x: jax.ShapeDtypeStruct, method: str | None) -> list[_Row]:
  """The layers of `model`, in the order they run.

  Every direct submodule of the model is a layer (a container such as LeNet's partially connected C3
  counts as one layer, the sum of its parts). Parameter-free operations the model applies as plain
  functions between its submodules (rectification, local contrast normalisation, pooling, the RBF
  output of LeNet-5) are attributed by the model's named intermediates (the zoo convnets return
  `(output, intermediates)`): the operations between two recorded points form a layer named after the
  intermediate they produce. An intermediate named like a submodule is that submodule's output after
  its non-linearity (LeNet-5 1998's 'C1' is the C1 convolution then the squashing function), so it
  joins that submodule's row; a stretch of purely elementwise or layout operations (ReLU, reshape)
  joins the row before it. Other operations that no intermediate names form a layer 'output' if they
  produce the model's output (LeNet-5 1998's RBF units), else 'ops after <previous layer>' (a model
  without intermediates gets one such row per stretch of pooling or matrix products between its
  submodules).
  """
  closed, out_shape, variables, calls = jaxpr_costs.trace(model, x, method)
  jaxpr = closed.jaxpr
  root = type(model).__name__
  children = {}
  for call in calls:
    children.setdefault(call.path[0], []).append(call)

  # Which top-level equation produced each variable, and which variables are parameters.
  producer = {out: i for i, eqn in enumerate(jaxpr.eqns) for out in eqn.outvars}
  var_paths = jax.tree_util.tree_flatten_with_path(variables)[0]
  param_of = {var: (path, leaf) for var, (path, leaf) in zip(jaxpr.invars, var_paths)
              if getattr(path[0], "key", None) == "params"}

  leaves = list(jaxpr_costs.walk(closed, {}, (), None, 1))
  for leaf in leaves:  # Drop the model's own scope.
    if leaf.stack and _strip(leaf.stack[0]) == _strip(root):
      leaf.stack = leaf.stack[1:]

  def owner(stack: tuple[str, ...]) -> str | None:
    return _strip(stack[0]) if stack and _strip(stack[0]) in children else None

  # Module rows.
  ruled = {call.path for call in calls if type(call.module) in MODULE_RULES}
  ruled = {path for path in ruled if not any(path[:n] in ruled for n in range(1, len(path)))}
  rows: dict[str, _Row] = {}
  for name, child_calls in children.items():
    own = [call for call in child_calls if call.path == (name,)] or child_calls
    subtree = variables.get("params", {}).get(name, {})
    rows[name] = _Row(name=name, kind=type(own[-1].module).__name__, first=-1,
                      outputs=own[-1].outputs, params=_count(subtree))
  for leaf in leaves:
    name = owner(leaf.stack)
    if name is None:
      continue
    row = rows[name]
    row.first = leaf.position if row.first < 0 else min(row.first, leaf.position)
    path = tuple(_strip(s) for s in leaf.stack)
    inside_rule = any(path[:len(p)] == p for p in ruled)
    if not inside_rule:
      row.macs += leaf.macs
      row.connections += leaf.connections
    row.structural |= leaf.primitive.startswith(jaxpr_costs.STRUCTURAL_PREFIXES)
  for path in ruled:
    calls_here = [c for c in calls if c.path == path]
    macs = sum(MODULE_RULES[type(c.module)](c.module, c.inputs, c.outputs) for c in calls_here)
    rows[path[0]].macs += macs
    rows[path[0]].connections += macs
    rows[path[0]].structural = True
  for call in calls:
    if _has_bias(variables, call.path):
      rows[call.path[0]].connections += sum(jaxpr_costs.size(a) for a in call.outputs[:1])
  module_rows = [row for row in rows.values() if row.first >= 0 or row.params]

  # Function rows: root-level equations, cut at the model's intermediates and submodules.
  names_at = {}
  output_leaves = jax.tree_util.tree_flatten_with_path(out_shape)[0]
  if isinstance(out_shape, tuple) and len(out_shape) == 2 and isinstance(out_shape[1], dict):
    keyed = [(jax.tree_util.keystr(path[1:], simple=True, separator="/"), var)
             for (path, _), var in zip(output_leaves, jaxpr.outvars)]
    for key, var in keyed[len(jax.tree.leaves(out_shape[0])):]:
      if var in producer:
        names_at.setdefault(producer[var], []).append(key)
  main_output = jaxpr.outvars[0] if jaxpr.outvars else None
  module_positions = set()
  root_leaves: dict[int, list[jaxpr_costs.Leaf]] = {}
  for leaf in leaves:
    if owner(leaf.stack) is None:
      root_leaves.setdefault(leaf.position, []).append(leaf)
    else:
      module_positions.add(leaf.position)
  read: set = set()  # Parameters already counted in a function row.

  segments: list[_Row] = []
  current: _Row | None = None
  for position in range(len(jaxpr.eqns)):
    if position in module_positions:
      if current is not None:
        segments.append(current)
        current = None
      continue
    eqn = jaxpr.eqns[position]
    if position not in root_leaves and position not in names_at:
      continue  # Operations on constants only.
    if current is None:
      current = _Row(name="", kind="ops", first=position, outputs=[])
    for leaf in root_leaves.get(position, []):
      current.macs += leaf.macs
      current.connections += leaf.connections
      current.structural |= leaf.primitive.startswith(jaxpr_costs.STRUCTURAL_PREFIXES)
    for v in eqn.invars:
      if not isinstance(v, jex.Literal) and v in param_of and v not in read:
        read.add(v)
        current.params += jaxpr_costs.size(param_of[v][1])
    named = position in names_at or (main_output is not None and main_output in eqn.outvars)
    if named or not current.outputs or eqn.primitive.name not in jaxpr_costs.LAYOUT_PRIMITIVES:
      current.outputs = jaxpr_costs.avals([v.aval for v in eqn.outvars])  # Glue reshapes aside.
    if named:
      keys = names_at.get(position, ["output"])
      module_names = [k for k in keys if k in rows]
      current.name = (module_names or keys)[0]
      segments.append(current)
      current = None
  if current is not None:
    segments.append(current)

  # Merge: a segment named like a submodule joins it; elementwise-only segments join the row
  # before them; the rest are rows of their own.
  ordered = sorted(module_rows, key=lambda r: r.first)
  result: list[_Row] = []
  pending = sorted(ordered + segments, key=lambda r: (r.first, r.kind == "ops"))
  by_name = {row.name: row for row in module_rows}
  for row in pending:
    if row.kind != "ops":
      result.append(row)
      continue
    target = by_name.get(row.name)
    if target is not None:  # The submodule's output after its non-linearity.
      target.outputs = row.outputs or target.outputs
    elif not (row.structural or row.params or row.macs) and result:
      target = result[-1]  # Elementwise or layout operations: part of the layer before.
    if target is not None:
      target.macs += row.macs
      target.connections += row.connections
      target.params += row.params
      continue
    if row.structural or row.params or row.macs:
      if not row.name:
        row.name = f"ops after {result[-1].name}" if result else "input ops"
      result.append(row)
  return result


def layer_table(model: nn.Module | str, input_shape: Sequence[int] | None = None, *,
                method: str | None = None, dtype: Any = jnp.float32,
                **overrides: Any) -> list[LayerCost]:
  """The per-layer costs of a model, per example (conventions: `LayerCost`; layers: `_rows`).

  Args:
    model: a Linen module, or a name from `deepvision.zoo.names()`.
    input_shape: one example's shape (default: the model's `input_shape`, or `(n_visible,)`).
    method: the method to trace, e.g. 'hidden_probs' (default: `free_energy` for an energy-based
      model, which reads every parameter; `__call__` otherwise).
    dtype: the input's dtype.
    **overrides: fields of the zoo model when `model` is a name.

  Returns:
    One `LayerCost` per layer, in the order they run.
  """
  if isinstance(model, str):
    model = zoo.create(model, **overrides)
  elif overrides:
    raise ValueError(f"overrides {sorted(overrides)} apply to zoo names only; got a "
                     f"{type(model).__name__} module")
  if not isinstance(model, nn.Module):
    raise TypeError(f"model must be a flax.linen Module or a zoo name, got {model!r}")
  if input_shape is None:
    x = zoo.example_input(model)
    x = jax.ShapeDtypeStruct(x.shape, dtype)
  else:
    shape = tuple(input_shape)
    if not shape or not all(isinstance(d, (int, np.integer)) and d > 0 for d in shape):
      raise ValueError(f"input_shape must be positive ints (one example, no batch axis), got "
                       f"{input_shape!r}")
    x = jax.ShapeDtypeStruct((1, *shape), dtype)
  if method is None and hasattr(model, "free_energy"):
    method = "free_energy"  # The energy reads every parameter; the features may not (b_v).
  if method is not None and not callable(getattr(model, method, None)):
    raise ValueError(f"{type(model).__name__} has no method {method!r}")
  return [row.cost() for row in _rows(model, x, method)]


def forward_flops(model: nn.Module | str, **overrides: Any) -> int:
  """Floating-point operations of one example's forward pass: 2 × the multiply-adds `layer_table` counts
  (of the free energy for energy-based models, of the logits otherwise).

  Args:
    model: a Linen module, or a name from `deepvision.zoo.names()`.
    **overrides: fields of the zoo model when `model` is a name.
  """
  return 2 * total(layer_table(model, **overrides)).macs_forward
