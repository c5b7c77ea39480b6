"""The sampler registry: names, builders, duplicate and unknown names."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepvision import zoo
from deepvision.registry import UnknownNameError
from deepvision.samplers.hmc_chains import HMCChains
from deepvision.samplers.registry import ADAPTIVE_SAMPLERS, SAMPLERS, make_sampler
from deepvision.train import contrastive


def test_names_and_the_trainers_view_are_the_same_registry():
  assert SAMPLERS.names() == ["gibbs", "hmc"]
  assert set(ADAPTIVE_SAMPLERS) <= set(SAMPLERS.names())
  assert contrastive.SAMPLERS is SAMPLERS and contrastive.HMCChains is HMCChains  # checkpoints' structure


def test_a_duplicate_name_is_rejected_and_the_original_kept():
  builder = SAMPLERS.get("hmc")
  with pytest.raises(ValueError, match="duplicate sampler name 'hmc'"):
    SAMPLERS.register("hmc", lambda *args, **kwargs: None)
  with pytest.raises(ValueError, match="duplicate sampler name 'gibbs'"):
    SAMPLERS.register("gibbs")(lambda *args, **kwargs: None)
  assert SAMPLERS.get("hmc") is builder


def test_unknown_names_list_the_choices():
  with pytest.raises(UnknownNameError, match="unknown sampler 'hcm'. Did you mean 'hmc'.*gibbs, hmc"):
    make_sampler("hcm", None, {})
  with pytest.raises(UnknownNameError, match="gibbs, hmc"):
    contrastive.ContrastiveSpec(sampler="langevin")


@pytest.mark.parametrize("name, model_name, state_fields", [
    ("gibbs", "rbm_tiny", ("position", "hidden")),
    ("hmc", "mcrbm_tiny", HMCChains._fields),
])
def test_builders_make_samplers_over_a_models_visibles(name, model_name, state_fields):
  model = zoo.create(model_name)
  variables = model.init(jax.random.key(0), jnp.zeros((1, model.n_visible)), method="free_energy")
  sampler = make_sampler(name, model, variables)
  start = (np.random.default_rng(1).random((3, model.n_visible)) > 0.5).astype(np.float32)
  state, _ = sampler.step(jax.random.key(2), sampler.init(start))
  assert type(state)._fields == state_fields and state.position.shape == start.shape
