"""The multi-task ablation record: the paired comparison's closed forms and a resumable smoke run."""

import numpy as np
import pytest

from experiments import multitask_ablation


def test_the_paired_comparison_is_the_closed_form():
  row = multitask_ablation.compare([0.90, 0.80, 0.85], [0.88, 0.79, 0.80])
  diff = np.array([0.02, 0.01, 0.05])
  assert row["difference"]["per_seed"] == pytest.approx(diff.tolist())
  assert row["difference"]["std"] == pytest.approx(np.std(diff, ddof=1))
  assert row["difference"]["t"] == pytest.approx(diff.mean() / (np.std(diff, ddof=1) / np.sqrt(3)))
  assert row["difference"]["t"] == pytest.approx(2.2188, abs=1e-3)
  assert row["difference"]["t_critical_5pct"] == 4.303 and not row["difference"]["beats_seed_noise"]
  assert row["with"]["mean"] == pytest.approx(0.85) and row["with"]["std"] == pytest.approx(0.05)
  clear = multitask_ablation.compare([0.9, 0.91, 0.92, 0.93], [0.8, 0.8, 0.82, 0.81])
  assert clear["difference"]["beats_seed_noise"]


@pytest.mark.slow  # four smoke runs (~20 s); the multi-task trainer's own smoke run is in the default tier
def test_a_smoke_ablation_pairs_the_runs_and_resumes(tmp_path):
  lines = []
  record = multitask_ablation.run([20], 2, str(tmp_path), smoke=True, log=lines.append)
  row = record["labels"]["20"]
  assert len(row["with"]["test_accuracy"]) == len(row["without"]["test_accuracy"]) == 2
  assert len(lines) == 4 and "N=20 without (λ=0) seed 1" in lines[-1]
  assert (tmp_path / "labels20" / "with" / "seed1" / "metrics.jsonl").exists()
  again = multitask_ablation.run([20], 2, str(tmp_path), smoke=True, log=lambda _: None)
  assert again == record  # finished runs are read back, not retrained
