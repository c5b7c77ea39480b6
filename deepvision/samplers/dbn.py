r"""Sampling a deep belief net: block Gibbs in the top RBM, then one directed top-down pass.

A DBN of L layers (Hinton, Osindero & Teh, "A fast learning algorithm for deep belief nets", 2006;
`deepvision.models.dbn`) is an undirected RBM over (h^{L−1}, h^L) at the top and directed sigmoid
connections below it,

  p(v, h¹, …, h^L) = p(h^{L−1}, h^L) · ∏_{l=1}^{L−1} p(h^{l−1} | h^l),

p(h^{l−1} | h^l) the visible conditional of RBM l. A sample runs block Gibbs (`samplers.gibbs`) in the
top RBM for a long time (`sample_top`; Hinton et al. ran 1,000 transitions), then draws every layer below
from its conditional given the one above (`top_down`); `sample` does both. A stack is a list
`[(model, params), ...]`, bottom first, as in `deepvision.models.dbn`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from deepvision.models.dbn import Layer, check_stack
from deepvision.samplers import gibbs
from deepvision.samplers.base import run_chain

Array = jax.Array


def _variables(params: Any) -> dict[str, Any]:
  return {"params": params}


def _check_counts(num_samples: int, gibbs_steps: int) -> None:
  for name, value, low in (("num_samples", num_samples, 1), ("gibbs_steps", gibbs_steps, 0)):
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
      raise ValueError(f"{name} must be an int >= {low}, got {value!r}")


def _check_start(layers: Sequence[Layer], start: Any | None, num_samples: int) -> None:
  if start is not None and tuple(jnp.shape(start)) != (num_samples, layers[-1][0].n_visible):
    raise ValueError(f"start must hold (num_samples, n_visible of the top RBM) = "
                     f"{(num_samples, layers[-1][0].n_visible)} states, got shape {tuple(jnp.shape(start))}")


def _run_top_chain(model: nn.Module, params: Any, key: Array, start: Array | None, num_samples: int,
                   gibbs_steps: int) -> gibbs.GibbsState:
  init_key, chain_key = jax.random.split(key)
  if start is None:
    shape = (num_samples, model.n_visible)
    if getattr(model, "visible_kind", "binary") == "gaussian":
      start = jax.random.normal(init_key, shape)
    else:
      start = jax.random.bernoulli(init_key, 0.5, shape).astype(jnp.float32)
  sampler = gibbs.block_gibbs(model, _variables(params))
  state, _, _ = run_chain(chain_key, sampler.step, sampler.init(start), gibbs_steps)
  return state


# One compiled program per model, sample count and chain length (modules hash by their fields).
_run_top_chain_jit = jax.jit(_run_top_chain, static_argnums=(0, 4, 5))


def sample_top(layers: Sequence[Layer], key: Array, num_samples: int, gibbs_steps: int,
               start: Any | None = None) -> gibbs.GibbsState:
  """Runs `num_samples` block Gibbs chains for `gibbs_steps` transitions in the top RBM (jitted).

  Args:
    layers: the stack, bottom first (only the top layer is used).
    key: split into an `init` key (the random start) and a `chain` key (`run_chain`).
    num_samples: number of independent chains.
    gibbs_steps: transitions per chain (0: the start itself).
    start: (num_samples, n_visible of the top RBM) starting states, e.g. the features of data; default
      uniformly random binary states (standard normal ones for a Gaussian top RBM).

  Returns:
    The final `GibbsState`: `position`, samples of the top RBM's visible layer h^{L−1}, and `hidden`, the
    h^L drawn to reach them.
  """
  check_stack(layers)
  _check_counts(num_samples, gibbs_steps)
  _check_start(layers, start, num_samples)
  model, params = layers[-1]
  return _run_top_chain_jit(model, params, key, None if start is None else jnp.asarray(start, jnp.float32),
                            num_samples, gibbs_steps)


def top_down(layers: Sequence[Layer], key: Array, h: Any, mean_field: bool = False,
             mean_visible: bool = True) -> Array:
  """One directed top-down pass: h^{l−1} from p(h^{l−1} | h^l) of RBM l, for l = L … 1.

  Args:
    layers: the RBMs to pass down through, bottom first (for a DBN sample: every layer but the top).
    key: layer l samples with `fold_in(key, l)`.
    h: (B, n_hidden of the last layer) states of the top of `layers`.
    mean_field: use the conditional means E[h^{l−1} | h^l] at every layer instead of binary samples.
    mean_visible: at the bottom (the data), return the mean E[v | h¹] instead of a sample (the usual way
      to show samples: Hinton et al. 2006, Fig. 8).

  Returns:
    (B, n_visible of layers[0]) visible states; `h` itself when `layers` is empty.
  """
  for l in range(len(layers), 0, -1):
    model, params = layers[l - 1]
    if (mean_visible if l == 1 else mean_field):
      h = model.apply(_variables(params), h, method="visible_mean")
    else:
      h = model.apply(_variables(params), jax.random.fold_in(key, l), h, method="sample_visible")
  return jnp.asarray(h)


def _sample(models: tuple[nn.Module, ...], params: list[Any], key: Array, start: Array | None,
            num_samples: int, gibbs_steps: int, mean_field: bool, mean_visible: bool) -> Array:
  layers = list(zip(models, params))
  chain_key, down_key = jax.random.split(key)
  state = _run_top_chain(models[-1], params[-1], chain_key, start, num_samples, gibbs_steps)
  use_mean = mean_visible if len(layers) == 1 else mean_field
  top = (models[-1].apply(_variables(params[-1]), state.hidden, method="visible_mean") if use_mean
         else state.position)
  return top_down(layers[:-1], down_key, top, mean_field, mean_visible)


_sample_jit = jax.jit(_sample, static_argnums=(0, 4, 5, 6, 7))


def sample(layers: Sequence[Layer], key: Array, num_samples: int, gibbs_steps: int = 1000, *,
           start: Any | None = None, mean_field: bool = False, mean_visible: bool = True) -> Array:
  """Samples from the DBN: Gibbs in the top RBM, then a top-down pass through the layers below (jitted).

  With `chain_key, down_key = jax.random.split(key)`:
    1. `state = sample_top(layers, chain_key, num_samples, gibbs_steps, start)`: block Gibbs on the top RBM
       over (h^{L−1}, h^L), the DBN's associative memory;
    2. the top RBM's visible states h^{L−1}: `state.position` (binary samples), or with `mean_field` the
       conditional means E[h^{L−1} | h^L = state.hidden];
    3. `top_down(layers[:-1], down_key, h^{L−1}, mean_field, mean_visible)`: binary samples (or, with
       `mean_field`, means) of each lower hidden layer, and at the bottom the mean E[v | h¹] (default) or
       a sample of v.
  For a one-layer DBN (a single RBM) the bottom is the top RBM's visible layer: E[v | h = state.hidden],
  or `state.position` when `mean_visible` is False.

  Args:
    layers: the stack, bottom first.
    key: typed PRNG key.
    num_samples: number of samples (independent chains).
    gibbs_steps: Gibbs transitions in the top RBM (Hinton et al. 2006 ran 1,000).
    start: optional starting states of the top chains (see `sample_top`).
    mean_field: propagate conditional means instead of binary samples below the top RBM.
    mean_visible: return E[v | h¹] instead of a sample of v.

  Returns:
    (num_samples, n_visible of the bottom RBM) visible samples (flat; reshape to the image shape).
  """
  check_stack(layers)
  _check_counts(num_samples, gibbs_steps)
  _check_start(layers, start, num_samples)
  models = tuple(model for model, _ in layers)
  params = [p for _, p in layers]
  return _sample_jit(models, params, key, None if start is None else jnp.asarray(start, jnp.float32),
                     num_samples, gibbs_steps, bool(mean_field), bool(mean_visible))
