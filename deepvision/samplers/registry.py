"""The sampler registry: names in configs → model-level sampler builders.

A builder is `builder(model, variables, *, axis_name=None, **options) -> SamplingAlgorithm` over the
model's visibles; `axis_name` names the data-parallel axis for samplers whose state is shared by all
chains (HMC's step size). Names: 'gibbs' (block Gibbs for RBMs, Geman & Geman 1984; Hinton 2002) and
'hmc' (Hybrid Monte Carlo on the free energy with the mcRBM code's step-size adaptation, Ranzato &
Hinton 2010). Registering a name twice is an error (`deepvision.registry.Registry`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn

from deepvision.registry import Registry
from deepvision.samplers import gibbs
from deepvision.samplers.base import SamplingAlgorithm
from deepvision.samplers.hmc_chains import hmc_chains

SAMPLERS: Registry[Callable[..., SamplingAlgorithm]] = Registry("sampler")
# Samplers whose state outlives the chains' positions (an adapted step size): CD keeps it between updates.
ADAPTIVE_SAMPLERS = ("hmc",)


@SAMPLERS.register("gibbs")
def block_gibbs(model: nn.Module, variables: Any, *, axis_name: str | None = None,
                **options: Any) -> SamplingAlgorithm:
  """Block Gibbs (`samplers.gibbs.block_gibbs`); every chain is independent, so `axis_name` is unused."""
  del axis_name
  return gibbs.block_gibbs(model, variables, **options)


SAMPLERS.register("hmc", hmc_chains)


def make_sampler(name: str, model: nn.Module, variables: Any, *, axis_name: str | None = None,
                 **options: Any) -> SamplingAlgorithm:
  """The sampler registered as `name` for `model` (UnknownNameError, listing the names, otherwise)."""
  return SAMPLERS.get(name)(model, variables, axis_name=axis_name, **options)
