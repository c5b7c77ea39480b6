"""The Gaussian baselines against their closed forms."""

from __future__ import annotations

import numpy as np

from deepvision.data.whiten import PCAWhitening
from deepvision.estimators import gaussian_baselines


def test_gaussian_baseline_is_the_pca_residual_gaussian():
  x = np.random.default_rng(1).standard_normal((200, 9)) @ np.random.default_rng(2).standard_normal((9, 9))
  whitener = PCAWhitening.fit(x, variance=0.9)
  k = whitener.num_components
  assert 1 <= k < 9
  baselines = gaussian_baselines.gaussian_baselines(x, whitener, ridge=0.0)
  sample_cov = np.cov(x.T, bias=True)
  # Kept directions keep their variance; the others share the discarded variance equally.
  values = np.linalg.eigvalsh(baselines["gaussian"].covariance)[::-1]
  np.testing.assert_allclose(values[:k], np.linalg.eigvalsh(sample_cov)[::-1][:k], rtol=1e-9)
  np.testing.assert_allclose(values[k:], (np.trace(sample_cov) - values[:k].sum()) / (9 - k), rtol=1e-9)
  np.testing.assert_allclose(baselines["gaussian_full"].covariance, sample_cov, rtol=1e-9, atol=1e-12)
