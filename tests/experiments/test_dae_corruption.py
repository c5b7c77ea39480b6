"""The filter statistics of experiments/dae_corruption.py on filters whose values are known, and its smoke run."""

import json
import os

import numpy as np
import pytest

from experiments import dae_corruption


def test_localisation_and_spread_of_known_filters():
  one_pixel = np.zeros((64, 1))
  one_pixel[27] = -3.0
  even = np.ones((64, 1))
  stroke = np.zeros((8, 8))
  stroke[2:6, 4] = 1.0  # a vertical stroke of 4 pixels
  W = np.concatenate([one_pixel, even, stroke.reshape(64, 1)], axis=1)
  np.testing.assert_allclose(dae_corruption.localisation(W, 8), [1.0, 8 / 64, 1.0])
  np.testing.assert_allclose(dae_corruption.localisation(W, 2), [1.0, 2 / 64, 0.5])
  # spread: 0 for one pixel; √(2·(8² − 1)/12) for the whole 8×8 grid; the stroke's rows 2…5 have std √1.25
  np.testing.assert_allclose(dae_corruption.spread(W), [0.0, np.sqrt(2 * 63 / 12), np.sqrt(1.25)])
  # the effective filter W_ij·std_i ignores pixels that never vary
  std = np.ones(64)
  std[:8] = 0.0
  W2 = np.ones((64, 1))
  W2[:8] = 100.0
  stats = dae_corruption.statistics(W2, 8, std)
  np.testing.assert_allclose(stats["localisation"], 8 / 56)
  np.testing.assert_allclose(stats["localisation_raw"], 8e4 / (8e4 + 56))


@pytest.mark.slow
def test_smoke_run_writes_the_record_and_figure(tmp_path):
  out = str(tmp_path / "out" / "dae_corruption")
  record = dae_corruption.run([0.0, 0.5], 1, str(tmp_path / "runs"), out, 8, smoke=True)
  with open(out + ".json") as f:
    assert json.load(f) == json.loads(json.dumps(record))
  assert set(record["levels"]) == {"0", "0.5"} and len(record["runs"]) == 2
  assert os.path.getsize(out + ".png") > 1000
