"""The doctor: the talk's checklist run on an experiment config, with a diagnosis and its evidence.

The checks depend on what is trained, so the doctor picks an *examination* by the config's trainer
(`EXAMINATIONS`, keyed like `train.loop.TRAINERS`):

* `supervised` (classifiers, `doctor_supervised`): the parameters / FLOPs table, a float64 gradient check,
  a probe at the configured rate with the halving search when it diverges, the overfit check, train vs
  validation error, unit statistics;
* `contrastive` (RBMs and gated MRFs, `doctor_energy`): the parameter table, a float64 gradient check of
  the free energy, a CD / PCD probe at the configured rate with the reconstruction-error and free-energy-gap
  trends, unit statistics of the hidden probabilities.

A config whose trainer has no examination (the multi-stage pipelines, autoencoders, sparse coding) is
refused with `DoctorRefusal` (a ConfigError) saying what to diagnose instead, before anything is written.
A validation split that shares examples with the training split is reported, never compared on.
`run_doctor` returns the findings as data and writes `doctor.md` (with captioned figures) and `doctor.json`
(the findings and the checks' measurements) into the work dir.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from typing import Any

import ml_collections

from deepvision.diagnostics import doctor_energy, doctor_supervised
from deepvision.diagnostics.doctor_report import (  # noqa: F401
  MEASUREMENTS_FILE,
  REPORT_FILE,
  DoctorReport,
  Finding,
  Options,
)
from deepvision.errors import ConfigError
from deepvision.registry import Registry


class DoctorRefusal(ConfigError):
  """A config the doctor has no examination for; the message names the trainers it handles."""


@dataclasses.dataclass(frozen=True)
class Examination:
  """How the doctor diagnoses one trainer's configs.

  Attributes:
    what: the configs it diagnoses, for messages (e.g. 'supervised (classifier) configs').
    check: `check(config, options) -> checked`: reads and checks the config and opens the data; raises
      ConfigError (or a data set error) and writes nothing.
    examine: `examine(checked, workdir) -> DoctorReport`: runs the checks, writing figures to `workdir`.
  """

  what: str
  check: Callable[[ml_collections.ConfigDict, Options], Any]
  examine: Callable[[Any, str], DoctorReport]


EXAMINATIONS: Registry[Examination] = Registry("doctor examination")
EXAMINATIONS.register("supervised", Examination("supervised (classifier) configs", doctor_supervised.check,
                                                doctor_supervised.examine))
EXAMINATIONS.register("contrastive", Examination(
    "contrastive (RBM, Gaussian RBM, mcRBM, mPoT) configs", doctor_energy.check, doctor_energy.examine))

# What to diagnose instead, for the trainers without an examination.
INSTEAD = {
    "dbn": "diagnose its layers: the RBM stack with a contrastive config (e.g. experiments/configs/"
           "rbm_digits.py, with the layer's sizes) and the fine-tuned net with a supervised one",
    "sdae": "diagnose its fine-tuned classifier with a supervised config; the autoencoder stages are not "
            "diagnosed (their reconstruction curves are in the run's metrics.jsonl)",
    "deep_gmrf": "diagnose its first layer, a gated MRF, with experiments/configs/mcrbm_patches.py or "
                 "mpot_patches.py",
    "gmrf_images": "diagnose a learned image model with a contrastive config of it (the pair-wise MRF, the "
                   "Field of Experts or the tiled mcRBM); the closed-form models need no diagnosis",
    "inpainting": "diagnose the gated MRF it uses with a contrastive config (experiments/configs/"
                  "mpot_patches.py or mcrbm_patches.py with the faces data set)",
    "occlusion": "diagnose the gated MRF it uses with a contrastive config (experiments/configs/"
                 "mpot_patches.py or mcrbm_patches.py)",
    "autoencoder": "train it with python -m experiments.main and read the reconstruction curves in "
                   "metrics.jsonl; deepvision.diagnostics.gradcheck.check_gradients checks its loss's gradient",
    "sparse_coding": "train it with python -m experiments.main and read the reconstruction and sparsity "
                     "curves in metrics.jsonl",
    "kmeans": "train it with python -m experiments.main and read the held-out distortion and the fraction of "
              "empty centroids in metrics.jsonl",
    "multitask": "diagnose its classifier with a supervised config of the same model (model "
                 "lcn_convnet_digits_recon, or the zoo classifier it wraps); the reconstruction curve is "
                 "train/reconstruction in metrics.jsonl",
}


def examination_for(config: ml_collections.ConfigDict) -> tuple[str, Examination]:
  """(trainer name, examination) of `config`; DoctorRefusal for a trainer without one."""
  trainer = config.get("trainer", "supervised")
  if trainer in EXAMINATIONS.names():
    return trainer, EXAMINATIONS.get(trainer)
  names = sorted(EXAMINATIONS.names(), key=lambda name: (name != "supervised", name))  # classifiers first
  handled = [EXAMINATIONS.get(name).what for name in names]
  instead = INSTEAD.get(trainer, "diagnose a config of one of those trainers")
  raise DoctorRefusal(f"the doctor diagnoses {' and '.join(handled)}; config trainer {trainer!r} is not one "
                      f"of them: {instead}")


def run_doctor(config: ml_collections.ConfigDict, workdir: str, *, model=None, subset: int = 512,
               probe_steps: int = 300, overfit_subset: int = 256, overfit_epochs: int = 30,
               gradcheck_batch: int = 4, search_trials: int = 8) -> DoctorReport:
  """Runs the checklist of the config's trainer on `config` and writes `workdir/doctor.md`.

  Nothing is written (the work dir is not even created) unless the config passes its examination's
  checks. The diagnoses:

  * diverging → lower the learning rate (a halved rate is proposed and shown to converge), or the
    backward pass is buggy (the gradient check says which);
  * parameters collapse / low accuracy at low loss → check the loss for degenerate solutions;
  * underperforming (cannot even memorise a small subset) → more capacity: see the FLOPs / parameters
    table, make the net larger, visualise the units;
  * overfitting (training error far below validation error) → regularise: dropout, weight decay,
    augmentation; a validation split that overlaps the training split is reported instead of compared;
  * too slow → count FLOPs and parameters: the table and the measured steps per second;
  * energy models: the reconstruction error must fall and the hidden units must neither die nor saturate.

  Args:
    config: the experiment config (model, data, optimiser, batch size).
    workdir: where the report and figures go.
    model: another Linen module to examine instead of the config's model.
    subset: training examples of the probe and the learning-rate search (0: all).
    probe_steps: updates of the probe and of each search trial.
    overfit_subset: examples of the overfit check (classifiers).
    overfit_epochs: its budget.
    gradcheck_batch: examples in the gradient check's batch.
    search_trials: at most this many halvings when the probe does not converge.

  Raises:
    DoctorRefusal: a trainer the doctor has no examination for.
    ConfigError, DatasetNotFoundError: a config that cannot run.
  """
  options = Options(model=model, subset=subset, probe_steps=probe_steps, overfit_subset=overfit_subset,
                    overfit_epochs=overfit_epochs, gradcheck_batch=gradcheck_batch, search_trials=search_trials)
  _, examination = examination_for(config)
  checked = examination.check(config, options)  # checks the config and opens the data before any compute
  os.makedirs(workdir, exist_ok=True)
  report = examination.examine(checked, workdir)
  with open(os.path.join(workdir, REPORT_FILE), "w") as f:
    f.write(report.markdown())
  with open(os.path.join(workdir, MEASUREMENTS_FILE), "w") as f:
    json.dump(report.to_json(), f, indent=2)
  return report
