"""The tiled mcRBM against the patch mcRBM tile by tile, autodiff, finite differences and a Gaussian.

Numerics run in float64 on tiny images with random (not small) parameters, P ≥ 0. The references cut
the tiles with explicit NumPy loops and evaluate them with `gated_mrf.MCRBM`, independently of the
tiled module's block extraction and per-tile banks. Sampling: tests/samplers/test_gated_mrf_sampling.py.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepvision.models.gated_mrf import MCRBM
from deepvision.models.tiled_gated_mrf import TiledMCRBM
from rbm_testing import random_params

BANK = ("C", "P", "W", "b_c", "b_m")
# (id, fields): overlapping tiles with s | p; a stride that does not divide p (gcd(4, 3) = 1);
# τ = 2 filter sets with F ≠ N and a topographic P (catches transposed or mixed-up banks).
CASES = {
    "conv_s2": dict(image_shape=(10, 8), patch_size=4, stride=2, n_factors=3, n_cov=3, n_mean=2,
                    input_norm="original", visible_bias="shared"),
    "conv_s3_paper": dict(image_shape=(10, 7), patch_size=4, stride=3, n_factors=3, n_cov=3,
                          n_mean=2, input_norm="paper", visible_bias="per_pixel"),
    "tiled2_topo": dict(image_shape=(8, 10), patch_size=4, stride=2, n_factors=16, n_cov=4,
                        n_mean=3, input_norm="original", visible_bias="per_pixel", tiling=2,
                        pooling_init="topographic"),
}

apply = jax.jit(lambda model, params, *args, method: model.apply({"params": params}, *args,
                                                                   method=method),
                static_argnames=("model", "method"))


def tiled_params(model, seed, scale=0.7, dtype=np.float64):
  """Random params, every entry scale·N(0, 1), P = |·| (non-negative as in training)."""
  params = random_params(model, seed, scale=scale, dtype=dtype)
  params["P"] = np.abs(params["P"])
  return params


def numpy_tiles(x, p, s):
  """(B, T_h, T_w, p²): x[:, s·i : s·i + p, s·j : s·j + p] flattened, by explicit loops."""
  rows, cols = (x.shape[1] - p) // s + 1, (x.shape[2] - p) // s + 1
  out = np.empty((x.shape[0], rows, cols, p * p))
  for i in range(rows):
    for j in range(cols):
      out[:, i, j] = x[:, s * i:s * i + p, s * j:s * j + p].reshape(len(x), -1)
  return out


def bank_of_tile(params, tiling, i, j):
  """The patch-model params (b_v = 0) that tile (i, j) uses."""
  k = tiling * (i % tiling) + (j % tiling)
  bank = {name: params[name] if tiling == 1 else params[name][k] for name in BANK}
  return {**bank, "b_v": np.zeros(params["C"].shape[-2])}


@functools.partial(jax.jit, static_argnames="patch_model")
def _patch_model_terms(patch_model, banks, tiles):
  """(F_MCRBM(x_t; b_v = 0) − ½‖x_t‖², hidden_probs(x_t)) of tiles (T, B, p²), bank t for tile t."""

  def one_tile(bank, xt):
    variables = {"params": bank}
    return (patch_model.apply(variables, xt, method="free_energy") - 0.5 * jnp.sum(xt * xt, 1),
            patch_model.apply(variables, xt, method="hidden_probs"))

  return jax.vmap(one_tile)(banks, tiles)


def reference(model, params, x):
  """(F (B,), per-tile F_t (B, T_h, T_w), hidden_probs (B, T, N + M)) through the patch MCRBM.

  F(x) = ½‖x‖² − b_vᵀx + Σ_t [F_MCRBM(x_t; b_v = 0) − ½‖x_t‖²].
  """
  p = model.patch_size
  patch_model = MCRBM(n_visible=p * p, n_factors=model.n_factors, n_cov=model.n_cov,
                      n_mean=model.n_mean, input_norm=model.input_norm,
                      pooling_init=model.pooling_init)
  tiles = numpy_tiles(x, p, model.stride)
  batch, rows, cols, _ = tiles.shape
  banks = [bank_of_tile(params, model.tiling, i, j) for i in range(rows) for j in range(cols)]
  banks = {name: np.stack([bank[name] for bank in banks]) for name in banks[0]}
  terms, probs = _patch_model_terms(patch_model, banks,
                                    tiles.reshape(batch, rows * cols, -1).transpose(1, 0, 2))
  tile_terms = np.asarray(terms).T.reshape(batch, rows, cols)
  flat = x.reshape(batch, -1)
  linear = flat @ params["b_v"] if params["b_v"].ndim else params["b_v"] * flat.sum(1)
  free_energy = 0.5 * np.sum(flat * flat, 1) - linear + tile_terms.sum((1, 2))
  return free_energy, tile_terms, np.asarray(probs).transpose(1, 0, 2)


def images(model, seed, batch=2, scale=1.5):
  return scale * np.random.default_rng(seed).normal(size=(batch, *model.image_shape))


# The free energy and the features, tile by tile -------------------------------------------------


@pytest.mark.parametrize("case", sorted(CASES))
def test_free_energy_and_features_are_the_patch_models_tile_by_tile(x64, case):
  model = TiledMCRBM(**CASES[case])
  params = tiled_params(model, seed=1)
  x = images(model, seed=2)

  @jax.jit
  def everything(x):
    run = lambda x, method: model.apply({"params": params}, x, method=method)  # noqa: E731
    return (run(x, "free_energy"), run(x[..., None], "free_energy"),
            run(x.reshape(len(x), -1), "free_energy"), run(x, "tile_free_energies"),
            run(x, "__call__"), run(x, "tiles"))

  free_energy, tile_terms, probs = reference(model, params, x)
  value, value_channel, value_flat, terms, (features, acts), tiles = everything(x)
  for got in (value, value_channel, value_flat):  # (B, H, W), (B, H, W, 1) and flat inputs
    np.testing.assert_allclose(got, free_energy, rtol=1e-12)
  np.testing.assert_allclose(terms, tile_terms, rtol=1e-12)
  rows, cols = model.grid
  assert features.shape == (2, rows * cols, model.n_cov + model.n_mean)
  np.testing.assert_allclose(features, probs, rtol=1e-12)
  np.testing.assert_allclose(acts["mean"], probs[..., model.n_cov:], rtol=1e-12)
  np.testing.assert_array_equal(tiles, numpy_tiles(x, model.patch_size, model.stride))


@pytest.mark.parametrize("case", sorted(CASES))
def test_gradient_matches_autodiff_and_central_differences(x64, case):
  """Closed-form ∂F/∂x against jax.grad (1e-10) and central differences, ε = 1e-5 (1e-6)."""
  model = TiledMCRBM(**CASES[case])
  params = tiled_params(model, seed=3)
  x = images(model, seed=4)
  eps = 1e-5
  steps = np.zeros((x.size,) + x.shape[1:])  # every coordinate's step, in the image it belongs to
  example = np.repeat(np.arange(len(x)), x[0].size)
  steps.reshape(x.size, -1)[np.arange(x.size), np.tile(np.arange(x[0].size), len(x))] = eps

  @jax.jit
  def everything(x, shifted_up, shifted_down):
    free_energy = lambda x: model.apply({"params": params}, x, method="free_energy")  # noqa: E731
    closed = model.apply({"params": params}, x, method="free_energy_and_grad")
    flat = model.apply({"params": params}, x.reshape(len(x), -1), method="free_energy_and_grad")
    return (closed, flat, jax.grad(lambda x: jnp.sum(free_energy(x)))(x), free_energy(shifted_up),
            free_energy(shifted_down))

  (value, grad), flat_out, auto, up, down = everything(x, x[example] + steps, x[example] - steps)
  np.testing.assert_allclose(value, reference(model, params, x)[0], rtol=1e-12)
  assert grad.shape == x.shape and flat_out[1].shape == (len(x), x[0].size)
  np.testing.assert_allclose(flat_out[1].reshape(x.shape), grad, rtol=1e-12)
  relative = lambda a, b: np.linalg.norm(a - b) / np.linalg.norm(b)  # noqa: E731
  assert relative(grad, auto) < 1e-10
  assert relative(grad.reshape(-1), (up - down) / (2 * eps)) < 1e-6


# One tile, building from a patch model ----------------------------------------------------------


@pytest.mark.parametrize("input_norm", ["original", "paper"])
def test_one_tile_built_from_a_patch_model_is_the_patch_model(x64, input_norm):
  patch_model = MCRBM(n_visible=16, n_factors=3, n_cov=3, n_mean=2, input_norm=input_norm)
  patch = tiled_params(patch_model, seed=5)
  x = 1.5 * np.random.default_rng(6).normal(size=(3, 16))
  model, variables = TiledMCRBM.from_patch_model(patch, (4, 4), 4, input_norm=input_norm,
                                                 visible_bias="per_pixel")
  assert model.grid == (1, 1)
  # A shared b_v is the patch b_v's mean: exact when the patch b_v is constant.
  constant = {**patch, "b_v": np.full(16, 0.3)}
  shared, shared_vars = TiledMCRBM.from_patch_model({"params": constant}, (4, 4), 4,
                                                    input_norm=input_norm)

  @jax.jit
  def everything(tiled, shared_params):
    run = lambda m, p, method: m.apply({"params": p}, x, method=method)  # noqa: E731
    methods = ("free_energy", "free_energy_and_grad", "hidden_probs")
    return ([run(model, tiled, method) for method in methods],
            [run(patch_model, patch, method) for method in methods],
            run(shared, shared_params, "free_energy"), run(patch_model, constant, "free_energy"))

  got, expected, shared_value, constant_value = everything(variables["params"],
                                                           shared_vars["params"])
  np.testing.assert_allclose(got[0], expected[0], rtol=1e-12)  # F
  for got_part, expected_part in zip(got[1], expected[1]):  # (F, ∂F/∂x)
    np.testing.assert_allclose(got_part, expected_part, rtol=1e-12)
  np.testing.assert_allclose(got[2][:, 0], expected[2], rtol=1e-12)  # the one tile's features
  np.testing.assert_allclose(shared_value, constant_value, rtol=1e-12)


def test_from_patch_model_copies_banks_and_averages_the_visible_bias():
  patch_model = MCRBM(n_visible=16, n_factors=3, n_cov=3, n_mean=2)
  patch = tiled_params(patch_model, seed=7, scale=1.0, dtype=np.float32)
  model, variables = TiledMCRBM.from_patch_model(patch, (8, 10), 2, tiling=2,
                                                 visible_bias="per_pixel")
  tiled = variables["params"]
  assert (model.patch_size, model.n_factors, model.n_cov, model.n_mean) == (4, 3, 3, 2)
  for name in BANK:
    np.testing.assert_array_equal(tiled[name], np.stack([patch[name]] * 4))
  sums, counts = np.zeros((8, 10)), np.zeros((8, 10))
  for i in range(3):
    for j in range(4):
      sums[2 * i:2 * i + 4, 2 * j:2 * j + 4] += patch["b_v"].reshape(4, 4)
      counts[2 * i:2 * i + 4, 2 * j:2 * j + 4] += 1
  np.testing.assert_allclose(tiled["b_v"], (sums / counts).reshape(-1), rtol=1e-6)
  _, shared = TiledMCRBM.from_patch_model(patch, (8, 10), 2)
  np.testing.assert_allclose(shared["params"]["b_v"], patch["b_v"].mean(), rtol=1e-6)
  assert shared["params"]["C"].shape == (16, 3)


# Translation ------------------------------------------------------------------------------------


@pytest.mark.parametrize("tiling", [1, 2])
def test_shifting_by_the_filter_period_moves_the_tile_terms(x64, tiling):
  """With a shared b_v, rolling x down by τ·s pixels moves every tile term down τ grid rows.

  Tile (i + τ, j) of the rolled image covers the pixels of tile (i, j) of x and uses the same
  bank, so F_t(roll x)[i + τ, j] = F_t(x)[i, j]; ½‖x‖² and b_v Σx do not change under a roll,
  hence F(roll x) − Σ_{first τ rows} F_t(roll x) = F(x) − Σ_{last τ rows} F_t(x). The same for
  columns. Rolling by s alone breaks the equality when τ = 2 (the banks differ).
  """
  model = TiledMCRBM(image_shape=(12, 14), patch_size=4, stride=2, n_factors=3, n_cov=3,
                     n_mean=2, tiling=tiling)
  params = tiled_params(model, seed=8)
  x = images(model, seed=9)
  shift = tiling * model.stride
  terms = lambda x: apply(model, params, x, method="tile_free_energies")  # noqa: E731
  energy = lambda x: apply(model, params, x, method="free_energy")  # noqa: E731
  base = terms(x)
  down = np.roll(x, shift, axis=1)
  np.testing.assert_allclose(terms(down)[:, tiling:], base[:, :-tiling], rtol=1e-12)
  np.testing.assert_allclose(energy(down) - terms(down)[:, :tiling].sum((1, 2)),
                             energy(x) - base[:, -tiling:].sum((1, 2)), rtol=1e-12)
  right = np.roll(x, shift, axis=2)
  np.testing.assert_allclose(terms(right)[:, :, tiling:], base[:, :, :-tiling], rtol=1e-12)
  if tiling == 2:
    by_stride = terms(np.roll(x, model.stride, axis=1))[:, 1:]
    assert np.max(np.abs(by_stride - base[:, :-1])) > 1e-3


# Sizes and errors -------------------------------------------------------------------------------


def test_parameter_counts_by_hand():
  def count(**fields):
    model = TiledMCRBM(**fields)
    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, model.n_visible)))
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(shapes))

  big = dict(image_shape=(64, 64), patch_size=8, stride=4, n_factors=64, n_cov=64, n_mean=32)
  # C 64·64 + P 64·64 + W 64·32 + b_c 64 + b_m 32 + b_v 1.
  assert count(**big) == 4096 + 4096 + 2048 + 64 + 32 + 1 == 10_337
  assert count(**big, tiling=2) == 4 * 10_336 + 1
  assert count(**big, visible_bias="per_pixel") == 10_336 + 64 * 64
  # Tiny: 6×6 images, 4×4 tiles, stride 2 (2×2 tiles): C 16·3 + P 3·3 + W 16·2 + 3 + 2 + 1.
  assert count(image_shape=(6, 6), patch_size=4, stride=2, n_factors=3, n_cov=3,
               n_mean=2) == 48 + 9 + 32 + 3 + 2 + 1 == 95


GOOD = dict(image_shape=(12, 12), patch_size=4, stride=2, n_factors=3, n_cov=3, n_mean=2)


@pytest.mark.parametrize("fields, message", [
    (dict(patch_size=13, stride=4), "patch_size 13 is larger than the image 12×12"),
    (dict(stride=0), r"stride must be an int in \[1, patch_size=4\].*got 0"),
    (dict(stride=5), r"stride must be an int in \[1, patch_size=4\].*got 5"),
    (dict(image_shape=(11, 12)), "H=11 is not covered exactly .* use 10 or 12"),
    (dict(image_shape=(12,)), r"image_shape must be a pair \(H, W\)"),
    (dict(tiling=6), "tiling=6 exceeds the 5×5 tile grid"),
    (dict(visible_bias="pixel"), "visible_bias must be one of 'shared', 'per_pixel', got 'pixel'"),
    (dict(n_cov=4), "identity' needs n_factors == n_cov, got n_factors=3, n_cov=4"),
])
def test_bad_fields_raise_naming_the_value(fields, message):
  with pytest.raises(ValueError, match=message):
    TiledMCRBM(**{**GOOD, **fields})


def test_bad_inputs_raise_naming_the_value():
  model = TiledMCRBM(**GOOD)
  variables = model.init(jax.random.key(0), jnp.zeros((1, 144)))
  with pytest.raises(ValueError, match=r"image_shape \(12, 12\) expects images of shape "
                                       r"\(batch, 12, 12\).*got \(2, 10, 12\)"):
    model.apply(variables, np.zeros((2, 10, 12)), method="free_energy")
  with pytest.raises(ValueError, match="15 visible units, not a square"):
    TiledMCRBM.from_patch_model({"C": np.zeros((15, 3)), "P": np.eye(3), "W": np.zeros((15, 2)),
                                 "b_c": np.zeros(3), "b_m": np.zeros(2), "b_v": np.zeros(15)},
                                (12, 12), 2)
  with pytest.raises(ValueError, match="patch_params must hold C, P, W, b_c, b_m, b_v"):
    TiledMCRBM.from_patch_model({"C": np.zeros((16, 3))}, (12, 12), 2)
