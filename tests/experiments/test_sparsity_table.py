"""The sparsity record: the activations it measures are the run's own maps on the split."""

import json

import numpy as np
import pytest

from deepvision.diagnostics import ablation
from deepvision.pretrained import runs
from experiments import sparsity_table
from experiments.configs import lcn_convnet_digits


def test_measured_sparsity_is_the_exported_maps_and_the_table_names_every_variant(tmp_path):
  config = lcn_convnet_digits.get_config("smoke")
  config.figures = False
  rows = ablation.run_ablation(config, str(tmp_path), ["baseline", "sparse_activations"], seeds=[0],
                               log=lambda _: None)
  run_dir = str(tmp_path / "sparse_activations" / "seed0")
  measured = sparsity_table.measure(run_dir, ablation.SPARSE_STAGES, "test")
  arrays = runs.export_features(run_dir, "test", str(tmp_path / "f.npz"))
  for stage in ablation.SPARSE_STAGES:
    maps = arrays[f"features/{stage.replace('/', '.')}"]
    assert measured[stage]["zeros"] == pytest.approx(np.mean(maps == 0), abs=1e-6)
    assert measured[stage]["mean"] == pytest.approx(maps.mean(), rel=1e-5)
    assert 0 < measured[stage]["zeros"] < 1
  records = [json.loads(line) for line in (tmp_path / "sparse_activations" / "seed0" / "metrics.jsonl").read_text().splitlines()]
  assert any("train/activation_penalty" in r for r in records)
  for row in rows:
    row["sparsity"] = {s: {k: {"mean": 0.5} for k in ("mean", "zeros")} for s in ablation.SPARSE_STAGES}
  text = sparsity_table.table(rows, ablation.SPARSE_STAGES)
  assert "| baseline |" in text and "| sparse_activations |" in text and "stage3/rect mean / zeros" in text
