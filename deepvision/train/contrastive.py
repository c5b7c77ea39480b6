r"""The contrastive trainer's pure step: CD-k, persistent CD and fast-weights PCD for any energy model.

One update on a data batch v⁺ (B, V):
  1. negatives: a sampler (`SAMPLERS`, e.g. block Gibbs) advances k steps from
       CD-k  — the data batch itself (Hinton 2002);
       PCD   — the persistent chains kept in the state (Tieleman 2008);
       FPCD  — the persistent chains, sampled under θ + θ_fast (Tieleman & Hinton 2009);
  2. gradient of ⟨F(v⁺)⟩ − ⟨F(sg(v⁻))⟩ (+ a sparsity penalty on p(h | v⁺)), applied by the optax
     optimiser (momentum, its ramp, weight decay, the learning-rate schedule);
  3. FPCD only: θ_fast ← d·θ_fast − ε_fast·g with the same gradient g, d the fast decay (19/20 in
     Tieleman & Hinton 2009).

The state is a `TrainState` with the chains (the sampler's state pytree, checkpointed with the rest) and the
fast parameters. Step t draws from `fold_in(state.key, t)`, so a resumed run draws the numbers an
uninterrupted one would.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from deepvision import objectives
from deepvision.registry import Registry, check_choice
from deepvision.samplers import gibbs
from deepvision.samplers.base import SamplingAlgorithm, run_chain
from deepvision.train.runner import finite_flags
from deepvision.train.state import TrainState

Array = jax.Array
Metrics = dict[str, Array]

METHODS = ("cd", "pcd", "fpcd")

# name -> factory(model, variables, **options) -> SamplingAlgorithm
SAMPLERS: Registry[Callable[..., SamplingAlgorithm]] = Registry("sampler")
SAMPLERS.register("gibbs", gibbs.block_gibbs)


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

  def make_sampler(self, model: nn.Module, variables: Any) -> SamplingAlgorithm:
    return SAMPLERS.get(self.sampler)(model, variables, **dict(self.sampler_options))


class ContrastiveState(TrainState):
  """TrainState plus the persistent chains (a sampler state; None for CD) and θ_fast (None unless FPCD)."""

  chains: Any = None
  fast_params: Any = None


def create_state(model: nn.Module, tx: optax.GradientTransformation, key: Array, spec: ContrastiveSpec,
                 chain_start: Array | None) -> ContrastiveState:
  """Initialises the parameters, the chains (at `chain_start`, e.g. training examples) and θ_fast = 0.

  Args:
    model: an energy model (`free_energy`, `hidden_probs`, `n_visible`).
    tx: the optimiser.
    key: the run's root key, split into `init` and `step` keys.
    spec: the contrastive settings.
    chain_start: (num_chains, ...) starting points of persistent chains; ignored for CD.
  """
  init_key, step_key = jax.random.split(key)
  params = model.init(init_key, jnp.zeros((1, model.n_visible), jnp.float32), method="free_energy")["params"]
  chains = None
  if spec.persistent:
    if chain_start is None:
      raise ValueError(f"contrastive.method={spec.method!r} needs starting points for its chains")
    chains = spec.make_sampler(model, {"params": params}).init(jnp.asarray(chain_start, jnp.float32))
  fast = jax.tree.map(jnp.zeros_like, params) if spec.method == "fpcd" else None
  state = ContrastiveState.create(apply_fn=model.apply, params=params, tx=tx, key=step_key, chains=chains,
                                  fast_params=fast)
  return state.replace(step=jnp.zeros((), jnp.int32))


def reconstruction_error(model: nn.Module, variables: Any, v: Array) -> Array:
  """Mean over the batch of ‖v − E[v | h = p(h | v)]‖² / V: one mean-field up-down pass (Hinton's guide, §5)."""
  v = model.apply(variables, v, method="visible")
  probs = model.apply(variables, v, method="hidden_probs")
  recon = model.apply(variables, probs, method="visible_mean")
  return jnp.mean((v - recon) ** 2)


def make_train_step(model: nn.Module, spec: ContrastiveSpec,
                    lr_fn: Callable[[Array], Array],
                    axis_name: str | None = None) -> Callable[[ContrastiveState, Array],
                                                                 tuple[ContrastiveState, Metrics]]:
  """The jittable update `step(state, v) -> (state, metrics)` for a data batch v (B, V) or images.

  Metrics: `train/cd_loss` (⟨F(v⁺)⟩ − ⟨F(v⁻)⟩), `train/free_energy` (⟨F(v⁺)⟩), `train/recon_error`,
  `train/hidden_activity` (mean p(h | v⁺)), `train/sparsity_penalty` (when used), `learning_rate`, and the
  sampler's info averaged over its steps under `sampler/`, and the `finite/*` flags of `runner.guard_step`.

  With `axis_name` (data parallelism, `deepvision.parallel`) each device holds a slice of the batch and of
  the persistent chains, samples from `fold_in(fold_in(state.key, state.step), axis_index)`, and gradients,
  metrics and the sparsity penalty's mean activity are averaged over the axis, so the update is the one
  of the global batch and chains. None: one device, unchanged.
  """

  def train_step(state: ContrastiveState, batch: Array) -> tuple[ContrastiveState, Metrics]:
    key = jax.random.fold_in(state.key, state.step)
    if axis_name is not None:
      key = jax.random.fold_in(key, jax.lax.axis_index(axis_name))
    positives = model.apply({"params": state.params}, batch, method="visible")
    chain_params = state.params
    if spec.method == "fpcd":
      chain_params = jax.tree.map(jnp.add, state.params, state.fast_params)
    sampler = spec.make_sampler(model, {"params": jax.lax.stop_gradient(chain_params)})
    start = state.chains if spec.persistent else sampler.init(positives)
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
    new_state = state.apply_gradients(grads=grads, chains=chains if spec.persistent else None)
    if spec.method == "fpcd":
      fast = jax.tree.map(lambda f, g: spec.fast_decay * f - spec.fast_learning_rate * g,
                          state.fast_params, grads)
      new_state = new_state.replace(fast_params=fast)
    variables = {"params": state.params}
    metrics = {
        "train/cd_loss": cd,
        "train/free_energy": jnp.mean(model.apply(variables, positives, method="free_energy")),
        "train/recon_error": reconstruction_error(model, variables, positives),
        "train/hidden_activity": jnp.mean(probs),
        "learning_rate": lr_fn(state.step),
    }
    if spec.sparsity_cost > 0:
      metrics["train/sparsity_penalty"] = penalty
    metrics.update({f"sampler/{name}": jnp.mean(value) for name, value in infos._asdict().items()})
    if axis_name is not None:
      metrics = jax.lax.pmean(metrics, axis_name)
    metrics.update(finite_flags(cd, grads, (new_state.params, new_state.fast_params)))
    return new_state, metrics

  return train_step
