"""Defaults shared by the experiments (supervised and contrastive); each config file overrides a few fields."""

from __future__ import annotations

import ml_collections

from deepvision import config_blocks, schema
from deepvision.train import autoencoder


def supervised_config() -> ml_collections.ConfigDict:
  """Every field the supervised trainer reads, with defaults that follow the talk's recipe
  (`deepvision.config_blocks.Supervised`: each field's meaning and check are there)."""
  return schema.defaults(config_blocks.Supervised)


def sgd_optimizer(schedule: str, nesterov: bool, weight_decay: float) -> ml_collections.ConfigDict:
  """The `optimizer` block every trainer reads (`deepvision.optim.make_optimizer`)."""
  return schema.defaults(config_blocks.Optimizer, schedule=schedule, nesterov=nesterov,
                         weight_decay=weight_decay)


def locked(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """`config` locked: a field it does not have (a typo on the command line or in a notebook) is an error
  naming the fields there are; `model_kwargs` and `contrastive.sampler_options` stay free-form (the zoo
  and the sampler check them)."""
  return schema.lock(config, free=("model_kwargs", "contrastive.sampler_options"))


def check_arg(arg: str | None, name: str) -> bool:
  """True for the `smoke` argument, False for none; anything else is an error."""
  if arg in (None, ""):
    return False
  if arg == "smoke":
    return True
  raise ValueError(f"unknown argument {arg!r} for config {name}; valid: '' or 'smoke'")


def contrastive_config() -> ml_collections.ConfigDict:
  """Every field the contrastive (RBM / energy-model) trainer reads, with Hinton's-guide defaults
  (`deepvision.config_blocks.Contrastive`): momentum 0.5 at first, then 0.9 with
  `momentum_ramp_steps` (§9), L2 on W (§10)."""
  return schema.defaults(config_blocks.Contrastive)


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


def autoencoder_digits_config(arg: str | None, name: str, model: str | None = None,
                              corruption: float | None = None, **model_kwargs) -> ml_collections.ConfigDict:
  """An autoencoder on the embedded digits (`model`, default the task's, with `model_kwargs`): 30 epochs of
  20, cosine decay, 16 steps per dispatch; `:smoke` trains the model's `_tiny` variant for 2 epochs."""
  smoke = check_arg(arg, name)
  config = schema.defaults(autoencoder.AutoencoderConfig)
  if model is not None:
    config.model = model
  for field, value in model_kwargs.items():
    config.model_kwargs[field] = value
  if corruption is not None:
    config.corruption = corruption
  config.dataset = "dv_digits"
  config.batch_size = 20
  config.num_epochs = 30
  config.optimizer.schedule = "cosine"
  config.steps_per_dispatch = 16
  if smoke:
    config.model = f"{config.model}_tiny"
    config.model_kwargs.n_visible = 64
    config.num_epochs = 2
    config.linear_eval.l2 = (1e-3,)
  return locked(config)


def binarized_mnist(config: ml_collections.ConfigDict) -> None:
  """MNIST from a TFDS data dir, pixels binarised at 0.5, batches of 100 for 20 epochs: the last tenth of
  `train` validates (6,000 digits of the catalog's 60,000; 600 of the 8,004-digit subset's 6,004)."""
  config.model_kwargs.n_visible = 784
  config.dataset = "mnist"
  config.train_split = "train[:90%]"
  config.eval_split = "train[90%:]"
  config.test_split = "test"
  config.preprocess = "binarize"
  config.batch_size = 100
  config.num_epochs = 20
