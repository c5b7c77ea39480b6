r"""Writes the Colab notebooks of this folder from the cell sources below (outputs cleared).

  python notebooks/build_notebooks.py          # rewrites notebooks/*.ipynb

The notebooks are generated so that they stay small, reviewable and alike: each opens with the Colab
install cell (a no-op outside Colab), has one `parameters` cell (papermill-style: `SMALL = True` runs the
`:smoke` configs in seconds, `SMALL = False` the real experiments), and calls the library functions the
launcher calls; they hold no training logic. Edit the cells here, run this file, and commit both.
`tests/test_notebooks.py` executes every notebook headless at its small size.
"""

from __future__ import annotations

import os
import textwrap

import nbformat

HERE = os.path.dirname(os.path.abspath(__file__))

INSTALL = '''\
# On Colab, install deepvision and its notebook extra; elsewhere it is already installed (a no-op).
import subprocess
import sys

if "google.colab" in sys.modules:
  subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                  "deepvision[notebooks] @ git+https://github.com/deepvision/deepvision"], check=True)
'''

SHOW = '''\
def show(path, title=None, width=7.0):
  """Displays a PNG figure the library wrote into a work dir."""
  image = plt.imread(path)
  plt.figure(figsize=(width, width * image.shape[0] / image.shape[1]))
  plt.imshow(image, cmap="gray")
  plt.axis("off")
  if title:
    plt.title(title)
  plt.show()
'''



def md(text: str) -> nbformat.NotebookNode:
  """A markdown cell (the text dedented)."""
  return nbformat.v4.new_markdown_cell(textwrap.dedent(text).strip())


def code(text: str, tags: tuple[str, ...] = ()) -> nbformat.NotebookNode:
  """A code cell without outputs (the text dedented), with cell tags."""
  cell = nbformat.v4.new_code_cell(textwrap.dedent(text).strip())
  if tags:
    cell.metadata["tags"] = list(tags)
  return cell


def parameters(small_note: str) -> nbformat.NotebookNode:
  """The one cell a user edits (tagged `parameters`, so papermill can inject values)."""
  return code(f'''\
SMALL = True  # {small_note}
WORKDIR = ""  # where the runs go; "" = a new temporary directory
SEED = 0''', tags=("parameters",))


def setup(imports: str, body: str) -> nbformat.NotebookNode:
  """The imports cell: imports, the work dir and config, and `show`."""
  return code("\n".join([textwrap.dedent(imports).strip(), "", textwrap.dedent(body).strip(), "", "", SHOW]))


# ------------------------------------------------------------------------------------------ 01


def quickstart() -> list[nbformat.NotebookNode]:
  """01: the default experiment (lcn_convnet_digits), curves, filters, predictions."""
  return [
      md("""\
      # Quickstart: a convnet with local contrast normalisation on digits

      The default experiment of *Deep Learning for Vision: Tricks of the Trade* (Ranzato, 2013) in JAX:
      three stages of **[convolution → rectification → local contrast normalisation]** and a max pooling
      (Jarrett, Kavukcuoglu, Ranzato & LeCun, *What is the best multi-stage architecture for object
      recognition?*, ICCV 2009), trained end to end with SGD, Nesterov momentum and a learning rate decayed
      100× (LeCun, Bottou, Bengio & Haffner, *Gradient-based learning applied to document recognition*,
      1998) on the 8×8 scikit-learn digits that ship with deepvision.

      This notebook holds no training logic: it calls `train_and_evaluate`, the same function as
      `python -m experiments.main --config=experiments/configs/lcn_convnet_digits.py --workdir=DIR`."""),
      code(INSTALL),
      md("""\
      ## Parameters

      `SMALL = True` runs the `:smoke` config (a tiny net, two epochs on 128 digits: seconds, and a poor
      classifier); `SMALL = False` runs the real experiment (about a minute on a 2-core CPU, ~99% test
      accuracy)."""),
      parameters("True: the ':smoke' config (seconds); False: the full experiment (about a minute)"),
      setup('''\
      import os
      import tempfile

      import matplotlib.pyplot as plt
      import numpy as np

      from deepvision import zoo
      from deepvision.data import datasets
      from deepvision.train.loop import train_and_evaluate, trained_model
      from deepvision.train.supervised import Preprocess
      from deepvision.train.writers import read_metrics
      from experiments.configs import lcn_convnet_digits''', '''\
      workdir = WORKDIR or tempfile.mkdtemp(prefix="lcn_convnet_digits_")
      config = lcn_convnet_digits.get_config("smoke" if SMALL else None)
      config.seed = SEED
      print(f"work dir: {workdir}")
      print(f"model {config.model} on {config.dataset} ({config.train_split}), {config.num_epochs} epochs "
            f"of batches of {config.batch_size}, learning rate {config.optimizer.learning_rate}")'''),
      md("""\
      ## The network

      Every zoo model describes itself layer by layer. "Count the parameters and the FLOPs" is the talk's
      first question when a net trains too slowly or underfits."""),
      code("print(zoo.describe(config.model))"),
      md("""\
      ## Train

      One call: it checks the whole config before any compute, trains with a jitted pure step, evaluates
      on the validation split every epoch and on the test split at the end, checkpoints, and writes
      `metrics.jsonl`, TensorBoard events and figures into the work dir. Running it again on the same
      work dir resumes (here: finds the finished run and returns at once)."""),
      code('''\
      record = train_and_evaluate(config, workdir)
      print(record)
      print(sorted(os.listdir(workdir)))'''),
      md("""\
      ## Learning curves

      The run logs to `metrics.jsonl` (one JSON object per line, each with `"step"`), and the library draws
      the curves from it into `curves.png`. The talk's advice: watch the training loss fall smoothly; a gap
      between training and validation error that grows means overfitting (regularise), both high means
      underfitting (more capacity)."""),
      code('''\
      records = read_metrics(workdir)
      print(f"{len(records)} records; the last: {records[-1]}")
      show(os.path.join(workdir, "curves.png"), "learning curves")'''),
      md("""\
      ## First-layer filters

      "Visualise the filters": after training they should look smooth and structured (strokes, edges);
      noisy filters mean too little training or too high a rate. The library drew them into
      `filters.png`."""),
      code('show(os.path.join(workdir, "filters.png"), "first-layer filters")'),
      md("""\
      ## Predictions on test digits

      `trained_model` reads the run's newest verified checkpoint and returns the zoo module with its
      parameters. The package also ships the weights of the full experiment, trained by the same config
      (`zoo.load_pretrained`, verified against their SHA-256): at the small size this run's net is barely
      trained, the shipped one classifies 99.17% of the test digits. Mistakes are shown in red."""),
      code('''\
      images, labels = datasets.load_arrays(config.dataset, config.test_split)
      inputs = Preprocess(**config.augment.to_dict())(images, train=False)
      models = {"this run": trained_model(config, workdir),
                "shipped weights": zoo.load_pretrained("lcn_convnet_digits")}
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
      plt.show()'''),
      md("""\
      ## Next

      * `02_tricks_of_the_trade`: the talk's checklist as tools (gradient check, learning-rate search,
        overfit check, unit statistics, the doctor).
      * From the shell: `python -m experiments.main --config=experiments/configs/lcn_convnet_digits.py
        --workdir=runs/lcn` (and `--config.FIELD=VALUE` to override any field)."""),
  ]


# ------------------------------------------------------------------------------------------ 02


def tricks() -> list[nbformat.NotebookNode]:
  """02: gradient check, learning-rate search, overfit check, unit statistics, the doctor."""
  return [
      md("""\
      # The tricks of the trade, as tools

      "What if it does not work?" (Ranzato, *Deep Learning for Vision: Tricks of the Trade*, 2013). The
      talk's checklist, each item a library function run here on the default experiment
      (`lcn_convnet_digits`):

      1. **check the gradients** against finite differences;
      2. **pick the learning rate** on a subset: start large and halve until the loss does not diverge;
      3. **overfit a small subset**: the training error must go to 0, else there is a bug or too little
         capacity;
      4. **look at the units**: sparse across samples and features, none dead or saturated, uncorrelated;
      5. the **doctor** runs all of them and writes a diagnosis.

      Further reading: LeCun, Bottou, Orr & Müller, *Efficient BackProp* (1998); Bengio, *Practical
      recommendations for gradient-based training of deep architectures* (2012); Hinton, *A practical guide
      to training restricted Boltzmann machines* (2010)."""),
      code(INSTALL),
      md("""\
      ## Parameters

      `SMALL = True`: the `:smoke` config (a tiny net) and short probes (seconds); `SMALL = False`: the
      default experiment's net with the talk's sizes (a few hundred steps per probe; a few minutes)."""),
      parameters("True: the ':smoke' config and short probes (seconds); False: full sizes (minutes)"),
      setup('''\
      import os
      import tempfile

      import jax
      import matplotlib.pyplot as plt
      import numpy as np

      from deepvision.data import datasets
      from deepvision.diagnostics import doctor, gradcheck, lr_search, overfit, probe, unit_stats
      from experiments.configs import lcn_convnet_digits''', '''\
      workdir = WORKDIR or tempfile.mkdtemp(prefix="tricks_of_the_trade_")
      config = lcn_convnet_digits.get_config("smoke" if SMALL else None)
      config.seed = SEED
      # Sizes of the probes: the talk's (a few hundred steps on 512 examples, 256 to overfit) or tiny ones.
      SUBSET, STEPS, OVERFIT_SUBSET, OVERFIT_EPOCHS = (64, 30, 32, 50) if SMALL else (512, 300, 256, 30)
      print(f"work dir: {workdir}; model {config.model} on {config.dataset}")'''),
      md("""\
      ## 1. Gradient check

      `jax.grad` against central finite differences in float64, on a random subset of every parameter
      leaf and of the input (image borders always included: padding bugs live there). A relative error
      around 1e-6 or below is agreement; a failing leaf names the buggy layer."""),
      code('''\
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
      plt.show()'''),
      md("""\
      ## 2. Learning-rate search

      "Start with a large value and divide by 2 until the loss does not diverge." Each trial trains from
      the same initialisation for a few steps on a subset; a trial diverges when the loss becomes NaN or
      does not fall (with LCN in the net, too large a rate stalls rather than explodes). The search gives
      the largest rate that does not diverge, a starting point for tuning; the checks below use the
      experiment's own rate, tuned on the validation split."""),
      code('''\
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
      plt.show()'''),
      md("""\
      ## 3. Overfit a small subset

      "Test on a small subset of the data and check the error goes to 0." Augmentation, weight decay and
      dropout are switched off; a net that cannot memorise a few hundred examples has a bug, too little
      capacity or a rate that is off."""),
      code('''\
      rate = config.optimizer.learning_rate
      fit = overfit.overfit_check(config, subset=OVERFIT_SUBSET, max_epochs=OVERFIT_EPOCHS, learning_rate=rate)
      print(fit.format())

      plt.figure(figsize=(7, 3.5))
      plt.plot(np.arange(1, len(fit.errors) + 1), fit.errors, "o-")
      plt.xlabel("epoch")
      plt.ylabel("training error")
      plt.ylim(-0.02, 1.0)
      plt.title(f"overfit check on {fit.subset} examples: reached 0: {fit.reached_zero}")
      plt.show()'''),
      md("""\
      ## 4. Unit statistics

      "Hidden units should be sparse across samples and across features"; a badly trained net has "many
      hidden units that ignore the input and/or exhibit strong correlations". We train the net briefly
      with the library's probe (the instrument of the search and the overfit check), then measure every
      intermediate layer on a batch of training digits, as the network sees them."""),
      code('''\
      plan = probe.make_plan(config, SUBSET)
      run = probe.probe(config, plan, rate, STEPS, seed=config.seed)
      print(f"probe: loss {run.start_loss:.3f} → {run.end_loss:.3f} in {len(run.losses)} steps")

      images = datasets.load_arrays(config.dataset, config.train_split)[0][:256]
      stats = unit_stats.unit_statistics(plan.model, run.state.params, plan.preprocess(images, train=False))
      print(unit_stats.format_table(stats))
      figures = unit_stats.save_unit_figures(stats, workdir, "units", params=run.state.params)
      last = list(stats)[-1]
      for path in figures:
        if os.path.basename(path).startswith(f"units_{last.replace('/', '_')}_"):
          show(path, os.path.basename(path), width=5)'''),
      md("""\
      ## 5. The doctor

      All of the above in one call, with a diagnosis in the talk's terms (diverging → lower the rate;
      underfitting → more capacity; overfitting → regularise; too slow → count the FLOPs) and its
      evidence, written to `doctor.md` with figures. From the shell:
      `python -m experiments.doctor --config=experiments/configs/lcn_convnet_digits.py --workdir=DIR`."""),
      code('''\
      report = doctor.run_doctor(config, os.path.join(workdir, "doctor"), subset=SUBSET, probe_steps=STEPS,
                                 overfit_subset=OVERFIT_SUBSET, overfit_epochs=OVERFIT_EPOCHS)
      print("alarms:", sorted(report.problems()) or "none")
      for finding in report.findings:
        print(f"- {finding.severity}: {finding.problem}: {finding.evidence}. → {finding.advice}")
      for title, text in report.sections:
        print(f"\\n## {title}\\n{text}")
      print(f"\\nreport: {os.path.join(workdir, 'doctor', 'doctor.md')}")
      figure = next((p for p in report.figures if "filters" in os.path.basename(p)), report.figures[0])
      show(figure, os.path.basename(figure), width=5)'''),
  ]


# ------------------------------------------------------------------------------------------ 03


def rbm_dbn() -> list[nbformat.NotebookNode]:
  """03: an RBM (rbm_digits), its filters, Gibbs chains and AIS log Z; a DBN (dbn_digits)."""
  return [
      md("""\
      # RBMs and deep belief nets

      A binary restricted Boltzmann machine on the 8×8 digits (pixels in [0, 1] used as probabilities),
      with energy E(v, h) = −b_vᵀv − b_hᵀh − vᵀWh and free energy
      F(v) = −b_vᵀv − Σ_j softplus(b_h,j + vᵀW_:,j), trained with persistent contrastive divergence
      (Hinton, *Training products of experts by minimizing contrastive divergence*, 2002; Tieleman,
      *Training RBMs using approximations to the likelihood gradient*, 2008) and the recipe of Hinton's
      *A practical guide to training RBMs* (2010). Then its filters, Gibbs chains, its log-likelihood by
      annealed importance sampling (Salakhutdinov & Murray, *On the quantitative analysis of deep belief
      networks*, 2008), and a deep belief net stacked greedily from RBMs and fine-tuned as a classifier
      (Hinton, Osindero & Teh, *A fast learning algorithm for deep belief nets*, 2006).

      The training runs are the launcher's (`experiments/configs/rbm_digits.py`, `dbn_digits.py`)."""),
      code(INSTALL),
      md("""\
      ## Parameters

      `SMALL = True`: the `:smoke` configs (64 × 12 RBM, a 12-8 DBN, two epochs: seconds; log Z exact
      because 12 hidden units can be enumerated); `SMALL = False`: the real experiments (64 × 256 and
      64-256-256, about 30 s and 60 s on a 2-core CPU)."""),
      parameters("True: the ':smoke' configs (seconds); False: the full experiments (a few minutes)"),
      setup('''\
      import os
      import tempfile

      import jax
      import jax.numpy as jnp
      import matplotlib.pyplot as plt
      import numpy as np

      from deepvision import zoo
      from deepvision.data import datasets
      from deepvision.diagnostics import energy_viz
      from deepvision.estimators import ais, partition
      from deepvision.models import dbn
      from deepvision.samplers import gibbs
      from deepvision.samplers.base import run_chain
      from deepvision.train.contrastive_loop import run_contrastive
      from deepvision.train.dbn_loop import run_dbn
      from deepvision.train.writers import read_metrics
      from experiments.configs import dbn_digits, rbm_digits''', '''\
      workdir = WORKDIR or tempfile.mkdtemp(prefix="rbm_dbn_")
      size = "smoke" if SMALL else None
      key = jax.random.key(SEED)
      print(f"work dir: {workdir}")'''),
      md("""\
      ## Train an RBM

      `run_contrastive` is what `train_and_evaluate` runs for `trainer = "contrastive"`; it also returns the
      trained parameters. Every evaluation logs the reconstruction error, the pseudo-likelihood and the
      free-energy gap between validation and training data (Hinton's overfitting monitor: it grows when the
      model overfits)."""),
      code('''\
      config = rbm_digits.get_config(size)
      config.seed = SEED
      if SMALL:  # skip the logistic regression on the features (not shown here): seconds of compilation
        config.linear_eval.enabled = False
      rbm_dir = os.path.join(workdir, "rbm")
      record, params = run_contrastive(config, rbm_dir)
      rbm = zoo.create(config.model, **config.model_kwargs)
      variables = {"params": params}
      print({k: round(v, 4) for k, v in record.items() if isinstance(v, float)})'''),
      code('''\
      print(f"{len(read_metrics(rbm_dir))} records in metrics.jsonl; the library drew them into curves.png")
      show(os.path.join(rbm_dir, "curves.png"), "RBM training: reconstruction error, pseudo-likelihood, "
           "free-energy gap")'''),
      md("""\
      ## Filters

      Each hidden unit's weights W_:,j as an 8×8 image: after training, local stroke detectors and
      digit-part templates."""),
      code('show(os.path.join(rbm_dir, "filters.png"), "RBM filters W", width=6)'),
      md("""\
      ## Gibbs chains

      Block Gibbs sampling alternates h ~ p(h | v) and v ~ p(v | h). The sampler is an `(init, step)` pair
      run under `lax.scan` by `run_chain`. Ten chains start at held-out digits; each column shows E[v | h]
      a fixed number of steps further: a well-trained model keeps producing digit-like images, and the
      chains wander between classes (slowly: the mixing problem of RBMs)."""),
      code('''\
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
      plt.show()'''),
      md("""\
      ## Log-likelihood by annealed importance sampling

      The likelihood needs the partition function Z = Σ_v e^{−F(v)}, intractable for a real model. AIS
      anneals from a base-rate model (visible biases fitted to the data, W = 0) to the RBM through a
      schedule of temperatures β and averages the importance weights; the spread of the weights gives
      ±3σ bounds. With few hidden units we can also enumerate them and compare with the exact value.
      Log-likelihood per digit: log p(v) = −F(v) − log Z."""),
      code('''\
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
      plt.show()'''),
      md("""\
      ## A deep belief net

      Greedy layer-wise training: RBM 1 on the pixels, RBM 2 on RBM 1's posterior means p(h | v), then a
      sigmoid MLP initialised from the stack and fine-tuned by back-propagation, beside the same MLP from
      random weights (the comparison pre-training is judged by). `run_dbn` is the `dbn` trainer; it
      returns the stack `[(model, params), ...]`. With the full config, seeds 0-2 reach 98.6 / 98.3 / 98.1%
      test accuracy from the DBN and 97.8 / 98.1 / 98.3% from random weights: on 8×8 digits pre-training
      is no clear win. At the small size (12 and 8 hidden units, ten epochs of fine-tuning) the numbers
      mean nothing."""),
      code('''\
      dbn_config = dbn_digits.get_config(size)
      dbn_config.seed = SEED
      if SMALL:
        dbn_config.linear_eval.enabled = False
      dbn_dir = os.path.join(workdir, "dbn")
      dbn_record, layers = run_dbn(dbn_config, dbn_dir)
      for name in ("test/accuracy", "test/accuracy_scratch"):
        print(f"{name}: {dbn_record[name]:.4f}")
      show(os.path.join(dbn_dir, "samples.png"), "DBN samples: Gibbs in the top RBM, then a top-down pass",
           width=5)'''),
      md("""\
      ### DBN features

      `dbn.features` pushes data up the stack. Below: the top layer's posterior means for held-out digits
      sorted by class (rows: digits, columns: units), as the talk draws samples × units; class-specific
      patterns are what the fine-tuned classifier starts from."""),
      code('''\
      order = np.argsort(test_labels, kind="stable")
      top = np.asarray(dbn.features(layers, jnp.asarray(test_v[order])))
      plt.figure(figsize=(6, 5))
      plt.imshow(top, aspect="auto", cmap="gray", interpolation="nearest")
      plt.xlabel("top-layer unit")
      plt.ylabel("held-out digits, sorted by class 0 … 9")
      plt.title("p(h | v) of the DBN's top layer")
      plt.colorbar()
      plt.show()'''),
  ]


# ------------------------------------------------------------------------------------------ 04


def gated_mrf() -> list[nbformat.NotebookNode]:
  """04: mcrbm_patches against the Gaussian, gmrf_faces inpainting, gmrf_digits occlusion."""
  return [
      md("""\
      # Gated MRFs: the mean-covariance RBM

      The centrepiece of the talk: a model of natural images whose hidden units gate the *covariance*
      of the pixels (edges, texture) as well as their mean. The mcRBM's free energy, with factor filters
      C, non-negative pooling P of the squared factor responses into covariance units, and mean filters W,

      ```
      F(x) = ½xᵀx − b_vᵀx − Σ_k softplus(b_c,k − ½ Σ_f P_fk (C_:,fᵀ x̃)²)
                          − Σ_j softplus(W_:,jᵀ x + b_m,j)
      ```

      where x̃ is x divided by sqrt(‖x‖²/D + ½) in the form the authors' code trains (`input_norm='original'`).

      (Ranzato & Hinton, *Modeling pixel means and covariances using factorized third-order Boltzmann
      machines*, CVPR 2010; Ranzato, Mnih & Hinton, *Generating more realistic images using gated MRFs*,
      NIPS 2010; Ranzato, Mnih, Susskind & Hinton, *Modeling natural images using gated MRFs*, PAMI 2013).
      The visible units are continuous, so negatives come from Hybrid Monte Carlo (Neal, *MCMC using
      Hamiltonian dynamics*, 2011). Three experiments, each one launcher config:

      1. `mcrbm_patches`: an mcRBM on whitened natural-image patches, against a Gaussian (PCA) model;
      2. `gmrf_faces`: inpainting held-out faces;
      3. `gmrf_digits`: recognition under occlusion (Ranzato, Susskind, Mnih & Hinton, *On deep generative
         models with applications to recognition*, CVPR 2011)."""),
      code(INSTALL),
      md("""\
      ## Parameters

      `SMALL = True`: the `:smoke` configs (tiny models, two epochs, short chains: seconds each, and the
      figures show barely trained models); `SMALL = False`: the real experiments (about 40 s, a minute and
      75 s on a 2-core CPU)."""),
      parameters("True: the ':smoke' configs (seconds); False: the full experiments (a few minutes)"),
      setup('''\
      import os
      import tempfile

      import matplotlib.pyplot as plt
      from IPython.display import Markdown, display

      from deepvision.train.loop import train_and_evaluate
      from experiments.configs import gmrf_digits, gmrf_faces, mcrbm_patches''', '''\
      workdir = WORKDIR or tempfile.mkdtemp(prefix="gated_mrf_")
      size = "smoke" if SMALL else None
      print(f"work dir: {workdir}")'''),
      md("""\
      ## 1. An mcRBM on natural-image patches

      Random 8×8 patches of the embedded photographs (6×6 at the small size), each patch's mean removed,
      PCA-whitened; persistent chains advanced by one HMC trajectory per update; the original code's
      recipe (per-parameter rates, delayed L1, P frozen then kept topographic, C renormalised). The held-out
      log-likelihood comes from AIS with HMC transitions, next to the Gaussian (PCA) model of the same
      whitened patches: the gated MRF should assign held-out patches a higher likelihood."""),
      code('''\
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
      plt.show()'''),
      md("""\
      The factor filters C (what the covariance units look at; the papers report localised, oriented edge
      filters) and
      the samples: held-out patches | samples of the Gaussian model | samples of the mcRBM by HMC. The
      Gaussian's samples are texture-less noise with the right second-order statistics; the mcRBM's
      should show sharp edges, the structure a Gaussian cannot express."""),
      code('''\
      show(os.path.join(mcrbm_dir, "filters_C.png"), "factor filters C (pixel space)", width=5)
      show(os.path.join(mcrbm_dir, "samples.png"), "data | Gaussian samples | mcRBM samples (HMC)")'''),
      md("""\
      ## 2. Inpainting held-out faces

      An mcRBM on small whitened faces; parts of held-out faces are hidden and filled with the posterior
      mean of the missing pixels, sampled by HMC in pixel space with the observed pixels clamped, against
      the Gaussian conditional mean. The figure's rows: originals, then per mask occluded | Gaussian fill |
      mcRBM fill. With the full config the mcRBM's error is lower on every mask, but only by about one
      standard error: at 12×12 pixels the Gaussian's linear fill is already close to the best."""),
      code('''\
      config = gmrf_faces.get_config(size)
      config.seed = SEED
      faces_dir = os.path.join(workdir, "gmrf_faces")
      record = train_and_evaluate(config, faces_dir)
      for mask in config.inpainting.masks:
        print(f"{mask:15s} MSE per missing pixel: mcRBM {record[f'test/mse_gmrf_{mask}']:.4f}, "
              f"Gaussian {record[f'test/mse_gaussian_{mask}']:.4f}")
      show(os.path.join(faces_dir, "inpainted_faces.png"), "inpainting held-out faces")'''),
      md("""\
      ## 3. Recognition under occlusion

      Test digits are occluded (left half, a random square), filled in (training mean, Gaussian conditional
      mean, or the mcRBM by clamped HMC), and classified by logistic regression trained on clean digits,
      on the pixels, on the mcRBM's latent features, or on both. With the full config, filling in with
      the mcRBM and classifying from its features and the pixels beats the raw occluded pixels by 12-13
      points; most of that gain is the fill itself, and the Gaussian fill does almost as well."""),
      code('''\
      config = gmrf_digits.get_config(size)
      config.seed = SEED
      digits_dir = os.path.join(workdir, "gmrf_digits")
      record = train_and_evaluate(config, digits_dir)
      with open(os.path.join(digits_dir, "occlusion_table.md")) as f:
        display(Markdown(f.read()))
      show(os.path.join(digits_dir, "occlusion.png"), "occluded test digits and their fills")'''),
  ]


NOTEBOOKS = {
    "01_quickstart.ipynb": quickstart,
    "02_tricks_of_the_trade.ipynb": tricks,
    "03_rbm_dbn.ipynb": rbm_dbn,
    "04_gated_mrf.ipynb": gated_mrf,
}


def build(name: str) -> nbformat.NotebookNode:
  """The notebook `name`, outputs cleared, with stable cell ids (so rebuilding changes nothing)."""
  notebook = nbformat.v4.new_notebook()
  notebook.cells = NOTEBOOKS[name]()
  stem = name.split("_")[0]
  for i, cell in enumerate(notebook.cells):
    cell.id = f"nb{stem}-{i:02d}"
  notebook.metadata = {
      "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
      "language_info": {"name": "python"},
      "colab": {"provenance": []},
  }
  nbformat.validate(notebook)
  return notebook


def main() -> None:
  """Writes every notebook next to this file."""
  for name in NOTEBOOKS:
    path = os.path.join(HERE, name)
    nbformat.write(build(name), path)
    print(f"wrote {path}")


if __name__ == "__main__":
  main()
