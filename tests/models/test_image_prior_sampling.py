"""HMC (`samplers.hmc`) on the free energies of the pair-wise MRF and the FoE samples their exact laws.

A 2×2 image and an energy F(x) = (ε/2)‖x‖² + G(x) with G invariant to adding a constant (differences,
zero-mean filters). In the orthonormal basis x = Qz whose first vector is (1, 1, 1, 1)/2, z₀ (the scaled mean)
is exactly N(0, 1/ε) and independent of z₁…z₃, whose density ∝ exp(−F(Q(0, z₁, z₂, z₃))) is integrated on
a grid (trapezoid rule, spacing 0.15 on [−5.4, 5.4]³: the potentials are analytic, so the error is far below the
Monte Carlo error). The chains (as in tests/samplers/test_hmc.py: many short chains from a wrong start, a
step size at which the Metropolis test works) must give the exact second moments and the kurtosis of a
clique's response (a neighbour difference, a filter response), which the heavy-tailed potentials raise well
above a Gaussian's 3.
"""

import jax
import jax.numpy as jnp
import numpy as np

from deepvision.models.field_of_experts import FieldOfExperts
from deepvision.models.pairwise_mrf import PairwiseMRF
from deepvision.samplers.base import run_chain
from deepvision.samplers.hmc import hmc, model_energy

BASIS = np.linalg.qr(np.column_stack([np.ones(4), np.eye(4)[:, :3]]))[0]  # first column ∝ (1, 1, 1, 1)
BASIS = BASIS * np.sign(BASIS[0, 0])


def exact_moments(model, variables, epsilon, clique):
  """(E[x xᵀ] (4, 4), the kurtosis of r = cliqueᵀx) by quadrature over z₁…z₃, z₀ ~ N(0, 1/ε) apart."""
  grid = np.linspace(-5.4, 5.4, 73)
  z = np.stack(np.meshgrid(grid, grid, grid, indexing="ij"), axis=-1).reshape(-1, 3)
  z = np.concatenate([np.zeros((len(z), 1)), z], axis=1)
  x = z @ BASIS.T
  energy = np.asarray(jax.jit(lambda x: model.apply(variables, x, method="free_energy"))(x))
  weights = np.exp(-(energy - energy.min()))
  weights /= weights.sum()
  second = np.einsum("n,ni,nj->ij", weights, z, z)
  second[0, 0] = 1.0 / epsilon
  # r does not involve z₀: the clique sums to 0.
  r = x @ clique
  return BASIS @ second @ BASIS.T, float(np.sum(weights * r ** 4) / np.sum(weights * r ** 2) ** 2)


def hmc_moments(model, variables, key, step_size, clique, num_leapfrog=5, chains=4000, burn_in=30, kept=40):
  energy = model_energy(model, variables)
  sampler = hmc(energy.energy_fn, num_leapfrog=num_leapfrog, step_size=step_size,
                energy_and_grad_fn=energy.energy_and_grad_fn)
  start = 2.0 * np.random.default_rng(0).normal(size=(chains, 2, 2)) + 1.0  # too wide, off-centre

  @jax.jit
  def run(key):
    state, _, _ = run_chain(jax.random.fold_in(key, 0), sampler.step, sampler.init(start), burn_in)
    _, infos, x = run_chain(jax.random.fold_in(key, 1), sampler.step, state, kept,
                            trace=lambda s: s.position.reshape(chains, 4))
    r = x @ clique
    return (jnp.einsum("tbi,tbj->ij", x, x) / (chains * kept), jnp.mean(r ** 4) / jnp.mean(r ** 2) ** 2,
            jnp.mean(infos.acceptance_rate))

  return run(key)


def check_against_quadrature(model, variables, epsilon, step_size, clique):
  clique = np.asarray(clique, np.float64).reshape(4)
  exact_second, exact_kurtosis = exact_moments(model, variables, epsilon, clique)
  assert exact_kurtosis > 3.6  # far from Gaussian
  second, kurtosis, acceptance = hmc_moments(model, variables, jax.random.key(1), step_size, clique)
  assert 0.5 < float(acceptance) < 0.97, float(acceptance)  # the Metropolis test is doing work
  np.testing.assert_allclose(np.diag(second), np.diag(exact_second), rtol=0.04)
  np.testing.assert_allclose(second, exact_second, atol=0.03)
  np.testing.assert_allclose(float(kurtosis), exact_kurtosis, rtol=0.08)


def test_hmc_samples_the_exact_pairwise_mrf(x64):
  model = PairwiseMRF(image_shape=(2, 2), epsilon=1.0)
  variables = {"params": {"log_alpha": np.log([1.5, 1.0]), "log_sigma": np.log([0.3, 0.5])}}
  check_against_quadrature(model, variables, epsilon=1.0, step_size=0.25, clique=[[1, -1], [0, 0]])


def test_hmc_samples_the_exact_field_of_experts(x64):
  model = FieldOfExperts(image_shape=(2, 2), n_filters=2, filter_shape=(2, 2), epsilon=1.0)
  variables = {"params": {"J": 2.0 * np.array([[[1.0, -1.0], [0.5, -0.5]], [[1.0, 0.3], [-1.0, -0.3]]]),
                          "log_alpha": np.log([1.0, 2.0])}}
  check_against_quadrature(model, variables, epsilon=1.0, step_size=0.25, clique=variables["params"]["J"][1])
