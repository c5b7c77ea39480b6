"""2-D convolution layer used by every convnet in the zoo, with the algorithm chosen per backend.

Same parameter layout as `flax.linen.Conv` (`kernel` in HWIO, `bias`). Both algorithms compute

  y[b, h, w, d] = Σ_{i, j, c} x_pad[b, h·s_h + i, w·s_w + j, c] · k[i, j, c, d] + bias[d]

for NHWC images x (zero-padded to x_pad) and a (k_h, k_w, C_in, C_out) kernel k:

* 'xla': `lax.conv_general_dilated`, XLA's own convolution (Eigen on CPU, cuDNN on GPU).
* 'banded': one matrix product per layer. For output row h of image b, let r_i be the padded
  input row x_pad[b, h·s_h + i] flattened to (W_p·C_in,). Then the flattened output row is

    y[b, h] = Σ_i r_i T_i,   T_i[(p, c), (w, d)] = k[i, p − w·s_w, c, d] if 0 ≤ p − w·s_w < k_w
                                                  else 0,

  a banded (Toeplitz) matrix per kernel row. Stacking the k_h rows r_i side by side gives
  Y = R T with R of shape (B·H_o, k_h·W_p·C_in) and T the k_h matrices T_i stacked. To bound
  the zeros of T the output width is cut into tiles of t columns: R gets one row per tile, of
  the k_h·t_in·C_in inputs the tile reads (t_in = (t − 1)·s_w + k_w), and T shrinks to
  (k_h·t_in·C_in, t·C_out). The cost is t_in / k_w times the direct multiply-add count, in
  one large matrix product instead of XLA:CPU's convolution, which is slow for the few-channel
  convolutions of small convnets (LeNet-5 on MNIST: see the benchmarks in BUILD.md). Gradients
  are those of the product (R^T dY for T, dY T^T scattered back onto the rows for x), so no
  convolution runs in the backward pass either.

'auto' picks 'banded' on CPU for convolutions of few input channels (C_in at most
`BANDED_MAX_IN_FEATURES`), where a training step of the layer (forward and both gradients,
batch 64) measured 1.4-5× faster than with 'xla' (1 → 6 and 1 → 32 maps of 28×28, 3 → 32 of
32×32, 6 → 16 of 14×14), and 'xla' otherwise and on every other backend: with 16-64 input
channels 'xla' measured 1.1-4× faster, except about even for 32 → 64 maps of 12×12.

Finite inputs give the same values with either algorithm up to float rounding. A NaN or an
infinity in x reaches, through the zeros of T, the whole output tile row rather than only its
k_h×k_w neighbourhood.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

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
  """Output columns per row of the banded product (t of the module docstring).

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
  """T of the module docstring: (k_h·t_in·C_in, tile·C_out), T[(i, p, c), (w, d)] = k[i, p − w·s, c, d]."""
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
  """The 'banded' algorithm (module docstring) on NHWC x with explicit ((top, bottom), (left, right)) pads."""
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
    y = y + jnp.tile(bias, tile)  # Bias on the (rows, t·C_out) product: its gradient sums wide rows.
  y = y.reshape(batch, ho, tiles * tile, cout)
  return y[:, :, :wo] if tiles * tile != wo else y


def conv2d(x: Array, kernel: Array, strides: Sequence[int] = (1, 1), padding: Padding = "SAME",
           bias: Array | None = None, implementation: str = "auto") -> Array:
  """y = x ⋆ kernel (+ bias) for NHWC x and an HWIO kernel, by the chosen algorithm.

  Args:
    x: (N, H, W, C_in) images.
    kernel: (k_h, k_w, C_in, C_out).
    strides: (s_h, s_w).
    padding: 'SAME', 'VALID' or ((top, bottom), (left, right)).
    bias: optional (C_out,) added to every output pixel.
    implementation: 'auto', 'xla' or 'banded' (module docstring).

  Returns:
    (N, H_o, W_o, C_out) in x's dtype.
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
  bias = None if bias is None else bias.astype(x.dtype)
  if implementation == "auto":
    implementation = choose_implementation(kernel.shape)
  if implementation == "banded":
    return banded_conv2d(x, kernel, strides, pads, bias)
  y = lax.conv_general_dilated(x, kernel, strides, pads, dimension_numbers=("NHWC", "HWIO", "NHWC"))
  return y if bias is None else y + bias


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
  """

  features: int
  kernel_size: Sequence[int] = (3, 3)
  strides: Sequence[int] = (1, 1)
  padding: str | Sequence[tuple[int, int]] = "SAME"
  use_bias: bool = True
  kernel_init: Callable = nn.initializers.lecun_normal()
  bias_init: Callable = nn.initializers.zeros_init()
  implementation: str = "auto"

  def __post_init__(self):
    check_choice("Conv implementation", self.implementation, list(IMPLEMENTATIONS))
    _pair("kernel_size", self.kernel_size)
    _pair("strides", self.strides)
    super().__post_init__()

  @nn.compact
  def __call__(self, x: Array) -> Array:
    kh, kw = self.kernel_size
    kernel = self.param("kernel", self.kernel_init, (kh, kw, x.shape[-1], self.features))
    bias = self.param("bias", self.bias_init, (self.features,)) if self.use_bias else None
    return conv2d(x, kernel, self.strides, self.padding, bias, self.implementation)
