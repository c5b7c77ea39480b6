"""The config resolved into what every trainer needs: the model's keyword arguments, the devices."""

from __future__ import annotations

from typing import Any

import ml_collections

from deepvision import distributed, parallel, zoo
from deepvision.config_blocks import COMPUTE_DTYPES
from deepvision.registry import UnknownNameError
from deepvision.train.errors import ConfigError


def replicas_for(config: ml_collections.ConfigDict, global_batch: int, what: str = "batch_size"
                 ) -> parallel.Replicas:
  """The devices of `config.num_devices`, checked to split `global_batch` (`config.<what>`) evenly.

  Raises:
    ConfigError: a bad device count, or a global batch the replicas do not divide.
  """
  try:
    replicas = parallel.Replicas.from_config(config.get("num_devices", 0))
  except ValueError as e:
    raise ConfigError(f"config.num_devices: {e}") from None
  if global_batch % replicas.num_devices:
    raise ConfigError(
        f"config.{what}={global_batch} must be a multiple of the {replicas.num_devices} devices "
        f"({replicas.num_local_devices} per process × {distributed.process_count()} processes): each device "
        f"takes an equal share; set config.{what} to a multiple, or config.num_devices")
  return replicas


def model_kwargs(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """`config.model_kwargs` plus `dtype` when `config.compute_dtype` is not float32 (checked here)."""
  kwargs = dict(config.get("model_kwargs", {}))
  dtype = config.get("compute_dtype", "float32")
  if dtype not in COMPUTE_DTYPES:
    raise ConfigError(f"config.compute_dtype must be one of {', '.join(COMPUTE_DTYPES)}, got {dtype!r}")
  if dtype != "float32":
    try:
      model_fields = zoo.fields(config.model)
    except UnknownNameError as e:
      raise ConfigError(f"config.model: {e}") from None
    if model_fields is not None and "dtype" not in model_fields:
      raise ConfigError(f"config.compute_dtype={dtype!r}: model {config.model!r} has no compute dtype (only "
                        "the convnets do); use float32")
    kwargs["dtype"] = dtype
  return kwargs
