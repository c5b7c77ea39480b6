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
# # Gated MRFs: the mean-covariance RBM
#
# The centrepiece of the talk: a model of natural images whose hidden units gate the *covariance*
# of the pixels (edges, texture) as well as their mean. The mcRBM's free energy, with factor filters
# C, non-negative pooling P of the squared factor responses into covariance units, and mean filters W,
#
# ```
# F(x) = ½xᵀx − b_vᵀx − Σ_k softplus(b_c,k − ½ Σ_f P_fk (C_:,fᵀ x̃)²)
#                     − Σ_j softplus(W_:,jᵀ x + b_m,j)
# ```
#
# where x̃ is x divided by sqrt(‖x‖²/D + ½) in the form the authors' code trains (`input_norm='original'`).
#
# (Ranzato & Hinton, *Modeling pixel means and covariances using factorized third-order Boltzmann
# machines*, CVPR 2010; Ranzato, Mnih & Hinton, *Generating more realistic images using gated MRFs*,
# NIPS 2010; Ranzato, Mnih, Susskind & Hinton, *Modeling natural images using gated MRFs*, PAMI 2013).
# The visible units are continuous, so negatives come from Hybrid Monte Carlo (Neal, *MCMC using
# Hamiltonian dynamics*, 2011). Three experiments, each one launcher config:
#
# 1. `mcrbm_patches`: an mcRBM on whitened natural-image patches, against a Gaussian (PCA) model;
# 2. `gmrf_faces`: inpainting held-out faces;
# 3. `gmrf_digits`: recognition under occlusion (Ranzato, Susskind, Mnih & Hinton, *On deep generative
#    models with applications to recognition*, CVPR 2011).

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
# `SMALL = True`: the `:smoke` configs (tiny models, two epochs, short chains: seconds each, and the
# figures show barely trained models); `SMALL = False`: the real experiments (about 40 s, a minute and
# 75 s on a 2-core CPU).

# %% tags=["parameters"]
SMALL = True  # True: the ':smoke' configs (seconds); False: the full experiments (a few minutes)
WORKDIR = ""  # where the runs go; "" = a temporary directory, removed at the end
SEED = 0

# %%
import os
import tempfile

import matplotlib.pyplot as plt
from IPython.display import Markdown, display

from deepvision.train.loop import train_and_evaluate
from experiments import pipelines  # noqa: F401  registers the inpainting and occlusion trainers
from experiments.configs import gmrf_digits, gmrf_faces, mcrbm_patches

scratch = None if WORKDIR else tempfile.TemporaryDirectory(prefix="gated_mrf_")  # see "Clean up"
workdir = WORKDIR or scratch.name
size = "smoke" if SMALL else None
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
# ## 1. An mcRBM on natural-image patches
#
# Random 8×8 patches of the embedded photographs (6×6 at the small size), each patch's mean removed,
# PCA-whitened; persistent chains advanced by one HMC trajectory per update; the original code's
# recipe (per-parameter rates, delayed L1, P frozen then kept topographic, C renormalised). The held-out
# log-likelihood comes from AIS with HMC transitions, next to the Gaussian (PCA) model of the same
# whitened patches: the gated MRF should assign held-out patches a higher likelihood.

# %%
config = mcrbm_patches.get_config(size)
config.seed = SEED
mcrbm_dir = os.path.join(workdir, "mcrbm_patches")
record = train_and_evaluate(config, mcrbm_dir)

splits = ("train", "val", "test")
models = {"mcRBM": [record[f"{s}/log_likelihood"] for s in splits],
          "Gaussian (PCA)": [record[f"{s}/gaussian_log_likelihood"] for s in splits]}
for name, values in models.items():
  print(f"{name:15s}" + "".join(f"  {s} {v:9.2f}" for s, v in zip(splits, values)))
fig, ax = plt.subplots(figsize=(7, 3.5))
for i, (name, values) in enumerate(models.items()):
  ax.bar([j + 0.4 * i for j in range(3)], values, width=0.4, label=name)
ax.set_xticks([j + 0.2 for j in range(3)], ["training patches", "validation photo", "test photo"])
ax.set_ylabel("log-likelihood, nats per whitened patch")
ax.set_title("mcRBM vs Gaussian (AIS, ±3σ bands in metrics.jsonl)")
ax.legend()
plt.show()

# %% [markdown]
# The factor filters C (what the covariance units look at; the papers report localised, oriented edge
# filters) and
# the samples: held-out patches | samples of the Gaussian model | samples of the mcRBM by HMC. The
# Gaussian's samples are texture-less noise with the right second-order statistics; the mcRBM's
# should show sharp edges, the structure a Gaussian cannot express.

# %%
show(os.path.join(mcrbm_dir, "filters_C.png"), "factor filters C (pixel space)", width=5)
show(os.path.join(mcrbm_dir, "samples.png"), "data | Gaussian samples | mcRBM samples (HMC)")

# %% [markdown]
# ## 2. Inpainting held-out faces
#
# An mcRBM on small whitened faces; parts of held-out faces are hidden and filled with the posterior
# mean of the missing pixels, sampled by HMC in pixel space with the observed pixels clamped, against
# the Gaussian conditional mean. The figure's rows: originals, then per mask occluded | Gaussian fill |
# mcRBM fill. With the full config the mcRBM's error is lower on every mask, but only by about one
# standard error: at 12×12 pixels the Gaussian's linear fill is already close to the best.

# %%
config = gmrf_faces.get_config(size)
config.seed = SEED
faces_dir = os.path.join(workdir, "gmrf_faces")
record = train_and_evaluate(config, faces_dir)
for mask in config.inpainting.masks:
  print(f"{mask:15s} MSE per missing pixel: mcRBM {record[f'test/mse_gmrf_{mask}']:.4f}, "
        f"Gaussian {record[f'test/mse_gaussian_{mask}']:.4f}")
show(os.path.join(faces_dir, "inpainted_faces.png"), "inpainting held-out faces")

# %% [markdown]
# ## 3. Recognition under occlusion
#
# Test digits are occluded (left half, a random square), filled in (training mean, Gaussian conditional
# mean, or the mcRBM by clamped HMC), and classified by logistic regression trained on clean digits,
# on the pixels, on the mcRBM's latent features, or on both. With the full config, filling in with
# the mcRBM and classifying from its features and the pixels beats the raw occluded pixels by 12-13
# points; most of that gain is the fill itself, and the Gaussian fill does almost as well.

# %%
config = gmrf_digits.get_config(size)
config.seed = SEED
digits_dir = os.path.join(workdir, "gmrf_digits")
record = train_and_evaluate(config, digits_dir)
with open(os.path.join(digits_dir, "occlusion_table.md")) as f:
  display(Markdown(f.read()))
show(os.path.join(digits_dir, "occlusion.png"), "occluded test digits and their fills")

# %% [markdown]
# ## Clean up
#
# With the default `WORKDIR = ""` the runs went to a temporary directory, removed here (or when the
# kernel stops, if the notebook ended early). Set `WORKDIR` to keep them.

# %%
if scratch is not None:
  scratch.cleanup()
