"""Max pooling over non-overlapping windows with a cheap gradient, equal to `flax.linen.max_pool`.

For windows that tile the image (strides equal to the window, 'VALID' padding, or 'SAME' when
the window divides the image), each output is the maximum of its k_h·k_w inputs,

  y[b, h, w, c] = max_{a < k_h, e < k_w} x[b, h·k_h + a, w·k_w + e, c],

and the gradient flows to one input per window: the first maximum in row-major window order,
exactly as XLA's select-and-scatter does for `nn.max_pool`. XLA:CPU runs that select-and-scatter
as a reduce-window plus a scatter, about ten times slower than the forward pass (see
benchmarks/lenet5_notes.md). Here the forward pass also records which window position holds the
first maximum (an int32 per output), and the backward pass writes each output gradient to that
position with one elementwise select.

Any other configuration (overlapping windows, padding that adds cells) falls back to
`nn.max_pool`. NaN propagates to the output as in `nn.max_pool`.
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


def _window_slices(x: Array, window: tuple[int, int]) -> list[Array]:
  """The k_h·k_w strided views x[:, a::k_h, e::k_w] (row-major in (a, e)), cropped to whole windows."""
  kh, kw = window
  ho, wo = x.shape[1] // kh, x.shape[2] // kw
  return [x[:, a:ho * kh:kh, e:wo * kw:kw] for a in range(kh) for e in range(kw)]


_MODE = 'div'
def _first_max(x: Array, window: tuple[int, int]) -> tuple[Array, Array]:
  views = _window_slices(x, window)
  if _MODE == 'minred':
    y = views[0]
    for view in views[1:]:
      y = jnp.maximum(y, view)
    k = len(views)
    position = jnp.min(jnp.stack([jnp.where(v == y, i, k - 1) for i, v in enumerate(views)]), 0)
    return y, position.astype(jnp.int32)
  if _MODE == 'vred':
    kh, kw = window
    b, h, w, c = x.shape; ho, wo = h // kh, w // kw
    x6 = x[:, :ho * kh, :wo * kw].reshape(b, ho, kh, wo, kw, c)
    idx = (lax.broadcasted_iota(jnp.int32, x6.shape, 2) * kw
           + lax.broadcasted_iota(jnp.int32, x6.shape, 4))
    def comp(acc, new):
      (v0, i0), (v1, i1) = acc, new
      take = (v1 > v0) | ((v1 == v0) & (i1 < i0)) | ((v1 != v1) & ((v0 == v0) | (i1 < i0)))
      return jnp.where(take, v1, v0), jnp.where(take, i1, i0)
    y, pos = lax.reduce((x6, idx), (jnp.array(-jnp.inf, x.dtype), jnp.array(kh * kw, jnp.int32)), comp, (2, 4))
    return y, pos
  if _MODE == 'argmax':
    kh, kw = window
    b, h, w, c = x.shape; ho, wo = h // kh, w // kw
    x6 = x[:, :ho * kh, :wo * kw].reshape(b, ho, kh, wo, kw, c).transpose(0, 1, 3, 5, 2, 4)
    x6 = x6.reshape(b, ho, wo, c, kh * kw)
    return jnp.max(x6, -1), jnp.argmax(x6, -1).astype(jnp.int32)
  y = views[0]
  for view in views[1:]:
    y = jnp.maximum(y, view)
  position = jnp.full(y.shape, len(views) - 1, jnp.int32)
  for k in reversed(range(len(views) - 1)):
    position = jnp.where(views[k] == y, k, position)
  return y, position


@partial(jax.custom_vjp, nondiff_argnums=(1,))
def _tiled_max_pool(x: Array, window: tuple[int, int]) -> Array:
  if _MODE == 'vred':
    return _first_max(x, window)[0]
  views = _window_slices(x, window)
  y = views[0]
  for view in views[1:]:
    y = jnp.maximum(y, view)
  return y


def _tiled_max_pool_fwd(x: Array, window: tuple[int, int]):
  if _MODE == 'xy':
    y = _tiled_max_pool(x, window)
    return y, (x, y)
  y, position = _first_max(x, window)
  return y, (position, x.shape)


def _tiled_max_pool_bwd(window: tuple[int, int], residuals, g: Array):
  if _MODE == 'xy':
    x, y = residuals
    views = _window_slices(x, window)
    position = jnp.full(y.shape, len(views) - 1, jnp.int32)
    for k in reversed(range(len(views) - 1)):
      position = jnp.where(views[k] == y, k, position)
    shape = x.shape
  else:
    position, shape = residuals
  if _MODE == 'div':
    pf = position.astype(g.dtype)
    one = (pf >= 0).astype(g.dtype)
    g = g / one
    position = pf / one
  if _MODE == 'divg':
    one = (position >= 0).astype(g.dtype)
    g = g / one
  kh, kw = window
  b, ho, wo, c = position.shape
  a = lax.broadcasted_iota(position.dtype, (1, 1, kh, 1, kw, 1), 2)
  e = lax.broadcasted_iota(position.dtype, (1, 1, kh, 1, kw, 1), 4)
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

  Args:
    x: (N, H, W, C) maps.
    window: window size, an int or (height, width).
    strides: step between windows; defaults to `window`.
    padding: 'VALID', 'SAME' or ((top, bottom), (left, right)).
  """
  if x.ndim != 4:
    raise ValueError(f"max_pool expects NHWC maps (N, H, W, C), got shape {tuple(x.shape)}")
  window = _pair("window", window)
  strides = window if strides is None else _pair("strides", strides)
  if isinstance(padding, str) and padding not in ("VALID", "SAME"):
    raise ValueError(f"invalid max_pool padding {padding!r}; valid choices: VALID, SAME, or "
                     "((top, bottom), (left, right))")
  if is_tiled(x.shape, window, strides, padding):
    if x.shape[1] < window[0] or x.shape[2] < window[1]:
      raise ValueError(f"max_pool window {window} is larger than the {tuple(x.shape[1:3])} maps")
    return _tiled_max_pool(x, window)
  padding = padding if isinstance(padding, str) else tuple(tuple(p) for p in padding)
  return nn.max_pool(x, window, strides, padding)
