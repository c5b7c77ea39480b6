"""The inpainting measure: masks and errors against hand computations, fills that keep the observed
pixels bit for bit, records that match the fills, and on strongly correlated images a gated MRF whose
conditional is known beating the training-mean fill (through the inpainting and the occlusion measures)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepvision import zoo
from deepvision.data.whiten import PCAWhitening
from deepvision.estimators import inpainting, occlusion
from deepvision.estimators.gaussian_baselines import pca_gaussian


def test_masks_and_errors():
  mask = inpainting.make_masks("central_square", (6, 6, 1), jax.random.key(0), 2, 2)
  grid = mask.reshape(2, 6, 6)
  assert (~grid).sum() == 2 * 4 and not grid[:, 2:4, 2:4].any()
  truth = np.arange(8.0).reshape(2, 4)
  filled = truth + np.array([[1.0, 2.0, 0.0, 0.0], [0.0, 0.0, 0.0, 3.0]])
  observed = np.array([[False, False, True, True], [True, True, True, False]])
  np.testing.assert_allclose(inpainting.missing_mse(filled, truth, observed), [(1 + 4) / 2, 9.0])
  mean, stderr = inpainting.mean_and_stderr(np.array([1.0, 2.0, 6.0]))
  assert mean == pytest.approx(3.0) and stderr == pytest.approx(np.sqrt(7.0 / 3.0))


@pytest.mark.parametrize("model_name, method", [("mcrbm", "hmc"), ("mpot", "gibbs")])
def test_fills_keep_observed_pixels_bitwise_and_records_match_them(model_name, method):
  rng = np.random.default_rng(3)
  train = rng.random((60, 4, 4, 1)).astype(np.float32)
  test = rng.random((5, 4, 4, 1)).astype(np.float32)
  whitener = PCAWhitening.fit(train.astype(np.float64), variance=0.9)
  k = whitener.num_components
  model = zoo.create(model_name, n_visible=k, n_factors=4, n_cov=4, n_mean=3)
  params = model.init(jax.random.key(0), jnp.zeros((1, k)), method="free_energy")["params"]
  settings = inpainting.InpaintSettings(masks=("central_square", "random_square"), square_size=2,
                                        method=method, num_steps=6, burn_in=2, num_leapfrog=3,
                                        step_size=0.05, gaussian_ridge=1e-4, num_shown=3)
  metrics, fills = inpainting.evaluate_inpainting(model, params, whitener, train, test, settings,
                                                  jax.random.key(1))
  pixels = test.reshape(5, -1)
  for kind in settings.masks:
    observed = fills[kind]["observed"]
    assert observed.shape == (5, 16) and (~observed).sum(axis=1).min() == 4
    errors = {}
    for name in ("gmrf", "gaussian", "gaussian_full", "train_mean"):
      fill = fills[kind][name]
      np.testing.assert_array_equal(fill[observed], pixels[observed])  # bit for bit
      assert np.all(np.isfinite(fill))
      errors[name] = ((fill.astype(np.float64) - pixels) ** 2 * ~observed).sum(axis=1) / 4
      assert metrics[f"test/mse_{name}_{kind}"] == pytest.approx(errors[name].mean(), rel=1e-9)
    # The training-mean fill: each missing pixel its mean over the training images.
    np.testing.assert_allclose(fills[kind]["train_mean"][~observed],
                               np.broadcast_to(train.reshape(60, 16).mean(0), (5, 16))[~observed], rtol=1e-6)
    assert metrics[f"test/mse_train_mean_{kind}_stderr"] == pytest.approx(
        errors["train_mean"].std(ddof=1) / np.sqrt(5), rel=1e-9)
    best = fills[kind]["best_gaussian"]
    assert errors[best].mean() <= min(errors["gaussian"].mean(), errors["gaussian_full"].mean())
    assert metrics[f"test/mse_gain_{kind}"] == pytest.approx((errors[best] - errors["gmrf"]).mean(),
                                                             rel=1e-9, abs=1e-12)


def smooth_images(seed, count):
  """(count, 4, 4, 1) float32 images: four smooth patterns (constant, two ramps, a saddle) with Gaussian
  weights, plus noise of deviation 0.01; neighbouring pixels are strongly correlated."""
  rng = np.random.default_rng(seed)
  rows, cols = np.meshgrid(np.linspace(-1, 1, 4), np.linspace(-1, 1, 4), indexing="ij")
  patterns = np.stack([np.ones_like(rows), rows, cols, rows * cols]).reshape(4, 16)
  weights = rng.normal(size=(count, 4)) * np.array([0.2, 0.15, 0.15, 0.05])
  images = 0.5 + weights @ patterns + 0.01 * rng.normal(size=(count, 16))
  return images.reshape(count, 4, 4, 1).astype(np.float32)


@pytest.fixture(scope="module")
def gaussian_gated_mrf():
  """A paper-form mcRBM with C = 0, W = 0, b_v = 0 of smooth images whitened to K = 4 components.

  Its free energy is ½‖z‖² + const: z ~ N(0, I), so in pixel space it is exactly the PCA Gaussian
  ('gaussian' of `gaussian_baselines`), and E[x_m | x_o] is that Gaussian's conditional mean.
  """
  train, test = smooth_images(0, 400), smooth_images(1, 40)
  whitener = PCAWhitening.fit(train.astype(np.float64), variance=0.99)
  assert whitener.num_components == 4
  model = zoo.create("mcrbm", n_visible=4, n_factors=4, n_cov=4, n_mean=3, input_norm="paper")
  params = model.init(jax.random.key(0), jnp.zeros((1, 4)), method="free_energy")["params"]
  params = {**params, **{name: jnp.zeros_like(params[name]) for name in ("C", "W", "b_v")}}
  return model, params, whitener, train, test


def test_a_gated_mrf_of_correlated_images_fills_far_better_than_the_training_mean(gaussian_gated_mrf):
  model, params, whitener, train, test = gaussian_gated_mrf
  settings = inpainting.InpaintSettings(masks=("central_square", "random_square"), square_size=2,
                                        method="hmc", num_steps=100, burn_in=30, num_leapfrog=10,
                                        step_size=0.05, gaussian_ridge=1e-4, num_shown=3)
  metrics, _ = inpainting.evaluate_inpainting(model, params, whitener, train, test, settings, jax.random.key(1))
  for kind in settings.masks:
    # Measured: 0.0001 against 0.04 (central square); the fill is as good as the Gaussian's.
    assert metrics[f"test/mse_gmrf_{kind}"] < 0.05 * metrics[f"test/mse_train_mean_{kind}"], kind
    assert metrics[f"test/mse_gmrf_{kind}"] < 1.2 * metrics[f"test/mse_gaussian_{kind}"], kind
    assert metrics[f"inpaint/acceptance_{kind}"] > 0.5

  # Started at the training-mean fill, not at the Gaussian's, the clamped HMC chains travel to the
  # conditional mean: the estimate lands within a tenth of the Gaussian's own error of it.
  pixels = test.reshape(40, 16)
  observed = inpainting.make_masks("central_square", (4, 4, 1), jax.random.key(0), 40, 2)
  start = np.where(observed, pixels, train.reshape(400, 16).mean(0)).astype(np.float32)
  exact = pca_gaussian(whitener).inpaint(np.where(observed, pixels, np.nan), observed)
  filled, acceptance = inpainting.fill_with_model(model, params, whitener, pixels, observed, start,
                                                  jax.random.key(2), settings)
  errors = {name: inpainting.missing_mse(fill, pixels, observed).mean()
            for name, fill in (("gmrf", filled), ("train_mean", start), ("exact", exact))}
  assert errors["gmrf"] < 0.05 * errors["train_mean"], errors
  assert inpainting.missing_mse(filled, exact, observed).mean() < 0.1 * errors["exact"], errors
  assert acceptance > 0.5

  # The occlusion measure's fill of the same images (its chains start at the full Gaussian's fill).
  task = occlusion.OcclusionTask(
      settings=occlusion.OcclusionSettings(masks=("random_square",), square_size=2, baseline_fill="zero",
                                           sampler="hmc", num_steps=100, burn_in=30, num_leapfrog=10,
                                           step_size=0.05, gaussian_ridge=1e-4, l2=(1e-3,), num_shown=3),
      pixels={"train": train.reshape(400, 16), "test": pixels}, labels={}, pixel_shape=(4, 4, 1),
      whitener=whitener)
  observed = occlusion.observed_masks(task, "random_square", jax.random.key(3))
  fills, _ = occlusion.fill_occluded(task, model, params, pixels, observed, jax.random.key(4))
  train_mean = np.where(observed, pixels, train.reshape(400, 16).mean(0))
  gmrf, floor = (inpainting.missing_mse(fill, pixels, observed).mean() for fill in (fills["gmrf"], train_mean))
  assert gmrf < 0.05 * floor, (gmrf, floor)
