"""Pretrained weights shipped inside the package, verified on load.

Four models trained on the embedded data sets by their experiment configs (`SHIPPED`): lcn_convnet_digits
(test accuracy), rbm_digits and mcrbm_patches (test log-likelihood by AIS), gmrf_faces (inpainting MSE per
missing pixel). `load(name)` returns `(module, variables)` after checking the weights file against the
SHA-256 in its manifest (`store`); `preprocessing(name)` the fitted whitening of models trained on
PCA-whitened inputs; `evaluate(name)` recomputes the manifest's metrics (`evaluation`); `describe(name)`
is a model card and `markdown_table()` the README's zoo tables.

Example:
  >>> module, variables = pretrained.load("lcn_convnet_digits")
  >>> logits, _ = module.apply(variables, images, train=False)     # images (N, 8, 8, 1) in [0, 1]
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from deepvision import zoo
from deepvision.data.whiten import PCAWhitening
from deepvision.diagnostics.flops import forward_flops
from deepvision.pretrained import evaluation, store
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
  SHIPPED.get(name)
  variables, preprocessing, recorded = store.read_weights(name, directory)
  module = zoo.create(recorded["model"], **recorded["model_kwargs"])
  return module, variables, preprocessing, recorded


def load(name: str, directory: str | None = None) -> tuple[Any, dict]:
  """`(module, variables)` of pretrained `name`, the weights verified first.

  The shipped models, each small enough to ship (a few hundred kB at most) and each with the figure it
  is known by:

    name                  model                data set            metric (test split)
    lcn_convnet_digits    lcn_convnet_digits   dv_digits           accuracy (the main job, `make run`)
    rbm_digits            rbm 64 × 256         dv_digits           log-likelihood by AIS, nats per digit
    mcrbm_patches         mcrbm 52-D, 64 F     dv_natural_images   log-likelihood by AIS, nats per
                                                                   whitened patch (vs the Gaussian's)
    gmrf_faces            mcrbm 99-D, 256 F    dv_faces            inpainting MSE per missing pixel

  The module is the zoo module built with the experiment's model fields, the variables
  `{"params": ...}`; a file that fails its manifest's check raises `store.PretrainedIntegrityError`. The
  test suite compares `evaluate(name)` with the recorded metrics; `experiments/export_pretrained.py`
  trains the configs and writes the files.

  Example:
    >>> mcrbm, v = pretrained.load("mcrbm_patches")
    >>> features = mcrbm.apply(v, pretrained.preprocessing("mcrbm_patches").transform(patches),
    ...                        method="hidden_probs")
    >>> print(pretrained.describe("rbm_digits"))

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
  module, variables, record, recorded = load_with_preprocessing(name, directory)
  return evaluation.evaluate(recorded, module, variables, record)


# ----------------------------------------------------------------------------- model cards and the README's tables


def _metric_value(metric: dict) -> str:
  value = metric["value"]
  return f"{100 * value:.2f}%" if metric["name"].endswith("accuracy") else f"{value:.4g}"


def _shape(shape: Any) -> str:
  return "×".join(map(str, shape))


def _raw_examples(config: dict, shape: Any) -> str:
  """The shipped model's raw examples in words, e.g. "8×8×1 patches of dv_natural_images, each patch's mean
  removed" (`shape` None: without their shape)."""
  patches, faces = config.get("patches") or {}, config.get("faces") or {}
  size = "" if shape is None else f"{_shape(shape)} "
  if patches.get("size", 0) > 0:
    dc = ", each patch's mean removed" if patches.get("remove_dc") else ""
    return f"{size}patches of {config.get('dataset')}{dc}"
  if faces:
    return (f"{size}faces of {config.get('dataset')} ({faces['crop']}×{faces['crop']} crops "
            f"average-pooled by {faces['pool']})")
  return f"{size}images of {config.get('dataset')}"


def input_description(name: str, manifest_record: dict, preprocessing_record: dict | None,
                      model_input: tuple[int, ...]) -> list[str]:
  """What a shipped model takes, as lines of text: the raw input, what preprocessing makes of it, and the
  model's input.

  A model trained on preprocessed data (PCA-whitened or standardised) gets three lines: the raw input
  (what `preprocessing(name).transform` takes), the preprocessing shipped with the weights, and the model
  input (what `module.apply` takes); a model fed its data as they are gets one line.

  Args:
    name: the shipped model's name (for the `preprocessing(name)` call shown).
    manifest_record: its manifest (`manifest(name)`): the data set and the config that prepared the data.
    preprocessing_record: the preprocessing shipped with the weights (`store.read_weights`), or None.
    model_input: the shape of one example the module takes, e.g. (52,) or (8, 8, 1).
  """
  config = manifest_record.get("config") or {}
  model = _shape(model_input)
  if not preprocessing_record:
    return [f"input: {model} per example ({_raw_examples(config, None)} as they are, no preprocessing)"]
  whitening = preprocessing_record.get("whitening")
  pixels = preprocessing_record.get("pixel_shape") or preprocessing_record.get("image_shape")
  lines = [f"raw input: {_raw_examples(config, pixels)}: {math.prod(pixels)} values per example"]
  if preprocessing_record.get("standardizer") is not None:
    lines.append("  → standardised per value (the mean and standard deviation of the training data, "
                 "shipped with the weights)")
  if whitening is not None:
    components = len(whitening["eigenvalues"])
    lines.append(f"  → pretrained.preprocessing({name!r}).transform: PCA whitening, {components} "
                 f"components ({100 * whitening['variance_kept']:.1f}% of the variance)")
  lines.append(f"  → model input: {model} per example" + (" (whitened values)" if whitening is not None else ""))
  return lines


def describe(name: str, **overrides: Any) -> str:
  """`zoo.describe` of `name` with the forward FLOPs per example and, for a shipped model, its data set,
  metric and inputs.

  `name` is a zoo variant (`zoo.names()`) or a shipped model (`names()`, described with the model fields
  it was trained with). A shipped model trained on preprocessed data shows both inputs, the raw one and
  the model's (`input_description`): the pixels that `preprocessing(name).transform` takes, and the
  whitened values the module takes.

  Example:
    >>> print(pretrained.describe("mcrbm_patches"))
    ...
    raw input: 8×8×1 patches of dv_natural_images, each patch's mean removed: 64 values per example
      → pretrained.preprocessing('mcrbm_patches').transform: PCA whitening, 52 components (99.0% of the variance)
      → model input: 52 per example (whitened values)
  """
  record = None
  shipped = name
  if name in SHIPPED:
    record = manifest(name)
    if name not in zoo.MODELS:
      overrides = {**record["model_kwargs"], **overrides}
      name = record["model"]
  model = zoo.create(name, **overrides)
  lines = [zoo.describe(name, **overrides),
           f"forward FLOPs per example {forward_flops(model):,}"
           + (" (of free_energy)" if hasattr(model, "free_energy") else "")]
  if record is not None:
    metric = record["metric"]
    lines.append(f"pretrained: pretrained.load({record['name']!r}), trained by {record['config_file']} on "
                 f"{record['dataset']}; {metric['description']} {_metric_value(metric)}")
    _, preprocessing_record, _ = store.read_weights(shipped)
    lines += input_description(shipped, record, preprocessing_record, tuple(zoo.example_input(model).shape[1:]))
  return "\n".join(lines)


def _input(model: Any) -> str:
  return "×".join(map(str, zoo.example_input(model).shape[1:]))


def _count(n: int) -> str:
  for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
    if n >= scale:
      return f"{n / scale:.3g} {suffix}"
  return str(n)


def _baseline(record: dict) -> str:
  """' (Gaussian (PCA) x)' when the evaluation measured the Gaussian baseline of the same data, else ''."""
  name = record["metric"]["name"]
  key = "test/gaussian_log_likelihood" if name == "test/log_likelihood" else name.replace("_gmrf_", "_gaussian_")
  value = (record.get("metrics") or {}).get(key)
  return "" if value is None or key == name else f" (Gaussian (PCA) {value:.4g})"


def markdown_table() -> str:
  """The README's zoo tables: every variant (paper, input, parameters, forward FLOPs per example) and
  every shipped pretrained model (its data set and recorded metric), from the registry and manifests."""
  lines = ["| name | paper | input | parameters | FLOPs / example |", "|---|---|---|---:|---:|"]
  for name in zoo.names():
    model = zoo.create(name)
    params = zoo.count_params(zoo.abstract_variables(model).get("params", {}))
    lines.append(f"| `{name}` | {zoo.paper(name)} | {_input(model)} | {params:,} | "
                 f"{_count(forward_flops(model))} |")
  lines += ["", "| pretrained | model | paper | parameters | FLOPs / example | data set | metric (test split) |",
            "|---|---|---|---:|---:|---|---|"]
  for name in names():
    record = manifest(name)
    model = zoo.create(record["model"], **record["model_kwargs"])
    metric = record["metric"]
    lines.append(f"| `{name}` | `{record['model']}` | {zoo.paper(record['model'])} | {record['parameters']:,} | "
                 f"{_count(forward_flops(model))} | {record['dataset']} | {metric['description']}: "
                 f"{_metric_value(metric)}{_baseline(record)} |")
  return "\n".join(lines)
