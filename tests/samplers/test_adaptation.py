"""The step-size adaptation wrapper: the original code's rule, its direction, freezing, shards and checks.

Targets as in test_hmc.py: the Gaussian E(x) = ½xᵀAx (A SPD with eigenvalues 1, 2.2, 5) and a quartic
energy, in float64.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepvision.samplers.adaptation import AdaptationState, adapt_step_size
from deepvision.samplers.base import run_chain
from deepvision.samplers.hmc import HMCInfo, HMCState, hmc
from test_hmc import A, gaussian_draws, gaussian_energy, quartic_energy


def adaptive(energy, num_leapfrog=20, axis_name=None, **options):
  return adapt_step_size(lambda eps: hmc(energy, num_leapfrog=num_leapfrog, step_size=eps, axis_name=axis_name),
                         **options)


def test_adaptation_settles_at_the_target_rejection(x64):
  sampler = adaptive(gaussian_energy, initial_step_size=0.1, step_size_bounds=(0.001, 2.0))
  capped = adaptive(gaussian_energy, initial_step_size=0.02, step_size_bounds=(0.01, 0.05))
  start = gaussian_draws(3, 256, np.linalg.inv(A))

  @jax.jit
  def chains(key):
    free = run_chain(key, sampler.step, sampler.init(start), 500, trace=lambda s: s.rejection_avg)
    return free[1:], run_chain(key, capped.step, capped.init(start), 120)[1].step_size

  (infos, rejection_avg), capped_steps = chains(jax.random.key(4))
  settled = np.asarray(rejection_avg[-200:])
  assert abs(settled.mean() - 0.1) < 0.05, settled.mean()
  assert abs(float(np.mean(infos.rejection_rate[-200:])) - 0.1) < 0.05
  steps = np.asarray(infos.step_size)
  assert 0.1 < steps[-200:].min() and steps.max() < 2.0  # an interior balance, not a bound
  # Each transition moved ε by ×1.01 or ×0.99 after the running average it produced.
  ratio = steps[1:] / steps[:-1]
  grow = np.asarray(rejection_avg[:-1]) < 0.1
  np.testing.assert_allclose(ratio[grow], 1.01, rtol=1e-12)
  np.testing.assert_allclose(ratio[~grow], 0.99, rtol=1e-12)
  # With ε_max = 0.05 the target is out of reach: ε climbs to the bound and stays there.
  capped_steps = np.asarray(capped_steps)
  assert capped_steps.min() >= 0.01 and capped_steps.max() <= 0.05
  np.testing.assert_array_equal(capped_steps[-20:], 0.05)


@pytest.mark.parametrize("initial, direction", [(1.5, "shrinks"), (0.02, "grows")])
def test_step_size_moves_towards_the_target_rejection(x64, initial, direction):
  """Too large an ε rejects far more than 10%: it shrinks; too small rejects nothing: it grows."""
  sampler = adaptive(gaussian_energy, num_leapfrog=5, initial_step_size=initial, target_rejection=0.1,
                     step_size_bounds=(0.001, 2.0))
  start = gaussian_draws(5, 256, np.linalg.inv(A))
  _, infos, _ = jax.jit(lambda key: run_chain(key, sampler.step, sampler.init(start), 150))(jax.random.key(6))
  steps, rejection = np.asarray(infos.step_size), np.asarray(infos.rejection_rate)
  if direction == "shrinks":
    assert rejection[:5].mean() > 0.5 and steps[-1] < 0.5 * initial
  else:
    assert rejection[:5].mean() < 0.05 and steps[-1] > 2 * initial
  # Either way the rejection rate ends nearer the target than it started.
  assert abs(rejection[-30:].mean() - 0.1) < abs(rejection[:5].mean() - 0.1)


def test_one_transition_follows_the_rule_from_the_kernels_rejection(x64):
  eps = 0.6
  kernel = hmc(quartic_energy, num_leapfrog=7, step_size=eps)
  sampler = adaptive(quartic_energy, num_leapfrog=7, initial_step_size=eps, step_size_bounds=(0.001, 1.0))
  x0 = np.random.default_rng(6).normal(size=(400, 3))
  key = jax.random.key(7)
  state = sampler.init(x0, rejection_avg=0.2)
  assert isinstance(state, AdaptationState) and isinstance(state.inner, HMCState)
  assert state.position is state.inner.position
  new, info = jax.jit(sampler.step)(key, state)
  fixed, fixed_info = jax.jit(kernel.step)(key, kernel.init(x0))
  assert isinstance(info, HMCInfo)
  for a, b in zip(new.inner, fixed):  # the inner transition is the fixed-step kernel's, bit for bit
    np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(info.is_accepted, fixed_info.is_accepted)
  rate = np.asarray(fixed_info.is_accepted).mean()
  assert 0.2 < rate < 0.9
  rejection_avg = 0.9 * 0.2 + 0.1 * (1 - rate)
  np.testing.assert_allclose(new.rejection_avg, rejection_avg, rtol=1e-12)
  np.testing.assert_allclose(new.step_size, eps * (1.01 if rejection_avg < 0.1 else 0.99), rtol=1e-12)
  assert float(info.step_size) == eps  # the info reports the ε the trajectory used


def test_a_shrink_is_bounded_only_by_the_minimum_and_huge_steps_revert(x64):
  sampler = adaptive(gaussian_energy, initial_step_size=0.2, step_size_bounds=(0.001, 0.25))
  start = np.random.default_rng(8).normal(size=(64, 3))
  state = sampler.init(start, step_size=50.0)  # the trajectory explodes
  new, info = jax.jit(sampler.step)(jax.random.key(9), state)
  assert float(info.rejection_rate) == 1.0
  np.testing.assert_array_equal(new.position, start)
  np.testing.assert_allclose(new.rejection_avg, 0.9 * 0.1 + 0.1)  # from the target, 0.1
  np.testing.assert_allclose(new.step_size, 0.99 * 50.0)


def test_freezing_keeps_the_step_size_and_is_the_fixed_kernel(x64):
  sampler = adaptive(quartic_energy, num_leapfrog=3, initial_step_size=0.3, step_size_bounds=(0.001, 1.0))
  kernel = hmc(quartic_energy, num_leapfrog=3, step_size=0.3)
  start = np.random.default_rng(10).normal(size=(50, 3))
  key = jax.random.key(11)

  @jax.jit
  def both(key):
    def frozen_step(k, s):
      return sampler.step(k, s, adapt=jnp.asarray(False))
    return (run_chain(key, frozen_step, sampler.init(start), 6),
            run_chain(key, kernel.step, kernel.init(start), 6))

  (frozen, infos, _), (fixed, _, _) = both(key)
  np.testing.assert_array_equal(infos.step_size, 0.3)
  assert float(frozen.step_size) == 0.3 and float(frozen.rejection_avg) != 0.1  # r̄ still moves
  np.testing.assert_array_equal(frozen.position, fixed.position)


def test_run_chain_resumes_bitwise():
  sampler = adaptive(quartic_energy, num_leapfrog=2, initial_step_size=0.1)
  start = sampler.init(np.random.default_rng(15).normal(size=(32, 3)).astype(np.float32))
  key = jax.random.key(16)
  run = jax.jit(lambda state, first, n: run_chain(key, sampler.step, state, n, start_step=first)[0],
                static_argnums=2)
  once = run(start, 0, 8)
  twice = run(run(start, 0, 4), 4, 4)
  for a, b in zip(jax.tree.leaves(once), jax.tree.leaves(twice)):
    np.testing.assert_array_equal(a, b)
  assert float(once.step_size) != 0.1  # the adapted step size travelled through the pieces


def test_sharded_batch_adapts_like_one_device(x64):
  # Two shards under an axis name (vmap stands in for pmap over devices): both adapt ε from the rate
  # of the whole batch, which the kernel's info pools.
  options = dict(num_leapfrog=5, initial_step_size=0.7, step_size_bounds=(0.001, 1.0))
  sharded = adaptive(quartic_energy, axis_name="batch", **options)
  single = hmc(quartic_energy, num_leapfrog=5, step_size=0.7)
  x = np.random.default_rng(19).normal(size=(2, 64, 3))
  key = jax.random.key(20)

  @jax.jit
  def both(key):
    together = jax.vmap(sharded.step, in_axes=(None, 0), axis_name="batch")(key, jax.vmap(sharded.init)(x))
    alone = [single.step(jax.random.fold_in(key, shard), single.init(x[shard])) for shard in range(2)]
    return together, alone

  (new, _), alone = both(key)
  rate = np.concatenate([np.asarray(info.is_accepted) for _, info in alone]).mean()
  rejection_avg = 0.9 * 0.1 + 0.1 * (1 - rate)
  np.testing.assert_allclose(new.rejection_avg, [rejection_avg] * 2, rtol=1e-12)
  np.testing.assert_allclose(new.step_size, [0.7 * (1.01 if rejection_avg < 0.1 else 0.99)] * 2, rtol=1e-12)


@pytest.mark.parametrize("kwargs, match", [
    ({"initial_step_size": 0.0}, "initial_step_size"),
    ({"initial_step_size": float("nan")}, "initial_step_size"),
    ({"initial_step_size": 0.5}, "within step_size_bounds"),
    ({"target_rejection": 1.0}, "target_rejection"),
    ({"target_rejection": 0}, "target_rejection"),
    ({"step_size_bounds": (0.1, 0.01)}, "ordered"),
    ({"step_size_bounds": (0.0, 0.1)}, r"step_size_bounds\[0\]"),
    ({"step_size_bounds": 0.1}, "pair"),
    ({"step_size_grow": 0.9}, "step_size_grow"),
    ({"step_size_shrink": 1.5}, "step_size_shrink"),
    ({"rejection_decay": 1.0}, "rejection_decay"),
])
def test_bad_settings_raise(kwargs, match):
  with pytest.raises(ValueError, match=match):
    adaptive(gaussian_energy, **kwargs)


def test_bad_states_and_kernels_raise():
  with pytest.raises(ValueError, match="kernel must be a callable"):
    adapt_step_size(3)
  sampler = adaptive(gaussian_energy)
  with pytest.raises(ValueError, match="scalars shared by the batch"):
    sampler.init(np.zeros((2, 3), np.float32), rejection_avg=np.ones(2))
  with pytest.raises(ValueError, match="scalar"):
    sampler.init(np.zeros((2, 3), np.float32), step_size=np.ones(2))
  assert float(sampler.init(np.zeros((2, 3)), step_size=5.0).step_size) == 5.0  # a state may hold any ε
