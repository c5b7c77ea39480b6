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
# # The tricks of the trade, as tools
#
# "What if it does not work?" (Ranzato, *Deep Learning for Vision: Tricks of the Trade*, 2013). The
# talk's checklist, each item a library function run here on the default experiment
# (`lcn_convnet_digits`):
#
# 1. **check the gradients** against finite differences;
# 2. **pick the learning rate** on a subset: start large and halve until the loss does not diverge;
# 3. **overfit a small subset**: the training error must go to 0, else there is a bug or too little
#    capacity;
# 4. **look at the units**: sparse across samples and features, none dead or saturated, uncorrelated;
# 5. the **doctor** runs all of them and writes a diagnosis.
#
# Further reading: LeCun, Bottou, Orr & Müller, *Efficient BackProp* (1998); Bengio, *Practical
# recommendations for gradient-based training of deep architectures* (2012); Hinton, *A practical guide
# to training restricted Boltzmann machines* (2010).

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
# `SMALL = True`: the `:smoke` config (a tiny net) and short probes (seconds); `SMALL = False`: the
# default experiment's net with the talk's sizes (a few hundred steps per probe; a few minutes).

# %% tags=["parameters"]
SMALL = True  # True: the ':smoke' config and short probes (seconds); False: full sizes (minutes)
WORKDIR = ""  # where the runs go; "" = a temporary directory, removed at the end
SEED = 0

# %%
import os
import tempfile

import jax
import matplotlib.pyplot as plt
import numpy as np

from deepvision.data import datasets
from deepvision.diagnostics import doctor, gradcheck, overfit, unit_figures, unit_stats
from deepvision.train import lr_search, probe
from experiments.configs import lcn_convnet_digits

scratch = None if WORKDIR else tempfile.TemporaryDirectory(prefix="tricks_of_the_trade_")  # see "Clean up"
workdir = WORKDIR or scratch.name
config = lcn_convnet_digits.get_config("smoke" if SMALL else None)
config.seed = SEED
# Sizes of the probes: the talk's (a few hundred steps on 512 examples, 256 to overfit) or tiny ones.
SUBSET, STEPS, OVERFIT_SUBSET, OVERFIT_EPOCHS = (64, 30, 32, 50) if SMALL else (512, 300, 256, 30)
print(f"work dir: {workdir}; model {config.model} on {config.dataset}")


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
# ## 1. Gradient check
#
# `jax.grad` against central finite differences in float64, on a random subset of every parameter
# leaf and of the input (image borders always included: padding bugs live there). A relative error
# around 1e-6 or below is agreement; a failing leaf names the buggy layer.

# %%
checked = gradcheck.zoo_check(config.model, key=jax.random.key(SEED, impl="rbg"))
print(checked.format())

paths = [leaf.path for leaf in checked.leaves]
errors = [max(leaf.max_rel_error, 1e-17) for leaf in checked.leaves]
plt.figure(figsize=(8, 0.3 * len(paths) + 1.5))
plt.barh(paths, errors, color=["tab:green" if leaf.ok else "tab:red" for leaf in checked.leaves])
plt.axvline(checked.rtol, color="black", linestyle="--", label=f"tolerance {checked.rtol:g}")
plt.xscale("log")
plt.xlabel("worst relative error (analytic vs finite differences)")
plt.legend()
plt.title("gradient check per parameter leaf")
plt.show()

# %% [markdown]
# ## 2. Learning-rate search
#
# "Start with a large value and divide by 2 until the loss does not diverge." Each trial trains from
# the same initialisation for a few steps on a subset; a trial diverges when the loss becomes NaN or
# does not fall (with LCN in the net, too large a rate stalls rather than explodes). The search gives
# the largest rate that does not diverge, a starting point for tuning; the checks below use the
# experiment's own rate, tuned on the validation split.

# %%
search = lr_search.search_learning_rate(config, start=1.0, steps=STEPS, subset=SUBSET)
print(search.format())

rates = [t.learning_rate for t in search.trail]
plt.figure(figsize=(7, 3.5))
plt.plot(rates, [t.start_loss for t in search.trail], "o-", label="first step")
plt.plot(rates, [t.end_loss for t in search.trail], "s-", label="last tenth")
for t in search.trail:
  if t.diverged:
    plt.axvline(t.learning_rate, color="tab:red", alpha=0.2)
plt.xscale("log")
plt.xlabel("learning rate (red: diverged)")
plt.ylabel("training loss")
plt.title(f"halving search: chosen {search.learning_rate}")
plt.legend()
plt.show()

# %% [markdown]
# ## 3. Overfit a small subset
#
# "Test on a small subset of the data and check the error goes to 0." Augmentation, weight decay and
# dropout are switched off; a net that cannot memorise a few hundred examples has a bug, too little
# capacity or a rate that is off.

# %%
rate = config.optimizer.learning_rate
fit = overfit.overfit_check(config, subset=OVERFIT_SUBSET, max_epochs=OVERFIT_EPOCHS, learning_rate=rate)
print(fit.format())

plt.figure(figsize=(7, 3.5))
plt.plot(np.arange(1, len(fit.errors) + 1), fit.errors, "o-")
plt.xlabel("epoch")
plt.ylabel("training error")
plt.ylim(-0.02, 1.0)
plt.title(f"overfit check on {fit.subset} examples: reached 0: {fit.reached_zero}")
plt.show()

# %% [markdown]
# ## 4. Unit statistics
#
# "Hidden units should be sparse across samples and across features"; a badly trained net has "many
# hidden units that ignore the input and/or exhibit strong correlations". We train the net briefly
# with the library's probe (the instrument of the search and the overfit check), then measure every
# intermediate layer on a batch of training digits, as the network sees them.

# %%
plan = probe.make_plan(config, SUBSET)
run = probe.probe(config, plan, rate, STEPS, seed=config.seed)
print(f"probe: loss {run.start_loss:.3f} → {run.end_loss:.3f} in {len(run.losses)} steps")

images = datasets.load_arrays(config.dataset, config.train_split)[0][:256]
stats = unit_stats.unit_statistics(plan.model, run.state.params, plan.preprocess(images, train=False))
print(unit_stats.format_table(stats))
figures = unit_figures.save_unit_figures(stats, workdir, "units", params=run.state.params)
last = list(stats)[-1]
for path in figures:
  if os.path.basename(path).startswith(f"units_{last.replace('/', '_')}_"):
    show(path, os.path.basename(path), width=5)

# %% [markdown]
# ## 5. The doctor
#
# All of the above in one call, with a diagnosis in the talk's terms (diverging → lower the rate;
# underfitting → more capacity; overfitting → regularise; too slow → count the FLOPs) and its
# evidence, written to `doctor.md` with figures. From the shell:
# `python -m experiments.doctor --config=experiments/configs/lcn_convnet_digits.py --workdir=DIR`.

# %%
report = doctor.run_doctor(config, os.path.join(workdir, "doctor"), subset=SUBSET, probe_steps=STEPS,
                           overfit_subset=OVERFIT_SUBSET, overfit_epochs=OVERFIT_EPOCHS)
print("alarms:", sorted(report.problems()) or "none")
for finding in report.findings:
  print(f"- {finding.severity}: {finding.problem}: {finding.evidence}. → {finding.advice}")
for title, text in report.sections:
  print(f"\n## {title}\n{text}")
print(f"\nreport: {os.path.join(workdir, 'doctor', 'doctor.md')}")
figure = next((p for p in report.figures if "filters" in os.path.basename(p)), report.figures[0])
show(figure, os.path.basename(figure), width=5)

# %% [markdown]
# ## Clean up
#
# With the default `WORKDIR = ""` the runs went to a temporary directory, removed here (or when the
# kernel stops, if the notebook ended early). Set `WORKDIR` to keep them.

# %%
if scratch is not None:
  scratch.cleanup()
