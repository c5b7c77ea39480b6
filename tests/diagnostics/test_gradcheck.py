"""Gradient check: every zoo model passes; planted backward bugs are caught and located."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepvision import zoo
from deepvision.diagnostics import gradcheck
from deepvision.nn import lcn

KEY = jax.random.key(0, impl="rbg")

# Full-size variants whose check is slow on a small CPU run with their tiny sibling's widths
# (the same code paths: the layers, LCN modes and pools are those of the full model).
SMALLER = {
    "cifar_convnet": dict(features=(4, 4, 8), input_shape=(16, 16, 3)),
    "jarrett": dict(stage_features=(4, 8), input_shape=(20, 20, 1)),
    "lcn_convnet_digits": dict(stage_features=(4, 4, 8)),
    "tiled_mcrbm": dict(image_shape=(16, 16)),
    # The whole-image priors: the same energies on 16×16 instead of 64×64 images.
    "stationary_gaussian": dict(image_shape=(16, 16)),
    "wavelet_prior": dict(image_shape=(16, 16)),
    "pairwise_mrf": dict(image_shape=(16, 16)),
    "field_of_experts": dict(image_shape=(16, 16)),
    # The lasso's free energy is differentiated at its codes (Danskin), exact only at the minimum: the
    # zoo's inference tolerance (1e-3) is tightened to float64 precision for the check.
    "sparse_coding": dict(tol=1e-11, max_iter=20000),
    "psd": dict(tol=1e-11, max_iter=20000),
}


@pytest.mark.parametrize("name", zoo.names())
def test_every_zoo_model_passes(name):
  report = gradcheck.zoo_check(name, key=KEY, elements_per_leaf=12, border_elements=16,
                               **SMALLER.get(name, {}))
  assert report.ok, report.format()
  params = zoo.abstract_variables(zoo.create(name, **SMALLER.get(name, {})))["params"]
  param_paths = {"params/" + jax.tree_util.keystr(path, simple=True, separator="/")
                 for path, _ in jax.tree_util.tree_flatten_with_path(params)[0]}
  assert {leaf.path for leaf in report.leaves} == param_paths | {"inputs"}
  inputs = report.leaf("inputs")
  if len(inputs.shape) == 4:  # images: the border was looked at
    assert inputs.border >= 8
  assert report.max_rel_error < report.rtol and np.isfinite(report.value)


def test_closed_form_quadratic_has_tiny_error():
  rng = np.random.default_rng(0)
  a = rng.normal(size=(6, 6))
  a = a @ a.T
  b = rng.normal(size=6)
  w = rng.normal(size=6).astype(np.float32)
  report = gradcheck.check_gradients(lambda t: 0.5 * t["w"] @ a @ t["w"] + b @ t["w"], {"w": w},
                                     key=KEY)
  assert report.ok and report.leaf("w").checked == 6
  assert report.max_rel_error < 1e-8  # central differences are exact on a quadratic
  w64 = w.astype(np.float64)
  assert report.value == pytest.approx(0.5 * w64 @ a @ w64 + b @ w64, rel=1e-12)


def _linear_with_backward(bwd_dw):
  """x @ w with a custom backward pass whose weight gradient is bwd_dw(correct one)."""

  @jax.custom_vjp
  def linear(x, w):
    return x @ w

  def fwd(x, w):
    return x @ w, (x, w)

  def bwd(residuals, g):
    x, w = residuals
    return g @ w.T, bwd_dw(x.T @ g)

  linear.defvjp(fwd, bwd)
  return linear


def _dense_tree():
  rng = np.random.default_rng(1)
  return {"W": rng.normal(size=(4, 5)), "x": rng.normal(size=(3, 4))}


def test_a_gradient_scaled_by_1_01_is_caught_on_its_leaf():
  linear = _linear_with_backward(lambda dw: 1.01 * dw)
  report = gradcheck.check_gradients(lambda t: jnp.sum(jnp.tanh(linear(t["x"], t["W"]))),
                                     _dense_tree(), key=KEY)
  assert not report.ok and report.failing_leaves() == ["W"]
  failures = report.leaf("W").failures
  assert len(failures) == 20  # every element of the 4×5 weight
  for f in failures:
    assert f.analytic == pytest.approx(1.01 * f.numeric, rel=1e-6)
    assert 0.009 < f.rel_error < 0.011
  assert report.leaf("x").ok and report.leaf("x").max_rel_error < 1e-7
  assert "FAIL W[" in report.format()


def test_a_sign_flip_on_one_element_is_named():
  linear = _linear_with_backward(lambda dw: dw.at[1, 2].multiply(-1.0))
  report = gradcheck.check_gradients(lambda t: jnp.sum(jnp.sin(linear(t["x"], t["W"]))),
                                     _dense_tree(), key=KEY)
  (failure,) = report.leaf("W").failures
  assert failure.index == (1, 2) and report.failing_leaves() == ["W"]
  assert failure.analytic == pytest.approx(-failure.numeric, rel=1e-6)
  assert report.leaf("W").worst_index == (1, 2)


def _box3(x):
  """3×3 box sum of each NHWC map, zero padded."""
  p = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  h, w = x.shape[1:3]
  return sum(p[:, i:i + h, j:j + w] for i in range(3) for j in range(3))


def _box3_with_backward(pad_mode):
  """_box3 with a hand-written backward pass that pads the output gradient with pad_mode.

  The box is symmetric, so its adjoint is the same zero-padded box: pad_mode='constant' is
  right; 'edge' (a classic LCN bug) is wrong exactly at the border pixels.
  """

  @jax.custom_vjp
  def box(x):
    return _box3(x)

  def bwd(_, g):
    p = jnp.pad(g, ((0, 0), (1, 1), (1, 1), (0, 0)), mode=pad_mode)
    h, w = g.shape[1:3]
    return (sum(p[:, i:i + h, j:j + w] for i in range(3) for j in range(3)),)

  box.defvjp(lambda x: (_box3(x), None), bwd)
  return box


def _border_objective(box):
  weights = np.random.default_rng(2).normal(size=(2, 6, 7, 1))
  return lambda t: jnp.sum(jnp.sin(box(t["image"])) * weights)


def test_a_backward_pass_wrong_only_at_the_border_is_caught_there():
  image = np.random.default_rng(3).normal(size=(2, 6, 7, 1))
  good = gradcheck.check_gradients(_border_objective(_box3_with_backward("constant")),
                                   {"image": image}, key=KEY, border_elements=100)
  assert good.ok and good.leaf("image").border == 2 * (6 * 7 - 4 * 5)  # the whole ring
  bad = gradcheck.check_gradients(_border_objective(_box3_with_backward("edge")),
                                  {"image": image}, key=KEY, border_elements=100)
  leaf = bad.leaf("image")
  ring = {(b, i, j, 0) for b in range(2) for i in range(6) for j in range(7)
          if i in (0, 5) or j in (0, 6)}
  assert {f.index for f in leaf.failures} == ring  # every border pixel, nothing inside
  assert leaf.checked > len(ring)  # interior pixels were checked too, and passed
  # With the default budget a few random pixels and 32 border pixels, corners first.
  sampled = gradcheck.check_gradients(_border_objective(_box3_with_backward("edge")),
                                      {"image": image}, key=KEY, elements_per_leaf=3)
  indices = {f.index for f in sampled.leaf("image").failures}
  corners = {(b, i, j, 0) for b in range(2) for i in (0, 5) for j in (0, 6)}
  assert corners <= indices <= ring and not sampled.ok


@pytest.mark.parametrize("mode", lcn.MODES)
def test_local_contrast_normalisation_gradient_is_right_at_the_border(mode):
  image = np.random.default_rng(4).normal(size=(1, 7, 6, 2))
  weights = np.random.default_rng(5).normal(size=image.shape)
  report = gradcheck.check_gradients(
      lambda t: jnp.sum(lcn.local_contrast_norm(t["x"], mode=mode, kernel_size=5) * weights),
      {"x": image}, key=KEY, elements_per_leaf=8, border_elements=40)
  assert report.ok, report.format()
  assert report.leaf("x").border >= 40


def test_a_kink_inside_the_step_is_rescued_by_the_smaller_step_and_counted():
  x = np.array([3e-6, 0.5, -0.7])  # 3e-6: within h = 1e-5 of ReLU's kink, beyond h / 16
  report = gradcheck.check_gradients(lambda t: jnp.sum(jax.nn.relu(t["x"])), {"x": x}, key=KEY)
  assert report.ok and report.leaf("x").rescued == 1
  strict = gradcheck.check_gradients(lambda t: jnp.sum(jax.nn.relu(t["x"])), {"x": x},
                                     key=KEY, step=1e-4)  # h / 16 > 3e-6 too: no rescue
  (failure,) = strict.leaf("x").failures
  assert failure.index == (0,) and failure.analytic == 1.0


class _ToyRBM(nn.Module):
  """F(v) = −b_v·v − Σ_j softplus(b_h + vW)_j: an energy model the zoo might register."""

  n_visible: int = 5
  n_hidden: int = 3

  def setup(self):
    self.W = self.param("W", nn.initializers.normal(0.5), (self.n_visible, self.n_hidden))
    self.b_v = self.param("b_v", nn.initializers.normal(0.5), (self.n_visible,))
    self.b_h = self.param("b_h", nn.initializers.normal(0.5), (self.n_hidden,))

  def free_energy(self, v):
    return -v @ self.b_v - jnp.sum(jax.nn.softplus(v @ self.W + self.b_h), axis=-1)


def test_energy_models_check_their_mean_free_energy():
  model = _ToyRBM()
  objective, tree = gradcheck.natural_objective(model, KEY, batch_size=4)
  p, v = tree["params"], np.asarray(tree["inputs"], np.float64)
  w, b_v, b_h = (np.asarray(p[k], np.float64) for k in ("W", "b_v", "b_h"))
  closed_form = np.mean(-v @ b_v - np.sum(np.logaddexp(0, v @ w + b_h), axis=-1))
  assert float(objective(tree)) == pytest.approx(closed_form, rel=1e-5)
  assert v.shape == (4, 5) and 0 <= v.min() and v.max() < 1
  report = gradcheck.check_gradients(objective, tree, key=KEY)
  assert report.ok and {l.path for l in report.leaves} == {
      "inputs", "params/W", "params/b_h", "params/b_v"}


def test_several_arguments_and_flax_kernels():
  model = nn.Conv(3, (3, 3), padding="VALID")
  x = np.random.default_rng(6).normal(size=(1, 5, 6, 2)).astype(np.float32)
  params = model.init(KEY, x)["params"]

  def loss(params, images):
    return jnp.sum(jnp.tanh(model.apply({"params": params}, images)) ** 2)

  report = gradcheck.check_gradients(loss, params, x, key=KEY, elements_per_leaf=6)
  assert report.ok and [l.path for l in report.leaves] == ["0/bias", "0/kernel", "1"]
  assert report.leaf("0/kernel").border == 0 and report.leaf("1").border >= 12  # x is an image


def test_x64_stays_local_and_inputs_untouched():
  x = np.linspace(-1, 1, 5, dtype=np.float32)
  before = jax.config.jax_enable_x64
  report = gradcheck.check_gradients(lambda t: jnp.sum(t ** 2), x, key=KEY)
  assert report.ok and report.leaves[0].path == "<root>"
  assert jax.config.jax_enable_x64 == before and x.dtype == np.float32
  # The check ran in float64 even so: in float32 a step of 1e-5 leaves ~1e-2 rounding error.
  assert report.max_rel_error < 1e-9


def test_bad_arguments_are_named():
  tree = {"x": np.ones(3), "labels": np.arange(3)}
  with pytest.raises(ValueError, match="'labels' has dtype int"):
    gradcheck.check_gradients(lambda t: jnp.sum(t["x"]), tree, key=KEY)
  with pytest.raises(ValueError, match=r"image_leaves \['y'\]"):
    gradcheck.check_gradients(lambda t: jnp.sum(t), {"x": np.ones(3)}, key=KEY,
                              image_leaves=["y"])
  with pytest.raises(ValueError, match="scalar"):
    gradcheck.check_gradients(lambda t: t["x"], {"x": np.ones(3)}, key=KEY)
  with pytest.raises(TypeError, match="typed PRNG key"):
    gradcheck.check_gradients(lambda t: jnp.sum(t["x"]), {"x": np.ones(3)},
                              key=np.zeros(2, np.uint32))
  with pytest.raises(ValueError, match="unknown field 'depth'"):
    gradcheck.zoo_check("lenet5_tiny", depth=3)
