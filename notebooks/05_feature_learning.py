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
# # Which feature learner?
#
# The talk's conclusion on generative models: *if generation is not required, other feature learning
# methods are more efficient*. This notebook trains the unsupervised families of deepvision on the
# 8×8 digits and puts each one's features into the same linear read-out:
#
# * k-means with the triangle code (Coates, Lee & Ng, *An analysis of single-layer networks in
#   unsupervised feature learning*, AISTATS 2011);
# * sparse coding, codes by FISTA (Beck & Teboulle 2009) over a dictionary learned online (Mairal, Bach,
#   Ponce & Sapiro 2009), and PSD, a feed-forward encoder trained to predict those codes (Kavukcuoglu,
#   Ranzato & LeCun, *Fast inference in sparse coding algorithms*, 2008);
# * a denoising autoencoder (Vincent, Larochelle, Bengio & Manzagol 2008).
#
# Each is trained by the launcher's path (`experiments.compare_features`, which calls
# `train_and_evaluate` on the learner's own config), its features `hidden_probs` of every image go into
# logistic regression with L2 chosen on validation (`deepvision.estimators.linear_readout`), with every
# training label and with 100. The full comparison (12 feature sets including the RBMs and the mcRBM,
# two data sets, three seeds) is `python -m experiments.compare_features`; its tables are in the main
# README.

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
# `SMALL = True`: every learner's `:smoke` config (a few units, two epochs: seconds each; the numbers
# show the mechanics, not the results); `SMALL = False`: the learners' own configs at 256 features
# (about two minutes on a 2-core CPU).

# %% tags=["parameters"]
SMALL = True  # True: the ':smoke' configs (seconds); False: the full experiments (a few minutes)
WORKDIR = ""  # where the runs go; "" = a temporary directory, removed at the end
SEED = 0

# %%
import os
import tempfile

import matplotlib.pyplot as plt
import numpy as np

from experiments import compare_features, features_table

scratch = None if WORKDIR else tempfile.TemporaryDirectory(prefix="feature_learning_")  # see "Clean up"
workdir = WORKDIR or scratch.name
settings = compare_features.Settings(quick=SMALL, figures=True)
LEARNERS = ["pixels", "kmeans_conv", "sparse_coding", "psd", "dae"]
print(f"work dir: {workdir}")


# %% [markdown]
# ## One read-out for every feature set
#
# `compare_features.compare` trains each learner on whole digits through the launcher's path (its own
# config as `compare_features.learner_config` sets it: the data set's train / validation / test splits,
# n_visible from the data; `kmeans_conv` learns from 4×4 patches and sums its codes over the image's
# quadrants), extracts its features for the training, validation and test images, and fits the read-out
# twice: on all 1,077 training labels and on 100 drawn evenly over the ten classes (the features are
# still learned from every training image: the unlabelled-data regime where unsupervised learning should
# help). A second call with the same work dir reuses the finished runs.

# %%
compare_dir = os.path.join(workdir, "compare")
rows = compare_features.compare("dv_digits", LEARNERS, seeds=1, settings=settings, workdir=compare_dir,
                                 first_seed=SEED)
record = {"learners": rows, "seeds": 1, "label_budget": compare_features.LABEL_BUDGET}
print(features_table.table(record))

# %% [markdown]
# ## What each learner learns
#
# The runs drew their filters (`filters.png`): k-means' centroids and the sparse-coding atoms in pixel
# space (the runs whiten their inputs), the autoencoder's columns of W.

# %%
shown = ["kmeans_conv", "sparse_coding", "dae"]
fig, axes = plt.subplots(1, len(shown), figsize=(4 * len(shown), 4))
for ax, name in zip(axes, shown):
  run_dir = compare_features.run_directory(compare_dir, "dv_digits", name, SEED)
  ax.imshow(plt.imread(os.path.join(run_dir, "filters.png")), cmap="gray")
  ax.set_title(name)
  ax.axis("off")
fig.suptitle("filters of the learned features (each run's filters.png)")
plt.show()

# %%
names = list(rows)
x = np.arange(len(names))
fig, ax = plt.subplots(figsize=(9, 3.5))
ax.bar(x - 0.2, [100 * rows[n]["all_labels"]["mean"] for n in names], 0.4, label="all labels")
ax.bar(x + 0.2, [100 * rows[n]["100_labels"]["mean"] for n in names], 0.4, label="100 labels")
ax.set_xticks(x, names, rotation=30, ha="right")
ax.set_ylabel("test accuracy %")
ax.set_ylim(0, 100)
ax.set_title("logistic regression on each feature set (dv_digits)")
ax.legend(loc="lower right")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## The price of inference
#
# Sparse coding's features are the solution of an optimisation (FISTA's iterations per image); PSD's
# encoder predicts them in one feed-forward pass, the point of PSD. Extraction time per 1,000 images
# (jitted, after a warm-up call), on a log scale:

# %%
fig, ax = plt.subplots(figsize=(9, 3.5))
ax.bar(x, [1000 * rows[n]["extract_seconds_per_1000"] for n in names])
ax.set_yscale("log")
ax.set_xticks(x, names, rotation=30, ha="right")
ax.set_ylabel("ms per 1,000 images")
ax.set_title("feature extraction time")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Clean up
#
# With the default `WORKDIR = ""` the runs went to a temporary directory, removed here (or when the
# kernel stops, if the notebook ended early). Set `WORKDIR` to keep them.

# %%
if scratch is not None:
  scratch.cleanup()
