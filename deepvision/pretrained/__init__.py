"""Pretrained weights shipped inside the package, verified on load.

Four models trained on the embedded data sets by their experiment configs, each small enough to ship
(a few hundred kB at most) and each with the figure it is known by:

  name                  model                data set            metric (test split)
  lcn_convnet_digits    lcn_convnet_digits   dv_digits           accuracy (the main job, `make run`)
  rbm_digits            rbm 64 × 256         dv_digits           log-likelihood by AIS, nats per digit
  mcrbm_patches         mcrbm 52-D, 64 F     dv_natural_images   log-likelihood by AIS, nats per
                                                                 whitened patch (vs the Gaussian's)
  gmrf_faces            mcrbm 99-D, 256 F    dv_faces            inpainting MSE per missing pixel

`load(name)` returns `(module, variables)`: the zoo module built with the experiment's model fields
and `{"params": ...}`, after checking the weights file against the SHA-256 in its manifest
(`store.PretrainedIntegrityError` otherwise). Models trained on PCA-whitened inputs need the fitted
whitening to see pixels: `preprocessing(name)` returns it (`PCAWhitening`). `evaluate(name)` recomputes
the manifest's metrics from the loaded weights (`evaluation`), which the test suite compares with the
recorded ones. `experiments/export_pretrained.py` trains the configs and writes the files.

Example:
  >>> from deepvision import zoo
  >>> module, variables = zoo.load_pretrained("lcn_convnet_digits")
  >>> logits, _ = module.apply(variables, images, train=False)     # images (N, 8, 8, 1) in [0, 1]
  >>> mcrbm, v = zoo.load_pretrained("mcrbm_patches")
  >>> features = mcrbm.apply(v, zoo.pretrained_preprocessing("mcrbm_patches").transform(patches),
  ...                        method="hidden_probs")
"""

from __future__ import annotations

import dataclasses
from typing import Any

from deepvision.data.whiten import PCAWhitening
from deepvision.pretrained import store
from deepvision.pretrained.store import PretrainedIntegrityError  # noqa: F401  (re-exported)
from deepvision.registry import Registry


@dataclasses.dataclass(frozen=True)
class Shipped:
  """What is shipped under one name and how it is judged.

  Attributes:
    config: the experiment config file that trains it (`experiments/configs/<config>.py`).
    evaluation: one of `evaluation.KINDS`.
    metric: the headline metric's key in the evaluation's record.
    goal: 'max' or 'min': which way is better.
    description: the metric in words, for tables.
  """

  config: str
  evaluation: str
  metric: str
  goal: str
  description: str


SHIPPED: Registry[Shipped] = Registry("pretrained model")
SHIPPED.register("lcn_convnet_digits", Shipped(
    "lcn_convnet_digits", "classification", "test/accuracy", "max", "test accuracy"))
SHIPPED.register("rbm_digits", Shipped(
    "rbm_digits", "log_likelihood", "test/log_likelihood", "max", "test log-likelihood (AIS), nats per digit"))
SHIPPED.register("mcrbm_patches", Shipped(
    "mcrbm_patches", "log_likelihood", "test/log_likelihood", "max",
    "test log-likelihood (AIS), nats per whitened patch"))
SHIPPED.register("gmrf_faces", Shipped(
    "gmrf_faces", "inpainting", "test/mse_gmrf_central_square", "min",
    "inpainting MSE per missing pixel, central 6×6 square of held-out faces"))


def names() -> list[str]:
  """Names of the shipped pretrained models, sorted."""
  return SHIPPED.names()


def manifest(name: str, directory: str | None = None) -> dict[str, Any]:
  """The manifest of `name` (UnknownNameError for a name that is not shipped)."""
  SHIPPED.get(name)
  return store.read_manifest(name, directory)


def load_with_preprocessing(name: str, directory: str | None = None) -> tuple[Any, dict, dict | None, dict]:
  """`(module, variables, preprocessing record or None, manifest)`, the weights verified first."""
  from deepvision import zoo  # pylint: disable=g-import-not-at-top  (zoo imports this package)
  SHIPPED.get(name)
  variables, preprocessing, recorded = store.read_weights(name, directory)
  module = zoo.create(recorded["model"], **recorded["model_kwargs"])
  return module, variables, preprocessing, recorded


def load(name: str, directory: str | None = None) -> tuple[Any, dict]:
  """`(module, variables)` of pretrained `name`; see the module docstring.

  Args:
    name: one of `names()`.
    directory: where the weights are (default: the package's own).

  Raises:
    UnknownNameError: a name that is not shipped (the message lists them).
    PretrainedIntegrityError: missing or damaged files, or weights that do not match the manifest.
  """
  module, variables, _, _ = load_with_preprocessing(name, directory)
  return module, variables


def preprocessing(name: str, directory: str | None = None) -> PCAWhitening | None:
  """The PCA whitening the model's inputs went through (fitted on its training data), or None."""
  _, _, record, _ = load_with_preprocessing(name, directory)
  if record is None or "whitening" not in record:
    return None
  return PCAWhitening.from_dict(record["whitening"])


def evaluate(name: str, directory: str | None = None) -> dict[str, float]:
  """The metrics of `name` recomputed from its verified weights on the embedded test split."""
  from deepvision.pretrained import evaluation  # pylint: disable=g-import-not-at-top  (imports the trainers)
  module, variables, record, recorded = load_with_preprocessing(name, directory)
  return evaluation.evaluate(recorded, module, variables, record)
