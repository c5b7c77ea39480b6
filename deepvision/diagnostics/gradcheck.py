"""Gradient check: reverse-mode `jax.grad` against central finite differences in float64.

The talk's first answer to "training diverges": the backward pass may be buggy, so check the
gradient numerically. For a scalar function f of a pytree θ (parameters and inputs alike) and
each checked element i of each leaf,

  numeric_i  = (f(θ + h e_i) − f(θ − h e_i)) / ((θ_i + h) − (θ_i − h)),
  analytic_i = ∂f/∂θ_i  from `jax.grad` (reverse mode, so `jax.custom_vjp` rules are the ones
               checked — such as the max-pool gradient of `deepvision.nn.fastpool`),
  error_i    = |analytic_i − numeric_i| / max(|analytic_i|, |numeric_i|, floor),

and element i passes when error_i ≤ rtol (`check_gradients`; a model's own objective: `zoo_check`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from deepvision import zoo
from deepvision.diagnostics.gradcheck_report import RETRY_FACTOR, ElementCheck, GradCheckReport, LeafCheck

Array = jax.Array

def _path_string(path: tuple) -> str:
  return jax.tree_util.keystr(path, simple=True, separator="/") or "<root>"


def _is_auto_image(path: tuple, leaf: Any) -> bool:
  """A 4-D leaf that is neither under a 'params' key nor a (convolution) 'kernel'."""
  names = [str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", "")))) for k in path]
  return np.ndim(leaf) == 4 and "params" not in names and (not names or names[-1] != "kernel")


def _border_indices(shape: tuple[int, ...], count: int, rng: np.random.Generator) -> np.ndarray:
  """Flat indices of up to `count` border pixels of NHWC `shape`.

  Corners first: the four corners of every (example, channel), or a random half of the
  budget of them if there are more. Then the other border pixels, taken in turn from the top,
  bottom, left and right edges (random order within an edge); then the remaining corners if
  the edges ran out.
  """
  n, h, w, c = shape
  corner_pixels = sorted({(i, j) for i in (0, h - 1) for j in (0, w - 1)})
  corners = [(b, i, j, ch) for b in range(n) for ch in range(c) for i, j in corner_pixels]
  if len(corners) > (count + 1) // 2:
    corners = [corners[k] for k in rng.permutation(len(corners))]
  chosen = set(corners[:(count + 1) // 2])
  sides = [[(0, j) for j in range(1, w - 1)], [(h - 1, j) for j in range(1, w - 1)],
           [(i, 0) for i in range(1, h - 1)], [(i, w - 1) for i in range(1, h - 1)]]
  queues = []
  for side in sides:
    pixels = [(b, i, j, ch) for b in range(n) for ch in range(c) for i, j in side]
    queues.append([pixels[k] for k in rng.permutation(len(pixels))])
  while len(chosen) < count and any(queues):
    for queue in queues:
      while queue and len(chosen) < count:
        pixel = queue.pop()
        if pixel not in chosen:
          chosen.add(pixel)
          break
  for corner in corners[(count + 1) // 2:]:
    if len(chosen) >= count:
      break
    chosen.add(corner)
  if not chosen:
    return np.zeros((0,), np.int64)
  return np.ravel_multi_index(tuple(np.array(sorted(chosen)).T), shape)


def _select(shape: tuple[int, ...], count: int, border: int, is_image: bool,
            rng: np.random.Generator) -> tuple[np.ndarray, int]:
  """(sorted flat indices to check, how many are border pixels) for one leaf."""
  size = math.prod(shape)
  picked = np.arange(size) if size <= count else rng.choice(size, count, replace=False)
  if not is_image:
    return np.sort(picked), 0
  edge = _border_indices(shape, border, rng)
  picked = np.union1d(picked, edge)
  _, h, w, _ = shape
  _, i, j, _ = np.unravel_index(picked, shape)
  on_border = int(np.sum((i == 0) | (i == h - 1) | (j == 0) | (j == w - 1)))
  return picked, on_border


def _relative_error(analytic: np.ndarray, numeric: np.ndarray, floor: float) -> np.ndarray:
  """|a − n| / max(|a|, |n|, floor); inf where that is not finite."""
  scale = np.maximum(np.maximum(np.abs(analytic), np.abs(numeric)), floor)
  with np.errstate(invalid="ignore"):
    error = np.abs(analytic - numeric) / scale
  return np.where(np.isfinite(error), error, np.inf)


def check_gradients(fn: Callable[..., Array], *args: Any, key: Array,
                    elements_per_leaf: int = 24, border_elements: int = 32,
                    image_leaves: str | Sequence[str] = "auto", step: float = 1e-5,
                    rtol: float = 1e-5, floor: float | None = None,
                    chunk_size: int = 64) -> GradCheckReport:
  """Compares the gradient of `fn(*args)` w.r.t. every leaf of `args` with central differences.

  In float64; the error measure is in the module docstring. The floor makes elements whose gradient is
  near zero (dead ReLUs, saturated softmax) pass or fail on their absolute error rtol·floor instead of on
  rounding noise. Everything runs in float64 inside `jax.enable_x64`, whatever the global flag: the
  leaves are cast to float64 there and the caller's arrays are left as they are.

  Example:
    >>> report = check_gradients(loss, {"params": params, "inputs": x}, key=jax.random.key(0))
    >>> print(report.format())
    >>> report = zoo_check("lenet5_tiny")       # the model's natural objective, params and inputs
    >>> assert report.ok, report.format()

  Tolerances. Defaults h = 1e-5, rtol = 1e-5, floor = 1e-3·max(1, |f(θ)|). Central differences err by
  O(h²·f‴) from truncation and by about ε·M/h from rounding (ε = 2.2e-16, M the size of the terms summed
  into f, not f itself). Kinks (ReLU, |x|, max-pool ties) within ~h of θ can fail an element: one that fails
  at h is evaluated again at h / 16 and accepted if that agrees within rtol (a wrong backward pass disagrees
  at every step); the report counts these as `rescued` per leaf. Measured accuracy: benchmarks/README.md.

  Which elements. Leaves with at most `elements_per_leaf` elements are checked completely; larger
  leaves on a random subset of that size drawn with the given key. Image leaves — NHWC arrays, by
  default every 4-D leaf outside a 'params' subtree — also get `border_elements` pixels on the
  image border: corners of every (example, channel) (up to half of that budget) and pixels from
  each of the four edges in turn. The talk stresses why: cuda-convnet once shipped a local
  contrast normalisation whose backward pass was wrong only at the image border, where a random
  subset rarely looks.

  Cost: two evaluations of f per element, batched with `jax.vmap` over `chunk_size` perturbations
  in one function compiled once (perturbations are inputs, not constants, so the retry at h / 16
  reuses it). Each call holds `chunk_size` perturbed copies of the flattened pytree and their
  activations: lower `chunk_size` for large models.

  Args:
    fn: scalar function of `args`; it must be traceable (it is jitted and vmapped).
    *args: pytrees of floating arrays (parameters, inputs) at which the gradient is checked.
      With one argument the leaf paths are its own ('params/conv1/kernel', 'inputs');
      with several they start with the argument's position ('0/conv1/kernel', '1').
    key: typed PRNG key that draws the subsets of large leaves.
    elements_per_leaf: elements checked per leaf (all of a leaf that has no more).
    border_elements: border pixels checked in addition on each image leaf.
    image_leaves: 'auto' (4-D leaves outside any 'params' subtree and not named 'kernel'),
      or the paths (as in the report, e.g. 'inputs') of the NHWC leaves whose borders are
      checked.
    step: the finite-difference step h.
    rtol: largest relative error that passes.
    floor: floor of the relative error's denominator; default 1e-3·max(1, |f(*args)|).
    chunk_size: perturbations evaluated per vmapped call.

  Returns:
    A `GradCheckReport`; `report.ok` tells whether every checked element passed.

  Raises:
    ValueError: for non-floating leaves, unknown `image_leaves` paths, bad counts or
      tolerances, a non-scalar or non-finite f.
  """
  if not (isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key)):
    raise TypeError(f"key must be a typed PRNG key such as jax.random.key(0), got {key!r}")
  for name, value in (("elements_per_leaf", elements_per_leaf), ("chunk_size", chunk_size)):
    if not isinstance(value, int) or value < 1:
      raise ValueError(f"{name} must be a positive int, got {value!r}")
  if not isinstance(border_elements, int) or border_elements < 0:
    raise ValueError(f"border_elements must be a non-negative int, got {border_elements!r}")
  for name, value in (("step", step), ("rtol", rtol)):
    if not value > 0:
      raise ValueError(f"{name} must be positive, got {value!r}")
  if floor is not None and not floor > 0:
    raise ValueError(f"floor must be positive or None, got {floor!r}")
  if not args:
    raise ValueError("check_gradients needs the arguments of fn: "
                     "check_gradients(fn, *args, key=...)")
  tree = args[0] if len(args) == 1 else args
  leaves_with_paths, treedef = jax.tree_util.tree_flatten_with_path(tree)
  if not leaves_with_paths:
    raise ValueError("check_gradients needs at least one leaf to differentiate; the arguments "
                     "have none")
  paths = [_path_string(path) for path, _ in leaves_with_paths]
  for path, (_, leaf) in zip(paths, leaves_with_paths):
    dtype = np.asarray(leaf).dtype if not hasattr(leaf, "dtype") else leaf.dtype
    if not jnp.issubdtype(dtype, jnp.floating):
      raise ValueError(f"leaf {path!r} has dtype {dtype}; only floating leaves can be checked "
                       "(close over integer data such as labels in fn instead)")
  if image_leaves == "auto":
    images = [_is_auto_image(path, leaf) for path, leaf in leaves_with_paths]
  else:
    if isinstance(image_leaves, str):
      image_leaves = [image_leaves]
    unknown = sorted(set(image_leaves) - set(paths))
    if unknown:
      raise ValueError(f"image_leaves {unknown} are not leaves of the tree; leaves: "
                       f"{', '.join(paths)}")
    images = [p in image_leaves for p in paths]
    for path, is_image, (_, leaf) in zip(paths, images, leaves_with_paths):
      if is_image and np.ndim(leaf) != 4:
        raise ValueError(f"image leaf {path!r} must be NHWC (4-D), got shape {np.shape(leaf)}")
  shapes = [tuple(np.shape(leaf)) for _, leaf in leaves_with_paths]
  sizes = [math.prod(s) for s in shapes]
  offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)

  # The subsets are drawn on the host (a device draw would compile once per leaf shape), from
  # generators seeded by the key's bits and the leaf's position.
  key_bits = np.asarray(jax.random.key_data(key)).ravel().tolist()
  selections = [_select(shape, elements_per_leaf, border_elements, is_image,
                        np.random.default_rng([*key_bits, i]))
                for i, (shape, is_image) in enumerate(zip(shapes, images))]

  # Flattened on the host: eager device ops would compile once per leaf shape.
  theta = np.concatenate([np.ravel(np.asarray(leaf, np.float64)) for _, leaf in leaves_with_paths])
  indices = np.concatenate([offsets[i] + sel for i, (sel, _) in enumerate(selections)])

  def unravel(vector: Array) -> Any:
    parts = [vector[offsets[i]:offsets[i + 1]].reshape(shapes[i]) for i in range(len(shapes))]
    return jax.tree_util.tree_unflatten(treedef, parts)

  def flat_fn(vector: Array) -> Array:
    value = jnp.asarray(fn(unravel(vector)) if len(args) == 1 else fn(*unravel(vector)))
    if value.shape != ():
      raise ValueError(f"fn must return a scalar, got shape {value.shape}")
    return value

  @jax.jit
  def perturbed_values(vector: Array, index: Array, delta: Array) -> Array:
    return jax.vmap(lambda i, d: flat_fn(vector.at[i].add(d)))(index, delta)

  def central_differences(flat: Array, index: np.ndarray, h: float) -> np.ndarray:
    """(f(θ + h e_i) − f(θ − h e_i)) / (actual step), for each flat index i."""
    both = np.concatenate([index, index])
    delta = np.concatenate([np.full(len(index), h), np.full(len(index), -h)])
    pad = -len(both) % chunk_size
    both = np.concatenate([both, np.zeros(pad, np.int64)])
    delta = np.concatenate([delta, np.zeros(pad)])
    values = np.concatenate([
        np.asarray(perturbed_values(flat, both[s:s + chunk_size], delta[s:s + chunk_size]))
        for s in range(0, len(both), chunk_size)])
    plus, minus = values[:len(index)], values[len(index):2 * len(index)]
    x = theta[index]
    return (plus - minus) / ((x + h) - (x - h))

  with jax.enable_x64(True):
    flat = jnp.asarray(theta)
    value, grad = jax.jit(jax.value_and_grad(flat_fn))(flat)
    value = float(value)
    if not math.isfinite(value):
      raise ValueError(f"fn(*args) = {value}: the gradient of a non-finite value cannot be checked")
    floor = 1e-3 * max(1.0, abs(value)) if floor is None else float(floor)
    analytic = np.asarray(grad)[indices]
    numeric = central_differences(flat, indices, step)
    error = _relative_error(analytic, numeric, floor)
    retry = np.flatnonzero(~(error <= rtol))  # NaN fails too.
    retry_numeric = np.full_like(numeric, np.nan)
    retry_error = np.full_like(error, np.inf)
    if len(retry):
      retry_numeric[retry] = central_differences(flat, indices[retry], step / RETRY_FACTOR)
      retry_error[retry] = _relative_error(analytic[retry], retry_numeric[retry], floor)
  rescued = ~(error <= rtol) & (retry_error <= rtol)
  failed = ~(error <= rtol) & ~(retry_error <= rtol)
  best = np.fmin(error, retry_error)
  best = np.where(np.isnan(best), np.inf, best)

  leaves = []
  start = 0
  for path, shape, (selection, on_border) in zip(paths, shapes, selections):
    part = slice(start, start + len(selection))
    start += len(selection)
    local_best = best[part]
    worst = int(np.argmax(local_best)) if len(selection) else 0
    unravel_index = lambda flat_index, shape=shape: tuple(  # noqa: E731
        int(v) for v in np.unravel_index(int(flat_index), shape))
    failures = tuple(
        ElementCheck(unravel_index(selection[k]), float(analytic[part][k]),
                     float(numeric[part][k]), float(retry_numeric[part][k]),
                     float(local_best[k]))
        for k in np.flatnonzero(failed[part]))
    leaves.append(LeafCheck(
        path=path, shape=shape, checked=len(selection), border=on_border,
        max_rel_error=float(local_best[worst]) if len(selection) else 0.0,
        worst_index=unravel_index(selection[worst]) if len(selection) else (),
        rescued=int(np.sum(rescued[part])), failures=failures))
  return GradCheckReport(value=value, leaves=tuple(leaves), step=step, rtol=rtol, floor=floor)


def natural_objective(model: nn.Module, key: Array, batch_size: int = 2,
                      params: Any = None) -> tuple[Callable[[Any], Array], dict[str, Any]]:
  """The scalar objective a model is trained on, on a small random batch.

  Energy-based models (a `free_energy` method): mean free energy of inputs uniform in [0, 1)
  (valid for binary and real-valued visible units alike). Autoencoders (an `objective` method): their
  training objective, reconstruction of the inputs (uniform in [0, 1)) plus the variant's penalty, with the
  inputs as both the target and the encoded input (so their gradient has both paths). Classifiers: mean softmax
  cross-entropy of `model.apply(variables, x, train=False)[0]` against random labels, x
  standard normal of the model's input shape.

  Args:
    model: a Linen module with `input_shape` or `n_visible`.
    key: typed PRNG key for the parameters, the inputs and the labels.
    batch_size: examples in the batch.
    params: parameters to check at (default: `model.init`'s).

  Returns:
    (objective, tree): objective(tree) is the scalar, tree = {'params': ..., 'inputs': x}.
  """
  if not isinstance(batch_size, int) or batch_size < 1:
    raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
  shape = (batch_size, *zoo.example_input(model).shape[1:])
  autoencoder = hasattr(model, "objective")
  energy = hasattr(model, "free_energy") or autoencoder
  method = "free_energy" if hasattr(model, "free_energy") else None

  def draw(key: Array, params: Any) -> tuple[Any, Array, Array | None]:
    """Inputs, labels and (unless given) parameters, in one compiled function."""
    init_key, input_key, label_key = jax.random.split(key, 3)
    if energy:
      x = jax.random.uniform(input_key, shape)
    else:
      x = jax.random.normal(input_key, shape)
    if params is None:
      params = model.init(init_key, x, method=method)["params"]
    if energy:
      return params, x, None
    logits = jax.eval_shape(lambda: model.apply({"params": params}, x, train=False)[0])
    return params, x, jax.random.randint(label_key, (batch_size,), 0, logits.shape[-1])

  params, x, labels = jax.jit(draw)(key, params)
  if autoencoder:

    def objective(tree: dict[str, Any]) -> Array:
      x = tree["inputs"]
      return model.apply({"params": tree["params"]}, x, x, method="objective")[0]

  elif energy:

    def objective(tree: dict[str, Any]) -> Array:
      return jnp.mean(model.apply({"params": tree["params"]}, tree["inputs"], method=method))

  else:

    def objective(tree: dict[str, Any]) -> Array:
      out = model.apply({"params": tree["params"]}, tree["inputs"], train=False)[0]
      return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(out, labels))

  return objective, {"params": params, "inputs": x}


def zoo_check(name: str, *, key: Array | None = None, params: Any = None, batch_size: int = 2,
              elements_per_leaf: int = 24, border_elements: int = 32, rtol: float = 1e-5,
              **overrides: Any) -> GradCheckReport:
  """Checks the gradient of zoo model `name`'s natural objective w.r.t. parameters and inputs.

  See `natural_objective` for the objective. The keyword arguments of this function are the
  check's options; any other keyword overrides a field of the model (`zoo.create`).

  Args:
    name: a name from `deepvision.zoo.names()`.
    key: typed PRNG key, split into keys for the parameters and the batch, and for the
      subsets of elements. The default, `jax.random.key(0, impl="rbg")`, compiles the
      initialisers several times faster on CPU than the default threefry keys, whose compile
      time would dominate a small check.
    params: parameters to check at, such as a trained model's (default: fresh ones).
    batch_size: examples in the random batch.
    elements_per_leaf, border_elements, rtol: as in `check_gradients`.
    **overrides: model fields, e.g. `input_shape=(16, 16, 1)`.

  Returns:
    The `GradCheckReport` (leaves 'params/...' and 'inputs').
  """
  model = zoo.create(name, **overrides)
  key = jax.random.key(0, impl="rbg") if key is None else key
  objective_key, subset_key = jax.random.split(key)
  objective, tree = natural_objective(model, objective_key, batch_size, params)
  return check_gradients(objective, tree, key=subset_key, elements_per_leaf=elements_per_leaf,
                         border_elements=border_elements, rtol=rtol)
