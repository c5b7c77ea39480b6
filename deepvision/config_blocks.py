"""The config blocks of the trainers: every field, its default and its check, in one place (`schema`).

`experiments/configs/common.py` starts every config from `schema.defaults(Supervised)` or
`schema.defaults(Contrastive)`; the trainers read the config back once with `schema.load`, which names
the field, the value and what is accepted before any compute.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from deepvision import optim, sdlm
from deepvision.schema import at_least, boolean, numbers, one_of, real, spec, text

COMPUTE_DTYPES = ("float32", "bfloat16")
MATMUL_PRECISIONS = ("default", "high", "highest", "bfloat16", "tensorfloat32", "float32")
PREPROCESSING = ("none", "binarize", "standardize", "whiten")
CONTRASTIVE_METHODS = ("cd", "pcd", "fpcd")
LOG_LIKELIHOOD = ("auto", "exact", "ais", "none")
POOLING_MASKS = ("model", "none", "identity", "topographic")
ACTIVATION_PENALTIES = ("l1", "kl")
_ANY = None


def pooling_mask(value: Any) -> Any:
  """A mask name of `POOLING_MASKS`, or a finite non-negative (n_factors, n_cov) array pooling every
  covariance unit (its shape is checked against the model's by the trainer)."""
  if isinstance(value, str):
    if value not in POOLING_MASKS:
      raise ValueError(f"must be one of {', '.join(map(repr, POOLING_MASKS))} or a non-negative "
                       "(n_factors, n_cov) array")
    return value
  try:
    mask = np.asarray(value, np.float64)
  except (TypeError, ValueError):
    mask = np.zeros(0)
  if mask.ndim != 2 or not np.all(np.isfinite(mask)) or np.any(mask < 0):
    raise ValueError(f"must be a mask name or a finite non-negative (n_factors, n_cov) array (P is kept >= 0 "
                     f"under it); this one has shape {mask.shape}"
                     + (f" and minimum {np.nanmin(mask)!r}" if mask.size else ""))
  if not np.all(mask.any(axis=0)):
    raise ValueError(f"leaves covariance units {np.flatnonzero(~mask.any(axis=0))[:10].tolist()} with no "
                     "factor to pool")
  return value


@dataclasses.dataclass(frozen=True)
class Optimizer:
  """`optimizer`: SGD with momentum (Sutskever et al. 2013), a learning-rate schedule and weight costs."""

  name: str = spec("sgd", one_of(("sgd",)))
  learning_rate: float = spec(0.05, real(0.0, low_open=True))
  schedule: str = spec("constant", one_of(tuple(optim.SCHEDULES.names())), "constant | cosine | ...")
  decay_factor: float = spec(100.0, real(0.0, low_open=True), "final rate = learning_rate / decay_factor")
  boundaries: tuple = spec((0.5, 0.75), numbers(0.0), "'step' only: fractions of the run")
  warmup_steps: int = spec(0, at_least(0))
  momentum: float = spec(0.9, real(0.0, 1.0, high_open=True))
  momentum_start: float = spec(0.5, real(0.0, 1.0, high_open=True), "ramp start, if momentum_ramp_steps > 0")
  momentum_ramp_steps: int = spec(0, at_least(0))
  nesterov: bool = spec(False, boolean)
  weight_decay: float = spec(2e-4, real(0.0), "L2 on weights (not biases)")
  l1: float = spec(0.0, real(0.0))
  # A recipe's extra settings (the gated MRFs'): checked when present, not in every config.
  lr_multipliers: dict = spec({}, _ANY, "per-parameter rate factors (optim.check_lr_multipliers)",
                              optional=True)
  l1_start_epoch: int = spec(0, at_least(0), optional=True)
  anneal_epochs: float = spec(20.0, real(0.0, low_open=True), optional=True)
  anneal_steps: float = spec(2000.0, real(0.0, low_open=True), optional=True)
  anneal_power: float = spec(0.25, real(0.0, low_open=True), optional=True)


@dataclasses.dataclass(frozen=True)
class SupervisedOptimizer(Optimizer):
  """`optimizer` of the supervised trainer: also the talk's halving search for the learning rate, and
  LeCun et al.'s (1998) stochastic diagonal Levenberg–Marquardt rates (`deepvision.sdlm`)."""

  name: str = spec("sgd", one_of(optim.OPTIMIZERS), "sgd | sdlm (rate η/(μ + h) per parameter)")
  # SDLM's settings: checked when a config sets them (the 'sdlm' configs), not in every config.
  sdlm_damping: float = spec(sdlm.PAPER_DAMPING, real(0.0, low_open=True), "'sdlm' only: μ, the paper's 0.02", optional=True)
  sdlm_curvature: str = spec(sdlm.CURVATURES[0], one_of(sdlm.CURVATURES), "'sdlm' only: euclidean (‖f − c‖² at the "
                             "model's features, the paper's) | fisher (cross-entropy at the logits)",
                             optional=True)
  sdlm_decay: float = spec(sdlm.DEFAULT_DECAY, real(0.0, 1.0, low_open=True), "'sdlm' only: weight of each new "
                           "Gauss–Newton estimate in the running average", optional=True)
  lr_search: bool = spec(False, boolean, "halve from learning_rate until a short probe converges")
  lr_search_steps: int = spec(300, at_least(10))
  lr_search_subset: int = spec(512, at_least(0), "0: all training examples")


@dataclasses.dataclass(frozen=True)
class Augment:
  """`augment`: the talk's augmentations, applied inside the step (`supervised.Preprocess`)."""

  translate: int = spec(0, at_least(0), "max jitter in pixels")
  flip: bool = spec(False, boolean)
  noise_std: float = spec(0.0, real(0.0))
  standardize: bool = spec(True, boolean)


def _stage_names(value: Any) -> tuple[str, ...]:
  names = tuple(value) if isinstance(value, (tuple, list)) else None
  if names is None or not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names):
    raise ValueError("must be a tuple of distinct intermediate-map names of the model, e.g. ('stage3/rect',)")
  return names


@dataclasses.dataclass(frozen=True)
class ActivationSparsity:
  """`activation_sparsity`: a penalty on the hidden activations of chosen stages (`train.activation_sparsity`),
  added to the classifier's loss; off at weight 0. The stage names are checked against the model's
  intermediate maps when the run is planned."""

  stages: tuple = spec((), _stage_names, "maps the model returns, e.g. ('stage3/rect',)")
  kind: str = spec("l1", one_of(ACTIVATION_PENALTIES), "l1: mean |h| per stage; kl: Σ_maps KL(target ‖ "
                   "mean tanh|h|) per stage")
  weight: float = spec(0.0, real(0.0), "0 = off")
  target: float = spec(0.05, real(0.0, 1.0, low_open=True, high_open=True), "kl only: target activity ρ")

  def __post_init__(self):
    if self.weight > 0 and not self.stages:
      raise ValueError(f"stages must name at least one intermediate map when weight={self.weight!r} > 0")


def _validation_metric(value: Any) -> str:
  if not isinstance(value, str) or (value and not value.startswith("val/")):
    raise ValueError("must be '' (off) or a validation metric such as 'val/accuracy' or 'val/loss'")
  return value


@dataclasses.dataclass(frozen=True)
class EarlyStopping:
  """Best-checkpoint selection on a validation metric, and stopping when it stops improving."""

  metric: str = spec("", _validation_metric, "'' = off; else the evaluation record's key, e.g. val/accuracy")
  mode: str = spec("max", one_of(("max", "min")), "max: larger is better (accuracy); min: loss")
  patience: int = spec(0, at_least(0), "stop after this many evaluations without improvement (0 = never)")
  min_delta: float = spec(0.0, real(0.0), "an improvement must exceed this")


@dataclasses.dataclass(frozen=True)
class Run:
  """The fields every trainer has: seed, data, length, logging, checkpoints, devices, reliability."""

  trainer: str = spec("supervised", text)
  seed: int = spec(0, at_least(0))
  model: str = spec("lcn_convnet_digits", text)
  model_kwargs: dict = spec({}, _ANY, "overrides passed to deepvision.zoo.create")
  dataset: str = spec("dv_digits", text)
  data_dir: str = spec("", text, "'' = $DEEPVISION_DATA_DIR or TFDS's default (~/tensorflow_datasets)")
  train_split: str = spec("train", text)
  eval_split: str = spec("validation", text)
  test_split: str = spec("test", text)
  batch_size: int = spec(32, at_least(1))
  num_epochs: int = spec(10, at_least(1))
  log_every_steps: int = spec(0, at_least(0), "0 = once per epoch")
  eval_every_steps: int = spec(0, at_least(0), "0 = once per epoch")
  checkpoint_every_steps: int = spec(0, at_least(0), "0 = only at the end")
  keep_checkpoints: int = spec(3, at_least(1))
  steps_per_dispatch: int = spec(1, at_least(1), "K: steps per jitted call (lax.scan over K minibatches)")
  figures: bool = spec(True, boolean)
  allow_config_change: bool = spec(False, boolean, "resume with a changed config (a warning lists them)")
  debug_nans: bool = spec(False, boolean, "replay a non-finite step under jax_debug_nans")
  min_free_disk_mb: float = spec(100, real(0.0), "refuse to start with less free disk than this")
  # Checked against the devices there are when the run starts (train.resolve.replicas_for).
  num_devices: int = spec(0, None, "local devices per process for data parallelism (0 = all)")
  compute_dtype: str = spec("float32", one_of(COMPUTE_DTYPES), "bfloat16: fp32 parameters, bf16 compute")
  matmul_precision: str = spec("default", one_of(MATMUL_PRECISIONS))
  distributed_heartbeat_timeout_s: int = spec(100, at_least(1), "a silent process is declared lost after")
  distributed_collective_timeout_s: int = spec(600, at_least(1), "the longest wait in one collective (CPU)")
  distributed_shutdown_timeout_s: int = spec(60, at_least(1), "the wait for the others at the end")
  early_stopping: EarlyStopping = spec(EarlyStopping())


@dataclasses.dataclass(frozen=True)
class Supervised(Run):
  """A classifier trained with cross-entropy (`train.supervised`)."""

  in_memory: bool = spec(True, boolean, "read the splits into memory once; False streams from disk")
  train_subset: int = spec(0, at_least(0), "> 0: train on this many examples (the overfit check)")
  eval_batch_size: int = spec(512, at_least(0), "0: the batch size")
  optimizer: SupervisedOptimizer = spec(SupervisedOptimizer(schedule="cosine", nesterov=True,
                                                            weight_decay=5e-4))
  ema_decay: float = spec(0.0, real(0.0, 1.0, high_open=True), "> 0: evaluate a moving average")
  augment: Augment = spec(Augment())
  activation_sparsity: ActivationSparsity = spec(ActivationSparsity())


@dataclasses.dataclass(frozen=True)
class Patches:
  """`patches`: train on random size×size patches of the images instead of whole images."""

  size: int = spec(0, at_least(0), "> 0: patches of this size")
  num_train: int = spec(20000, at_least(1))
  num_eval: int = spec(2000, at_least(1), "per evaluation split")
  seed: int = spec(0, at_least(0))
  remove_dc: bool = spec(False, boolean, "subtract each patch's mean")


@dataclasses.dataclass(frozen=True)
class ContrastiveSettings:
  """`contrastive`: CD-k, PCD or FPCD (Hinton 2002; Tieleman 2008; Tieleman & Hinton 2009)."""

  method: str = spec("pcd", one_of(CONTRASTIVE_METHODS))
  k: int = spec(1, at_least(1), "sampler steps per update")
  num_chains: int = spec(0, at_least(0), "persistent chains; 0 = the batch size")
  sampler: str = spec("gibbs", text)
  sampler_options: dict = spec({}, _ANY)
  fast_learning_rate: float = spec(0.0, real(0.0), "fpcd: ε_fast")
  fast_decay: float = spec(0.95, real(0.0, 1.0), "fpcd: θ_fast ← decay·θ_fast − ε_fast·g")
  sparsity_target: float = spec(0.0, real(0.0, 1.0), "target mean hidden activity")
  sparsity_cost: float = spec(0.0, real(0.0))


@dataclasses.dataclass(frozen=True)
class LogLikelihood:
  """`log_likelihood`: exact log Z by enumeration when small, else AIS (Salakhutdinov & Murray 2008)."""

  method: str = spec("auto", one_of(LOG_LIKELIHOOD))
  exact_max_units: int = spec(20, at_least(1), "enumerate at most 2^this states")
  ais_runs: int = spec(100, at_least(1))
  ais_temperatures: int = spec(0, at_least(0), "0: Salakhutdinov's 14,501-step schedule")
  ais_betas: tuple = spec((), numbers(0.0), "an explicit schedule from 0 to 1")
  ais_every_eval: bool = spec(False, boolean, "AIS at every evaluation (slow)")
  # Continuous visibles (gated MRFs): AIS with HMC transitions (`energy_metrics.continuous_ais_settings`).
  hmc_leapfrog: int = spec(10, at_least(1), optional=True)
  hmc_trajectories: int = spec(1, at_least(1), "per temperature", optional=True)
  hmc_step_size: float = spec(0.0, real(0.0, 10.0), "0: the step size the training chains adapted to",
                              optional=True)


@dataclasses.dataclass(frozen=True)
class LinearEval:
  """`linear_eval`: logistic regression on the hidden probabilities, L2 chosen on validation."""

  enabled: bool = spec(True, boolean)
  l2: tuple = spec((1e-2, 1e-3, 1e-4, 1e-5, 1e-6), numbers(0.0, allow_empty=False))


@dataclasses.dataclass(frozen=True)
class GatedMRF:
  """`gated_mrf`: the original recipe of Ranzato & Hinton (2010) around every update of a gated MRF
  (`train.contrastive.GatedMRFRecipe`)."""

  pooling_frozen_epochs: int = spec(10, at_least(0), "P keeps its initial value this long")
  project_pooling: bool = spec(True, boolean, "then P ← max(P, 0) · mask, unit-L1 columns")
  pooling_mask: Any = spec("model", pooling_mask, "'model' (its own), 'none', 'identity', 'topographic' or (F, N)")
  normalize_factors: bool = spec(True, boolean, "rescale C's columns to their running norm")
  factor_norm_decay: float = spec(0.95, real(0.0, 1.0), "d in n ← d·n + (1 − d)·mean_f ‖C_f‖")
  sample_trajectories: int = spec(200, at_least(0), "HMC trajectories of samples.png", optional=True)


@dataclasses.dataclass(frozen=True)
class Whiten:
  """`whiten`: the PCA whitening of `preprocess='whiten'`."""

  variance: float = spec(0.99, real(0.0, 1.0, low_open=True), "the fraction of the variance kept")
  epsilon: float = spec(0.0, real(0.0), "added to the eigenvalues")


@dataclasses.dataclass(frozen=True)
class Contrastive(Run):
  """An energy model (RBM, GRBM, mcRBM, mPoT) trained by contrastive divergence."""

  trainer: str = spec("contrastive", text)
  model: str = spec("rbm", text)
  preprocess: str = spec("none", one_of(PREPROCESSING), "binarize: threshold 0.5; standardize: per feature")
  patches: Patches = spec(Patches())
  batch_size: int = spec(100, at_least(1))
  contrastive: ContrastiveSettings = spec(ContrastiveSettings())
  optimizer: Optimizer = spec(Optimizer())
  log_likelihood: LogLikelihood = spec(LogLikelihood())
  linear_eval: LinearEval = spec(LinearEval())
  # A gated MRF's extra blocks: checked when present, not in every config.
  whiten: Whiten | None = spec(None, optional=True)
  gated_mrf: GatedMRF | None = spec(None, optional=True)
