"""2-D convolution layer used by every convnet in the zoo, with the algorithm chosen per backend.

Same parameter layout as `flax.linen.Conv` (`kernel` in HWIO, `bias`). Both algorithms compute

  y[b, h, w, d] = Σ_{i, j, c} x_pad[b, h·s_h + i, w·s_w + j, c] · k[i, j, c, d] + bias[d]

for NHWC images x (zero-padded to x_pad) and a (k_h, k_w, C_in, C_out) kernel k: 'xla' by
`lax.conv_general_dilated` (Eigen on CPU, cuDNN on GPU), 'banded' as one matrix product against a
banded (Toeplitz) matrix per kernel row (`banded_conv2d`), which is faster on CPU for the few-channel
convolutions of small convnets (LeCun et al. 1998's LeNet-5; measurements in BUILD.md, "Benchmarks").
'auto' picks 'banded' on CPU for C_in ≤ `BANDED_MAX_IN_FEATURES`, 'xla' otherwise and on every other
backend. Mixed precision follows flax's convention, with the bias added in float32 (`add_bias`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from deepvision.registry import check_choice

Array = jax.Array
Padding = str | Sequence[tuple[int, int]]

IMPLEMENTATIONS = ("auto", "xla", "banded")

# Most input channels for which 'auto' uses 'banded' on CPU.
BANDED_MAX_IN_FEATURES = 8

# Compute dtypes a layer's `dtype` field accepts (None: float32, the parameters' dtype).
COMPUTE_DTYPES = ("float32", "bfloat16", "float16")


def compute_dtype(dtype: Any) -> np.dtype | None:
  """The canonical compute dtype for a layer's `dtype` field: None, or float32/bfloat16/float16.

  Accepts None, the names ('bfloat16') and the dtypes (`jnp.bfloat16`, `np.dtype('float16')`).

  Raises:
    ValueError: naming `dtype` and the choices, for anything else (float64, ints, bad names).
  """
  if dtype is None:
    return None
  try:
    canonical = jnp.dtype(dtype)
  except (TypeError, ValueError):
    canonical = None
  if canonical is None or canonical.name not in COMPUTE_DTYPES:
    raise ValueError(f"compute dtype {dtype!r} is not supported; valid choices: None (float32), "
                     f"{', '.join(COMPUTE_DTYPES)}")
  return canonical


def _pair(name: str, value: Sequence[int]) -> tuple[int, int]:
  pair = tuple(value)
  if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) and v >= 1 for v in pair):
    raise ValueError(f"convolution {name} must be two positive ints, got {value!r}")
  return int(pair[0]), int(pair[1])


def explicit_padding(in_size: tuple[int, int], kernel_size: tuple[int, int],
                     strides: tuple[int, int], padding: Padding) -> tuple[tuple[int, int], ...]:
  """((top, bottom), (left, right)) for 'SAME', 'VALID' or explicit pairs (as lax computes it)."""
  if isinstance(padding, str):
    check_choice("convolution padding", padding, ["SAME", "VALID"])
    return tuple(lax.padtype_to_pads(in_size, kernel_size, strides, padding))
  pads = tuple(tuple(int(v) for v in p) for p in padding)
  if len(pads) != 2 or any(len(p) != 2 for p in pads):
    raise ValueError(f"explicit convolution padding must be ((top, bottom), (left, right)), "
                     f"got {padding!r}")
  return pads


def choose_implementation(kernel_shape: Sequence[int], backend: str | None = None) -> str:
  """The algorithm 'auto' runs for a (k_h, k_w, C_in, C_out) kernel on `backend` (default: JAX's)."""
  backend = jax.default_backend() if backend is None else backend
  if backend == "cpu" and kernel_shape[2] <= BANDED_MAX_IN_FEATURES:
    return "banded"
  return "xla"


def width_tile(out_width: int, kernel_width: int, out_features: int) -> int:
  """Output columns per row of the banded product (t of `banded_conv2d`).

  Wider tiles copy each input into fewer rows of R (t_in / t times) but put more zeros in T
  (t_in / k_w times the direct multiply-adds). The rule: the smallest t with t ≥ k_w − 1 and
  t·C_out ≥ 24 (narrower products run far below the CPU's matrix speed), moved up to a divisor
  of W_o when one lies within a factor 2 (no ragged last tile). It picks the fastest tiles
  measured for LeNet-5 (the benchmark in BUILD.md): 28 columns × 6 maps → t = 4 (of 2, 3, 4, 7,
  14, 28), 10 columns × 16 maps → t = 5 (of 2, 3, 4, 5, 10).
  """
  smallest = min(out_width, max(kernel_width - 1, -(-24 // out_features), 1))
  for t in range(smallest, min(out_width, 2 * smallest) + 1):
    if out_width % t == 0:
      return t
  return smallest


def banded_matrix(kernel: Array, tile: int, stride: int) -> Array:
  """T of `banded_conv2d`: (k_h·t_in·C_in, tile·C_out), T[(i, p, c), (w, d)] = k[i, p − w·s, c, d]."""
  kh, kw, cin, cout = kernel.shape
  tile_in = (tile - 1) * stride + kw
  band = jnp.einsum("jpw,ijcd->ipcwd", _placement(kw, tile, stride, kernel.dtype), kernel)
  return band.reshape(kh * tile_in * cin, tile * cout)


def _placement(kernel_width: int, tile: int, stride: int, dtype) -> Array:
  """[j, p, w] = 1 where p = w·s + j: where kernel column j lands in the band."""
  tile_in = (tile - 1) * stride + kernel_width
  placement = np.zeros((kernel_width, tile_in, tile), np.float32)
  for j in range(kernel_width):
    placement[j, np.arange(tile) * stride + j, np.arange(tile)] = 1
  return jnp.asarray(placement, dtype)


def banded_conv2d(x: Array, kernel: Array, strides: tuple[int, int],
                  pads: tuple[tuple[int, int], ...], bias: Array | None = None,
                  tile: int | None = None) -> Array:
  """The 'banded' algorithm on NHWC x with explicit ((top, bottom), (left, right)) pads.

  For output row h of image b, let r_i be the padded input row x_pad[b, h·s_h + i] flattened to
  (W_p·C_in,). Then the flattened output row is

    y[b, h] = Σ_i r_i T_i,   T_i[(p, c), (w, d)] = k[i, p − w·s_w, c, d] if 0 ≤ p − w·s_w < k_w else 0,

  a banded (Toeplitz) matrix per kernel row. Stacking the k_h rows r_i side by side gives Y = R T with
  R of shape (B·H_o, k_h·W_p·C_in) and T the k_h matrices T_i stacked. To bound the zeros of T the
  output width is cut into tiles of t columns: R gets one row per tile, of the k_h·t_in·C_in inputs the
  tile reads (t_in = (t − 1)·s_w + k_w), and T shrinks to (k_h·t_in·C_in, t·C_out). The cost is
  t_in / k_w times the direct multiply-add count, in one large matrix product. Gradients are those of
  the product (R^T dY for T, dY T^T scattered back onto the rows for x), so no convolution runs in the
  backward pass either. Finite inputs give the same values as 'xla' up to float rounding; a NaN or an
  infinity in x reaches, through the zeros of T, the whole output tile row rather than only its
  k_h×k_w neighbourhood.
  """
  kh, kw, cin, cout = kernel.shape
  sh, sw = strides
  batch, height, width, _ = x.shape
  hp, wp = height + sum(pads[0]), width + sum(pads[1])
  ho, wo = (hp - kh) // sh + 1, (wp - kw) // sw + 1
  tile = width_tile(wo, kw, cout) if tile is None else tile
  tiles = -(-wo // tile)
  tile_in = (tile - 1) * sw + kw
  right = pads[1][1] + max(0, (tiles * tile - 1) * sw + kw - wp)  # Zeros for a ragged last tile.
  zero = jnp.zeros((), x.dtype)
  x = lax.pad(x, zero, ((0, 0, 0), (*pads[0], 0), (pads[1][0], right, 0), (0, 0, 0)))
  rows = []
  for i in range(kh):
    row = x[:, i:i + (ho - 1) * sh + 1:sh]  # (B, H_o, W_p', C_in): input row h·s_h + i.
    rows.append(jnp.stack([row[:, :, t * tile * sw:t * tile * sw + tile_in]
                           for t in range(tiles)], axis=2))  # (B, H_o, tiles, t_in, C_in)
  r = jnp.stack(rows, axis=3).reshape(batch * ho * tiles, kh * tile_in * cin)
  y = r @ banded_matrix(kernel, tile, sw)
  if bias is not None:
    y = add_bias(y, jnp.tile(bias, tile))  # On the (rows, t·C_out) product: its gradient sums wide rows.
  y = y.reshape(batch, ho, tiles * tile, cout)
  return y[:, :, :wo] if tiles * tile != wo else y


def bias_dtype(dtype: jnp.dtype) -> jnp.dtype:
  """The dtype a bias is added in for maps of `dtype`: their own, or float32 for bfloat16 / float16."""
  return jnp.promote_types(dtype, jnp.float32) if jnp.finfo(dtype).bits < 32 else dtype


def add_bias(y: Array, bias: Array) -> Array:
  """y + bias in the bias's dtype, rounded back to y's.

  Mixed precision follows flax's convention: `Conv(dtype=jnp.bfloat16)` stores its parameters in
  float32 and casts the input and kernel to bfloat16 for the product, so y is bfloat16 and the gradient
  with respect to the float32 parameters comes back in float32 (the transpose of the cast). One
  departure: for bfloat16 / float16 images the bias is added in float32 and the sum rounded once,
  because the bias gradient Σ_{b,h,w} ∂L/∂y[b, h, w, d] sums every output pixel, and XLA sums a
  bfloat16 array in bfloat16 (8 significant bits: a sum of thousands of terms stalls). `dtype=None`
  computes in the promoted dtype of the input and the parameters (float32).
  """
  if y.dtype == bias.dtype:
    return y + bias
  return (y.astype(bias.dtype) + bias).astype(y.dtype)


def conv2d(x: Array, kernel: Array, strides: Sequence[int] = (1, 1), padding: Padding = "SAME",
           bias: Array | None = None, implementation: str = "auto") -> Array:
  """y = x ⋆ kernel (+ bias) for NHWC x and an HWIO kernel, by the chosen algorithm.

  Args:
    x: (N, H, W, C_in) images.
    kernel: (k_h, k_w, C_in, C_out).
    strides: (s_h, s_w).
    padding: 'SAME', 'VALID' or ((top, bottom), (left, right)).
    bias: optional (C_out,) added to every output pixel.
    implementation: 'auto', 'xla' or 'banded' (module docstring, `banded_conv2d`).

  Returns:
    (N, H_o, W_o, C_out) in x's dtype. The kernel is cast to x's dtype; the bias is added in
    x's dtype, or in float32 for bfloat16 / float16 x (`add_bias`).
  """
  check_choice("convolution implementation", implementation, list(IMPLEMENTATIONS))
  if x.ndim != 4 or kernel.ndim != 4:
    raise ValueError(f"conv2d expects NHWC x and an HWIO kernel, got shapes {tuple(x.shape)} and "
                     f"{tuple(kernel.shape)}")
  if x.shape[-1] != kernel.shape[2]:
    raise ValueError(f"x has {x.shape[-1]} channels but the kernel expects {kernel.shape[2]} "
                     f"(kernel shape {tuple(kernel.shape)})")
  strides = _pair("strides", strides)
  kernel_size = tuple(kernel.shape[:2])
  pads = explicit_padding(tuple(x.shape[1:3]), kernel_size, strides, padding)
  out = [(n + lo + hi - k) // s + 1
         for n, (lo, hi), k, s in zip(x.shape[1:3], pads, kernel_size, strides)]
  if min(out) < 1:
    raise ValueError(f"a {kernel_size} kernel with padding {padding!r} leaves no output pixels "
                     f"of a {tuple(x.shape[1:3])} image")
  kernel = kernel.astype(x.dtype)
  bias = None if bias is None else bias.astype(bias_dtype(x.dtype))
  if implementation == "auto":
    implementation = choose_implementation(kernel.shape)
  if implementation == "banded":
    return banded_conv2d(x, kernel, strides, pads, bias)
  y = lax.conv_general_dilated(x, kernel, strides, pads, dimension_numbers=("NHWC", "HWIO", "NHWC"))
  return y if bias is None else add_bias(y, bias)


class Conv(nn.Module):
  """2-D convolution of NHWC images: y = x ⋆ kernel + bias.

  Attributes:
    features: number of output channels.
    kernel_size: (kh, kw).
    strides: (sh, sw).
    padding: 'VALID', 'SAME' or explicit ((top, bottom), (left, right)).
    use_bias: add a per-channel bias.
    kernel_init: initialiser of the (kh, kw, in, out) kernel.
    bias_init: initialiser of the bias.
    implementation: 'auto' (banded on CPU for small kernels, else XLA's), 'xla' or 'banded'.
    dtype: compute dtype (None: float32; or 'bfloat16' / 'float16'): the input and kernel are
      cast to it and so is the output; the bias is added in float32 (`add_bias`). The
      parameters are stored in float32.
  """

  features: int
  kernel_size: Sequence[int] = (3, 3)
  strides: Sequence[int] = (1, 1)
  padding: str | Sequence[tuple[int, int]] = "SAME"
  use_bias: bool = True
  kernel_init: Callable = nn.initializers.lecun_normal()
  bias_init: Callable = nn.initializers.zeros_init()
  implementation: str = "auto"
  dtype: Any = None

  def __post_init__(self):
    check_choice("Conv implementation", self.implementation, list(IMPLEMENTATIONS))
    compute_dtype(self.dtype)
    _pair("kernel_size", self.kernel_size)
    _pair("strides", self.strides)
    super().__post_init__()

  @nn.compact
  def __call__(self, x: Array) -> Array:
    kh, kw = self.kernel_size
    kernel = self.param("kernel", self.kernel_init, (kh, kw, x.shape[-1], self.features))
    bias = self.param("bias", self.bias_init, (self.features,)) if self.use_bias else None
    dtype = compute_dtype(self.dtype)
    if dtype is not None:
      x = x.astype(dtype)  # conv2d casts the kernel to x's dtype.
    return conv2d(x, kernel, self.strides, self.padding, bias, self.implementation)
