"""Reading several runs' metrics.jsonl and drawing them together: labels, keys, errors named."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from deepvision.figures import run_curves, viz


def _run(folder, records):
  os.makedirs(folder, exist_ok=True)
  with open(os.path.join(folder, "metrics.jsonl"), "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in records)
  return str(folder)


def test_runs_are_read_in_order_and_labelled_by_their_dir_name(tmp_path):
  a = _run(tmp_path / "lr_0.01", [{"step": 1, "train/loss": 2.0}, {"step": 2, "train/loss": 1.0, "note": "x"}])
  b = _run(tmp_path / "lr_0.02", [{"step": 1, "val/accuracy": 0.5, "final": True}])
  runs = run_curves.read_runs([a, b + "/"])
  assert list(runs) == ["lr_0.01", "lr_0.02"] and runs["lr_0.01"][1]["train/loss"] == 1.0
  # numbers only ("note" is text, "final" a bool), in order of first appearance; never "step"
  assert run_curves.metric_keys(runs) == ["train/loss", "val/accuracy"]
  # two runs with the same dir name are labelled by their paths
  assert run_curves.run_labels(["s0/lcn", "s1/lcn"]) == ["s0/lcn", "s1/lcn"]


def test_bad_runs_are_named(tmp_path):
  good = _run(tmp_path / "good", [{"step": 1, "train/loss": 1.0}])
  (tmp_path / "bare").mkdir()
  cases = {
      str(tmp_path / "missing"): r"run dir '.*missing' does not exist",
      str(tmp_path / "bare"): r"run dir '.*bare' has no metrics.jsonl",
      _run(tmp_path / "empty", []): r"empty.metrics.jsonl has no records",
      _run(tmp_path / "nostep", [{"train/loss": 1.0}]): r"line 1: expected a JSON object with a numeric \"step\"",
  }
  for folder, message in cases.items():
    with pytest.raises(ValueError, match=message):
      run_curves.read_runs([good, folder])
  with open(tmp_path / "good" / "metrics.jsonl", "a") as f:
    f.write("{not json\n")
  with pytest.raises(ValueError, match=r"good.metrics.jsonl, line 2: not JSON"):
    run_curves.read_run(good)
  with pytest.raises(ValueError, match="given more than once"):
    run_curves.read_runs([str(tmp_path / "x"), str(tmp_path / "x")])
  with pytest.raises(ValueError, match="no run dirs given"):
    run_curves.read_runs([])


def test_one_panel_per_key_one_line_per_run(tmp_path):
  steps = np.arange(1, 11)
  runs = {"a": [{"step": int(s), "train/loss": 1 / s, "lr": 0.1} for s in steps],
          "b": [{"step": int(s), "train/loss": 2 / s} for s in steps]}
  path = str(tmp_path / "cmp.png")
  assert run_curves.save_runs_curves(runs, path) == ["train/loss", "lr"]
  with Image.open(path) as png:
    assert png.text["Title"] == "2 runs: a, b"
    assert png.text["Description"] == "panels: train/loss, lr; one line per run: a, b"
    assert png.size == (round(2 * viz.PANEL_INCHES[0] * viz.DPI), round((viz.PANEL_INCHES[1] + 0.5) * viz.DPI))
  many = {"a": [{"step": 1, **{f"m{k}": k for k in range(20)}}]}
  with pytest.raises(ValueError, match="20 metric keys make 20 panels, more than 18"):
    run_curves.save_runs_curves(many, str(tmp_path / "many.png"))
  assert run_curves.save_runs_curves(many, str(tmp_path / "seven.png"), [f"m{k}" for k in range(7)],
                                     title="seven") == [f"m{k}" for k in range(7)]
  with Image.open(tmp_path / "seven.png") as png:
    assert png.text["Title"] == "seven" and png.size[1] == round((3 * viz.PANEL_INCHES[1] + 0.5) * viz.DPI)
  with pytest.raises(ValueError, match=r"unknown metric key\(s\) val/loss; the runs log: train/loss, lr"):
    run_curves.save_runs_curves(runs, str(tmp_path / "x.png"), ["train/loss", "val/loss"])
  assert not (tmp_path / "x.png").exists() and not (tmp_path / "many.png").exists()
