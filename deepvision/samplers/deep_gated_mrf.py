r"""Sampling a deep gated MRF: top-level Gibbs, a directed top-down pass, then the visibles.

The model (`deepvision.models.deep_gated_mrf`; Ranzato, Mnih, Susskind & Hinton, "Modeling natural
images using gated MRFs", PAMI 2013, §4): a gated MRF (mcRBM or mPoT) at the bottom, binary RBMs on its
layer-1 codes z = [E[h_c | x]/s, E[h_m | x]] above, a DBN (Hinton, Osindero & Teh 2006) on top of it.

`sample` runs block Gibbs in the top RBM, a top-down pass h^{l−1} ~ p(h^{l−1} | h^l) to the layer-1
codes z, then draws the visibles x ~ p(x | h_c = s·z_c, h_m = z_m) of the gated MRF.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from deepvision.models import deep_gated_mrf
from deepvision.models.deep_gated_mrf import Layer
from deepvision.samplers import dbn, gibbs
from deepvision.samplers.gated_mrf import (HMCSettings, VisibleInfo, check_hmc_settings, check_visible_mode,
                                           visible_given_hiddens)

Array = jax.Array


def _is_int(value: Any, low: int) -> bool:
  return not isinstance(value, bool) and isinstance(value, numbers.Integral) and value >= low


def _variables(params: Any) -> dict[str, Any]:
  return {"params": params}


class DeepSampleInfo(NamedTuple):
  """What `sample` drew on the way down.

  Attributes:
    top: the top RBM's final `GibbsState` (`position` h^{L−1}, `hidden` h^L); None without RBMs.
    codes: the layer-1 codes z = [h_c / s, h_m] the visibles were drawn from, (B, N + M).
    h_c: the covariance hiddens s·z_c, (B, N).
    h_m: the mean hiddens, (B, M).
    visible: a `VisibleInfo`.
  """

  top: gibbs.GibbsState | None
  codes: Array
  h_c: Array
  h_m: Array
  visible: VisibleInfo



def _sample(models: tuple[nn.Module, ...], params: list[Any], key: Array, start: Array | None,
            num_samples: int, top_gibbs_steps: int, mean_field: bool, mode: str,
            settings: HMCSettings) -> tuple[Array, DeepSampleInfo]:
  chain_key, down_key, visible_key = jax.random.split(key, 3)
  model, gmrf_params = models[0], params[0]
  rbm_layers = list(zip(models[1:], params[1:]))
  if rbm_layers:
    top = dbn.sample_top(rbm_layers, chain_key, num_samples, top_gibbs_steps, start)
    top_model, top_params = rbm_layers[-1]
    below_top = (top_model.apply(_variables(top_params), top.hidden, method="visible_mean") if mean_field
                 else top.position)
    codes = dbn.top_down(rbm_layers[:-1], down_key, below_top, mean_field=mean_field,
                         mean_visible=mean_field)
  else:
    top, codes = None, start
  codes = codes.astype(jnp.asarray(gmrf_params["C"]).dtype)
  h_c, h_m = deep_gated_mrf.hiddens_from_codes(model, codes)
  x, info = visible_given_hiddens(visible_key, model, gmrf_params, h_c, h_m, mode, settings)
  return x, DeepSampleInfo(top, codes, h_c, h_m, info)


_sample_jit = jax.jit(_sample, static_argnums=(0, 4, 5, 6, 7, 8))


def _check_start(gmrf_layer: Layer, rbm_layers: Sequence[Layer], start: Any, num_samples: int) -> None:
  if rbm_layers:
    size, what = rbm_layers[-1][0].n_visible, "n_visible of the top RBM"
  else:
    model = gmrf_layer[0]
    size, what = model.n_cov + model.n_mean, "the layer-1 codes, n_cov + n_mean"
    if start is None:
      raise ValueError("a stack without RBMs has no prior over the layer-1 hiddens: give their codes "
                       f"as start, shape (num_samples, {size})")
  if start is None:
    return
  if tuple(jnp.shape(start)) != (num_samples, size):
    raise ValueError(f"start must hold (num_samples, {what}) = {(num_samples, size)} states, got shape "
                     f"{tuple(jnp.shape(start))}")
  if not rbm_layers and not isinstance(start, jax.core.Tracer) and np.any(np.asarray(start) < 0):
    raise ValueError(f"start codes must be >= 0 (h_c = s·z_c gates a precision), got minimum "
                     f"{np.min(np.asarray(start))}")


def sample(key: Array, gmrf_layer: Layer, rbm_layers: Sequence[Layer], num_samples: int, *,
           top_gibbs_steps: int, start: Any | None = None, mean_field: bool = False,
           visible: str = "auto", hmc_steps: int = 100, hmc_burn_in: int = 50, hmc_leapfrog: int = 20,
           hmc_step_size: float = 0.05, hmc_init: str = "gaussian") -> tuple[Array, DeepSampleInfo]:
  """Samples x from the deep gated MRF (jitted): top-level Gibbs, top-down pass, visibles.

  With `chain_key, down_key, visible_key = jax.random.split(key, 3)`:
    1. block Gibbs for `top_gibbs_steps` transitions in the top RBM (`samplers.dbn.sample_top`,
       `chain_key`), from uniformly random binary states or from `start`;
    2. a top-down pass (`samplers.dbn.top_down`, `down_key`) to the layer-1 codes. Default
       (`mean_field=False`): binary samples of every layer, h^{l−1} ~ p(h^{l−1} | h^l), i.e. ancestral
       sampling of the model above, down to binary codes z ~ p(z | h²) — the exact generative model of
       the stack. With `mean_field=True` every layer below the top hidden layer, the codes included, is
       its conditional mean E[h^{l−1} | h^l] instead (p(x | h) below is still defined for fractional h);
    3. the visibles given h_c = s·z_c, h_m = z_m (`samplers.gated_mrf.sample_visible`, `visible_key`):
       exactly from the Gaussian p(x | h) (paper-form mcRBM, mPoT) or by HMC on E(x, h) with h fixed,
       the step size adapted during a burn-in, then frozen.
  With no RBMs the stack is the gated MRF alone: `start` then gives the layer-1 codes and step 3
  samples x given them.

  Args:
    key: typed PRNG key.
    gmrf_layer: (MCRBM | MPoT, params), layer 1.
    rbm_layers: the binary RBMs above, bottom first; empty for the gated MRF alone.
    num_samples: number of samples (independent chains).
    top_gibbs_steps: block Gibbs transitions in the top RBM (≥ 0; must be 0 without RBMs).
    start: (num_samples, n_visible of the top RBM) starting states of the top chains (default uniformly
      random binary states); without RBMs, required: the layer-1 codes z (h_c = s·z_c, h_m = z_m).
    mean_field: pass conditional means instead of binary samples down from the top RBM, the
      layer-1 codes included.
    visible, hmc_steps, hmc_burn_in, hmc_leapfrog, hmc_step_size, hmc_init: as in `sample_visible`.

  Returns:
    (x (num_samples, D), `DeepSampleInfo`).

  Raises:
    ValueError: layers that do not chain, an unknown or impossible visible mode, bad counts, HMC
      settings or start states; all before any compute.
  """
  deep_gated_mrf.check_stack(gmrf_layer, rbm_layers)
  model = gmrf_layer[0]
  mode = check_visible_mode(model, visible)
  settings = check_hmc_settings(HMCSettings(hmc_steps, hmc_burn_in, hmc_leapfrog, hmc_step_size, hmc_init))
  if not _is_int(num_samples, 1):
    raise ValueError(f"num_samples must be an int >= 1, got {num_samples!r}")
  if not _is_int(top_gibbs_steps, 0):
    raise ValueError(f"top_gibbs_steps must be an int >= 0, got {top_gibbs_steps!r}")
  if not rbm_layers and top_gibbs_steps != 0:
    raise ValueError(f"a stack without RBMs has no top-level chain: top_gibbs_steps must be 0, got "
                     f"{top_gibbs_steps}")
  if not isinstance(mean_field, bool):
    raise ValueError(f"mean_field must be True or False, got {mean_field!r}")
  _check_start(gmrf_layer, rbm_layers, start, num_samples)
  models = (model,) + tuple(m for m, _ in rbm_layers)
  params = [gmrf_layer[1]] + [p for _, p in rbm_layers]
  if start is not None:
    start = jnp.asarray(start, jnp.float32 if rbm_layers else jnp.asarray(params[0]["C"]).dtype)
  return _sample_jit(models, params, key, start, int(num_samples), int(top_gibbs_steps), mean_field, mode,
                     settings)
