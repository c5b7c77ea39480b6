"""Max pooling over non-overlapping windows with a cheap gradient, equal to `flax.linen.max_pool`.

For windows that tile the image (strides equal to the window, with 'VALID' padding, or 'SAME'
when the window divides the image), each output is the maximum of its k_h·k_w inputs,

  y[b, h, w, c] = max_{a < k_h, e < k_w} x[b, h·k_h + a, w·k_w + e, c],

and the gradient flows to one input per window: the first maximum in row-major (a, e) order,
as XLA's select-and-scatter does for `nn.max_pool`. Here the forward pass records the position
a·k_w + e of that maximum and the backward pass routes each output gradient there with one select
(`max_pool`); other configurations fall back to `nn.max_pool`.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

Array = jax.Array
Size = int | Sequence[int]
Padding = str | Sequence[tuple[int, int]]


def _pair(name: str, value: Size) -> tuple[int, int]:
  pair = (value, value) if isinstance(value, int) else tuple(value)
  if len(pair) != 2 or not all(isinstance(v, int) and v >= 1 for v in pair):
    raise ValueError(f"max_pool {name} must be a positive int or a pair of them, got {value!r}")
  return pair


def materialize(x: Array) -> Array:
  """x, unchanged, computed once by XLA:CPU rather than inside each consumer.

  XLA:CPU removes `lax.optimization_barrier` before fusing, and fuses cheap elementwise
  producers into every consumer, once per element the consumer reads. An upsampling consumer
  reads each element k_h·k_w times, so a long producer (the previous layer's gradient) would run
  k_h·k_w times. Division is an operation XLA will not duplicate that way, so x / 1, with a 1
  the compiler cannot fold, ends the chain. x / 1 == x exactly for every float (inf, NaN, -0).
  """
  one = ((x != x) | (x == x)).astype(x.dtype)
  return x / one


def _windows(x: Array, window: tuple[int, int]) -> Array:
  """(B, H_o, W_o, C, k_h·k_w): each window's inputs in row-major (a, e) order."""
  kh, kw = window
  b, h, w, c = x.shape
  ho, wo = h // kh, w // kw
  x = x[:, :ho * kh, :wo * kw].reshape(b, ho, kh, wo, kw, c)
  return x.transpose(0, 1, 3, 5, 2, 4).reshape(b, ho, wo, c, kh * kw)


def _first_max(windows: Array) -> tuple[Array, Array]:
  """(max, index of the first max) over the last axis in one pass; NaN counts as the largest."""
  index = lax.broadcasted_iota(jnp.int32, windows.shape, windows.ndim - 1)

  def take_first(a, b):
    (va, ia), (vb, ib) = a, b
    b_wins = (vb > va) | ((vb != vb) & (va == va)) | (((vb == va) | ((vb != vb) & (va != va)))
                                                       & (ib < ia))
    return lax.select(b_wins, vb, va), lax.select(b_wins, ib, ia)

  init = (jnp.array(-jnp.inf, windows.dtype), jnp.array(windows.shape[-1], jnp.int32))
  return lax.reduce((windows, index), init, take_first, (windows.ndim - 1,))


@partial(jax.custom_vjp, nondiff_argnums=(1,))
def _tiled_max_pool(x: Array, window: tuple[int, int]) -> Array:
  return jnp.max(_windows(x, window), axis=-1)


def _tiled_max_pool_fwd(x: Array, window: tuple[int, int]):
  y, position = _first_max(_windows(x, window))
  return y, (position, x.shape)


def _tiled_max_pool_bwd(window: tuple[int, int], residuals, g: Array):
  position, shape = residuals
  kh, kw = window
  b, ho, wo, c = position.shape
  g = materialize(g)
  a = lax.broadcasted_iota(jnp.int32, (1, 1, kh, 1, kw, 1), 2)
  e = lax.broadcasted_iota(jnp.int32, (1, 1, kh, 1, kw, 1), 4)
  hit = position[:, :, None, :, None, :] == a * kw + e
  dx = jnp.where(hit, g[:, :, None, :, None, :], jnp.zeros((), g.dtype))
  dx = dx.reshape(b, ho * kh, wo * kw, c)
  if dx.shape[1:3] != tuple(shape[1:3]):  # Cells past the last whole window get no gradient.
    dx = jnp.pad(dx, ((0, 0), (0, shape[1] - ho * kh), (0, shape[2] - wo * kw), (0, 0)))
  return (dx,)


_tiled_max_pool.defvjp(_tiled_max_pool_fwd, _tiled_max_pool_bwd)


def is_tiled(shape: Sequence[int], window: Size, strides: Size | None = None,
             padding: Padding = "VALID") -> bool:
  """Whether the fast path applies: windows that do not overlap and padding that adds no cells."""
  window = _pair("window", window)
  strides = window if strides is None else _pair("strides", strides)
  if strides != window:
    return False
  if isinstance(padding, str):
    if padding == "VALID":
      return True
    return padding == "SAME" and all(n % k == 0 for n, k in zip(shape[1:3], window))
  return all(v == 0 for pair in padding for v in pair)


def max_pool(x: Array, window: Size = 2, strides: Size | None = None,
             padding: Padding = "VALID") -> Array:
  """`nn.max_pool(x, window, strides, padding)` for NHWC x, fast when the windows tile the image.

  XLA:CPU runs `nn.max_pool`'s select-and-scatter gradient as a reduce-window plus a scatter, about ten
  times slower than the forward pass (see the LeNet-5 benchmark in BUILD.md). The fast path's forward
  pass also records the window position a·k_w + e of the first maximum (an `argmax`), and its backward
  pass writes each output gradient to that position with one elementwise select.

  Any other configuration (overlapping windows, padding that adds cells, integer maps) falls back
  to `nn.max_pool`. NaN propagates to the output as in `nn.max_pool`. The fast path defines its
  gradient with `jax.custom_vjp`, so it supports reverse mode (`grad`, `vjp`) but not forward mode
  (`jvp`, `jacfwd`); use `nn.max_pool` where forward-mode derivatives are needed.

  Args:
    x: (N, H, W, C) maps.
    window: window size, an int or (height, width).
    strides: step between windows; defaults to `window`.
    padding: 'VALID', 'SAME' or ((top, bottom), (left, right)).

  Returns:
    The pooled maps, with the same values and gradients as `nn.max_pool`.
  """
  if x.ndim != 4:
    raise ValueError(f"max_pool expects NHWC maps (N, H, W, C), got shape {tuple(x.shape)}")
  window = _pair("window", window)
  strides = window if strides is None else _pair("strides", strides)
  if isinstance(padding, str) and padding not in ("VALID", "SAME"):
    raise ValueError(f"invalid max_pool padding {padding!r}; valid choices: VALID, SAME, or "
                     "((top, bottom), (left, right))")
  if is_tiled(x.shape, window, strides, padding) and jnp.issubdtype(x.dtype, jnp.floating):
    if x.shape[1] < window[0] or x.shape[2] < window[1]:
      raise ValueError(f"max_pool window {window} is larger than the {tuple(x.shape[1:3])} maps")
    return _tiled_max_pool(x, window)
  padding = padding if isinstance(padding, str) else tuple(tuple(p) for p in padding)
  return nn.max_pool(x, window, strides, padding)
