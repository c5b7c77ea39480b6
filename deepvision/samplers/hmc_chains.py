r"""HMC chains of an energy model, in the layout the contrastive trainer keeps and shards.

Hybrid Monte Carlo (`samplers.hmc`) on a model's free energy F(x), with the step size adapted as the
original mcRBM code does (`samplers.adaptation`; Ranzato & Hinton, CVPR 2010), as a model-level sampler
of the registry (`samplers.registry`, name 'hmc'). Its state `HMCChains(position, energy, step_size,
rejection_avg)` has a leading num_chains axis on every leaf, so the trainer can shard it over devices
along axis 0 (`deepvision.parallel`): ε and r̄, one scalar each in the original code, are stored per
chain as (num_chains,) arrays whose entries are all equal. With `axis_name` each transition adapts them
from the rejection rate of *all* chains (a `lax.pmean` over the devices), so every device keeps the ε
one device holding all the chains would adapt, and a checkpoint resumes on any number of devices.

Each transition recomputes F and ∂F/∂x at its start (one call, whose gradient the first half step
uses), so the chains may be carried across parameter updates (PCD, FPCD) and the carried `energy` is
never stale.
"""

from __future__ import annotations

from collections.abc import Mapping

from typing import Any, NamedTuple

import flax.linen as nn
import jax
import numpy as np
import jax.numpy as jnp

from deepvision.samplers import adaptation
from deepvision.samplers import hmc as hmc_lib
from deepvision.samplers.base import SamplingAlgorithm

Array = jax.Array


class HMCChains(NamedTuple):
  """The persistent state of a batch of HMC chains; every leaf has a leading num_chains axis.

  Attributes:
    position: the particles x, (C, V).
    energy: F(x) under the parameters of the last transition, (C,).
    step_size: the leapfrog step ε, (C,), every entry equal (one ε shared by all chains).
    rejection_avg: the running rejection average r̄, (C,), every entry equal.
  """

  position: Array
  energy: Array
  step_size: Array
  rejection_avg: Array


class HMCChainInfo(NamedTuple):
  """acceptance_rate: fraction of all chains accepted; step_size: the ε used; rejection_avg: r̄ after."""

  acceptance_rate: Array
  step_size: Array
  rejection_avg: Array


def hmc_chains(model: nn.Module, variables: Any, *, axis_name: str | None = None, num_leapfrog: int = 20,
               initial_step_size: float = adaptation.INITIAL_STEP_SIZE,
               target_rejection: float = adaptation.TARGET_REJECTION, adapt: bool = True,
               step_size_bounds: tuple[float, float] = adaptation.STEP_SIZE_BOUNDS,
               step_size_grow: float = adaptation.STEP_SIZE_GROW,
               step_size_shrink: float = adaptation.STEP_SIZE_SHRINK,
               rejection_decay: float = adaptation.REJECTION_DECAY) -> SamplingAlgorithm:
  """HMC on the model's F(x) with the original code's step-size adaptation, state `HMCChains`.

  One transition is one trajectory of `num_leapfrog` leapfrog steps with a Metropolis test per chain
  (`samplers.hmc.hmc`), then, with `adapt`, `samplers.adaptation`'s rule on the rejection rate of all
  chains (over every device when `axis_name` is set). Without `adapt` ε stays fixed (r̄ is still kept).
  F and ∂F/∂x come from `samplers.hmc.model_energy` (the closed form of the gated MRFs, else autodiff).

  Args:
    model, variables: the energy model and its variables.
    axis_name: the data-parallel axis (the acceptance rate is averaged over it), or None.
    num_leapfrog: leapfrog steps L per trajectory (the original code's 20).
    initial_step_size, target_rejection, step_size_bounds, step_size_grow, step_size_shrink,
      rejection_decay: as `samplers.adaptation.adapt_step_size` (the original code's defaults).
    adapt: adapt ε (True) or keep it (the initial step size need not lie within the bounds then).

  Returns:
    `SamplingAlgorithm(init, step)`: `init(position, previous=None)` starts chains at `position`
    (ε₀ and r̄ = target, or the ε and r̄ of the `HMCChains` `previous`); `step(key, chains)` returns
    `HMCChainInfo`.

  Raises:
    ValueError: a bad option (checked here, before any compute).
  """
  energy = hmc_lib.model_energy(model, variables)

  def kernel(step_size: Any) -> SamplingAlgorithm:
    return hmc_lib.hmc(energy.energy_fn, num_leapfrog=num_leapfrog, step_size=step_size,
                       energy_and_grad_fn=energy.energy_and_grad_fn, axis_name=axis_name)

  if not isinstance(adapt, bool):
    raise ValueError(f"adapt must be True or False, got {adapt!r}")
  settings = dict(initial_step_size=initial_step_size, target_rejection=target_rejection,
                  step_size_bounds=tuple(step_size_bounds), step_size_grow=step_size_grow,
                  step_size_shrink=step_size_shrink, rejection_decay=rejection_decay)
  kernel(initial_step_size)  # checks the kernel's options before any compute
  adaptation.check_adaptation(**settings, adapting=adapt)
  sampler = adaptation.adapt_step_size(kernel, **settings) if adapt else None

  def per_chain(value: Array, like: Array) -> Array:
    return jnp.full(like.shape[:1], value, like.dtype)

  def start(x: Array, step_size: Any, rejection_avg: Any) -> tuple[Any, Array, Array]:
    """(the kernel's state at x, ε, r̄) in x's dtype."""
    if sampler is not None:
      state = sampler.init(x, step_size=step_size, rejection_avg=rejection_avg)
      return state.inner, state.step_size, state.rejection_avg
    step_size = initial_step_size if step_size is None else step_size
    rejection_avg = target_rejection if rejection_avg is None else rejection_avg
    return (kernel(step_size).init(x), jnp.asarray(step_size, x.dtype),
            jnp.asarray(rejection_avg, x.dtype))

  def init(position: Any, previous: HMCChains | None = None) -> HMCChains:
    x = model.apply(variables, position, method="visible")
    if previous is None:
      inner, eps, rejection_avg = start(x, None, None)
    else:
      inner, eps, rejection_avg = start(x, previous.step_size[0], previous.rejection_avg[0])
    return HMCChains(x, inner.energy, per_chain(eps, x), per_chain(rejection_avg, x))

  def step(key: Array, state: HMCChains) -> tuple[HMCChains, HMCChainInfo]:
    x = state.position
    # F and ∂F/∂x at the start in one call: the first half step needs the gradient anyway.
    inner, eps, rejection_avg = start(x, state.step_size[0], state.rejection_avg[0])
    if sampler is not None:
      moved, info = sampler.step(key, adaptation.AdaptationState(inner, eps, rejection_avg))
      moved_inner, new_eps, new_rejection_avg = moved.inner, moved.step_size, moved.rejection_avg
    else:
      moved_inner, info = kernel(eps).step(key, inner)
      new_eps = eps
      new_rejection_avg = adaptation.running_rejection(rejection_avg, info.rejection_rate,
                                                       rejection_decay).astype(x.dtype)
    chains = HMCChains(moved_inner.position, moved_inner.energy, per_chain(new_eps, x),
                       per_chain(new_rejection_avg, x))
    return chains, HMCChainInfo(info.acceptance_rate, info.step_size, new_rejection_avg)

  return SamplingAlgorithm(init, step)


def chain_step_size(chains: Any) -> float | None:
  """The HMC step size the chains adapted to (None for chains without one); `chains` is the state's
  chains or, as `checkpoint.read_state` returns them, their dict."""
  step_size = chains.get("step_size") if isinstance(chains, Mapping) else getattr(chains, "step_size", None)
  return None if step_size is None else float(np.asarray(step_size).reshape(-1)[0])
