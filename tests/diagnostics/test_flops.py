"""Per-layer costs: LeNet-5 1998's published counts, hand-computed MACs, LCN's separable window."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

from deepvision import zoo
from deepvision.diagnostics import flops
from deepvision.models import convnets


def _by_name(costs):
  return {c.name: c for c in costs}


def test_lenet5_1998_reproduces_the_papers_parameters_and_connections():
  costs = flops.layer_table("lenet5_1998")
  rows = _by_name(costs)
  # LeCun et al. 1998, section II.B: parameters and connections of each layer.
  paper = {"C1": (156, 122_304), "S2": (12, 5_880), "C3": (1_516, 151_600), "S4": (32, 2_000),
           "C5": (48_120, 48_120), "F6": (10_164, 10_164)}
  assert {name: (rows[name].params, rows[name].connections) for name in paper} == paper
  # The RBF output: 10 units, each reading the 84 F6 outputs, no parameters.
  assert (rows["output"].params, rows["output"].connections) == (0, 840)
  assert [c.name for c in costs] == ["C1", "S2", "C3", "S4", "C5", "F6", "output"]
  assert flops.total(costs).params == 60_000
  assert flops.total(costs).connections == 340_908
  assert rows["C3"].kind == "PartialConv" and rows["S2"].output_shape == (14, 14, 6)
  table = flops.format_table(costs)
  assert "340,908" in table and "60,000" in table and table.count("\n") == len(costs) + 2


def test_modern_lenet5_macs_match_a_hand_count():
  costs = flops.layer_table("lenet5")
  rows = _by_name(costs)
  hand = {
      "conv1": 28 * 28 * 6 * (5 * 5 * 1),       # 'SAME': every output reads 25 taps
      "stage1/pool": 0,                          # max pooling multiplies nothing
      "conv2": 10 * 10 * 16 * (5 * 5 * 6),
      "stage2/pool": 0,
      "hidden1": 400 * 120,
      "hidden2": 120 * 84,
      "output": 84 * 10,
  }
  assert {c.name: c.macs_forward for c in costs} == hand
  assert flops.total(costs).macs_forward == 416_520
  for cost in costs:  # 3× forward with weights, 2× without.
    assert cost.macs_training == (3 if cost.params else 2) * cost.macs_forward
  assert rows["conv1"].activation_bytes == 28 * 28 * 6 * 4
  assert rows["stage1/pool"].connections == 14 * 14 * 6 * 4  # each unit reads a 2×2 window
  assert rows["conv2"].connections == 10 * 10 * 16 * (5 * 5 * 6 + 1)
  assert flops.total(costs).params == 61_706


def _taps_inside(n, k):
  """Taps of a k-wide window centred on each of n positions that fall inside [0, n)."""
  r = k // 2
  return sum(min(i + r, n - 1) - max(i - r, 0) + 1 for i in range(n))


@pytest.mark.parametrize("mode", ["jarrett", "torch7"])
def test_multistage_lcn_counts_its_separable_window(mode):
  height, width, channels, maps, k = 9, 7, 2, 4, 5
  model = convnets.MultiStageConvNet(
      stage_features=(maps,), kernel_sizes=3, padding="SAME", rectification="relu", lcn=True,
      lcn_mode=mode, lcn_kernel_size=k, pool="avg", pool_sizes=2,
      input_shape=(height, width, channels))
  rows = _by_name(flops.layer_table(model))
  assert list(rows) == ["conv1", "stage1/lcn", "stage1/pool", "output"]
  assert rows["conv1"].macs_forward == height * width * maps * 3 * 3 * channels
  # One Gaussian filtering of one map: a column pass then a row pass, each counting the taps
  # inside the image. LCN filters twice (the local mean and the local energy) the mean over the
  # maps (one add per input, twice); Jarrett's divisor also averages σ over the image.
  filtering = _taps_inside(height, k) * width + height * _taps_inside(width, k)
  lcn = 2 * filtering + 2 * height * width * maps + (height * width if mode == "jarrett" else 0)
  assert rows["stage1/lcn"].macs_forward == lcn
  assert filtering < 2 * k * height * width  # the border taps outside the image are not counted
  assert rows["stage1/lcn"].params == 0
  assert rows["stage1/lcn"].macs_training == 2 * lcn
  pooled = (height // 2) * (width // 2) * maps
  assert rows["stage1/pool"].macs_forward == pooled * 4  # average pooling: 4 adds per output
  assert rows["stage1/pool"].output_shape == (height // 2, width // 2, maps)
  assert rows["output"].macs_forward == pooled * 10


def test_trainable_rectification_gains_are_counted_where_they_are_read():
  rows = _by_name(flops.layer_table("jarrett_tiny"))
  assert rows["stage1/rect"].params == 4 and rows["stage2/rect"].params == 8


@pytest.mark.parametrize("name", zoo.names())
def test_every_parameter_is_counted_once(name):
  costs = flops.layer_table(name)
  params = zoo.abstract_variables(zoo.create(name))["params"]
  assert flops.total(costs).params == zoo.count_params(params)
  assert all(c.macs_forward >= 0 and c.activation_bytes > 0 for c in costs)


class _PlainCNN(nn.Module):
  """A Linen model outside the zoo: Flax's own layers, no intermediates."""

  @nn.compact
  def __call__(self, x):
    x = nn.relu(nn.Conv(8, (3, 3), padding="VALID", name="conv")(x))
    x = nn.max_pool(x, (2, 2), (2, 2))
    return nn.Dense(10, name="dense")(x.reshape(x.shape[0], -1))


class _ToyRBM(nn.Module):
  """An energy model with only `free_energy`: F(v) = −b_v·v − Σ_j softplus(b_h + vW)_j."""

  n_visible: int = 6
  n_hidden: int = 4

  @nn.compact
  def free_energy(self, v):
    w = self.param("W", nn.initializers.normal(0.1), (self.n_visible, self.n_hidden))
    b_v = self.param("b_v", nn.initializers.zeros_init(), (self.n_visible,))
    b_h = self.param("b_h", nn.initializers.zeros_init(), (self.n_hidden,))
    return -v @ b_v - jnp.sum(jax.nn.softplus(v @ w + b_h), axis=-1)


def test_any_linen_module_with_an_input_shape():
  costs = flops.layer_table(_PlainCNN(), input_shape=(10, 12, 3))
  assert [c.name for c in costs] == ["conv", "ops after conv", "dense"]
  conv, pool, dense = costs
  assert conv.macs_forward == 8 * 10 * 8 * (3 * 3 * 3) and conv.params == 8 * 28
  assert conv.connections == 8 * 10 * 8 * (3 * 3 * 3 + 1)
  assert (pool.macs_forward, pool.connections, pool.output_shape) == (0, 4 * 5 * 8 * 4, (4, 5, 8))
  assert dense.macs_forward == 160 * 10 and dense.output_shape == (10,)


def test_energy_models_trace_their_free_energy():
  (row,) = flops.layer_table(_ToyRBM())
  # v·b_v (6) + vW (6·4) + the sum over the 4 hidden units.
  assert (row.params, row.macs_forward, row.output_shape) == (6 * 4 + 6 + 4, 6 + 24 + 4, ())


def test_bad_arguments_are_named():
  with pytest.raises(ValueError, match="no method 'energy'"):
    flops.layer_table(_ToyRBM(), method="energy")
  with pytest.raises(ValueError, match="zoo names only"):
    flops.layer_table(_PlainCNN(), num_classes=3)
  with pytest.raises(ValueError, match="input_shape"):
    flops.layer_table(_PlainCNN(), input_shape=(10, 0, 3))
  with pytest.raises(KeyError, match="lenet5"):
    flops.layer_table("lenet6")


class _Spectral(nn.Module):
  """x ↦ real(ifft2(fft2(x))) + irfft2(rfft2(x)) over (8, 16) images."""

  @nn.compact
  def __call__(self, x):
    return jnp.fft.ifft2(jnp.fft.fft2(x)).real + jnp.fft.irfft2(jnp.fft.rfft2(x), s=x.shape[-2:])


def test_ffts_count_the_radix_2_butterflies():
  costs = flops.layer_table(_Spectral(), input_shape=(8, 16))
  points = 8 * 16
  complex_transform = 2.5 * points * 7  # log₂ 128 = 7
  # fft2 and ifft2 of one image each cost a complex transform, rfft2 and irfft2 half of one each.
  assert sum(c.macs_forward for c in costs) == int(2 * complex_transform + 2 * complex_transform / 2)
