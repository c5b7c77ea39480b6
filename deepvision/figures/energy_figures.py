"""The figures of a trained energy model: filters, sample chains, histograms, curves; for gated MRFs the
filters C and W and the pooling P in pixel space, and data beside Gaussian and HMC samples.

`plan` is the contrastive trainer's plan (`train.contrastive_loop.ContrastivePlan`): the model, the
sampler spec and the data with their standardisation or whitening.
"""

from __future__ import annotations

import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from deepvision.data.patches import Standardizer
from deepvision.figures import energy_viz, gated_mrf_viz, viz
from deepvision.models.gaussian import GaussianModel
from deepvision.samplers.base import run_chain
from deepvision.samplers.hmc_chains import chain_step_size, hmc_chains

METRICS_FILE = "metrics.jsonl"  # The run's records, one JSON object per line (train.writers writes them).


def _read_records(workdir: str) -> list[dict]:
  """The records of `workdir`'s metrics file, in order (empty if there is none)."""
  path = os.path.join(workdir, METRICS_FILE)
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def save_figures(plan: Any, state, workdir: str, key: jax.Array,
                 config: ml_collections.ConfigDict | None = None) -> None:
  """filters.png, samples.png, histograms.png and curves.png in `workdir` (gated MRFs: see
  `save_gated_mrf_figures`; models without a weight matrix W, such as the whole-image priors: curves.png).

  samples.png: ten chains started at held-out examples (first column); each further column shows
  E[v | h] of the chain's hidden sample after another 100 sampler steps (the mean reads better than a
  binary sample).
  """
  records = _read_records(workdir)
  groups = (("train/recon_error", "val/recon_error"), ("train/pseudo_likelihood", "val/pseudo_likelihood"),
            ("train/log_likelihood", "val/log_likelihood"), ("free_energy_gap",),
            ("train/free_energy", "train/negative_free_energy"), ("sampler/acceptance_rate",),
            ("sampler/step_size",))
  logged = {key for record in records for key in record}
  viz.save_curves(records, os.path.join(workdir, "curves.png"),
                  keys=tuple(g for g in groups if logged.intersection(g)))
  params = jax.device_get(state.params)
  if "C" in params and "P" in params:
    save_gated_mrf_figures(plan, state, workdir, key, config)
    return
  if "W" not in params:  # no visible-to-hidden weights to draw (the whole-image priors): curves only
    return
  shape = plan.data.pixel_shape or plan.data.image_shape
  if len(shape) < 2:  # not images (e.g. the features of a lower DBN layer): curves only
    return
  to_pixels = (Standardizer.from_dict(plan.data.standardizer) if plan.data.standardizer is not None
               else None)
  whitener = plan.data.whitener
  if whitener is not None:  # whitened vectors (..., K) back to pixels (..., V)
    to_pixels = lambda z: whitener.inverse(
        np.reshape(z, (-1, whitener.num_components))).reshape(*np.shape(z)[:-1], -1)
  value_range = (0.0, 1.0) if getattr(plan.model, "visible_kind", "") == "binary" else None
  energy_viz.save_weight_filters(np.asarray(params["W"]), shape, os.path.join(workdir, "filters.png"),
                                 to_pixels=to_pixels)
  source = plan.data.splits.get("test", plan.data.splits.get("val", plan.data.splits["train"]))
  start = source[:10].reshape(min(10, len(source)), -1)
  sampler = plan.spec.make_sampler(plan.model, {"params": state.params})
  advance = jax.jit(lambda k, c: run_chain(k, sampler.step, c, 100)[0])
  mean = jax.jit(lambda h: plan.model.apply({"params": state.params}, h, method="visible_mean"))
  chain = sampler.init(jnp.asarray(start))
  snapshots = [np.asarray(chain.position)]
  for column in range(9):  # 10 columns: the examples, then E[v | h] every 100 sampler steps
    chain = advance(jax.random.fold_in(key, column), chain)
    hidden = getattr(chain, "hidden", None)  # Gibbs chains carry h; others show their position
    snapshots.append(np.asarray(chain.position if hidden is None else mean(hidden)))
  energy_viz.save_sample_chains(np.stack(snapshots), shape, os.path.join(workdir, "samples.png"),
                                title="Gibbs", value_range=value_range,
                                to_pixels=to_pixels)
  probs = plan.model.apply({"params": state.params}, jnp.asarray(source.reshape(len(source), -1)),
                           method="hidden_probs")
  energy_viz.save_histograms({"p(h=1|v), held-out data": np.asarray(probs), "W": params["W"],
                              "b_h": params["b_h"], "b_v": params["b_v"]},
                             os.path.join(workdir, "histograms.png"))



DEFAULT_SAMPLE_TRAJECTORIES = 200
NUM_SHOWN_SAMPLES = 64


def save_gated_mrf_figures(plan: Any, state, workdir: str, key: jax.Array,
                           config: ml_collections.ConfigDict | None = None) -> None:
  """The pictures of a gated MRF (mcRBM, mPoT) in `workdir`, in pixel space when the data were whitened.

  * filters_C.png: the factor filters C as receptive fields, `filters_to_pixels(C, 'weights')` (the
    pixel weights each factor applies to a patch);
  * filters_W.png: the mean filters W as the patterns they add to the mean of p(x | h),
    `filters_to_pixels(W, 'patterns')`;
  * pooling.png: Pᵀ (covariance units × factors), black 0, white its largest entry;
  * pooled_filters.png (when some unit pools several factors, e.g. a topographic P): one row per
    covariance unit, its factors' receptive fields by decreasing pooling weight;
  * samples.png: held-out data | samples of the Gaussian (PCA) model fitted to the training data |
    the gated MRF's HMC samples: chains started at the persistent training chains (PCD, FPCD; at
    those Gaussian samples otherwise) and run for `config.gated_mrf.sample_trajectories` more
    trajectories (200) under the final parameters at the training chains' step size; all mapped back
    to pixels with `whitening.inverse`, on the grey scale of the data's 1st-99th percentiles;
  * histograms.png: the posterior means of the hidden units on held-out data and every parameter.
  """
  params = {name: np.asarray(value, np.float64) for name, value in jax.device_get(state.params).items()}
  whitener = plan.data.whitener
  pixel_shape = plan.data.pixel_shape or plan.data.image_shape
  images = len(pixel_shape) >= 2
  name = type(plan.model).__name__
  if images:
    factors, means = params["C"], params["W"]
    if whitener is not None:
      factors, means = whitener.filters_to_pixels(factors, "weights"), whitener.filters_to_pixels(means, "patterns")
    energy_viz.save_weight_filters(factors, pixel_shape, os.path.join(workdir, "filters_C.png"),
                                   title="C, receptive fields")
    energy_viz.save_weight_filters(means, pixel_shape, os.path.join(workdir, "filters_W.png"),
                                   title="W, patterns")
  gated_mrf_viz.save_pooling(params["P"], os.path.join(workdir, "pooling.png"))
  if images and gated_mrf_viz.pools_several(params["P"]):
    gated_mrf_viz.save_pooled_filters(factors, params["P"], pixel_shape, os.path.join(workdir, "pooled_filters.png"),
                                   title="pooled factors")

  source = plan.data.splits.get("test", plan.data.splits.get("val", plan.data.splits["train"]))
  source = source.reshape(len(source), -1)
  variables = {"params": state.params}
  _, hidden = plan.model.apply(variables, jnp.asarray(source[:4096]))
  cov_name = "p(h_c=1|x)" if "b_c" in params else "E[h_c|x]"
  energy_viz.save_histograms({f"{cov_name}, held-out": np.asarray(hidden["cov"]),
                              "p(h_m=1|x), held-out": np.asarray(hidden["mean"]),
                              **{k: v for k, v in params.items()}}, os.path.join(workdir, "histograms.png"),
                             title=f"{name}: hidden units and parameters")
  if not images:
    return
  gaussian = GaussianModel.fit(
      np.asarray(plan.data.splits["train"], np.float64).reshape(len(plan.data.splits["train"]), -1))
  count = min(NUM_SHOWN_SAMPLES, len(source))
  gaussian_samples = gaussian.sample(np.random.default_rng(int(jax.random.randint(key, (), 0, 2**31 - 1))),
                                     count).astype(np.float32)
  block = (config.get("gated_mrf", None) if config is not None else None) or {}
  trajectories = int(block.get("sample_trajectories", DEFAULT_SAMPLE_TRAJECTORIES))
  options = dict(plan.spec.sampler_options) if plan.spec.sampler == "hmc" else {}
  low, high = options.get("step_size_bounds", (0.001, 0.25))
  trained = chain_step_size(state.chains)
  options["initial_step_size"] = float(np.clip(trained if trained is not None else
                                               options.get("initial_step_size", 0.01), low, high))
  sampler = hmc_chains(plan.model, variables, **options)
  advance = jax.jit(lambda k, c: run_chain(k, sampler.step, c, trajectories)[0])
  start = gaussian_samples
  if plan.spec.persistent and getattr(state.chains, "position", None) is not None:
    start = np.asarray(state.chains.position, np.float32).reshape(len(state.chains.position), -1)[:count]
  samples = np.asarray(advance(key, sampler.init(jnp.asarray(start))).position)
  panels = {"data": source[:count], "Gaussian": gaussian_samples, f"{name} HMC×{trajectories}": samples}
  to_pixels = whitener.inverse if whitener is not None else (lambda z: z)
  panels = {title: np.asarray(to_pixels(z), np.float64).reshape(len(z), -1) for title, z in panels.items()}
  value_range = tuple(float(v) for v in np.percentile(panels["data"], (1, 99)))
  if not value_range[1] > value_range[0]:
    value_range = None
  gated_mrf_viz.save_sample_comparison(panels, pixel_shape, os.path.join(workdir, "samples.png"),
                                    value_range=value_range)
