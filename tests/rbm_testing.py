"""Helpers shared by the RBM, sampler and estimator tests: random parameters and all binary states."""

import jax
import jax.numpy as jnp
import numpy as np


def random_params(model, seed, scale=1.0, log_sigma_scale=0.3, dtype=np.float64):
  """NumPy params of `model`: every entry scale·N(0, 1) (log_sigma: log_sigma_scale·N(0, 1))."""
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, model.n_visible)),
                                             method="free_energy"))["params"]
  rng = np.random.default_rng(seed)
  return {name: ((log_sigma_scale if name == "log_sigma" else scale) * rng.normal(size=leaf.shape)).astype(dtype)
          for name, leaf in shapes.items()}


def random_variables(model, seed, scale=1.0, log_sigma_scale=0.3):
  """{'params': random_params(...)} in float64 under `jax.enable_x64`, float32 otherwise."""
  dtype = np.float64 if jax.config.jax_enable_x64 else np.float32
  return {"params": random_params(model, seed, scale, log_sigma_scale, dtype)}


def binary_states(n):
  """All 2^n binary vectors of length n, float64 (n, ...) rows; unit 0 is the least significant bit."""
  return ((np.arange(2 ** n)[:, None] >> np.arange(n)) & 1).astype(np.float64)
