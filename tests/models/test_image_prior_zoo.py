"""The zoo's image priors: exact parameter counts, and (slow tier) HMC on the free energies of the two exactly
samplable models keeps their exact samples' law (the energy and the sampler describe the same density)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepvision import zoo
from deepvision.models.field_of_experts import FieldOfExperts
from deepvision.models.pairwise_mrf import PairwiseMRF
from deepvision.models.stationary_gaussian import StationaryGaussian, frequency_rings
from deepvision.models.wavelet_prior import WaveletPrior
from deepvision.samplers.base import run_chain
from deepvision.samplers.hmc import hmc, model_energy

VARIANTS = {
    # name: (family, image shape, parameters)
    "stationary_gaussian": (StationaryGaussian, (64, 64), 64 * 64 + 1),
    "stationary_gaussian_tiny": (StationaryGaussian, (4, 6), 4 * 6 + 1),
    "wavelet_prior": (WaveletPrior, (64, 64), 2 * 4 * 3 + 2),
    "wavelet_prior_tiny": (WaveletPrior, (8, 8), 2 * 2 * 3 + 2),
    "pairwise_mrf": (PairwiseMRF, (64, 64), 4),
    "pairwise_mrf_tiny": (PairwiseMRF, (3, 3), 4),
    "field_of_experts": (FieldOfExperts, (64, 64), 8 * 9 + 8),
    "field_of_experts_tiny": (FieldOfExperts, (4, 4), 2 * 4 + 2),
}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_zoo_variants_have_their_exact_parameter_counts(name):
  family, shape, count = VARIANTS[name]
  model = zoo.create(name)
  assert isinstance(model, family) and model.image_shape == shape and model.n_visible == shape[0] * shape[1]
  assert zoo.count_params(zoo.abstract_variables(model)["params"]) == count
  assert zoo.paper(name) == zoo.paper(name.removesuffix("_tiny")) != ""
  energy = jax.eval_shape(lambda v, x: model.apply(v, x, method="free_energy"), zoo.abstract_variables(model),
                          jax.ShapeDtypeStruct((3, *shape), jnp.float32))
  assert energy.shape == (3,)


def hmc_from(model, variables, start, transitions, step_size):
  energy = model_energy(model, variables)
  sampler = hmc(energy.energy_fn, num_leapfrog=5, step_size=step_size, energy_and_grad_fn=energy.energy_and_grad_fn)
  run = jax.jit(lambda key: run_chain(key, sampler.step, sampler.init(start), transitions))
  state, infos, _ = run(jax.random.key(1))
  return np.asarray(state.position), float(np.mean(infos.acceptance_rate))


@pytest.mark.slow  # 2-3 s on 2 cores (HMC compiles); run with -m slow
def test_hmc_keeps_the_exact_samples_of_the_stationary_gaussian():
  model = zoo.create("stationary_gaussian_tiny")
  rng = np.random.default_rng(0)
  _, variables = StationaryGaussian.fit(np.cumsum(rng.normal(size=(50, 4, 6)), 2))
  start = model.apply(variables, jax.random.key(0), 4000, method="sample")
  end, acceptance = hmc_from(model, variables, start.reshape(4000, 24), 10, step_size=0.3)
  assert 0.3 < acceptance < 0.99 and np.abs(end - start.reshape(4000, 24)).min(axis=1).mean() > 0.01
  # Each ring's mean periodogram stays S (rings average ≥ 2 exponential values per chain: ≤ 1.7% error).
  spectrum = np.exp(variables["params"]["log_spectrum"])
  periodogram = np.mean(np.abs(np.fft.fft2(end.reshape(4000, 4, 6) - variables["params"]["mean"])) ** 2, 0) / 24
  rings = frequency_rings((4, 6))
  ratio = np.bincount(rings.reshape(-1), periodogram.reshape(-1)) / np.bincount(rings.reshape(-1),
                                                                                 spectrum.reshape(-1))
  np.testing.assert_allclose(ratio[1:], 1.0, atol=0.08)
  np.testing.assert_allclose(ratio[0], 1.0, atol=0.12)  # DC: S_0 χ²₁, 2.2% error


@pytest.mark.slow  # 5-6 s on 2 cores (the Gamma sampler and HMC compile); run with -m slow
def test_hmc_keeps_the_exact_samples_of_the_wavelet_prior():
  model = zoo.create("wavelet_prior_tiny")
  shapes = np.array([[1.3, 1.6, 2.0], [1.2, 1.5, 1.8]])  # β > 1: a C¹ energy for the leapfrog
  variables = {"params": {"log_scale": np.log(np.full((2, 3), 0.8)), "log_shape": np.log(shapes),
                          "low_mean": np.asarray(0.5), "low_log_std": np.asarray(np.log(2.0))}}
  start = model.apply(variables, jax.random.key(0), 3000, method="sample").reshape(3000, 64)
  end, acceptance = hmc_from(model, variables, start, 10, step_size=0.25)
  assert 0.3 < acceptance < 0.99 and np.abs(end - start).min(axis=1).mean() > 0.01
  # E Σ_{c ∈ b} |c/s_b|^β_b = n_b / β_b: |c/s|^β ~ Gamma(1/β, 1).
  counts, _ = model.band_counts()
  for x in (start, end):
    per_band = np.asarray(model.apply(variables, x, method="subband_energies")).mean(axis=0)
    np.testing.assert_allclose(per_band, counts / shapes, rtol=0.05)
