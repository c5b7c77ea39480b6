"""Convolutional networks of the talk: LeNet-5 (1998 and modern), Jarrett's multi-stage net, and
Krizhevsky's cuda-convnet CIFAR-10 net.

LeCun, Bottou, Bengio & Haffner, "Gradient-based learning applied to document recognition", Proc. IEEE
1998; Jarrett, Kavukcuoglu, Ranzato & LeCun, "What is the best multi-stage architecture for object
recognition?", ICCV 2009. Every model has an `input_shape` (H, W, C) field; `__call__(x, *, train)` checks
the images (NHWC, floating, that shape) before any compute and returns `(logits, intermediates)`, names
such as 'stage1/conv', 'stage1/lcn', 'stage1/pool', 'features' mapped to activations. Dropout draws from
the 'dropout' RNG stream; only `params` are kept. Every convolution is a `deepvision.nn.conv.Conv`.

Mixed precision (flax's convention): `dtype` is the compute dtype (None: float32, nothing cast; 'bfloat16',
'float16'), to which convolutions and dense layers cast inputs and parameters, so activations are in
`dtype`; parameters, their gradients, the local statistics of LCN and response normalisation, LeNet-5's
RBF distances and the returned logits stay float32. Per-map parameters applied at every pixel (convolution
biases, gains g, LeNet's S-layer coefficients) are applied in float32 and rounded to `dtype`: their
gradients sum over every pixel of the batch, which in bfloat16 would stall.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from deepvision.nn import init as inits
from deepvision.nn import lcn as lcn_lib
from deepvision.nn import pooling
from deepvision.nn.conv import Conv, bias_dtype, compute_dtype
from deepvision.registry import check_choice

Array = jax.Array
Intermediates = dict[str, Array]

RECTIFICATIONS = ("relu", "abs", "tanh", "tanh_abs", "none")
NORMS = ("lrn", "lcn", "none")


def check_images(model: str, x: Any, input_shape: Sequence[int]) -> Array:
  """Returns x as an array, or raises ValueError naming the expected (batch, H, W, C) float input."""
  x = jnp.asarray(x)
  expected = tuple(input_shape)
  if x.ndim != 4 or tuple(x.shape[1:]) != expected or not jnp.issubdtype(x.dtype, jnp.floating):
    raise ValueError(f"{model} expects images of shape (batch, {', '.join(map(str, expected))}), "
                     f"float; got {tuple(x.shape)} {x.dtype}")
  return x


def float32_logits(logits: Array, dtype: Any) -> Array:
  """The logits in float32 when computing in a lower precision (softmax and loss in float32)."""
  return logits if dtype is None else logits.astype(jnp.float32)


def scaled_tanh(x: Array) -> Array:
  """LeCun's squashing function f(a) = 1.7159 tanh(2a/3): f(±1) ≈ ±1, f'' peaks at ±1.

  From LeCun, Bottou, Orr & Müller, "Efficient BackProp" (1998), §4.4.
  """
  return 1.7159 * jnp.tanh(x * (2.0 / 3.0))


# ---------------------------------------------------------------------------------------------
# LeNet-5, LeCun, Bottou, Bengio & Haffner, "Gradient-based learning applied to document
# recognition", Proc. IEEE 1998.

# Table I of the paper: the S2 maps each C3 map reads. Maps 0-5 read 3 contiguous maps, 6-11
# read 4 contiguous maps, 12-14 read 4 non-contiguous maps, map 15 reads all six (60 links).
C3_TABLE = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (0, 4, 5), (0, 1, 5),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (0, 3, 4, 5), (0, 1, 4, 5), (0, 1, 2, 5),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)


def rbf_codes(num_classes: int = 10, dim: int = 84) -> np.ndarray:
  """Fixed ±1 target codes of the RBF output layer, code[k, j] = (−1)^popcount((k + 1) & j).

  The paper draws stylised 7×12 bitmaps of the characters; any well-separated fixed ±1 codes
  play the same role. These are rows 1..K of the 128×128 Sylvester–Hadamard matrix restricted
  to the first 84 columns: two codes differ in at least 40 of the 84 places.
  """
  if not 1 <= num_classes <= 127 or not 1 <= dim <= 128:
    raise ValueError(f"rbf_codes supports 1..127 classes and 1..128 dims, got num_classes="
                     f"{num_classes}, dim={dim}")
  parity = [[bin((k + 1) & j).count("1") % 2 for j in range(dim)] for k in range(num_classes)]
  return (1 - 2 * np.array(parity)).astype(np.float32)


class Subsampling(nn.Module):
  """LeNet's S layer: y_c = coef_c · Σ_{window} x_c + bias_c (2 parameters per map).

  With a bfloat16 / float16 `dtype` the window sums are in that dtype and the affine map in
  float32 (the gradients of coef and bias sum every pixel), rounded back to `dtype`.
  """

  window: int = 2
  dtype: Any = None

  @nn.compact
  def __call__(self, x: Array) -> Array:
    maps = x.shape[-1]
    coef = self.param("coef", inits.lecun1998_uniform(fan_in=self.window**2), (maps,))
    bias = self.param("bias", nn.initializers.zeros_init(), (maps,))
    dtype = compute_dtype(self.dtype)
    if dtype is not None:
      x = x.astype(dtype)
    total = pooling.avg_pool(x, self.window) * self.window**2
    affine = bias_dtype(x.dtype)
    return (total * coef.astype(affine) + bias.astype(affine)).astype(x.dtype)


class PartialConv(nn.Module):
  """Convolution where output map j sees only the input maps `table[j]` (LeNet's C3).

  Only the connected kernels are stored: output map j owns a (k, k, len(table[j]), 1) kernel
  and one bias, so the parameter count is Σ_j (k²·|table[j]| + 1).
  """

  table: Sequence[Sequence[int]]
  kernel_size: int = 5
  dtype: Any = None

  @nn.compact
  def __call__(self, x: Array) -> Array:
    k = self.kernel_size
    outputs = [
        Conv(1, (k, k), padding="VALID", kernel_init=inits.lecun1998_uniform(), dtype=self.dtype,
             name=f"map{j}")(x[..., list(inputs)])
        for j, inputs in enumerate(self.table)]
    return jnp.concatenate(outputs, axis=-1)


class LeNet5_1998(nn.Module):  # noqa: N801 (the year is part of the name)
  """LeNet-5 exactly as in LeCun et al. 1998: 60,000 trainable parameters.

  32×32×1 → C1 6@5×5 (156) → S2 (12) → C3 16@5×5 with Table I (1,516) → S4 (32) →
  C5 120@5×5 (48,120) → F6 84 (10,164) → RBF output. Every layer but the output is followed by
  1.7159 tanh(2a/3); weights start uniform in ±2.4/fan_in. The RBF output unit k computes
  ‖f − c_k‖² to a fixed ±1 code c_k (`rbf_codes`, not a parameter); logits = −‖f − c_k‖², so
  softmax cross-entropy on them is the paper's discriminative criterion (its eq. 9 without
  the e^−j "rubbish class" term).
  These logits span hundreds, so the gradients are large: SGD with momentum trains it at a
  learning rate near 1e-3, where 2e-2 saturates the units.

  Attributes:
    num_classes: number of RBF output units.
    input_shape: (H, W, C) of the images given to `__call__`.
    pad: pixels of `pad_value` added on each side before C1; the padded image must be 32×32
      (the paper pads 28×28 MNIST digits by 2: input_shape=(28, 28, 1), pad=2).
    pad_value: value of the padding (the paper's background level is −0.1).
    dtype: compute dtype, None (float32), 'bfloat16' or 'float16' (module docstring); the RBF
      distances and the logits are float32.
  """

  num_classes: int = 10
  input_shape: tuple[int, int, int] = (32, 32, 1)
  pad: int = 0
  pad_value: float = 0.0
  dtype: Any = None

  def __post_init__(self):
    compute_dtype(self.dtype)
    height, width = self.input_shape[0] + 2 * self.pad, self.input_shape[1] + 2 * self.pad
    if (height, width) != (32, 32):
      raise ValueError(f"LeNet5_1998 needs 32×32 images after padding; input_shape="
                       f"{tuple(self.input_shape)} with pad={self.pad} gives {height}×{width}")
    rbf_codes(self.num_classes)
    super().__post_init__()

  @nn.compact
  def __call__(self, x: Array, *, train: bool = False) -> tuple[Array, Intermediates]:
    del train  # No dropout in the 1998 network.
    x = check_images(type(self).__name__, x, self.input_shape)
    p = self.pad
    x = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), constant_values=self.pad_value)
    init = inits.lecun1998_uniform()
    dtype = compute_dtype(self.dtype)
    acts: Intermediates = {}
    h = acts["C1"] = scaled_tanh(Conv(6, (5, 5), padding="VALID", kernel_init=init, dtype=dtype,
                                      name="C1")(x))
    h = acts["S2"] = scaled_tanh(Subsampling(dtype=dtype, name="S2")(h))
    h = acts["C3"] = scaled_tanh(PartialConv(C3_TABLE, dtype=dtype, name="C3")(h))
    h = acts["S4"] = scaled_tanh(Subsampling(dtype=dtype, name="S4")(h))
    h = acts["C5"] = scaled_tanh(Conv(120, (5, 5), padding="VALID", kernel_init=init, dtype=dtype,
                                      name="C5")(h))
    h = h.reshape(h.shape[0], -1)
    f = acts["F6"] = acts["features"] = scaled_tanh(
        nn.Dense(84, kernel_init=init, dtype=dtype, name="F6")(h))
    f = float32_logits(f, dtype)  # ‖f − c_k‖² spans hundreds: too coarse in bfloat16.
    codes = jnp.asarray(rbf_codes(self.num_classes), f.dtype)
    logits = -jnp.sum((f[:, None, :] - codes[None]) ** 2, axis=-1)
    return logits, acts


class LeNet5(nn.Module):
  """Modern LeNet-5: ReLU, max pooling, a full C3 (the benchmark network against PyTorch).

  28×28×1 → conv 5×5 6 'SAME' → relu → max pool 2 → conv 5×5 16 'VALID' → relu → max pool 2 →
  dense 120 → relu → dense 84 → relu → dense 10: 61,706 parameters with the defaults.

  Attributes:
    conv_features: output maps of the two convolutions.
    hidden: sizes of the hidden dense layers.
    num_classes: number of outputs.
    input_shape: (H, W, C) of the images; H and W must be at least 12.
    dtype: compute dtype, None (float32), 'bfloat16' or 'float16' (module docstring).
  """

  conv_features: tuple[int, int] = (6, 16)
  hidden: tuple[int, ...] = (120, 84)
  num_classes: int = 10
  input_shape: tuple[int, int, int] = (28, 28, 1)
  dtype: Any = None

  def __post_init__(self):
    compute_dtype(self.dtype)
    if len(self.conv_features) != 2:
      raise ValueError(f"LeNet5 has two convolutions; conv_features={self.conv_features!r}")
    if min(self.input_shape[:2]) < 12:
      raise ValueError(f"LeNet5 needs images of at least 12×12; input_shape={self.input_shape!r}")
    super().__post_init__()

  @nn.compact
  def __call__(self, x: Array, *, train: bool = False) -> tuple[Array, Intermediates]:
    del train  # No dropout.
    x = check_images(type(self).__name__, x, self.input_shape)
    relu_init = inits.kernel_init("relu")
    dtype = compute_dtype(self.dtype)
    acts: Intermediates = {}
    h = x
    for i, (features, padding) in enumerate(zip(self.conv_features, ("SAME", "VALID")), start=1):
      h = acts[f"stage{i}/conv"] = Conv(features, (5, 5), padding=padding, kernel_init=relu_init,
                                        dtype=dtype, name=f"conv{i}")(h)
      h = acts[f"stage{i}/pool"] = pooling.max_pool(nn.relu(h), 2)
    h = acts["features"] = h.reshape(h.shape[0], -1)
    for i, width in enumerate(self.hidden, start=1):
      h = acts[f"hidden{i}"] = nn.relu(
          nn.Dense(width, kernel_init=relu_init, dtype=dtype, name=f"hidden{i}")(h))
    logits = nn.Dense(self.num_classes, kernel_init=inits.kernel_init("linear"), dtype=dtype,
                      name="output")(h)
    return float32_logits(logits, dtype), acts


def _per_stage(field: str, value: Any, stages: int) -> tuple:
  """Broadcasts a scalar field to one value per stage, or checks a sequence has one per stage."""
  if isinstance(value, (str, bool, int, float)) or value is None:
    return (value,) * stages
  value = tuple(value)
  if len(value) != stages:
    raise ValueError(f"{field} has {len(value)} entries for {stages} stages: {value!r}")
  return value


def rectify(x: Array, rectification: str, gain: Array | None = None) -> Array:
  """'relu' max(x, 0); 'abs' |x|; 'tanh' g·tanh(x); 'tanh_abs' |g·tanh(x)|; 'none' x."""
  if rectification in ("tanh", "tanh_abs"):
    x = gain * jnp.tanh(x)
  if rectification in ("abs", "tanh_abs"):
    return jnp.abs(x)
  return nn.relu(x) if rectification == "relu" else x


class MultiStageConvNet(nn.Module):
  """[conv → rectification → LCN → pool] × N → dense layers with dropout → linear output.

  The architecture family of Jarrett, Kavukcuoglu, Ranzato & LeCun, "What is the best
  multi-stage architecture for object recognition?", ICCV 2009. Their F_CSG-R_abs-N-P_A stage
  is rectification='tanh_abs' (|g·tanh(conv)| with a trainable gain g per map), lcn=True with
  lcn_mode='jarrett', pool='avg'. Per-stage fields take one value for all stages or a tuple
  with one value per stage; a pool size of 1 means no pooling in that stage.

  Attributes:
    stage_features: output maps of each stage's convolution.
    kernel_sizes: square convolution sizes.
    padding: convolution padding, 'SAME' or 'VALID'.
    rectification: 'relu', 'abs', 'tanh', 'tanh_abs' or 'none'.
    lcn: whether each stage has local contrast normalisation.
    lcn_mode: 'jarrett' or 'torch7' (see `deepvision.nn.lcn`).
    lcn_kernel_size: odd width of the Gaussian LCN window.
    pool: 'max', 'avg' or 'l2'.
    pool_sizes: pooling windows (1: none).
    pool_strides: pooling strides (default: the window).
    hidden: sizes of the hidden dense (ReLU) layers.
    dropout_rate: dropout before every dense layer in training.
    num_classes: number of outputs.
    input_shape: (H, W, C) of the images.
    dtype: compute dtype, None (float32), 'bfloat16' or 'float16' (module docstring); LCN's
      local statistics and the logits are float32.
  """

  stage_features: tuple[int, ...] = (32, 64)
  kernel_sizes: int | tuple[int, ...] = 5
  padding: str = "SAME"
  rectification: str | tuple[str, ...] = "relu"
  lcn: bool | tuple[bool, ...] = True
  lcn_mode: str = "jarrett"
  lcn_kernel_size: int = 9
  pool: str = "max"
  pool_sizes: int | tuple[int, ...] = 2
  pool_strides: int | tuple[int, ...] | None = None
  hidden: tuple[int, ...] = ()
  dropout_rate: float = 0.0
  num_classes: int = 10
  input_shape: tuple[int, int, int] = (28, 28, 1)
  dtype: Any = None

  def __post_init__(self):
    self.stages()  # Validates every field before any compute.
    super().__post_init__()

  def stages(self) -> list[dict[str, Any]]:
    """One dict per stage (features, kernel, rectification, lcn, pool, stride, output size)."""
    n = len(self.stage_features)
    if n == 0:
      raise ValueError("MultiStageConvNet needs at least one stage; stage_features is empty")
    check_choice("padding", self.padding, ["SAME", "VALID"])
    check_choice("pool", self.pool, list(pooling.POOLS))
    check_choice("lcn_mode", self.lcn_mode, list(lcn_lib.MODES))
    compute_dtype(self.dtype)
    if not 0.0 <= self.dropout_rate < 1.0:
      raise ValueError(f"dropout_rate must be in [0, 1), got {self.dropout_rate!r}")
    lcn_lib.check_arguments(self.lcn_mode, "gaussian", self.lcn_kernel_size)
    sizes = list(self.input_shape[:2])
    table = []
    for i, (features, k, rect, use_lcn, p, s) in enumerate(zip(
        self.stage_features, _per_stage("kernel_sizes", self.kernel_sizes, n),
        _per_stage("rectification", self.rectification, n), _per_stage("lcn", self.lcn, n),
        _per_stage("pool_sizes", self.pool_sizes, n),
        _per_stage("pool_strides", self.pool_strides, n)), start=1):
      check_choice(f"rectification of stage {i}", rect, list(RECTIFICATIONS))
      s = p if s is None else s
      if self.padding == "VALID":
        sizes = [d - k + 1 for d in sizes]
      sizes = [(d - p) // s + 1 if d >= p else 0 for d in sizes]
      if min(sizes) < 1:
        raise ValueError(f"stage {i} (kernel {k}, pool {p} stride {s}) leaves no pixels of the "
                         f"input_shape {tuple(self.input_shape)}; use smaller kernels or pools")
      table.append(dict(features=features, kernel=k, rectification=rect, lcn=bool(use_lcn),
                        pool=p, stride=s, size=tuple(sizes)))
    return table

  @nn.compact
  def __call__(self, x: Array, *, train: bool = False) -> tuple[Array, Intermediates]:
    x = check_images(type(self).__name__, x, self.input_shape)
    dtype = compute_dtype(self.dtype)
    acts: Intermediates = {}
    h = x
    for i, stage in enumerate(self.stages(), start=1):
      rect, k = stage["rectification"], stage["kernel"]
      h = acts[f"stage{i}/conv"] = Conv(stage["features"], (k, k), padding=self.padding,
                                        kernel_init=inits.kernel_init(rect), dtype=dtype,
                                        name=f"conv{i}")(h)
      gain = None
      if rect in ("tanh", "tanh_abs"):
        gain = self.param(f"gain{i}", nn.initializers.ones_init(), (stage["features"],))
      if rect != "none":
        # A float32 gain times bf16 maps is formed in float32 (the gain's gradient sums every
        # pixel: in bf16 the sum would stall) and rounded back to the compute dtype.
        h = acts[f"stage{i}/rect"] = rectify(h, rect, gain).astype(h.dtype)
      if stage["lcn"]:
        h = acts[f"stage{i}/lcn"] = lcn_lib.local_contrast_norm(
            h, mode=self.lcn_mode, kernel_size=self.lcn_kernel_size)
      if stage["pool"] > 1 or stage["stride"] > 1:
        h = acts[f"stage{i}/pool"] = pooling.pool(h, self.pool, stage["pool"], stage["stride"])
    h = acts["features"] = h.reshape(h.shape[0], -1)
    for i, width in enumerate(self.hidden, start=1):
      h = nn.Dropout(self.dropout_rate, deterministic=not train)(h)
      h = acts[f"hidden{i}"] = nn.relu(
          nn.Dense(width, kernel_init=inits.kernel_init("relu"), dtype=dtype, name=f"hidden{i}")(h))
    h = nn.Dropout(self.dropout_rate, deterministic=not train)(h)
    logits = nn.Dense(self.num_classes, kernel_init=inits.kernel_init("linear"), dtype=dtype,
                      name="output")(h)
    return float32_logits(logits, dtype), acts


class CifarConvNet(nn.Module):
  """Krizhevsky's cuda-convnet CIFAR-10 net ("layers-18pct": 18% error without augmentation).

  32×32×3 → conv 5×5 32 → max pool 3 s2 → relu → norm → conv 5×5 32 → relu → avg pool 3 s2 →
  norm → conv 5×5 64 → relu → avg pool 3 s2 → dense 10. Convolutions are 'SAME' (cuda-convnet's
  padding 2) and pooling windows overhang the border like cuda-convnet's (32 → 16 → 8 → 4), the
  average counting only pixels inside. 89,578 parameters with the defaults.

  Attributes:
    features: output maps of the three convolutions.
    norm: 'lrn' (cuda-convnet's per-map response normalisation, `lcn.LocalResponseNorm`),
      'lcn' (local contrast normalisation) or 'none'.
    lrn_size, lrn_alpha, lrn_beta: the response normalisation's window, α and β.
    lcn_mode, lcn_kernel_size: the LCN's semantics and window when norm='lcn'.
    num_classes: number of outputs.
    input_shape: (H, W, C) of the images.
    dtype: compute dtype, None (float32), 'bfloat16' or 'float16' (module docstring); the
      normalisations' local statistics and the logits are float32.
  """

  features: tuple[int, int, int] = (32, 32, 64)
  norm: str = "lrn"
  lrn_size: int = 3
  lrn_alpha: float = 5e-5
  lrn_beta: float = 0.75
  lcn_mode: str = "torch7"
  lcn_kernel_size: int = 5
  num_classes: int = 10
  input_shape: tuple[int, int, int] = (32, 32, 3)
  dtype: Any = None

  def __post_init__(self):
    check_choice("norm", self.norm, list(NORMS))
    compute_dtype(self.dtype)
    if len(self.features) != 3:
      raise ValueError(f"CifarConvNet has three convolutions; features={self.features!r}")
    lcn_lib.check_arguments(self.lcn_mode, "gaussian", self.lcn_kernel_size)
    super().__post_init__()

  def _normalise(self, h: Array, acts: Intermediates, stage: int) -> Array:
    if self.norm == "lrn":
      h = acts[f"stage{stage}/norm"] = lcn_lib.local_response_norm(
          h, size=self.lrn_size, alpha=self.lrn_alpha, beta=self.lrn_beta)
    elif self.norm == "lcn":
      h = acts[f"stage{stage}/lcn"] = lcn_lib.local_contrast_norm(
          h, mode=self.lcn_mode, kernel_size=self.lcn_kernel_size)
    return h

  @nn.compact
  def __call__(self, x: Array, *, train: bool = False) -> tuple[Array, Intermediates]:
    del train  # No dropout.
    x = check_images(type(self).__name__, x, self.input_shape)
    relu_init = inits.kernel_init("relu")
    dtype = compute_dtype(self.dtype)
    acts: Intermediates = {}
    h = acts["stage1/conv"] = Conv(self.features[0], (5, 5), kernel_init=relu_init, dtype=dtype,
                                   name="conv1")(x)
    h = acts["stage1/pool"] = nn.relu(pooling.max_pool(h, 3, 2, "SAME"))
    h = self._normalise(h, acts, 1)
    for i in (2, 3):
      h = acts[f"stage{i}/conv"] = Conv(self.features[i - 1], (5, 5), kernel_init=relu_init,
                                        dtype=dtype, name=f"conv{i}")(h)
      h = acts[f"stage{i}/pool"] = pooling.avg_pool(nn.relu(h), 3, 2, "SAME")
      if i == 2:
        h = self._normalise(h, acts, 2)
    h = acts["features"] = h.reshape(h.shape[0], -1)
    logits = nn.Dense(self.num_classes, kernel_init=inits.kernel_init("linear"), dtype=dtype,
                      name="output")(h)
    return float32_logits(logits, dtype), acts
