"""Unit statistics: exact values on planted activations, a real zoo model, figures, bad input."""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from deepvision import zoo
from deepvision.diagnostics import unit_figures, unit_stats
from deepvision.figures import viz


def _identity(params, images):
  """features_fn whose one layer is the images themselves: activations planted by the test."""
  del params
  return {"layer": images}


# Five dense units on four samples (columns): a; b = 2a + 1 (ρ = 1 with a); c ⟂ a after centring
# (ρ = 0) and |c| = 1 never above the threshold 1.5 (dead, yet varying); d = 5 − a (ρ = −1);
# e = 0 (dead and constant).
PLANTED = np.array([
    # a   b    c    d    e
    [1., 3., 1., 4., 0.],
    [2., 5., -1., 3., 0.],
    [3., 7., -1., 2., 0.],
    [4., 9., 1., 1., 0.],
], np.float32)


def test_dense_statistics_equal_hand_computed_values():
  stats = unit_stats.unit_statistics(None, None, PLANTED, threshold=1.5, features_fn=_identity)
  s = stats["layer"]
  assert (s.kind, s.shape, s.num_units, s.num_samples) == ("units", (5,), 5, 4)
  # |x| > 1.5: a on samples 1-3, b on all, c never, d on samples 0-2, e never.
  np.testing.assert_array_equal(s.activity_across_samples, [0.75, 1.0, 0.0, 0.75, 0.0])
  np.testing.assert_array_equal(s.activity_across_units, [2 / 5, 3 / 5, 3 / 5, 2 / 5])
  assert s.activity_across_samples_mean == 0.5 and s.activity_across_units_mean == 0.5
  assert (s.activity_across_samples_min, s.activity_across_samples_max) == (0.0, 1.0)
  assert s.dead_units.tolist() == [2, 4] and s.constant_units.tolist() == [4]
  assert s.saturated_units is None and s.num_saturated is None  # no bound given
  expected = np.array([[1, 1, 0, -1, np.nan],
                       [1, 1, 0, -1, np.nan],
                       [0, 0, 1, 0, np.nan],
                       [-1, -1, 0, 1, np.nan],
                       [np.nan] * 5])
  np.testing.assert_allclose(s.correlation, expected, atol=1e-12)
  assert s.mean_abs_correlation == pytest.approx(0.5, abs=1e-12)  # |1|,0,|−1|,0,|−1|,0 over 6
  assert s.mean == pytest.approx(44 / 20, rel=1e-7)  # (10 + 24 + 0 + 10 + 0) / 20 elements
  squares = (30 + 164 + 4 + 30 + 0) / 20
  assert s.std == pytest.approx(math.sqrt(squares - (44 / 20) ** 2), rel=1e-6)  # float32 moments
  assert (s.minimum, s.maximum) == (-1.0, 9.0)
  # Batches of 3 (the last one padded) give the same numbers.
  again = unit_stats.unit_statistics(None, None, PLANTED, threshold=1.5, features_fn=_identity,
                                     batch_size=3)["layer"]
  np.testing.assert_array_equal(again.activations, PLANTED)
  assert again.std == pytest.approx(s.std, rel=1e-6) and again.mean == pytest.approx(s.mean)


def test_saturation_needs_more_than_95_percent_of_samples_beyond_99_percent_of_the_bound():
  n = 20
  units = np.zeros((n, 4), np.float32)
  units[:, 0] = 0.995 * (-1.0) ** np.arange(n)  # beyond 0.99 on every sample: saturated
  units[:, 1] = -0.999
  units[7, 1] = 0.2                              # beyond on 19 / 20 = 95% only: not saturated
  units[:, 2] = 0.5                              # half the bound
  units[:, 3] = 1.0                              # at the bound
  s = unit_stats.unit_statistics(None, None, units, features_fn=_identity,
                                 bounds={"layer": 1.0})["layer"]
  assert s.saturated_units.tolist() == [0, 3]
  np.testing.assert_array_equal(s.bound, np.ones(4))
  per_unit = unit_stats.unit_statistics(None, None, units, features_fn=_identity,
                                        bounds={"layer": [1.0, 1.0, 0.5, 1.0]})["layer"]
  assert per_unit.saturated_units.tolist() == [0, 2, 3]
  assert per_unit.constant_units.tolist() == [2, 3]
  row = unit_stats.format_table({"layer": per_unit}).splitlines()[2].split()
  # layer, shape, units, active/unit mean [min, max], active/sample, dead, const, sat
  assert row[:10] == ["layer", "4", "4", "1.00", "[1.00,", "1.00]", "1.00", "0", "2", "3"]


def test_feature_maps_are_units_with_spatially_averaged_magnitude():
  n = np.arange(4, dtype=np.float32)
  maps = np.zeros((4, 2, 2, 3), np.float32)
  maps[..., 0] = n[:, None, None] * np.array([[1, -1], [1, -1]], np.float32)  # mean |a| = n
  maps[:, 0, 0, 2] = 2.0                                                      # mean |a| = 0.5
  s = unit_stats.layer_statistics("maps", maps, threshold=0.25)
  assert (s.kind, s.shape, s.num_units) == ("maps", (2, 2, 3), 3)
  np.testing.assert_array_equal(s.activations, np.stack([n, 0 * n, 0 * n + 0.5], axis=1))
  np.testing.assert_array_equal(s.activity_across_samples, [0.75, 0.0, 1.0])
  assert s.dead_units.tolist() == [1] and s.constant_units.tolist() == [1, 2]
  assert math.isnan(s.mean_abs_correlation)  # one varying map: no pair to correlate
  assert s.mean == pytest.approx(2.0 / 12, rel=1e-7)  # the ±n cancel; four 2s in 48 elements
  via_model = unit_stats.unit_statistics(None, None, maps, threshold=0.25,
                                         features_fn=_identity, batch_size=3)["layer"]
  np.testing.assert_array_equal(via_model.activity_across_samples, s.activity_across_samples)
  np.testing.assert_array_equal(via_model.activations, s.activations)


def _random_params(model, rng):
  """Random parameters of the model's shapes (scaled normal), without compiling `init`."""
  shapes = zoo.abstract_variables(model)["params"]
  scale = lambda s: 1 / np.sqrt(np.prod(s.shape[:-1])) if len(s.shape) > 1 else 0.3  # noqa: E731
  return jax.tree.map(lambda s: (rng.normal(size=s.shape) * scale(s)).astype(s.dtype), shapes)


def test_tiny_zoo_model_table_rows_and_figures(tmp_path):
  model = zoo.create("lcn_convnet_digits_tiny")
  rng = np.random.default_rng(0)
  params = _random_params(model, rng)
  images = rng.normal(size=(40, 8, 8, 1)).astype(np.float32)
  stats = unit_stats.unit_statistics(model, params, images, batch_size=16)  # 16 + 16 + 8
  _, acts = jax.jit(model.apply)({"params": params}, images)
  names = ["stage1/conv", "stage1/rect", "stage1/lcn", "stage2/conv", "stage2/rect", "stage2/lcn",
           "stage2/pool", "stage3/conv", "stage3/rect", "stage3/pool", "features"]
  assert list(stats) == names and set(acts) == set(names)  # the model's order
  for name in names:  # batched and padded = all at once
    whole = unit_stats.layer_statistics(name, acts[name])
    np.testing.assert_allclose(stats[name].activations, whole.activations, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(stats[name].dead_units, whole.dead_units)
    assert stats[name].std == pytest.approx(whole.std, rel=1e-4)
  assert stats["stage3/conv"].num_units == 8 and stats["features"].num_units == 2 * 2 * 8
  assert stats["stage2/pool"].shape == (4, 4, 4)
  lines = unit_stats.format_table(stats).splitlines()
  assert len(lines) == 2 + len(names)
  assert [line.split()[0] for line in lines[2:]] == names

  paths = unit_figures.save_unit_figures(stats, str(tmp_path / "figs"), "units", params=params)
  assert len(paths) == 2 * len(names) + 3  # three convolution kernels
  for name in names:
    units = stats[name].num_units
    expected = {"activations": (40 * math.ceil(256 / 40), units * math.ceil(256 / units)),
                "correlation": (units * math.ceil(256 / units),) * 2}
    for kind, (rows, columns) in expected.items():
      path = str(tmp_path / "figs" / f"units_{name.replace('/', '_')}_{kind}.png")
      assert path in paths
      with Image.open(path) as image:
        # the matrix picture, unresampled, in a frame with the title, axes and colour bar
        height, width = viz.matrix_png_shape((rows, columns))
        assert image.format == "PNG" and image.size == (width, height)
        assert image.text["Title"] == f"{name}: " + ("samples × units" if kind == "activations"
                                                     else "correlation of units") + (
            f" ({units} units, 40 samples)" if kind == "activations" else f" ({units} units)")
  kernel = tmp_path / "figs" / "units_filters_conv1_kernel.png"
  assert str(kernel) in paths
  with Image.open(kernel) as image:
    image.verify()
    assert image.format == "PNG"


def test_activation_and_correlation_pictures_show_dead_constant_and_correlated_units(tmp_path):
  units = np.array([[0.0, 2.0, 1.0], [0.0, 2.0, 4.0], [0.0, 2.0, 3.0]], np.float32)
  image = viz.activation_image(units, min_pixels=6)
  assert image.shape == (6, 6)
  np.testing.assert_array_equal(image[:, :2], 0.0)        # dead unit: black, one scale 0..4
  np.testing.assert_array_equal(image[:, 2:4], 0.5)       # constant unit 2: a flat grey column
  np.testing.assert_array_equal(image[::2, 5], [0.25, 1.0, 0.75])
  path = str(tmp_path / "acts.png")
  viz.save_activation_image(units, path, min_pixels=6)
  top, _, _, left = viz.MATRIX_MARGINS
  with Image.open(path) as png:
    assert png.size[::-1] == viz.matrix_png_shape((6, 6))
    grey = np.asarray(png.convert("L"))[top:top + 6, left:left + 6]  # the picture, unresampled
  np.testing.assert_allclose(grey, image * 255, atol=1)  # dead black, constant grey, 4.0 white
  rho = unit_stats.correlation_matrix(units[:, [1, 2, 2]])
  colours = viz.correlation_image(rho, min_pixels=3)
  assert colours.shape == (3, 3, 3)
  np.testing.assert_array_equal(colours[0, 0], [128, 128, 128])  # undefined: constant unit
  red, green, blue = colours[1, 2].astype(int)
  assert red > blue + 50 and green < 20                          # ρ = +1: red
  assert np.all(colours[1, 1] == colours[1, 2])                  # the diagonal is +1 too


class _ToyRBM(nn.Module):
  """An energy model exposing hidden_probs(x) = sigmoid(x W + b_h) (no __call__ intermediates)."""

  n_visible: int = 3
  n_hidden: int = 2

  def setup(self):
    self.W = self.param("W", nn.initializers.zeros_init(), (self.n_visible, self.n_hidden))
    self.b_h = self.param("b_h", nn.initializers.zeros_init(), (self.n_hidden,))

  def hidden_probs(self, x):
    return jax.nn.sigmoid(x @ self.W + self.b_h)


def test_energy_model_hidden_probs_are_measured_with_bound_one():
  model = _ToyRBM()
  params = {"W": jnp.array([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0]]), "b_h": jnp.array([50.0, -50.0])}
  visible = np.random.default_rng(0).uniform(size=(10, 3)).astype(np.float32)
  s = unit_stats.unit_statistics(model, params, visible, threshold=0.01)
  assert list(s) == ["hidden"]
  # Unit 0: sigmoid(50 + v) ≈ 1 always: saturated. Unit 1: sigmoid(−50) ≈ 0: dead.
  assert s["hidden"].saturated_units.tolist() == [0] and s["hidden"].dead_units.tolist() == [1]
  with pytest.raises(ValueError, match=r"\(num_samples, 3\)"):
    unit_stats.unit_statistics(model, params, visible[:, :2])


def test_known_bounds_match_the_models_layers():
  lenet = zoo.create("lenet5_1998")
  bounds = unit_stats.saturation_bounds(lenet, None)
  _, acts = jax.eval_shape(lenet.apply, zoo.abstract_variables(lenet), zoo.example_input(lenet))
  assert set(bounds) == set(acts) and set(bounds.values()) == {1.7159}
  jarrett = zoo.create("jarrett_tiny")
  gains = {"gain1": np.array([1.0, -2.0, 0.5, 3.0]), "gain2": np.full(8, 0.25)}
  bounds = unit_stats.saturation_bounds(jarrett, gains)
  _, acts = jax.eval_shape(jarrett.apply, zoo.abstract_variables(jarrett),
                           zoo.example_input(jarrett))
  assert sorted(bounds) == ["stage1/rect", "stage2/rect"] and set(bounds) <= set(acts)
  np.testing.assert_array_equal(bounds["stage1/rect"], [1.0, 2.0, 0.5, 3.0])
  assert unit_stats.saturation_bounds(zoo.create("lcn_convnet_digits_tiny"), None) == {}


def test_bad_input_is_rejected_before_any_compute():
  calls = []

  def features_fn(params, images):
    calls.append(isinstance(images, jax.core.Tracer))
    return {"layer": images}

  model = zoo.create("lcn_convnet_digits_tiny")
  with pytest.raises(ValueError, match=r"expects images of shape \(num_samples, 8, 8, 1\).*9, 9"):
    unit_stats.unit_statistics(model, None, np.zeros((4, 9, 9, 1), np.float32))
  with pytest.raises(ValueError, match="at least one image"):
    unit_stats.unit_statistics(model, None, np.zeros((0, 8, 8, 1), np.float32))
  with pytest.raises(ValueError, match="float"):
    unit_stats.unit_statistics(model, None, np.zeros((4, 8, 8, 1), np.int32))
  with pytest.raises(ValueError, match=r"threshold must be .*>= 0, got -0.1"):
    unit_stats.unit_statistics(model, None, np.zeros((4, 8, 8, 1), np.float32), threshold=-0.1)
  with pytest.raises(ValueError, match="threshold"):
    unit_stats.layer_statistics("x", PLANTED, threshold=float("nan"))
  with pytest.raises(ValueError, match="batch_size"):
    unit_stats.unit_statistics(None, None, PLANTED, features_fn=features_fn, batch_size=0)
  with pytest.raises(ValueError, match="at least one image"):
    unit_stats.unit_statistics(None, None, PLANTED[:0], features_fn=features_fn)
  assert calls == []
  # Names and bounds are checked on shapes only (a trace, no compute).
  with pytest.raises(ValueError, match=r"unknown layer name\(s\) 'nope'; the layers are: layer"):
    unit_stats.unit_statistics(None, None, PLANTED, features_fn=features_fn, layers=["nope"])
  with pytest.raises(ValueError, match="unknown layer"):
    unit_stats.unit_statistics(None, None, PLANTED, features_fn=features_fn, bounds={"x": 1.0})
  with pytest.raises(ValueError, match="5 positive numbers"):
    unit_stats.unit_statistics(None, None, PLANTED, features_fn=features_fn,
                               bounds={"layer": [1.0, 2.0]})
  assert calls and all(calls)  # traced on shapes only, never run on values
  with pytest.raises(ValueError, match="model or a features_fn"):
    unit_stats.unit_statistics(None, None, PLANTED)
