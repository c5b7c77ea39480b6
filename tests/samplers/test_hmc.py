"""The fixed-step HMC kernel: exact Gaussian stationary laws, the original code's trajectory, clamping, keys.

The target is mostly the Gaussian E(x) = ½xᵀAx (3-D, a fixed SPD A with eigenvalues 1, 2.2, 5, so
p = N(0, A⁻¹)), in float64. The step size of the exactness tests is large enough that the leapfrog
alone (without the Metropolis test) would bias the variances by 8-60% per eigen-direction. The
step-size adaptation wrapped around this kernel is tested in test_adaptation.py.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepvision.samplers.base import run_chain
from deepvision.samplers.hmc import HMCInfo, HMCState, hmc, model_energy


def spd_matrix():
  """A fixed 3×3 SPD matrix with eigenvalues (1, 2.2, 5) in a random orthonormal basis."""
  q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))
  return q @ np.diag([1.0, 2.2, 5.0]) @ q.T


A = spd_matrix()


def gaussian_energy(x):
  """½xᵀAx per particle; particles of any shape (B, ...) with 3 coordinates."""
  flat = x.reshape(x.shape[0], -1)
  return 0.5 * jnp.einsum("bi,ij,bj->b", flat, A, flat)


def quartic_energy(x):
  """½xᵀAx + 0.1·Σ x⁴, a non-Gaussian energy with a closed-form gradient."""
  return gaussian_energy(x) + 0.1 * jnp.sum(x ** 4, axis=-1)


def quartic_energy_and_grad(x):
  return quartic_energy(x), x @ A + 0.4 * x ** 3


def gaussian_draws(seed, n, cov):
  return np.random.default_rng(seed).multivariate_normal(np.zeros(len(cov)), cov, size=n)


def sample_covariance(sampler, start, key, burn_in, kept):
  """Mean and pooled second moment (3, 3) of `kept` transitions after `burn_in`; infos; final positions."""

  @jax.jit
  def moments(key, start):
    state = sampler.init(start)
    state, _, _ = run_chain(jax.random.fold_in(key, 0), sampler.step, state, burn_in)
    state, infos, x = run_chain(jax.random.fold_in(key, 1), sampler.step, state, kept,
                                trace=lambda s: s.position.reshape(s.position.shape[0], -1))
    second = jnp.einsum("tbi,tbj->ij", x, x) / (x.shape[0] * x.shape[1])
    return jnp.mean(x, (0, 1)), second, infos, state.position

  return moments(key, start)


def test_fixed_step_chains_sample_the_exact_gaussian(x64):
  sampler = hmc(gaussian_energy, num_leapfrog=3, step_size=0.55)
  start = 3.0 * np.random.default_rng(1).normal(size=(2000, 3))  # far too wide: the chains must converge
  mean, second, infos, _ = sample_covariance(sampler, start, jax.random.key(2), burn_in=40, kept=60)
  cov = np.linalg.inv(A)
  diagonal_error = np.abs(np.diag(np.asarray(second)) - np.diag(cov)) / np.diag(cov)
  assert diagonal_error.max() < 0.05, (diagonal_error, np.asarray(second), cov)
  assert np.linalg.norm(second - cov) / np.linalg.norm(cov) < 0.05
  assert np.abs(np.asarray(mean)).max() < 0.05
  acceptance = float(np.mean(infos.acceptance_rate))
  assert 0.3 < acceptance < 0.95, acceptance  # the Metropolis test is doing work at this step size
  np.testing.assert_array_equal(infos.step_size, 0.55)


def test_fixed_step_kernel_leaves_a_correlated_2d_gaussian_invariant(x64):
  """Chains started at exact draws of N(m, Σ) stay distributed as N(m, Σ): mean and covariance within
  a few standard errors after 30 transitions (one step size at which the Metropolis test rejects)."""
  mean = np.array([1.0, -2.0])
  cov = np.array([[1.0, 0.8], [0.8, 1.5]])
  precision = np.linalg.inv(cov)

  def energy(x):
    centred = x - mean
    return 0.5 * jnp.einsum("bi,ij,bj->b", centred, precision, centred)

  sampler = hmc(energy, num_leapfrog=4, step_size=0.7)
  start = np.random.default_rng(30).multivariate_normal(mean, cov, size=20000)
  state, infos, _ = jax.jit(lambda key: run_chain(key, sampler.step, sampler.init(start), 30))(
      jax.random.key(31))
  x = np.asarray(state.position)
  assert 0.2 < float(np.mean(infos.acceptance_rate)) < 0.95  # the test corrects a visible error
  standard_error = np.sqrt(np.diag(cov) / len(x))
  np.testing.assert_array_less(np.abs(x.mean(0) - mean), 4 * standard_error)
  # The sample covariance's entries have standard errors of about √((Σ_ij² + Σ_ii Σ_jj) / n) ≤ 0.015.
  np.testing.assert_allclose(np.cov(x.T), cov, atol=0.06)
  assert np.abs(x - start).min(axis=1).mean() > 0  # the chains moved


def reference_trajectory(x0, p0, eps, num_leapfrog, energy_and_grad):
  """The original code's leapfrog in NumPy: half step, L − 1 full steps, half step."""
  x, p = x0.copy(), p0.copy()
  p = p - 0.5 * eps * energy_and_grad(x)[1]
  x = x + eps * p
  for _ in range(num_leapfrog - 1):
    p = p - eps * energy_and_grad(x)[1]
    x = x + eps * p
  energy, grad = energy_and_grad(x)
  p = p - 0.5 * eps * grad
  return x, p, energy


def test_one_transition_is_the_original_codes(x64):
  def numpy_energy_and_grad(x):
    return 0.5 * np.einsum("bi,ij,bj->b", x, A, x) + 0.1 * np.sum(x ** 4, -1), x @ A + 0.4 * x ** 3

  eps, num_leapfrog = 0.6, 7
  sampler = hmc(quartic_energy, num_leapfrog=num_leapfrog, step_size=eps)
  x0 = np.random.default_rng(6).normal(size=(400, 3))

  @jax.jit
  def transition(key):
    new, info = sampler.step(key, sampler.init(x0))
    momentum_key, accept_key = jax.random.split(key)  # the documented use of the key
    return new, info, jax.random.normal(momentum_key, x0.shape, x0.dtype), jax.random.uniform(
        accept_key, (400,), x0.dtype)

  new, info, p0, u = transition(jax.random.key(7))
  p0, u = np.asarray(p0), np.asarray(u)
  x1, p1, e1 = reference_trajectory(x0, p0, eps, num_leapfrog, numpy_energy_and_grad)
  e0 = numpy_energy_and_grad(x0)[0]
  delta = (e1 + 0.5 * np.sum(p1 ** 2, -1)) - (e0 + 0.5 * np.sum(p0 ** 2, -1))
  accept = u < np.exp(-delta)
  assert 0.2 < accept.mean() < 0.9  # both outcomes occur
  np.testing.assert_allclose(info.energy_change, delta, rtol=1e-9, atol=1e-12)
  np.testing.assert_array_equal(info.is_accepted, accept)
  np.testing.assert_array_equal(new.position[~accept], x0[~accept])  # back to the start, bitwise
  np.testing.assert_allclose(new.position[accept], x1[accept], rtol=1e-10, atol=1e-12)
  np.testing.assert_allclose(new.energy, np.where(accept, e1, e0), rtol=1e-10, atol=1e-12)
  np.testing.assert_allclose(info.acceptance_rate, accept.mean(), rtol=1e-12)
  np.testing.assert_allclose(info.rejection_rate, 1 - accept.mean(), rtol=1e-12)
  assert float(info.step_size) == eps
  assert isinstance(new, HMCState) and isinstance(info, HMCInfo)


def test_huge_steps_are_rejected_and_revert_exactly(x64):
  sampler = hmc(gaussian_energy, num_leapfrog=20, step_size=50.0)  # the trajectory explodes
  start = np.random.default_rng(8).normal(size=(64, 3))

  @jax.jit
  def transition(key):
    state = sampler.init(start)
    return state, sampler.step(key, state)

  state, (new, info) = transition(jax.random.key(9))
  assert not np.asarray(info.is_accepted).any() and float(info.rejection_rate) == 1.0
  np.testing.assert_array_equal(new.position, start)
  np.testing.assert_array_equal(new.energy, state.energy)
  np.testing.assert_array_equal(new.grad, state.grad)


def test_clamped_coordinates_stay_fixed_and_the_rest_samples_the_conditional(x64):
  clamp_mask = np.array([1, 0, 0])  # flat (D,) 0/1 over (3, 1) particles
  sampler = hmc(gaussian_energy, num_leapfrog=3, step_size=0.55, clamp_mask=clamp_mask)
  start = np.random.default_rng(10).normal(size=(1500, 3, 1))  # (B, 3, 1) particles
  start[:, 0] = 1.5  # the observed coordinate
  start[::2, 0] = -0.0  # a negative zero would turn positive if written: clamped must not be written
  mean, second, _, final = sample_covariance(sampler, start, jax.random.key(11), burn_in=30, kept=40)
  final = np.asarray(final)
  np.testing.assert_array_equal(final[:, 0].view(np.int64), start[:, 0].view(np.int64))
  assert np.abs(final[:, 1:] - start[:, 1:]).min() > 0  # the free coordinates moved
  # x_f | x_c ~ N(−A_ff⁻¹ A_fc x_c, A_ff⁻¹); half the chains hold x_c = 1.5, half x_c = 0.
  a_ff_inv = np.linalg.inv(A[1:, 1:])
  cond_mean = -a_ff_inv @ A[1:, :1] @ np.array([1.5])
  np.testing.assert_allclose(mean[1:], cond_mean / 2, atol=0.04)
  expected_second = a_ff_inv + np.outer(cond_mean, cond_mean) / 2
  np.testing.assert_allclose(second[1:, 1:], expected_second, rtol=0.05, atol=0.02)
  # The same mask shaped like a particle is accepted.
  hmc(gaussian_energy, num_leapfrog=1, step_size=0.1,
      clamp_mask=clamp_mask.reshape(3, 1).astype(bool)).init(start)


def test_closed_form_gradient_matches_autodiff(x64):
  options = dict(num_leapfrog=10, step_size=0.6)
  autodiff = hmc(quartic_energy, **options)
  closed = hmc(quartic_energy, energy_and_grad_fn=quartic_energy_and_grad, **options)
  start = np.random.default_rng(13).normal(size=(300, 3))
  run = lambda sampler, key: run_chain(key, sampler.step, sampler.init(start), 15)
  (state_a, infos_a, _), (state_c, infos_c, _) = jax.jit(
      lambda key: (run(autodiff, key), run(closed, key)))(jax.random.key(14))
  np.testing.assert_array_equal(infos_a.is_accepted, infos_c.is_accepted)
  np.testing.assert_allclose(state_a.position, state_c.position, rtol=1e-8, atol=1e-10)
  np.testing.assert_allclose(infos_a.step_size, infos_c.step_size, rtol=1e-12)
  assert 0.05 < float(np.mean(infos_a.rejection_rate)) < 0.95


def test_run_chain_resumes_bitwise():
  sampler = hmc(quartic_energy, num_leapfrog=2, step_size=0.1)
  start = sampler.init(np.random.default_rng(15).normal(size=(32, 3)).astype(np.float32))
  key = jax.random.key(16)
  run = jax.jit(lambda state, first, n: run_chain(key, sampler.step, state, n, start_step=first)[0],
                static_argnums=2)
  once = run(start, 0, 8)
  twice = run(run(start, 0, 4), 4, 4)
  for a, b in zip(once, twice):
    np.testing.assert_array_equal(a, b)
  assert not np.array_equal(once.position, start.position)


def test_carried_gradient_matches_the_position_and_saves_one_evaluation(x64):
  evaluations = []

  def counted_energy_and_grad(x):
    jax.debug.callback(lambda: evaluations.append(1))
    return quartic_energy_and_grad(x)

  num_leapfrog, steps = 6, 5
  sampler = hmc(quartic_energy, num_leapfrog=num_leapfrog, step_size=0.6,
                energy_and_grad_fn=counted_energy_and_grad)
  start = sampler.init(np.random.default_rng(21).normal(size=(300, 3)))
  jax.effects_barrier()
  assert len(evaluations) == 1  # init evaluates E and ∇E once
  evaluations.clear()
  key = jax.random.key(22)
  carried, infos, _ = jax.jit(lambda state: run_chain(key, sampler.step, state, steps))(start)
  jax.effects_barrier()
  assert len(evaluations) == num_leapfrog * steps  # L gradients per trajectory, not L + 1
  rejected = ~np.asarray(infos.is_accepted)
  assert rejected.any() and not rejected.all()  # both branches of the carried gradient are exercised
  energy, grad = quartic_energy_and_grad(carried.position)
  np.testing.assert_allclose(carried.grad, grad, rtol=1e-12, atol=1e-12)
  np.testing.assert_allclose(carried.energy, energy, rtol=1e-12, atol=1e-12)

  evaluations.clear()  # a state built without the gradient: recomputed each trajectory, same chain
  bare = HMCState(start.position, start.energy)
  recomputed, bare_infos, _ = jax.jit(lambda state: run_chain(key, sampler.step, state, steps))(bare)
  jax.effects_barrier()
  assert len(evaluations) == (num_leapfrog + 1) * steps
  assert recomputed.grad is None
  np.testing.assert_array_equal(bare_infos.is_accepted, infos.is_accepted)
  np.testing.assert_allclose(recomputed.position, carried.position, rtol=1e-12, atol=1e-12)

  wrong = start._replace(grad=jnp.zeros_like(start.grad))  # the carried gradient is the one used
  moved = jax.jit(sampler.step)(key, wrong)[0]
  assert not np.allclose(moved.position, sampler.step(key, start)[0].position)
  with pytest.raises(ValueError, match="state's grad"):
    sampler.step(key, start._replace(grad=start.grad[:, :2]))


def test_sharded_batch_moves_like_one_device_and_pools_the_acceptance(x64):
  # Two shards under an axis name (vmap stands in for pmap over devices): each shard moves as the
  # unsharded kernel does with the key fold_in(key, shard), and both report the whole batch's rate.
  sharded = hmc(quartic_energy, num_leapfrog=5, step_size=0.7, axis_name="batch")
  single = hmc(quartic_energy, num_leapfrog=5, step_size=0.7)
  x = np.random.default_rng(19).normal(size=(2, 64, 3))
  key = jax.random.key(20)

  @jax.jit
  def both(key):
    together = jax.vmap(sharded.step, in_axes=(None, 0), axis_name="batch")(key, jax.vmap(sharded.init)(x))
    alone = [single.step(jax.random.fold_in(key, shard), single.init(x[shard])) for shard in range(2)]
    return together, alone

  (new, info), alone = both(key)
  for shard, (alone_state, alone_info) in enumerate(alone):
    np.testing.assert_allclose(new.position[shard], alone_state.position, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(info.is_accepted[shard], alone_info.is_accepted)
  accepted = [np.asarray(alone_info.is_accepted) for _, alone_info in alone]
  rate = np.concatenate(accepted).mean()
  assert accepted[0].mean() != accepted[1].mean()  # the shards differ; only the pooled rate is shared
  np.testing.assert_allclose(info.acceptance_rate, [rate, rate], rtol=1e-12)


def test_energy_error_is_second_order_in_the_step(x64):
  # Same trajectory length εL: halving ε quarters the leapfrog's error in H (the same momenta).
  start = np.random.default_rng(17).normal(size=(200, 3))
  samplers = [hmc(quartic_energy, num_leapfrog=num_leapfrog, step_size=eps)
              for eps, num_leapfrog in ((0.01, 40), (0.005, 80))]
  errors = jax.jit(lambda key: [jnp.abs(s.step(key, s.init(start))[1].energy_change) for s in samplers])(
      jax.random.key(18))
  errors = [np.asarray(e) for e in errors]
  assert errors[0].max() < 1e-2
  ratio = errors[0].sum() / errors[1].sum()
  assert 3.9 < ratio < 4.1, ratio


@pytest.mark.parametrize("kwargs, match", [
    ({"num_leapfrog": 0}, "num_leapfrog"),
    ({"num_leapfrog": 2.0}, "num_leapfrog"),
    ({"step_size": 0.0}, "step_size"),
    ({"step_size": float("nan")}, "step_size"),
    ({"step_size": True}, "step_size"),
    ({"step_size": np.ones(2)}, "scalar"),
    ({"clamp_mask": np.array([0, 2, 1])}, "clamp_mask"),
    ({"energy_and_grad_fn": 3}, "energy_and_grad_fn"),
    ({"axis_name": 0}, "axis_name"),
])
def test_bad_arguments_raise(kwargs, match):
  options = {"num_leapfrog": 3, "step_size": 0.1, **kwargs}
  with pytest.raises(ValueError, match=match):
    hmc(gaussian_energy, **options)


def test_a_traced_step_size_is_accepted():
  start = np.random.default_rng(23).normal(size=(8, 3)).astype(np.float32)

  @jax.jit
  def moved(step_size):
    sampler = hmc(gaussian_energy, num_leapfrog=2, step_size=step_size)
    return sampler.step(jax.random.key(24), sampler.init(start))[1].step_size

  assert float(moved(0.25)) == 0.25


def test_bad_positions_raise():
  sampler = hmc(gaussian_energy, num_leapfrog=2, step_size=0.1, clamp_mask=np.array([True, False, False]))
  with pytest.raises(ValueError, match="ndim >= 2"):
    sampler.init(np.zeros(3, np.float32))
  with pytest.raises(ValueError, match="floating point"):
    sampler.init(np.zeros((2, 3), np.int32))
  with pytest.raises(ValueError, match="clamp_mask of shape"):
    sampler.init(np.zeros((2, 4), np.float32))
  with pytest.raises(ValueError, match="clamp_mask of shape"):  # 3 coordinates, but not (3,) nor (3, 1)
    hmc(gaussian_energy, num_leapfrog=2, step_size=0.1,
        clamp_mask=np.ones((1, 3), bool)).init(np.zeros((2, 3, 1), np.float32))
  with pytest.raises(ValueError, match="one value per particle"):
    hmc(lambda x: jnp.sum(x), num_leapfrog=2, step_size=0.1).init(np.zeros((2, 3), np.float32))


@pytest.mark.parametrize("name", ["mcrbm_tiny", "grbm_tiny"])  # a closed form, autodiff
def test_model_energy_gives_the_free_energy_and_its_gradient(x64, name):
  from deepvision import zoo  # pylint: disable=g-import-not-at-top
  model = zoo.create(name)
  x = np.random.default_rng(25).normal(size=(5, model.n_visible))
  variables = model.init(jax.random.key(26), jnp.zeros((1, model.n_visible)), method="free_energy")
  energy = model_energy(model, variables)
  value, grad = energy.energy_and_grad_fn(x)
  np.testing.assert_allclose(value, model.apply(variables, x, method="free_energy"), rtol=1e-12)
  np.testing.assert_allclose(grad, jax.grad(lambda v: jnp.sum(energy.energy_fn(v)))(x), rtol=1e-9,
                             atol=1e-12)
