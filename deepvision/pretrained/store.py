"""Shipped weights on disk: one msgpack file per model and a JSON manifest that vouches for it.

A pretrained model `NAME` is two files in a weights directory (by default the package's own
`deepvision/pretrained/weights/`): `NAME.msgpack`, the parameters and the inputs' preprocessing, and
`NAME.json`, the manifest that records their size and SHA-256 (layout in `write`). Loading verifies the
weights against the manifest before deserialising them (`read_weights`), and raises
`PretrainedIntegrityError` otherwise.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import flax.serialization
import numpy as np

FORMAT = "deepvision-pretrained"
FORMAT_VERSION = 1
PACKAGE_WEIGHTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights")
REGENERATE = "regenerate them with `python -m experiments.export_pretrained`"


class PretrainedIntegrityError(RuntimeError):
  """The shipped weights of a model are missing, damaged or not the ones their manifest describes."""


def manifest_path(name: str, directory: str | None = None) -> str:
  return os.path.join(directory or PACKAGE_WEIGHTS, f"{name}.json")


def weights_path(name: str, directory: str | None = None) -> str:
  return os.path.join(directory or PACKAGE_WEIGHTS, f"{name}.msgpack")


def sha256_of(data: bytes) -> str:
  return hashlib.sha256(data).hexdigest()


def read_manifest(name: str, directory: str | None = None) -> dict[str, Any]:
  """The manifest of `name`, checked for format and name (weights not read)."""
  path = manifest_path(name, directory)
  try:
    with open(path, encoding="utf-8") as f:
      manifest = json.load(f)
  except FileNotFoundError:
    raise PretrainedIntegrityError(f"pretrained {name!r}: no manifest at {path}; {REGENERATE}") from None
  except (OSError, ValueError) as e:
    raise PretrainedIntegrityError(f"pretrained {name!r}: the manifest {path} cannot be read as JSON ({e}); "
                                   f"{REGENERATE}") from None
  expected = {"format": FORMAT, "format_version": FORMAT_VERSION, "name": name}
  if not isinstance(manifest, dict):
    raise PretrainedIntegrityError(f"pretrained {name!r}: the manifest {path} holds a JSON "
                                   f"{type(manifest).__name__}, not an object; {REGENERATE}")
  wrong = {k: manifest.get(k) for k, v in expected.items() if manifest.get(k) != v}
  if wrong:
    raise PretrainedIntegrityError(f"pretrained {name!r}: the manifest {path} is not a {FORMAT} v{FORMAT_VERSION} "
                                   f"manifest of {name!r} (found {wrong}); {REGENERATE}")
  weights = manifest.get("weights")
  if not (isinstance(weights, dict) and isinstance(weights.get("sha256"), str)
          and isinstance(weights.get("size"), int) and weights.get("file") == os.path.basename(weights_path(name))):
    raise PretrainedIntegrityError(f"pretrained {name!r}: the manifest {path} has no valid 'weights' entry "
                                   f"(file, size, sha256), got {weights!r}; {REGENERATE}")
  return manifest


def read_weights(name: str, directory: str | None = None) -> tuple[dict[str, Any], dict[str, Any] | None, dict]:
  """`(variables, preprocessing, manifest)` of `name`, after checking the file against the manifest.

  The weights are verified before they are deserialised: the file must exist, have the recorded size
  and SHA-256, and the manifest must be this format and name this model; otherwise
  `PretrainedIntegrityError` says which check failed and how to regenerate the files
  (`experiments/export_pretrained.py`).

  Returns:
    variables: `{"params": tree of numpy arrays}`; preprocessing: the recorded preprocessing dict (e.g.
    `{"whitening": PCAWhitening.to_dict(), ...}`) or None; manifest: the verified manifest.

  Raises:
    PretrainedIntegrityError: a missing or malformed manifest, a missing weights file, or one whose
      size or SHA-256 differ from the manifest's (the message gives both digests).
  """
  manifest = read_manifest(name, directory)
  path = weights_path(name, directory)
  try:
    with open(path, "rb") as f:
      data = f.read()
  except FileNotFoundError:
    raise PretrainedIntegrityError(f"pretrained {name!r}: the weights file {path} is missing; {REGENERATE}") from None
  recorded = manifest["weights"]
  if len(data) != recorded["size"]:
    raise PretrainedIntegrityError(f"pretrained {name!r}: {path} has {len(data)} bytes, its manifest records "
                                   f"{recorded['size']}: the file is truncated or altered; {REGENERATE}")
  digest = sha256_of(data)
  if digest != recorded["sha256"]:
    raise PretrainedIntegrityError(f"pretrained {name!r}: {path} has SHA-256 {digest}, its manifest records "
                                   f"{recorded['sha256']}: the weights were altered or damaged; refusing to load "
                                   f"them; {REGENERATE}")
  content = flax.serialization.msgpack_restore(data)
  preprocessing = json.loads(content["preprocessing"]) if content.get("preprocessing") else None
  return {"params": content["params"]}, preprocessing, manifest


def write(name: str, params: Any, preprocessing: dict | None, manifest: dict[str, Any],
          directory: str | None = None) -> dict[str, Any]:
  """Writes `NAME.msgpack` and `NAME.json` (the manifest completed with format, name and the weights'
  digest); returns the manifest written. Arrays are stored as numpy arrays of their own dtype.

  The two files:

      NAME.msgpack   flax.serialization.msgpack of {"params": the parameter tree (numpy arrays),
                     "preprocessing": the JSON text of what the inputs went through before the
                     model saw them (e.g. the fitted PCA whitening), or "" for none}
      NAME.json      the manifest:
                     {"format": "deepvision-pretrained", "format_version": 1, "name": NAME,
                      "model": zoo variant, "model_kwargs": its overrides, "paper": ...,
                      "config": the resolved experiment config, "config_file": where it lives,
                      "dataset", "split", "metric": {"name", "value", "tolerance", "goal",
                      "description"}, "metrics": every figure evaluated, "evaluation": what the
                      evaluation needs besides the config (its seed, e.g. the chains' step size),
                      "training": the training run's final record,
                      "parameters": the count, "versions": python / jax / jaxlib / flax / optax /
                      orbax-checkpoint / numpy of the export,
                      "weights": {"file": NAME.msgpack, "size": bytes, "sha256": hex digest}}

  The manifest holds no time stamp, so re-exporting the same run writes byte-identical files.
  """
  tree = {"params": _as_numpy(flax.serialization.to_state_dict(params)),
          "preprocessing": "" if preprocessing is None else json.dumps(preprocessing, sort_keys=True)}
  data = flax.serialization.msgpack_serialize(tree)
  manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "name": name, **manifest,
              "weights": {"file": os.path.basename(weights_path(name)), "size": len(data),
                          "sha256": sha256_of(data)}}
  directory = directory or PACKAGE_WEIGHTS
  os.makedirs(directory, exist_ok=True)
  for path, payload in ((weights_path(name, directory), data),
                        (manifest_path(name, directory),
                         (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode("utf-8"))):
    temporary = f"{path}.tmp-{os.getpid()}"
    with open(temporary, "wb") as f:
      f.write(payload)
    os.replace(temporary, path)  # a failed export never leaves half a file in place of a good one
  return manifest


def _as_numpy(tree: Any) -> Any:
  if isinstance(tree, dict):
    return {k: _as_numpy(v) for k, v in tree.items()}
  return np.asarray(tree)
