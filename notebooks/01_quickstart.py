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
# # Quickstart: a convnet with local contrast normalisation on digits
#
# The default experiment of *Deep Learning for Vision: Tricks of the Trade* (Ranzato, 2013) in JAX:
# three stages of **[convolution → rectification → local contrast normalisation]** and a max pooling
# (Jarrett, Kavukcuoglu, Ranzato & LeCun, *What is the best multi-stage architecture for object
# recognition?*, ICCV 2009), trained end to end with SGD, Nesterov momentum and a learning rate decayed
# 100× (LeCun, Bottou, Bengio & Haffner, *Gradient-based learning applied to document recognition*,
# 1998) on the 8×8 scikit-learn digits that ship with deepvision.
#
# This notebook holds no training logic: it calls `train_and_evaluate`, the same function as
# `python -m experiments.main --config=experiments/configs/lcn_convnet_digits.py --workdir=DIR`.

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
# `SMALL = True` runs the `:smoke` config (a tiny net, two epochs on 128 digits: seconds, and a poor
# classifier); `SMALL = False` runs the real experiment (about a minute on a 2-core CPU, ~99% test
# accuracy).

# %% tags=["parameters"]
SMALL = True  # True: the ':smoke' config (seconds); False: the full experiment (about a minute)
WORKDIR = ""  # where the runs go; "" = a temporary directory, removed at the end
SEED = 0

# %%
import os
import tempfile

import matplotlib.pyplot as plt
import numpy as np

from deepvision import pretrained, zoo
from deepvision.data import datasets
from deepvision.diagnostics import flops
from deepvision.pretrained.runs import trained_model
from deepvision.train.loop import train_and_evaluate
from deepvision.train.supervised import Preprocess
from deepvision.train.writers import read_metrics
from experiments.configs import lcn_convnet_digits

scratch = None if WORKDIR else tempfile.TemporaryDirectory(prefix="lcn_convnet_digits_")  # see "Clean up"
workdir = WORKDIR or scratch.name
config = lcn_convnet_digits.get_config("smoke" if SMALL else None)
config.seed = SEED
print(f"work dir: {workdir}")
print(f"model {config.model} on {config.dataset} ({config.train_split}), {config.num_epochs} epochs "
      f"of batches of {config.batch_size}, learning rate {config.optimizer.learning_rate}")


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
# ## The network
#
# Every zoo model describes itself layer by layer. "Count the parameters and the FLOPs" is the talk's
# first question when a net trains too slowly or underfits.

# %%
print(zoo.describe(config.model))
print(flops.format_table(flops.layer_table(config.model)))

# %% [markdown]
# ## Train
#
# One call: it checks the whole config before any compute, trains with a jitted pure step, evaluates
# on the validation split every epoch and on the test split at the end, checkpoints, and writes
# `metrics.jsonl`, TensorBoard events and figures into the work dir. Running it again on the same
# work dir resumes (here: finds the finished run and returns at once).

# %%
record = train_and_evaluate(config, workdir)
print(record)
print(sorted(os.listdir(workdir)))

# %% [markdown]
# ## Learning curves
#
# The run logs to `metrics.jsonl` (one JSON object per line, each with `"step"`), and the library draws
# the curves from it into `curves.png`. The talk's advice: watch the training loss fall smoothly; a gap
# between training and validation error that grows means overfitting (regularise), both high means
# underfitting (more capacity).

# %%
records = read_metrics(workdir)
print(f"{len(records)} records; the last: {records[-1]}")
show(os.path.join(workdir, "curves.png"), "learning curves")

# %% [markdown]
# ## First-layer filters
#
# "Visualise the filters": after training they should look smooth and structured (strokes, edges);
# noisy filters mean too little training or too high a rate. The library drew them into
# `filters.png`.

# %%
show(os.path.join(workdir, "filters.png"), "first-layer filters")

# %% [markdown]
# ## Predictions on test digits
#
# `trained_model` reads the run's newest verified checkpoint and returns the zoo module with its
# parameters. The package also ships the weights of the full experiment, trained by the same config
# (`pretrained.load`, verified against their SHA-256): at the small size this run's net is barely
# trained, the shipped one classifies 99.17% of the test digits. Mistakes are shown in red.

# %%
images, labels = datasets.load_arrays(config.dataset, config.test_split)
inputs = Preprocess(**config.augment.to_dict())(images, train=False)
models = {"this run": trained_model(config, workdir),
          "shipped weights": pretrained.load("lcn_convnet_digits")}
predictions = {}
for name, (module, variables) in models.items():
  logits, _ = module.apply(variables, inputs, train=False)
  predictions[name] = np.asarray(logits.argmax(-1))
  print(f"{name}: test accuracy {np.mean(predictions[name] == labels):.4f} on {len(labels)} digits")

fig, axes = plt.subplots(3, 8, figsize=(10, 4))
for ax, image, label, prediction in zip(axes.flat, images, labels, predictions["shipped weights"]):
  ax.imshow(image[..., 0], cmap="gray_r")
  ax.set_title(f"{prediction}", color="black" if prediction == label else "red")
  ax.axis("off")
fig.suptitle("the shipped weights' predictions for the first test digits (red: wrong)")
plt.show()

# %% [markdown]
# ## Next
#
# * `02_tricks_of_the_trade`: the talk's checklist as tools (gradient check, learning-rate search,
#   overfit check, unit statistics, the doctor).
# * From the shell: `python -m experiments.main --config=experiments/configs/lcn_convnet_digits.py
#   --workdir=runs/lcn` (and `--config.FIELD=VALUE` to override any field).

# %% [markdown]
# ## Clean up
#
# With the default `WORKDIR = ""` the runs went to a temporary directory, removed here (or when the
# kernel stops, if the notebook ended early). Set `WORKDIR` to keep them.

# %%
if scratch is not None:
  scratch.cleanup()
