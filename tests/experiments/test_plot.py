"""python -m experiments.plot: two runs drawn into one PNG; bad runs, keys and flags exit 2, writing nothing."""

import json
import os
import subprocess
import sys

import pytest
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _plot(*args):
  return subprocess.run([sys.executable, "-m", "experiments.plot", *args], cwd=ROOT, capture_output=True,
                        text=True, timeout=120, check=False)


def _runs(tmp_path):
  dirs = []
  for name, rate in (("lr_0.01", 0.01), ("lr_0.02", 0.02)):
    folder = tmp_path / "runs" / name
    folder.mkdir(parents=True)
    records = [{"step": s, "train/loss": 1 / (1 + rate * s), "learning_rate": rate} for s in range(0, 100, 10)]
    records.append({"step": 90, "final": True, "test/accuracy": 0.9 + rate})
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    dirs.append(str(folder))
  return dirs


def test_two_runs_make_one_png(tmp_path):
  a, b = _runs(tmp_path)
  out = tmp_path / "figs" / "cmp.png"  # the folder is created
  result = _plot(f"--runs={a},{b}", f"--out={out}", "--keys=train/loss,test/accuracy")
  assert result.returncode == 0, result.stderr
  assert result.stdout.startswith(f"wrote {out}: 2 runs (lr_0.01, lr_0.02), 2 panels (train/loss, test/accuracy)")
  with Image.open(out) as png:
    assert png.format == "PNG" and png.text["Title"] == "2 runs: lr_0.01, lr_0.02"
    assert png.text["Description"] == "panels: train/loss, test/accuracy; one line per run: lr_0.01, lr_0.02"


@pytest.mark.parametrize("case", ["missing run", "no metrics", "unknown key", "not png", "no runs"])
def test_bad_runs_keys_and_flags_exit_2_and_leave_the_old_file(case, tmp_path):
  a, b = _runs(tmp_path)
  (tmp_path / "runs" / "bare").mkdir()
  out = tmp_path / "cmp.png"
  out.write_bytes(b"old")
  args, first_line = {
      "missing run": ((f"--runs={a},{tmp_path / 'nope'}", f"--out={out}"),
                      f"error: run dir '{tmp_path / 'nope'}' does not exist"),
      "no metrics": ((f"--runs={a},{tmp_path / 'runs' / 'bare'}", f"--out={out}"),
                     f"error: run dir '{tmp_path / 'runs' / 'bare'}' has no metrics.jsonl"),
      "unknown key": ((f"--runs={a},{b}", f"--out={out}", "--keys=train/loss,val/acc"),
                      ("error: unknown metric key(s) val/acc; the runs log: train/loss, learning_rate, "
                       "test/accuracy")),
      "not png": ((f"--runs={a}", f"--out={tmp_path / 'cmp.jpg'}"), "error: --out must name a .png file"),
      "no runs": ((f"--out={out}",), "error: both --runs and --out are required"),
  }[case]
  result = _plot(*args)
  assert result.returncode == 2, result.stderr
  assert result.stderr.splitlines()[0].startswith(first_line), result.stderr
  assert out.read_bytes() == b"old" and sorted(os.listdir(tmp_path)) == ["cmp.png", "runs"]
