r"""Sparsity in the hidden units of a classifier: an L1 or KL penalty on chosen intermediate maps.

The talk's generalisation slide lists "sparsity in the hidden units" beside weight decay and dropout. A
classifier returns `(logits, intermediates)`; `config.activation_sparsity` (`config_blocks.ActivationSparsity`)
names some of those maps (`stages`) and the penalty added to the mean cross-entropy is

  'l1':  P = w · Σ_s mean_{n, i, j, c} |h_s|,
  'kl':  P = w · Σ_s Σ_c KL(ρ ‖ ρ̂_{s,c}),   ρ̂_{s,c} = mean_{n, i, j} tanh|h_{s, n, i, j, c}|,

  KL(ρ ‖ ρ̂) = ρ log(ρ / ρ̂) + (1 − ρ) log((1 − ρ) / (1 − ρ̂)),

with w = `weight`, ρ = `target`, s over the named maps, c over a map's channels (the last axis; the units of
a flat layer) and the means over the batch n and the positions (i, j). The KL penalty needs an activity in
[0, 1): for ReLU (unbounded) or LCN (signed) maps it is tanh|h|, 0 for a unit that is off and close to 1 for
one that is strongly on, whatever the map's sign or scale; ρ̂ is clipped to [1e-6, 1 − 1e-6]. This is the
sparse autoencoder's penalty (Ng 2011; Lee, Ekanadham & Ng 2008) on each channel's mean activity.

The step also logs, for every named map, its mean activation `train/activation_mean/STAGE` and the fraction
of its values that are exactly zero `train/activation_zeros/STAGE` (a ReLU unit that is off).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from deepvision import config_blocks, zoo
from deepvision.train.errors import ConfigError

Array = jax.Array
Penalty = Callable[[dict[str, Array]], tuple[Array, dict[str, Array]]]
ACTIVITY_CLIP = 1e-6


def _at_least_float32(h: Array) -> Array:
  """`h` in float32 when computed in a lower precision (bfloat16 maps); float64 stays float64."""
  h = jnp.asarray(h)
  return h.astype(jnp.promote_types(h.dtype, jnp.float32))


def kl_divergence(target: float, rate: Array) -> Array:
  """KL(ρ ‖ ρ̂) between Bernoulli distributions of means ρ = `target` and ρ̂ = `rate` (elementwise)."""
  return target * jnp.log(target / rate) + (1.0 - target) * jnp.log((1.0 - target) / (1.0 - rate))


def stage_penalty(h: Array, kind: str, target: float) -> Array:
  """The unweighted penalty of one map `h` (batch first, channels last): module docstring."""
  if kind == "l1":
    return jnp.mean(jnp.abs(h))
  activity = jnp.tanh(jnp.abs(h)).reshape(-1, h.shape[-1])
  rate = jnp.clip(jnp.mean(activity, axis=0), ACTIVITY_CLIP, 1.0 - ACTIVITY_CLIP)
  return jnp.sum(kl_divergence(target, rate))


def activation_stats(acts: dict[str, Array], stages: tuple[str, ...], prefix: str = "train") -> dict[str, Array]:
  """`{prefix}/activation_mean/STAGE` and `{prefix}/activation_zeros/STAGE` (fraction exactly zero) per map."""
  stats = {}
  for stage in stages:
    h = _at_least_float32(acts[stage])
    stats[f"{prefix}/activation_mean/{stage}"] = jnp.mean(h)
    stats[f"{prefix}/activation_zeros/{stage}"] = jnp.mean((h == 0).astype(jnp.float32))
  return stats


def make_penalty(settings: config_blocks.ActivationSparsity | None) -> Penalty | None:
  """`penalty(intermediates) -> (weighted penalty, metrics)` for the step, or None when the penalty is off.

  The metrics are `train/activation_penalty` (the weighted value) and `activation_stats` of the named maps.
  """
  if settings is None or settings.weight == 0:
    return None
  stages, kind, target, weight = settings.stages, settings.kind, settings.target, settings.weight

  def penalty(acts: dict[str, Array]) -> tuple[Array, dict[str, Array]]:
    total = sum(stage_penalty(_at_least_float32(acts[stage]), kind, target) for stage in stages)
    value = weight * total
    return value, {"train/activation_penalty": value, **activation_stats(acts, stages)}

  return penalty


def intermediate_names(model) -> list[str]:
  """The names of the intermediate maps `model.apply(variables, x, train=False)` returns (shapes only)."""
  variables = zoo.abstract_variables(model)
  x = zoo.example_input(model)
  _, acts = jax.eval_shape(lambda v, x: model.apply(v, x, train=False), variables, x)
  return list(acts)


def check_stages(model, model_name: str, settings: config_blocks.ActivationSparsity) -> None:
  """Raises ConfigError naming the stages `model` does not return and the ones it does (before compute)."""
  if settings.weight == 0:
    return
  available = intermediate_names(model)
  unknown = [stage for stage in settings.stages if stage not in available]
  if unknown:
    raise ConfigError(f"config.activation_sparsity.stages: {', '.join(map(repr, unknown))} "
                      f"{'is not an intermediate map' if len(unknown) == 1 else 'are not intermediate maps'} "
                      f"of model {model_name!r}; its maps: {', '.join(available)}")
