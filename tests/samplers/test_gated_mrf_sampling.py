"""Sampling gated MRFs: images from a tiled mcRBM (the visibles given h: test_deep_gated_mrf_sampling.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepvision.models.tiled_gated_mrf import TiledMCRBM
from deepvision.samplers.gated_mrf import sample_tiled


# Images from a tiled mcRBM ----------------------------------------------------------------------


def test_hmc_samples_the_gaussian_of_a_model_without_filters():
  """C = W = 0: F = ½‖x − b_v‖² + const, so HMC from N(0, I) must reach N(b_v, I)."""
  model = TiledMCRBM(image_shape=(6, 6), patch_size=4, stride=2, n_factors=3, n_cov=3, n_mean=2)
  variables = model.init(jax.random.key(0), jnp.zeros((1, 36)))
  params = {**variables["params"], "C": jnp.zeros((16, 3)), "W": jnp.zeros((16, 2)),
            "b_v": jnp.asarray(0.7)}
  options = dict(num_leapfrog=10, initial_step_size=0.2, adapt=False)
  samples, infos = sample_tiled(model, jax.random.key(1), {"params": params}, 64, 30, **options)
  assert samples.shape == (64, 6, 6) and infos.acceptance_rate.shape == (30,)
  assert float(np.mean(infos.acceptance_rate)) > 0.8
  assert abs(float(np.mean(samples)) - 0.7) < 0.1  # 2304 values: standard error 0.02
  assert abs(float(np.var(samples)) - 1.0) < 0.15
  again, _ = sample_tiled(model, jax.random.key(1), {"params": params}, 64, 30, **options)
  np.testing.assert_array_equal(again, samples)
  start = np.random.default_rng(0).normal(size=(3, 36)).astype(np.float32)
  unchanged, _ = sample_tiled(model, jax.random.key(2), {"params": params}, num_steps=0, start=start)
  np.testing.assert_array_equal(unchanged, start.reshape(3, 6, 6))


def test_tiled_sampling_adapts_by_default_and_rejects_bad_requests():
  model = TiledMCRBM(image_shape=(6, 6), patch_size=4, stride=2, n_factors=3, n_cov=3, n_mean=2)
  variables = model.init(jax.random.key(0), jnp.zeros((1, 36)))
  _, infos = sample_tiled(model, jax.random.key(1), variables, 4, 5, initial_step_size=0.05)
  steps = np.asarray(infos.step_size)
  assert steps[0] == np.float32(0.05) and len(set(steps.tolist())) > 1  # ε moved by ×1.01 / ×0.99
  with pytest.raises(ValueError, match="needs num_images"):
    sample_tiled(model, jax.random.key(0), variables)
  with pytest.raises(ValueError, match="num_images=4 differs from the 2 start images"):
    sample_tiled(model, jax.random.key(0), variables, 4, start=np.zeros((2, 6, 6)))
  with pytest.raises(ValueError, match="unknown HMC options"):
    sample_tiled(model, jax.random.key(0), variables, 2, clamp_mask=np.zeros(36, bool))
  with pytest.raises(ValueError, match="within step_size_bounds"):
    sample_tiled(model, jax.random.key(0), variables, 2, initial_step_size=0.5)
  with pytest.raises(ValueError, match="num_steps must be an int >= 0"):
    sample_tiled(model, jax.random.key(0), variables, 2, num_steps=-1)
