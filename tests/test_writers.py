"""metrics.jsonl records, resume truncation, progress line and figures."""

import io
import json
import os

import numpy as np
import pytest

from deepvision.figures import viz
from deepvision.train.writers import MetricsWriter, Progress, closing_summary, read_metrics


def test_records_have_step_and_resume_drops_later_records(tmp_path):
  writer = MetricsWriter(str(tmp_path), tensorboard=True)
  for step in (10, 20, 30):
    writer.write(step, {"train/loss": np.float32(1.0 / step)})
  writer.close()
  assert [r["step"] for r in read_metrics(str(tmp_path))] == [10, 20, 30]
  assert any(name.startswith("events.out.tfevents") for name in os.listdir(tmp_path))
  # A run resumed from the checkpoint at step 20 forgets what the dead run logged after it.
  writer = MetricsWriter(str(tmp_path), resume_step=20, tensorboard=False)
  writer.write(30, {"train/loss": 0.5})
  records = read_metrics(str(tmp_path))
  assert [r["step"] for r in records] == [10, 20, 30] and records[-1]["train/loss"] == 0.5
  with open(tmp_path / "metrics.jsonl") as f:
    assert all("step" in json.loads(line) for line in f)
  # TensorBoard itself (the `viz` extra) reads the event file: the printed `tensorboard --logdir` works.
  from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=g-import-not-at-top
  events = event_accumulator.EventAccumulator(str(tmp_path))
  events.Reload()
  assert [(e.step, e.value) for e in events.Scalars("train/loss")] == [
      (10, pytest.approx(0.1)), (20, pytest.approx(0.05)), (30, pytest.approx(1 / 30))]
  # A fresh run (no checkpoint) starts a fresh file.
  MetricsWriter(str(tmp_path), tensorboard=False)
  assert read_metrics(str(tmp_path)) == []


def test_progress_line_reports_rate_and_eta_without_the_compile_time(monkeypatch):
  clock = iter([0.0, 30.0, 30.0, 31.0, 31.0])  # start; first report after 30 s of compiling; 1 s later
  monkeypatch.setattr("deepvision.train.writers.time.perf_counter", lambda: next(clock))
  stream = io.StringIO()
  progress = Progress(total_steps=100, stream=stream)
  progress.update(10, {"train/loss": 0.25})
  first = stream.getvalue()
  assert "step 10/100 (10%)" in first and "loss 0.25" in first and "0.3 steps/s" in first and "ETA ?" in first
  progress.update(20, {"train/loss": 0.2})
  second = stream.getvalue().splitlines()[-1]
  # 10 steps in the second after the first report: 10 steps/s, 80 steps left: 8 s (not 80 × 3.1 s).
  assert "10.0 steps/s" in second and "ETA 0:00:08" in second, second


def test_filter_grid_layout_and_scaling():
  filters = np.stack([np.arange(4.0).reshape(2, 2), -np.ones((2, 2)), np.zeros((2, 2))])
  grid = viz.filter_grid(filters, pad=1, columns=2)
  assert grid.shape == (2 * 3 + 1, 2 * 3 + 1)
  np.testing.assert_allclose(grid[1:3, 1:3], np.arange(4.0).reshape(2, 2) / 3)
  assert grid[0].min() == 1.0  # white border
  with pytest.raises(ValueError, match="shape"):
    viz.filter_grid(np.zeros((2, 3)))


def test_figures_are_written(tmp_path):
  records = [{"step": s, "train/loss": 1 / s, "val/accuracy": 1 - 1 / s} for s in range(1, 5)]
  viz.save_curves(records, str(tmp_path / "curves.png"))
  viz.save_conv_filters(np.random.default_rng(0).normal(size=(3, 3, 1, 8)), str(tmp_path / "f.png"))
  for name in ("curves.png", "f.png"):
    with open(tmp_path / name, "rb") as f:
      assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_closing_summary_keeps_small_values_and_names_every_output(tmp_path):
  record = {"step": 10, "test/accuracy": 0.98765, "feature_l2": 1e-5, "final": True}
  bare = closing_summary(str(tmp_path), record)
  assert bare.splitlines()[0] == "Done: test/accuracy 0.9877, feature_l2 1e-05"
  assert "TensorBoard" not in bare and "checkpoints" not in bare and "figures" not in bare
  writer = MetricsWriter(str(tmp_path), tensorboard=True)
  writer.write(10, {"train/loss": 1.0})
  writer.close()
  os.makedirs(tmp_path / "checkpoints")
  for name in ("samples.png", "curves.png"):
    (tmp_path / name).write_bytes(b"")
  lines = closing_summary(str(tmp_path), record, keys=["feature_l2"]).splitlines()
  assert lines == ["Done: feature_l2 1e-05",
                   f"  metrics     {tmp_path}/metrics.jsonl (TensorBoard: tensorboard --logdir {tmp_path})",
                   f"  checkpoints {tmp_path}/checkpoints",
                   f"  figures     {tmp_path}/: curves.png, samples.png"]


def test_tensorboard_events_are_written_without_importing_pytorch(tmp_path):
  """tensorboardX imports PyTorch when it is installed (seconds of start-up); the writer keeps it out."""
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  code = ("import sys; from deepvision.train.writers import MetricsWriter; "
          f"w = MetricsWriter({str(tmp_path)!r}, tensorboard=True); w.write(1, {{'train/loss': 0.5}}); w.close(); "
          "print('torch' in sys.modules)")
  done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert done.stdout.strip() == "False"
  events = [name for name in os.listdir(tmp_path) if name.startswith("events.out.tfevents")]
  assert events and os.path.getsize(tmp_path / events[0]) > 0
