"""The inpainting measure: masks and errors against hand computations, fills that keep the observed
pixels bit for bit, and records that match the fills."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepvision import zoo
from deepvision.data.whiten import PCAWhitening
from deepvision.estimators import inpainting


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
    for name in ("gmrf", "gaussian", "gaussian_full"):
      fill = fills[kind][name]
      np.testing.assert_array_equal(fill[observed], pixels[observed])  # bit for bit
      assert np.all(np.isfinite(fill))
      errors[name] = ((fill.astype(np.float64) - pixels) ** 2 * ~observed).sum(axis=1) / 4
      assert metrics[f"test/mse_{name}_{kind}"] == pytest.approx(errors[name].mean(), rel=1e-9)
    best = fills[kind]["best_gaussian"]
    assert errors[best].mean() <= min(errors["gaussian"].mean(), errors["gaussian_full"].mean())
    assert metrics[f"test/mse_gain_{kind}"] == pytest.approx((errors[best] - errors["gmrf"]).mean(),
                                                             rel=1e-9, abs=1e-12)
