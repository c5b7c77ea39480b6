"""Convnet architectures: exact parameter counts, layer semantics, input checks, dropout, init."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepvision.models import convnets
from deepvision.nn import init as inits
from deepvision.nn import lcn


def _init(model, batch=2, key=0):
  """Random parameters of the model's shapes and a batch of images, without compiling `init`.

  (Compiling the random initialisers costs seconds on a small CPU; the shapes are what counts.)
  """
  rng = np.random.default_rng(key)
  x = rng.normal(size=(batch, *model.input_shape)).astype(np.float32)
  shapes = jax.eval_shape(model.init, jax.random.key(0), x)["params"]
  scale = lambda s: 1 / np.sqrt(np.prod(s.shape[:-1])) if len(s.shape) > 1 else 0.3
  return jax.tree.map(lambda s: (rng.normal(size=s.shape) * scale(s)).astype(s.dtype), shapes), x


def _apply(model, params, x, **kwargs):
  return jax.jit(functools.partial(model.apply, **kwargs))({"params": params}, x)


def _count(tree):
  return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(tree))


# Table I of LeCun et al. 1998, rows = S2 maps, columns = C3 maps, as printed in the paper.
PAPER_TABLE_I = [
    "X...XXX..XXXX.XX",
    "XX...XXX..XXXX.X",
    "XXX...XXX..X.XXX",
    ".XXX..XXXX..X.XX",
    "..XXX..XXXX.XX.X",
    "...XXX..XXXX.XXX",
]


def test_c3_connection_table_is_the_papers():
  from_paper = [tuple(r for r in range(6) if PAPER_TABLE_I[r][c] == "X") for c in range(16)]
  assert list(convnets.C3_TABLE) == from_paper
  assert sum(map(len, convnets.C3_TABLE)) == 60


def test_lenet5_1998_has_exactly_60000_parameters_layer_by_layer():
  params, x = _init(convnets.LeNet5_1998())
  by_hand = {
      "C1": 6 * (5 * 5 * 1 + 1),                  # 156
      "S2": 6 * 2,                                # 12: one coefficient and one bias per map
      "C3": 5 * 5 * 60 + 16,                      # 1,516: 60 connections of Table I
      "S4": 16 * 2,                               # 32
      "C5": 120 * (5 * 5 * 16 + 1),               # 48,120
      "F6": 84 * (120 + 1),                       # 10,164
  }
  assert {name: _count(tree) for name, tree in params.items()} == by_hand
  assert sum(by_hand.values()) == 60_000
  assert set(params) == set(by_hand)  # The RBF codes are constants, not parameters.


def test_lenet5_1998_rbf_output_and_padding():
  model = convnets.LeNet5_1998()
  params, x = _init(model)
  logits, acts = _apply(model, params, x)
  codes = convnets.rbf_codes(10)
  expected = -((np.asarray(acts["F6"])[:, None, :] - codes[None]) ** 2).sum(-1)
  np.testing.assert_allclose(np.asarray(logits), expected, rtol=1e-5)
  assert set(np.unique(codes)) == {-1.0, 1.0}
  distances = (codes[:, None, :] != codes[None, :, :]).sum(-1)
  assert distances[~np.eye(10, dtype=bool)].min() >= 40
  assert convnets.scaled_tanh(jnp.float32(1.0)) == pytest.approx(1.0, abs=1e-4)
  # 28×28 digits padded by 2 go through the same network as the padded 32×32 image.
  padded_model = convnets.LeNet5_1998(input_shape=(28, 28, 1), pad=2)
  small = x[:, 2:-2, 2:-2, :]
  x32 = jnp.pad(small, ((0, 0), (2, 2), (2, 2), (0, 0)))
  np.testing.assert_allclose(_apply(padded_model, params, small)[0],
                             _apply(model, params, x32)[0], rtol=1e-6)
  with pytest.raises(ValueError, match="32×32.*30×30"):
    convnets.LeNet5_1998(input_shape=(28, 28, 1), pad=1)


def test_lenet5_counts_and_matches_a_direct_implementation():
  model = convnets.LeNet5()
  params, x = _init(model)
  assert {k: _count(v) for k, v in params.items()} == {
      "conv1": 6 * (25 + 1), "conv2": 16 * (25 * 6 + 1), "hidden1": 120 * (400 + 1),
      "hidden2": 84 * (120 + 1), "output": 10 * (84 + 1)}
  assert _count(params) == 61_706

  def conv(h, p, padding):
    return jax.lax.conv_general_dilated(h, p["kernel"], (1, 1), padding,
                                        dimension_numbers=("NHWC", "HWIO", "NHWC")) + p["bias"]

  def pool(h):
    n, hh, ww, c = h.shape
    return h.reshape(n, hh // 2, 2, ww // 2, 2, c).max(axis=(2, 4))

  h = pool(jax.nn.relu(conv(x, params["conv1"], "SAME")))
  h = pool(jax.nn.relu(conv(h, params["conv2"], "VALID"))).reshape(x.shape[0], -1)
  for layer in ("hidden1", "hidden2"):
    h = jax.nn.relu(h @ params[layer]["kernel"] + params[layer]["bias"])
  expected = h @ params["output"]["kernel"] + params["output"]["bias"]
  np.testing.assert_allclose(_apply(model, params, x)[0], expected, rtol=1e-5, atol=1e-6)


JARRETT = dict(stage_features=(8, 16), kernel_sizes=5, padding="VALID", rectification="tanh_abs",
               lcn_mode="jarrett", lcn_kernel_size=5, pool="avg", pool_sizes=2, hidden=(20,),
               input_shape=(20, 20, 1))


def test_multistage_counts_and_stage_semantics():
  model = convnets.MultiStageConvNet(**JARRETT)
  params, x = _init(model)
  # 20 → conv 16 → pool 8 → conv 4 → pool 2: features 2·2·16 = 64.
  assert {k: _count(v) for k, v in params.items()} == {
      "conv1": 8 * (25 + 1), "gain1": 8, "conv2": 16 * (25 * 8 + 1), "gain2": 16,
      "hidden1": 20 * (64 + 1), "output": 10 * (20 + 1)}
  params = jax.tree.map(lambda p: p, params)
  params["gain1"] = jnp.linspace(0.5, 2.0, 8)
  logits, acts = _apply(model, params, x)
  conv = acts["stage1/conv"]
  np.testing.assert_allclose(acts["stage1/rect"], jnp.abs(params["gain1"] * jnp.tanh(conv)),
                             rtol=1e-6)
  np.testing.assert_allclose(
      acts["stage1/lcn"],
      lcn.local_contrast_norm(acts["stage1/rect"], mode="jarrett", kernel_size=5),
      rtol=1e-5, atol=1e-6)
  lcn_out = np.asarray(acts["stage1/lcn"])
  np.testing.assert_allclose(acts["stage1/pool"],
                             lcn_out.reshape(2, 8, 2, 8, 2, 8).mean(axis=(2, 4)),
                             rtol=1e-5, atol=1e-6)
  assert acts["features"].shape == (2, 64) and logits.shape == (2, 10)


def test_multistage_per_stage_fields_and_no_pool_stage():
  model = convnets.MultiStageConvNet(stage_features=(4, 6), kernel_sizes=(3, 5), lcn=(True, False),
                                     rectification=("relu", "abs"), pool_sizes=(1, 2),
                                     input_shape=(8, 8, 2))
  params, x = _init(model)
  _, acts = _apply(model, params, x)
  assert params["conv2"]["kernel"].shape == (5, 5, 4, 6)
  assert "stage1/lcn" in acts and "stage2/lcn" not in acts
  assert "stage1/pool" not in acts and acts["stage2/pool"].shape == (2, 4, 4, 6)
  assert float(acts["stage2/rect"].min()) >= 0.0


@pytest.mark.parametrize("fields,message", [
    (dict(rectification="sigmoid"), "rectification of stage 1 'sigmoid'.*relu, abs"),
    (dict(pool="median"), "pool 'median'"),
    (dict(kernel_sizes=(3, 3, 3)), "kernel_sizes has 3 entries for 2 stages"),
    (dict(lcn_kernel_size=4), "odd"),
    (dict(input_shape=(6, 6, 1), padding="VALID"), "stage 2 .*leaves no pixels"),
])
def test_multistage_rejects_bad_fields_at_construction(fields, message):
  with pytest.raises(ValueError, match=message):
    convnets.MultiStageConvNet(**fields)


def test_cifar_convnet_counts_and_norm_options():
  model = convnets.CifarConvNet()
  params, x = _init(model)
  assert {k: _count(v) for k, v in params.items()} == {
      "conv1": 32 * (75 + 1), "conv2": 32 * (25 * 32 + 1), "conv3": 64 * (25 * 32 + 1),
      "output": 10 * (4 * 4 * 64 + 1)}
  _, acts = _apply(model, params, x)
  np.testing.assert_allclose(acts["stage1/norm"], lcn.local_response_norm(acts["stage1/pool"]),
                             rtol=1e-6)
  assert float(acts["stage1/pool"].min()) >= 0.0  # relu after the max pool
  small = convnets.CifarConvNet(features=(4, 4, 8), norm="lcn", input_shape=(16, 16, 3))
  small_params, small_x = _init(small)
  _, acts = _apply(small, small_params, small_x)
  assert acts["stage1/lcn"].shape == (2, 8, 8, 4) and acts["stage2/lcn"].shape == (2, 4, 4, 4)
  assert "stage1/norm" not in acts


@pytest.mark.parametrize("bad", [np.zeros((3, 32, 32, 3), np.float32),
                                 np.zeros((3, 28, 28, 1), np.uint8),
                                 np.zeros((28, 28, 1), np.float32)])
def test_wrong_images_are_rejected_naming_the_expected_shape(bad):
  model = convnets.LeNet5()
  with pytest.raises(ValueError, match=r"LeNet5 expects images of shape "
                                       r"\(batch, 28, 28, 1\), float; "
                                       rf"got \({', '.join(map(str, bad.shape))},?\) {bad.dtype}"):
    model.init(jax.random.key(0), bad)


def test_dropout_uses_the_dropout_stream_in_training_only():
  model = convnets.MultiStageConvNet(stage_features=(4,), kernel_sizes=3, pool_sizes=2,
                                     hidden=(16,), dropout_rate=0.5, input_shape=(8, 8, 1))
  params, x = _init(model, batch=4)
  variables = {"params": params}
  eval_out = _apply(model, params, x)[0]
  apply_train = jax.jit(functools.partial(model.apply, train=True))
  train = lambda seed: apply_train(variables, x, rngs={"dropout": jax.random.key(seed)})[0]
  assert not np.allclose(train(1), train(2))
  np.testing.assert_array_equal(train(1), train(1))
  assert not np.allclose(train(1), eval_out)
  np.testing.assert_allclose(model.apply(variables, x, rngs={"dropout": jax.random.key(3)})[0],
                             eval_out, rtol=1e-5, atol=1e-6)
  with pytest.raises(Exception, match="dropout"):  # training without the RNG stream
    model.apply(variables, x, train=True)


def test_initialisers_preserve_variance_across_layers():
  kernel = inits.kernel_init("relu")(jax.random.key(0), (3, 3, 64, 512))
  assert float(jnp.var(kernel)) == pytest.approx(2 / 576, rel=0.05)
  assert float(jnp.var(inits.kernel_init("abs")(jax.random.key(0), (576, 512)))) == pytest.approx(
      1 / 576, rel=0.05)
  lenet = inits.lecun1998_uniform()(jax.random.key(0), (5, 5, 6, 400))
  assert float(jnp.abs(lenet).max()) <= 2.4 / 150
  assert float(jnp.var(lenet)) == pytest.approx((2.4 / 150) ** 2 / 3, rel=0.05)

  def second_moments(nonlinearity, activation, gain_name):
    h = jax.random.normal(jax.random.key(1), (2048, 256))
    moments = []
    for layer in range(8):
      w = inits.kernel_init(gain_name)(jax.random.key(10 + layer), (256, 256))
      a = h @ w
      moments.append(float(jnp.mean(a * a)))
      h = activation(a)
    return np.array(moments) / moments[0]

  he = second_moments("relu", nn.relu, "relu")
  assert np.all((he > 0.6) & (he < 1.6))  # similar variance in every layer
  lecun_with_relu = second_moments("relu", nn.relu, "linear")
  assert lecun_with_relu[-1] < 0.05 * lecun_with_relu[0]  # halves at every layer
  abs_net = second_moments("abs", jnp.abs, "abs")
  assert np.all((abs_net > 0.6) & (abs_net < 1.6))
  with pytest.raises(ValueError, match="'softplus'"):
    inits.kernel_init("softplus")


# ---------------------------------------------------------------------------------------------
# Mixed precision: the `dtype` field.

# One small model of each family; the CIFAR net once with each normalisation.
TINY = {
    "lenet5_1998": lambda **kw: convnets.LeNet5_1998(**kw),
    "lenet5": lambda **kw: convnets.LeNet5(conv_features=(2, 4), hidden=(8,),
                                           input_shape=(12, 12, 1), **kw),
    "multistage": lambda **kw: convnets.MultiStageConvNet(**{**JARRETT, **kw}),
    "cifar_lrn": lambda **kw: convnets.CifarConvNet(features=(4, 4, 8), input_shape=(16, 16, 3),
                                                    lrn_alpha=1e-2, **kw),
    "cifar_lcn": lambda **kw: convnets.CifarConvNet(features=(4, 4, 8), norm="lcn",
                                                    input_shape=(16, 16, 3), **kw),
}


def _relative(a, b):
  """‖a − b‖ / ‖b‖ over a whole pytree."""
  diff = sum(float(jnp.sum((x - y) ** 2)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))
  return np.sqrt(diff / sum(float(jnp.sum(y**2)) for y in jax.tree.leaves(b)))


def _outputs_and_grads(model, params, x):
  """(logits, intermediates) and the gradient of the mean cross-entropy, in one compiled call."""
  labels = jnp.arange(x.shape[0]) % 10

  def loss(p):
    logits, acts = model.apply({"params": p}, x)
    nll = -jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], 1)
    return jnp.mean(nll), (logits, acts)

  (_, outputs), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(params)
  return outputs, grads


@pytest.mark.parametrize("family", sorted(TINY))
def test_bfloat16_activations_with_float32_params_and_logits(family):
  """Shapes and dtypes only (nothing is compiled): every intermediate is bf16."""
  model = TINY[family](dtype="bfloat16")
  x = jax.ShapeDtypeStruct((2, *model.input_shape), jnp.float32)
  variables = jax.eval_shape(model.init, jax.random.key(0), x)
  assert {p.dtype for p in jax.tree.leaves(variables)} == {jnp.dtype(jnp.float32)}
  logits, acts = jax.eval_shape(model.apply, variables, x)
  assert logits.dtype == jnp.float32
  assert "stage1/conv" in acts or "C1" in acts
  assert all(a.dtype == jnp.bfloat16 for a in acts.values()), {k: a.dtype for k, a in acts.items()}


@pytest.mark.parametrize("family", ["cifar_lrn", "lenet5"])
def test_bfloat16_logits_are_close_to_float32(family):
  """Relu, max pooling, response normalisation in bf16 against float32: about 1% of the scale.

  bf16 keeps 8 significant bits (unit roundoff 2^-8 ≈ 0.4%); a few layers add up to ~1%.
  """
  params, x = _init(TINY[family](), batch=8)
  logits32, _ = _apply(TINY[family](), params, x)
  logits16, _ = _apply(TINY[family](dtype="bfloat16"), params, x)
  assert logits16.dtype == jnp.float32
  scale = float(jnp.max(jnp.abs(logits32)))
  error = float(jnp.max(jnp.abs(logits16 - logits32)))
  assert 0 < error <= 2e-2 * scale, (error, scale)  # measured 0.4-1%


def test_bfloat16_gradients_of_a_smooth_network_are_within_two_percent():
  """Gradients in float32, of the float32 parameters, within 2% of the float32 model's.

  A network without kinks or max pooling (tanh gains, Jarrett LCN, average pooling, a linear
  output), so only rounding is left (measured < 1% for every parameter). With relu, |·| or max
  pooling the gradients differ by 1-10% on such tiny batches: a pre-activation near a kink or
  a near-tie in a pooling window can fall on the other side in bf16 and send its gradient
  elsewhere.
  """
  fields = dict(JARRETT, stage_features=(4, 6), kernel_sizes=3, rectification="tanh", hidden=(),
                input_shape=(14, 14, 1))
  fp32 = convnets.MultiStageConvNet(**fields)
  params, x = _init(fp32, batch=8)
  (logits32, _), grads32 = _outputs_and_grads(fp32, params, x)
  (logits16, acts16), grads16 = _outputs_and_grads(
      convnets.MultiStageConvNet(**fields, dtype="bfloat16"), params, x)
  assert acts16["stage2/lcn"].dtype == jnp.bfloat16
  assert float(jnp.max(jnp.abs(logits16 - logits32))) <= 2e-2 * float(jnp.max(jnp.abs(logits32)))
  assert {g.dtype for g in jax.tree.leaves(grads16)} == {jnp.dtype(jnp.float32)}
  for name in grads32:
    assert 0 < _relative(grads16[name], grads32[name]) < 2e-2, name


def test_bfloat16_gain_gradient_sums_every_pixel_in_float32():
  """∂/∂g Σ |g·tanh(a)| = Σ_{b,h,w} |tanh(a)| per map: 8·24·24 = 4,608 positive terms.

  A bf16 running sum stops growing once it is 2^8 times its terms; formed in float32 it matches
  the float64 sum of the same (bf16) pre-activations to within their rounding.
  """
  model = convnets.MultiStageConvNet(stage_features=(2,), kernel_sizes=3, rectification="tanh_abs",
                                     lcn=False, pool_sizes=1, input_shape=(24, 24, 1),
                                     dtype="bfloat16")
  params, x = _init(model, batch=8)
  params["gain1"] = jnp.ones(2)

  def total(p):
    rect = model.apply({"params": p}, x)[1]["stage1/rect"]
    return jnp.sum(rect.astype(jnp.float32))

  got = jax.jit(jax.grad(total))(params)["gain1"]
  conv = np.asarray(_apply(model, params, x)[1]["stage1/conv"].astype(jnp.float32), np.float64)
  want = np.abs(np.tanh(conv)).sum(axis=(0, 1, 2))
  assert want.min() > 2**8  # where a bf16 sum of terms below 1 has stalled
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-2)


def test_float16_compute_works_the_same_way():
  model = TINY["cifar_lcn"](dtype=jnp.float16)
  params, x = _init(model)
  logits, acts = _apply(model, params, x)
  assert logits.dtype == jnp.float32 and acts["stage2/lcn"].dtype == jnp.float16
  reference, _ = _apply(TINY["cifar_lcn"](), params, x)
  assert float(jnp.max(jnp.abs(logits - reference))) <= 5e-3 * float(jnp.max(jnp.abs(reference)))


def test_lenet5_1998_in_bfloat16_sums_rbf_distances_in_float32():
  """logits = −‖f − c_k‖² of the bf16 features f, about −130 here.

  In bf16 such logits would be whole numbers (the spacing between 128 and 256 is 1), off by up
  to 0.4%; in float32 they agree with the float64 distances of the returned features to 0.15%
  (XLA may keep the features' extra bits inside the compiled call: measured 0.05%).
  """
  model = convnets.LeNet5_1998(dtype="bfloat16")
  params, x = _init(model)
  params["F6"]["bias"] = params["F6"]["bias"] + 0.5  # features away from 0, distances uneven
  logits, acts = _apply(model, params, x)
  assert logits.dtype == jnp.float32 and acts["F6"].dtype == jnp.bfloat16
  f = np.asarray(acts["F6"].astype(jnp.float32), np.float64)
  expected = -((f[:, None, :] - convnets.rbf_codes(10)[None]) ** 2).sum(-1)
  assert np.abs(expected).min() > 100
  np.testing.assert_allclose(np.asarray(logits), expected, rtol=1.5e-3)


@pytest.mark.parametrize("family", sorted(TINY))
def test_default_dtype_is_the_float32_program_unchanged(family):
  """dtype=None and dtype='float32' trace to the same program (so equal outputs, bit for bit).

  With float64 inputs (x64), None casts nothing (float64 logits) while 'float32' casts.
  """
  default, explicit = TINY[family](), TINY[family](dtype="float32")
  assert default.dtype is None
  params, x = _init(default)
  trace = lambda model, z: str(jax.make_jaxpr(  # noqa: E731
      lambda p, z: model.apply({"params": p}, z))(params, z))
  assert trace(default, x) == trace(explicit, x)
  with jax.enable_x64(True):
    shape = lambda model: jax.eval_shape(  # noqa: E731
        lambda z: model.apply({"params": params}, z), x.astype(np.float64))[0]
    assert shape(default).dtype == jnp.float64 and shape(explicit).dtype == jnp.float32


def test_default_dtype_outputs_equal_the_float32_ones_bitwise():
  default, explicit = TINY["cifar_lcn"](), TINY["cifar_lcn"](dtype=jnp.float32)
  params, x = _init(default)
  for got, want in zip(jax.tree.leaves(_apply(default, params, x)),
                       jax.tree.leaves(_apply(explicit, params, x))):
    assert got.dtype == want.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


@pytest.mark.parametrize("family", sorted(TINY))
@pytest.mark.parametrize("bad", ["float64", "int8", "bf16", jnp.int32])
def test_bad_compute_dtype_is_rejected_at_construction(family, bad):
  with pytest.raises(ValueError, match=rf"compute dtype {bad!r} is not supported; valid choices: "
                                       r"None \(float32\), float32, bfloat16, float16"):
    TINY[family](dtype=bad)
