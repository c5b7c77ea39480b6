r"""Classifiers on raw pixels beside the default experiment: an RBF SVM and 1-nearest-neighbour on `dv_digits`.

Both train on `train` (1,077 digits) and are scored on `validation` and `test`, the splits the default
experiment reads; scikit-learn's `SVC(C=10)` (RBF kernel, gamma="scale") and `KNeighborsClassifier(1)` on the
flattened pixels in [0, 1]. Seconds: each classifier's fit plus both predictions.

Usage (a few seconds):
  python benchmarks/pixel_baselines.py [--out results/digits/pixel_baselines.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import time

import numpy as np
import run_timing  # benchmarks/run_timing.py (the script's own folder)
import sklearn
from sklearn.neighbors import KNeighborsClassifier
from sklearn.svm import SVC

from deepvision.data import datasets

ROOT = run_timing.ROOT
CLASSIFIERS = {"svc_rbf_c10": ("RBF SVM, scikit-learn SVC(C=10)", lambda: SVC(C=10.0)),
               "nearest_neighbour": ("1-nearest-neighbour", lambda: KNeighborsClassifier(n_neighbors=1))}


def flat_split(name: str, split: str) -> tuple[np.ndarray, np.ndarray]:
  images, labels = datasets.load_arrays(name, split)
  return images.reshape(len(images), -1), labels


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--dataset", default="dv_digits")
  parser.add_argument("--out", default=str(ROOT / "results" / "digits" / "pixel_baselines.json"))
  args = parser.parse_args(argv)
  splits = {s: flat_split(args.dataset, s) for s in ("train", "validation", "test")}
  results = {}
  for key, (summary, make) in CLASSIFIERS.items():
    begin = time.perf_counter()
    classifier = make().fit(*splits["train"])
    accuracy = {s: float(np.mean(classifier.predict(splits[s][0]) == splits[s][1])) for s in ("validation", "test")}
    results[key] = {"summary": summary, "trained_on": "train", "validation_accuracy": accuracy["validation"],
                    "test_accuracy": accuracy["test"], "seconds": time.perf_counter() - begin}
  record = {"what": f"classifiers on the raw pixels of {args.dataset}, trained on its train split",
            "dataset": args.dataset, "split_sizes": {s: len(v[1]) for s, v in splits.items()},
            "results": results, "command": "python benchmarks/pixel_baselines.py",
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "machine": run_timing.machine(), "versions": {**run_timing.versions(), "scikit-learn": sklearn.__version__},
            "git": run_timing.git_state()}
  out = pathlib.Path(args.out)
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text(json.dumps(record, indent=2) + "\n")
  print(json.dumps(results, indent=1))
  return record


if __name__ == "__main__":
  main()
