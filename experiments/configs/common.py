"""Defaults shared by the experiments (supervised and contrastive); each config file overrides a few fields."""

from __future__ import annotations

import ml_collections


def supervised_config() -> ml_collections.ConfigDict:
  """Every field the supervised trainer reads, with defaults that follow the talk's recipe."""
  config = ml_collections.ConfigDict()
  config.trainer = "supervised"
  config.seed = 0

  config.model = "lcn_convnet_digits"
  config.model_kwargs = ml_collections.ConfigDict()  # overrides passed to deepvision.zoo.create

  _add_data_fields(config)
  config.in_memory = True  # read the splits into memory once (fast); False streams records from disk
  config.train_subset = 0  # > 0: train on this many examples only (the "overfit a subset" check)

  config.batch_size = 32
  config.eval_batch_size = 512
  config.num_epochs = 10

  config.optimizer = sgd_optimizer(schedule="cosine", nesterov=True, weight_decay=5e-4)
  # True: halve from learning_rate until a short probe on a subset converges, then train at that rate.
  config.optimizer.lr_search = False
  config.optimizer.lr_search_steps = 300
  config.optimizer.lr_search_subset = 512

  config.ema_decay = 0.0  # > 0: evaluate a moving average of the parameters (Polyak averaging)

  config.augment = ml_collections.ConfigDict()
  config.augment.translate = 0  # max jitter in pixels
  config.augment.flip = False
  config.augment.noise_std = 0.0
  config.augment.standardize = True

  _add_run_fields(config)
  return config


def _add_data_fields(config: ml_collections.ConfigDict) -> None:
  """The data set and its splits (the embedded digits by default)."""
  config.dataset = "dv_digits"
  config.data_dir = ""  # '' = $DEEPVISION_DATA_DIR or TFDS's default (~/tensorflow_datasets)
  config.train_split = "train"
  config.eval_split = "validation"
  config.test_split = "test"


def sgd_optimizer(schedule: str, nesterov: bool, weight_decay: float) -> ml_collections.ConfigDict:
  """The `optimizer` block every trainer reads (`deepvision.optim.make_optimizer`)."""
  optimizer = ml_collections.ConfigDict()
  optimizer.name = "sgd"
  optimizer.learning_rate = 0.05
  optimizer.schedule = schedule  # constant | cosine | exponential | step
  optimizer.decay_factor = 100.0  # final rate = learning_rate / decay_factor
  optimizer.boundaries = (0.5, 0.75)  # 'step' only: fractions of the run
  optimizer.warmup_steps = 0
  optimizer.momentum = 0.9
  optimizer.momentum_start = 0.5  # ramp start, if momentum_ramp_steps > 0
  optimizer.momentum_ramp_steps = 0
  optimizer.nesterov = nesterov
  optimizer.weight_decay = weight_decay  # L2 on weights (not biases)
  optimizer.l1 = 0.0
  return optimizer


def _add_run_fields(config: ml_collections.ConfigDict) -> None:
  """How often a run logs, evaluates and saves, and its reliability switches."""
  config.log_every_steps = 0  # 0 = once per epoch
  config.eval_every_steps = 0  # 0 = once per epoch
  config.checkpoint_every_steps = 0  # 0 = only at the end
  config.keep_checkpoints = 3
  # K: training steps per jitted call (a lax.scan over K minibatches staged together). The numbers are
  # those of K = 1; the host only acts at log, evaluation and checkpoint boundaries.
  config.steps_per_dispatch = 1
  config.figures = True
  # Reliability: resume with a changed config (a warning lists the changes); replay a non-finite step
  # under jax_debug_nans to name the operation; refuse to start with less free disk than this.
  config.allow_config_change = False
  config.debug_nans = False
  config.min_free_disk_mb = 100
  # Devices (BUILD.md, "Scale-out"): data parallelism over this many local devices per process (0 = all;
  # batch_size stays the global batch and must divide evenly); the arithmetic type of the convnets
  # (bfloat16: fp32 parameters, bf16 matmuls and activations); the precision of fp32 matmuls on
  # accelerators (default | high | highest; GPUs may otherwise use TF32, TPUs bf16 passes).
  config.num_devices = 0
  config.compute_dtype = "float32"
  config.matmul_precision = "default"
  # Several processes (BUILD.md, "Scale-out"): a process silent for distributed_heartbeat_timeout_s is
  # declared lost and JAX stops the others (one killed outright is noticed at once); at the end each
  # process waits at most distributed_shutdown_timeout_s for the others. Seconds, ints >= 1.
  config.distributed_heartbeat_timeout_s = 100
  config.distributed_shutdown_timeout_s = 60


def check_arg(arg: str | None, name: str) -> bool:
  """True for the `smoke` argument, False for none; anything else is an error."""
  if arg in (None, ""):
    return False
  if arg == "smoke":
    return True
  raise ValueError(f"unknown argument {arg!r} for config {name}; valid: '' or 'smoke'")


def contrastive_config() -> ml_collections.ConfigDict:
  """Every field the contrastive (RBM / energy-model) trainer reads, with Hinton's-guide defaults."""
  config = ml_collections.ConfigDict()
  config.trainer = "contrastive"
  config.seed = 0

  config.model = "rbm"
  config.model_kwargs = ml_collections.ConfigDict()  # e.g. n_visible, n_hidden

  _add_data_fields(config)
  config.preprocess = "none"  # none | binarize (threshold 0.5) | standardize (per feature, fitted on train)
  config.patches = ml_collections.ConfigDict()
  config.patches.size = 0  # > 0: train on random size×size patches of the images instead
  config.patches.num_train = 20000
  config.patches.num_eval = 2000  # per evaluation split
  config.patches.seed = 0
  config.patches.remove_dc = False  # subtract each patch's mean

  config.batch_size = 100
  config.num_epochs = 10

  config.contrastive = ml_collections.ConfigDict()
  config.contrastive.method = "pcd"  # cd | pcd | fpcd
  config.contrastive.k = 1  # sampler steps per update
  config.contrastive.num_chains = 0  # persistent chains; 0 = the batch size
  config.contrastive.sampler = "gibbs"
  config.contrastive.sampler_options = ml_collections.ConfigDict()
  config.contrastive.fast_learning_rate = 0.0  # fpcd: ε_fast
  config.contrastive.fast_decay = 0.95  # fpcd: θ_fast ← decay·θ_fast − ε_fast·g
  config.contrastive.sparsity_target = 0.0  # target mean hidden activity (with sparsity_cost > 0)
  config.contrastive.sparsity_cost = 0.0

  # Hinton's guide §9 (momentum 0.5 at first, then 0.9: set momentum_ramp_steps) and §10 (L2 on W,
  # 1e-2 … 1e-5).
  config.optimizer = sgd_optimizer(schedule="constant", nesterov=False, weight_decay=2e-4)

  config.log_likelihood = ml_collections.ConfigDict()
  config.log_likelihood.method = "auto"  # auto (exact if enumerable, else AIS at the end) | exact | ais | none
  config.log_likelihood.exact_max_units = 20  # enumerate at most 2^20 states
  config.log_likelihood.ais_runs = 100
  config.log_likelihood.ais_temperatures = 0  # 0: Salakhutdinov's 14,501-step schedule; n: n evenly spaced
  config.log_likelihood.ais_betas = ()  # an explicit schedule from 0 to 1 (overrides ais_temperatures)
  config.log_likelihood.ais_every_eval = False  # AIS at every evaluation (slow) instead of at the end only

  # Labelled data sets: logistic regression on the hidden probabilities (and on the raw inputs, for
  # reference) of the training split, its L2 weight chosen on the validation split from `l2`; accuracy
  # on the test split in the final record.
  config.linear_eval = ml_collections.ConfigDict()
  config.linear_eval.enabled = True
  config.linear_eval.l2 = (1e-2, 1e-3, 1e-4, 1e-5, 1e-6)

  _add_run_fields(config)
  return config


def natural_image_patches(config: ml_collections.ConfigDict, size: int = 8) -> None:
  """Random size×size patches (each patch's mean removed) of the embedded photographs: 40,000 from 14
  photographs train; 4,000 each for validation and test come from two held-out photographs (scikit-learn's
  china and flower)."""
  config.dataset = "dv_natural_images"
  config.train_split = "train[:14]"
  config.eval_split = "train[14:15]"
  config.test_split = "train[15:]"
  config.patches.size = size
  config.patches.num_train = 40000
  config.patches.num_eval = 4000
  config.patches.remove_dc = True
