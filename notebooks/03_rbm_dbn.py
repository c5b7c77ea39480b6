# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # RBMs and deep belief nets
#
# A binary restricted Boltzmann machine on the 8×8 digits (pixels in [0, 1] used as probabilities),
# with energy E(v, h) = −b_vᵀv − b_hᵀh − vᵀWh and free energy
# F(v) = −b_vᵀv − Σ_j softplus(b_h,j + vᵀW_:,j), trained with persistent contrastive divergence
# (Hinton, *Training products of experts by minimizing contrastive divergence*, 2002; Tieleman,
# *Training RBMs using approximations to the likelihood gradient*, 2008) and the recipe of Hinton's
# *A practical guide to training RBMs* (2010). Then its filters, Gibbs chains, its log-likelihood by
# annealed importance sampling (Salakhutdinov & Murray, *On the quantitative analysis of deep belief
# networks*, 2008), and a deep belief net stacked greedily from RBMs and fine-tuned as a classifier
# (Hinton, Osindero & Teh, *A fast learning algorithm for deep belief nets*, 2006).
#
# The training runs are the launcher's (`experiments/configs/rbm_digits.py`, `dbn_digits.py`).

# %%
# On Colab, install deepvision and its notebook extra; elsewhere it is already installed (a no-op).
import subprocess
import sys

if "google.colab" in sys.modules:
  subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                  "deepvision[notebooks] @ git+https://github.com/deepvision/deepvision"], check=True)

# %% [markdown]
# ## Parameters
#
# `SMALL = True`: the `:smoke` configs (64 × 12 RBM, a 12-8 DBN, two epochs: seconds; log Z exact
# because 12 hidden units can be enumerated); `SMALL = False`: the real experiments (64 × 256 and
# 64-256-256, about 30 s and 60 s on a 2-core CPU).

# %% tags=["parameters"]
SMALL = True  # True: the ':smoke' configs (seconds); False: the full experiments (a few minutes)
WORKDIR = ""  # where the runs go; "" = a temporary directory, removed at the end
SEED = 0

# %%
import os
import tempfile

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from deepvision import zoo
from deepvision.data import datasets
from deepvision.figures import energy_viz
from deepvision.estimators import ais, partition
from deepvision.models import dbn
from deepvision.samplers import gibbs
from deepvision.samplers.base import run_chain
from deepvision.train.contrastive_loop import run_contrastive
from experiments.dbn import run_dbn
from deepvision.train.writers import read_metrics
from experiments.configs import dbn_digits, rbm_digits

scratch = None if WORKDIR else tempfile.TemporaryDirectory(prefix="rbm_dbn_")  # see "Clean up"
workdir = WORKDIR or scratch.name
size = "smoke" if SMALL else None
key = jax.random.key(SEED)
print(f"work dir: {workdir}")


def show(path, title=None, width=7.0):
  """Displays a PNG figure the library wrote into a work dir."""
  image = plt.imread(path)
  plt.figure(figsize=(width, width * image.shape[0] / image.shape[1]))
  plt.imshow(image, cmap="gray")
  plt.axis("off")
  if title:
    plt.title(title)
  plt.show()


# %% [markdown]
# ## Train an RBM
#
# `run_contrastive` is what `train_and_evaluate` runs for `trainer = "contrastive"`; it also returns the
# trained parameters. Every evaluation logs the reconstruction error, the pseudo-likelihood and the
# free-energy gap between validation and training data (Hinton's overfitting monitor: it grows when the
# model overfits).

# %%
config = rbm_digits.get_config(size)
config.seed = SEED
if SMALL:  # skip the logistic regression on the features (not shown here): seconds of compilation
  config.linear_eval.enabled = False
rbm_dir = os.path.join(workdir, "rbm")
record, params = run_contrastive(config, rbm_dir)
rbm = zoo.create(config.model, **config.model_kwargs)
variables = {"params": params}
print({k: round(v, 4) for k, v in record.items() if isinstance(v, float)})

# %%
print(f"{len(read_metrics(rbm_dir))} records in metrics.jsonl; the library drew them into curves.png")
show(os.path.join(rbm_dir, "curves.png"), "RBM training: reconstruction error, pseudo-likelihood, "
     "free-energy gap")

# %% [markdown]
# ## Filters
#
# Each hidden unit's weights W_:,j as an 8×8 image: after training, local stroke detectors and
# digit-part templates.

# %%
show(os.path.join(rbm_dir, "filters.png"), "RBM filters W", width=6)

# %% [markdown]
# ## Gibbs chains
#
# Block Gibbs sampling alternates h ~ p(h | v) and v ~ p(v | h). The sampler is an `(init, step)` pair
# run under `lax.scan` by `run_chain`. Ten chains start at held-out digits; each column shows E[v | h]
# a fixed number of steps further: a well-trained model keeps producing digit-like images, and the
# chains wander between classes (slowly: the mixing problem of RBMs).

# %%
test_images, test_labels = datasets.load_arrays(config.dataset, config.test_split)
test_v = test_images.reshape(len(test_images), -1)
sampler = gibbs.block_gibbs(rbm, variables)
every = 10 if SMALL else 100
visible_mean = lambda h: rbm.apply(variables, h, method="visible_mean")  # noqa: E731
_, _, trace = jax.jit(lambda k, s: run_chain(k, sampler.step, s, 9 * every,
                                             trace=lambda st: visible_mean(st.hidden)))(
    jax.random.fold_in(key, 1), sampler.init(jnp.asarray(test_v[:10])))
chains = np.concatenate([test_v[None, :10], np.asarray(trace)[every - 1::every]])
grid = energy_viz.sample_chain_grid(chains, (8, 8))
plt.figure(figsize=(7, 7))
plt.imshow(grid, cmap="gray", vmin=0, vmax=1)
plt.axis("off")
plt.title(f"Gibbs chains: held-out digit, then E[v | h] every {every} steps")
plt.show()

# %% [markdown]
# ## Log-likelihood by annealed importance sampling
#
# The likelihood needs the partition function Z = Σ_v e^{−F(v)}, intractable for a real model. AIS
# anneals from a base-rate model (visible biases fitted to the data, W = 0) to the RBM through a
# schedule of temperatures β and averages the importance weights; the spread of the weights gives
# ±3σ bounds. With few hidden units we can also enumerate them and compare with the exact value.
# Log-likelihood per digit: log p(v) = −F(v) − log Z.

# %%
train_v = datasets.load_arrays(config.dataset, config.train_split)[0].reshape(-1, 64)
betas = ais.linear_betas(1000) if SMALL else None  # None: Salakhutdinov & Murray's 14,501 temperatures
estimate = ais.ais_log_partition(rbm, variables, jax.random.fold_in(key, 2), data=train_v, betas=betas)
free_energy = np.asarray(rbm.apply(variables, jnp.asarray(test_v), method="free_energy"))
print(f"log Z by AIS: {estimate.log_z:.3f}  [{estimate.log_z_lower:.3f}, {estimate.log_z_upper:.3f}] "
      f"({estimate.num_temperatures} temperatures, {len(estimate.log_weights)} runs)")
exact = None
if rbm.n_hidden <= 20:
  exact = float(partition.log_partition(rbm, variables))
  print(f"log Z exact (enumerating 2^{rbm.n_hidden} hidden states): {exact:.3f}")
print(f"test log-likelihood: {-free_energy.mean() - estimate.log_z:.3f} nats per digit "
      f"(the run's record: {record['test/log_likelihood']:.3f})")

plt.figure(figsize=(7, 3.5))
plt.hist(estimate.log_weights, bins=20, alpha=0.7, label="AIS runs (log weights)")
plt.axvline(estimate.log_z, color="black", label="AIS estimate")
if exact is not None:
  plt.axvline(exact, color="tab:red", linestyle="--", label="exact")
plt.xlabel("log Z")
plt.legend()
plt.title("annealed importance sampling")
plt.show()

# %% [markdown]
# ## A deep belief net
#
# Greedy layer-wise training: RBM 1 on the pixels, RBM 2 on RBM 1's posterior means p(h | v), then a
# sigmoid MLP initialised from the stack and fine-tuned by back-propagation, beside the same MLP from
# random weights (the comparison pre-training is judged by). `run_dbn` is the `dbn` trainer; it
# returns the stack `[(model, params), ...]`. With the full config, seeds 0-2 reach 98.6 / 98.3 / 98.1%
# test accuracy from the DBN and 97.8 / 98.1 / 98.3% from random weights: on 8×8 digits pre-training
# is no clear win. At the small size (12 and 8 hidden units, ten epochs of fine-tuning) the numbers
# mean nothing.

# %%
dbn_config = dbn_digits.get_config(size)
dbn_config.seed = SEED
if SMALL:
  dbn_config.linear_eval.enabled = False
dbn_dir = os.path.join(workdir, "dbn")
dbn_record, layers = run_dbn(dbn_config, dbn_dir)
for name in ("test/accuracy", "test/accuracy_scratch"):
  print(f"{name}: {dbn_record[name]:.4f}")
show(os.path.join(dbn_dir, "samples.png"), "DBN samples: Gibbs in the top RBM, then a top-down pass",
     width=5)

# %% [markdown]
# ### DBN features
#
# `dbn.features` pushes data up the stack. Below: the top layer's posterior means for held-out digits
# sorted by class (rows: digits, columns: units), as the talk draws samples × units; class-specific
# patterns are what the fine-tuned classifier starts from.

# %%
order = np.argsort(test_labels, kind="stable")
top = np.asarray(dbn.features(layers, jnp.asarray(test_v[order])))
plt.figure(figsize=(6, 5))
plt.imshow(top, aspect="auto", cmap="gray", interpolation="nearest")
plt.xlabel("top-layer unit")
plt.ylabel("held-out digits, sorted by class 0 … 9")
plt.title("p(h | v) of the DBN's top layer")
plt.colorbar()
plt.show()

# %% [markdown]
# ## Clean up
#
# With the default `WORKDIR = ""` the runs went to a temporary directory, removed here (or when the
# kernel stops, if the notebook ended early). Set `WORKDIR` to keep them.

# %%
if scratch is not None:
  scratch.cleanup()
