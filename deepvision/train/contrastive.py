r"""The contrastive trainer's pure step: CD-k, persistent CD and fast-weights PCD for any energy model.

One update on a data batch v⁺: a sampler (`samplers.registry`: block Gibbs, or HMC for continuous models)
advances k steps from the batch (CD-k, Hinton 2002), from persistent chains (PCD, Tieleman 2008) or from
them under θ + θ_fast (FPCD, Tieleman & Hinton 2009); the optimiser descends ⟨F(v⁺)⟩ − ⟨F(sg(v⁻))⟩ (+ a
sparsity penalty); FPCD also moves θ_fast ← d·θ_fast − ε_fast·g. For gated MRFs (`GatedMRFRecipe`, Ranzato &
Hinton 2010) P is frozen, then projected onto P ≥ 0 with unit-L1 columns, and C's columns are rescaled to a
running norm n ← d·n + (1 − d)·mean_f ‖C_f‖. Step t draws from `fold_in(state.key, t)`; the chains are
state (sharded over devices in data-parallel runs, `parallel.SHARDED_STATE_FIELDS`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from deepvision import objectives
from deepvision.models import gated_mrf
from deepvision.registry import check_choice
from deepvision.samplers.base import SamplingAlgorithm, run_chain
# The sampler registry and the HMC chains live in samplers/; their names stay importable from here.
from deepvision.samplers.hmc_chains import HMCChainInfo, HMCChains, hmc_chains  # noqa: F401
from deepvision.samplers.registry import ADAPTIVE_SAMPLERS, SAMPLERS, make_sampler
from deepvision.train.runner import finite_flags
from deepvision.train.state import TrainState

Array = jax.Array
Metrics = dict[str, Array]

METHODS = ("cd", "pcd", "fpcd")

@dataclasses.dataclass(frozen=True)
class ContrastiveSpec:
  """How negatives are drawn and what is added to the gradient.

  Attributes:
    method: 'cd' (chains restart at the data), 'pcd' (persistent chains) or 'fpcd' (persistent chains
      under θ + θ_fast).
    k: sampler steps per update (CD-k; PCD usually 1).
    sampler: a name in `SAMPLERS`.
    sampler_options: keyword arguments of the sampler factory (e.g. mean_field_visible for Gibbs).
    fast_learning_rate: ε_fast of FPCD (Tieleman & Hinton use the base rate or more).
    fast_decay: d of FPCD, θ_fast ← d·θ_fast − ε_fast·g.
    sparsity_target: target mean activity p of the hidden units (0: no penalty).
    sparsity_cost: weight λ of the penalty λ·Σ_j CE(p, q_j).
  """

  method: str = "pcd"
  k: int = 1
  sampler: str = "gibbs"
  sampler_options: tuple[tuple[str, Any], ...] = ()
  fast_learning_rate: float = 0.0
  fast_decay: float = 0.95
  sparsity_target: float = 0.0
  sparsity_cost: float = 0.0

  def __post_init__(self):
    check_choice("contrastive.method", self.method, METHODS)
    SAMPLERS.get(self.sampler)
    if not isinstance(self.k, int) or isinstance(self.k, bool) or self.k < 1:
      raise ValueError(f"contrastive.k (sampler steps per update) must be an int >= 1, got {self.k!r}")
    if self.method == "fpcd" and not self.fast_learning_rate > 0:
      raise ValueError(f"contrastive.fast_learning_rate must be > 0 for fpcd, got {self.fast_learning_rate!r}")
    if not 0.0 <= self.fast_decay < 1.0:
      raise ValueError(f"contrastive.fast_decay must be in [0, 1), got {self.fast_decay!r}")
    if self.sparsity_cost < 0:
      raise ValueError(f"contrastive.sparsity_cost must be >= 0, got {self.sparsity_cost!r}")
    if self.sparsity_cost > 0 and not 0.0 < self.sparsity_target < 1.0:
      raise ValueError(f"contrastive.sparsity_target must be in (0, 1) when sparsity_cost > 0, got "
                       f"{self.sparsity_target!r}")

  @property
  def persistent(self) -> bool:
    return self.method in ("pcd", "fpcd")

  @property
  def keeps_chains(self) -> bool:
    """Whether the state carries the sampler's state: persistent chains, or CD with an adaptive sampler."""
    return self.persistent or self.sampler in ADAPTIVE_SAMPLERS

  def make_sampler(self, model: nn.Module, variables: Any, axis_name: str | None = None) -> SamplingAlgorithm:
    return make_sampler(self.sampler, model, variables, axis_name=axis_name, **dict(self.sampler_options))


@dataclasses.dataclass(frozen=True)
class GatedMRFRecipe:
  """The constraints the original gated-MRF code applies around every update (reference/gated-mrf.md).

  Attributes:
    pooling_frozen_steps: P keeps its initial value for updates 0 … s − 1 (its gradient is zeroed and
      the value restored after the optimiser), e.g. 10 epochs' worth.
    project_pooling: after every later update P ← `gated_mrf.project_pooling(P, pooling_mask)`:
      clipped to ≥ 0, times the mask, each column rescaled to unit L1 norm.
    pooling_mask: None or a non-negative (F, N) array (the topographic mask of the model).
    normalize_factors: after every update rescale the columns of C to the running common norm n
      (`gated_mrf.normalize_factor_columns`), n carried in `ContrastiveState.factor_norm`.
    factor_norm_decay: d in n ← d·n + (1 − d)·mean_f ‖C_f‖ (0.95).
  """

  pooling_frozen_steps: int = 0
  project_pooling: bool = True
  pooling_mask: Any = None
  normalize_factors: bool = True
  factor_norm_decay: float = 0.95

  def __post_init__(self):
    if (isinstance(self.pooling_frozen_steps, bool) or not isinstance(self.pooling_frozen_steps, int)
        or self.pooling_frozen_steps < 0):
      raise ValueError(f"pooling_frozen_steps must be an int >= 0, got {self.pooling_frozen_steps!r}")
    if not 0.0 <= self.factor_norm_decay <= 1.0:
      raise ValueError(f"factor_norm_decay must lie in [0, 1], got {self.factor_norm_decay!r}")
    if self.pooling_mask is not None:
      mask = np.asarray(self.pooling_mask, np.float32)
      if mask.ndim != 2 or not np.all(np.isfinite(mask)) or np.any(mask < 0):
        raise ValueError(f"pooling_mask must be a finite non-negative (n_factors, n_cov) matrix, got "
                         f"shape {mask.shape} with minimum {float(np.min(mask)) if mask.size else 'n/a'}")
      object.__setattr__(self, "pooling_mask", mask)

  def check_params(self, params: Any) -> None:
    """ValueError unless `params` has C (D, F) and P (F, N) of the mask's shape."""
    shapes = {name: tuple(np.shape(params[name])) for name in ("C", "P") if name in params}
    if "C" not in shapes or "P" not in shapes:
      raise ValueError(f"the gated-MRF recipe constrains the parameters C and P; the model has "
                       f"{', '.join(params)}")
    if self.pooling_mask is not None and self.pooling_mask.shape != shapes["P"]:
      raise ValueError(f"pooling_mask has shape {self.pooling_mask.shape} but P is {shapes['P']} "
                       "(n_factors, n_cov)")

  def constrain(self, step: Array, old: Any, new: Any, factor_norm: Array) -> tuple[Any, Array]:
    """The parameters after update `step` (0-based): P frozen or projected, C's columns renormalised."""
    params = {**new}
    if self.project_pooling:
      params["P"] = gated_mrf.project_pooling(params["P"], self.pooling_mask)
    params["P"] = jnp.where(step < self.pooling_frozen_steps, old["P"], params["P"])
    if self.normalize_factors:
      params["C"], factor_norm = gated_mrf.normalize_factor_columns(params["C"], factor_norm,
                                                                    self.factor_norm_decay)
    return params, factor_norm


class ContrastiveState(TrainState):
  """TrainState plus the sampler's chains (None for CD with a stateless sampler), θ_fast (None unless
  FPCD) and the gated-MRF recipe's running norm of the columns of C (None without the recipe)."""

  chains: Any = None
  fast_params: Any = None
  factor_norm: Any = None


def create_state(model: nn.Module, tx: optax.GradientTransformation, key: Array, spec: ContrastiveSpec,
                 chain_start: Array | None, recipe: GatedMRFRecipe | None = None) -> ContrastiveState:
  """Initialises the parameters, the chains (at `chain_start`, e.g. training examples), θ_fast = 0 and,
  with a gated-MRF recipe that normalises C, the running factor norm n = 1.

  Args:
    model: an energy model (`free_energy`, `hidden_probs`, `n_visible`).
    tx: the optimiser.
    key: the run's root key, split into `init` and `step` keys.
    spec: the contrastive settings.
    chain_start: (num_chains, ...) starting points of the chains (persistent chains, or the batch-sized
      state of an adaptive sampler under CD); ignored otherwise.
    recipe: the gated-MRF constraints, or None.
  """
  init_key, step_key = jax.random.split(key)
  params = model.init(init_key, jnp.zeros((1, model.n_visible), jnp.float32), method="free_energy")["params"]
  chains = None
  if spec.keeps_chains:
    if chain_start is None:
      raise ValueError(f"contrastive.method={spec.method!r} with sampler {spec.sampler!r} needs starting "
                       "points for its chains")
    chains = spec.make_sampler(model, {"params": params}).init(jnp.asarray(chain_start, jnp.float32))
  fast = jax.tree.map(jnp.zeros_like, params) if spec.method == "fpcd" else None
  factor_norm = None
  if recipe is not None:
    recipe.check_params(params)
    if recipe.normalize_factors:
      factor_norm = jnp.ones((), jnp.float32)
  state = ContrastiveState.create(apply_fn=model.apply, params=params, tx=tx, key=step_key, chains=chains,
                                  fast_params=fast, factor_norm=factor_norm)
  return state.replace(step=jnp.zeros((), jnp.int32))


def has_reconstruction(model: nn.Module) -> bool:
  """Whether the model has E[v | h] (`visible_mean`), which the reconstruction error needs (RBMs do;
  gated MRFs, whose p(x | h) needs a D×D solve, do not)."""
  return callable(getattr(model, "visible_mean", None))


def reconstruction_error(model: nn.Module, variables: Any, v: Array) -> Array:
  """Mean over the batch of ‖v − E[v | h = p(h | v)]‖² / V: one mean-field up-down pass (Hinton's guide, §5)."""
  v = model.apply(variables, v, method="visible")
  probs = model.apply(variables, v, method="hidden_probs")
  recon = model.apply(variables, probs, method="visible_mean")
  return jnp.mean((v - recon) ** 2)


def make_train_step(model: nn.Module, spec: ContrastiveSpec,
                    lr_fn: Callable[[Array], Array],
                    axis_name: str | None = None,
                    recipe: GatedMRFRecipe | None = None) -> Callable[[ContrastiveState, Array],
                                                                      tuple[ContrastiveState, Metrics]]:
  """The jittable update `step(state, v) -> (state, metrics)` for a data batch v (B, V) or images.

  Metrics: `train/cd_loss` (⟨F(v⁺)⟩ − ⟨F(v⁻)⟩), `train/free_energy` (⟨F(v⁺)⟩), `train/negative_free_energy`
  (⟨F(v⁻)⟩), `train/recon_error` (models with `visible_mean`), `train/hidden_activity` (mean p(h | v⁺)),
  `train/sparsity_penalty` (when used), `train/factor_norm` (recipe), `learning_rate`, and the sampler's
  info averaged over its steps under `sampler/` (HMC: `acceptance_rate`, `step_size`, `rejection_avg`),
  and the `finite/*` flags of `runner.guard_step`.

  With `axis_name` (data parallelism, `deepvision.parallel`) each device holds a slice of the batch and of
  the chains, samples from `fold_in(fold_in(state.key, state.step), axis_index)`, and gradients, metrics,
  the sparsity penalty's mean activity and HMC's rejection rate are averaged over the axis, so the update
  is the one of the global batch and chains; the recipe's projections act on the replicated parameters
  (deterministic, so the replicas stay equal). None: one device, unchanged.

  With a `recipe`, P's gradient is zeroed while it is frozen (so neither it nor its momentum moves), the
  parameters are constrained after the optimiser (`GatedMRFRecipe.constrain`) and FPCD's fast weights
  leave P alone (θ_fast of P stays 0, so the chains' pooling stays non-negative).
  """

  def train_step(state: ContrastiveState, batch: Array) -> tuple[ContrastiveState, Metrics]:
    key = jax.random.fold_in(state.key, state.step)
    if axis_name is not None:
      key = jax.random.fold_in(key, jax.lax.axis_index(axis_name))
    positives = model.apply({"params": state.params}, batch, method="visible")
    chain_params = state.params
    if spec.method == "fpcd":
      chain_params = jax.tree.map(jnp.add, state.params, state.fast_params)
    sampler = spec.make_sampler(model, {"params": jax.lax.stop_gradient(chain_params)}, axis_name)
    if spec.persistent:
      start = state.chains
    elif state.chains is not None:  # CD with an adaptive sampler: fresh positions, its adapted settings
      start = sampler.init(positives, state.chains)
    else:
      start = sampler.init(positives)
    chains, infos, _ = run_chain(key, sampler.step, start, spec.k)
    negatives = chains.position

    def loss_fn(params):
      variables = {"params": params}
      cd = objectives.contrastive_divergence_loss(model, variables, positives, negatives)
      probs = model.apply(variables, positives, method="hidden_probs")
      penalty = jnp.zeros((), cd.dtype)
      if spec.sparsity_cost > 0:
        penalty_probs = probs
        if axis_name is not None:
          # The penalty sees the global mean activity q; its gradient flows through this device's share
          # of q, so the pmean of the gradients below is the global penalty's gradient.
          local = jnp.mean(probs, axis=0)
          penalty_probs = probs + jax.lax.stop_gradient(jax.lax.pmean(local, axis_name) - local)
        penalty = objectives.sparsity_penalty(penalty_probs, spec.sparsity_target)
      return cd + spec.sparsity_cost * penalty, (cd, penalty, probs)

    grads, (cd, penalty, probs) = jax.grad(loss_fn, has_aux=True)(state.params)
    if axis_name is not None:
      grads, cd = jax.lax.pmean((grads, cd), axis_name)
    if recipe is not None:
      frozen = state.step < recipe.pooling_frozen_steps
      grads = {**grads, "P": jnp.where(frozen, jnp.zeros_like(grads["P"]), grads["P"])}
    new_state = state.apply_gradients(grads=grads, chains=chains if spec.keeps_chains else None)
    if recipe is not None:
      params, factor_norm = recipe.constrain(state.step, state.params, new_state.params, state.factor_norm)
      new_state = new_state.replace(params=params, factor_norm=factor_norm)
    if spec.method == "fpcd":
      fast = jax.tree.map(lambda f, g: spec.fast_decay * f - spec.fast_learning_rate * g,
                          state.fast_params, grads)
      if recipe is not None:
        fast = {**fast, "P": jnp.zeros_like(fast["P"])}
      new_state = new_state.replace(fast_params=fast)
    variables = {"params": state.params}
    metrics = {
        "train/cd_loss": cd,
        "train/free_energy": jnp.mean(model.apply(variables, positives, method="free_energy")),
        "train/negative_free_energy": jnp.mean(model.apply(variables, negatives, method="free_energy")),
        "train/hidden_activity": jnp.mean(probs),
        "learning_rate": lr_fn(state.step),
    }
    if has_reconstruction(model):
      metrics["train/recon_error"] = reconstruction_error(model, variables, positives)
    if spec.sparsity_cost > 0:
      metrics["train/sparsity_penalty"] = penalty
    metrics.update({f"sampler/{name}": jnp.mean(value) for name, value in infos._asdict().items()})
    if axis_name is not None:
      metrics = jax.lax.pmean(metrics, axis_name)
    if new_state.factor_norm is not None:
      metrics["train/factor_norm"] = new_state.factor_norm
    metrics.update(finite_flags(cd, grads, (new_state.params, new_state.fast_params, new_state.factor_norm)))
    return new_state, metrics

  return train_step
