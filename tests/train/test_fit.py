"""The run skeleton: its schedule, its dispatch chunks, its finished rule, and K steps per dispatch."""

import jax
import numpy as np
import pytest

from deepvision.checkpoint import read_state
from deepvision.train import dispatch, fit, loop
from deepvision.train.writers import read_metrics
from experiments.configs import rbm_digits


def test_the_host_acts_at_every_log_eval_and_checkpoint_boundary_and_at_the_end():
  schedule = fit.Schedule(total_steps=100, log_every=10, eval_every=25, checkpoint_every=40)
  stops, step = [], 0
  while step < schedule.total_steps:
    step = schedule.next_boundary(step)
    stops.append(step)
  assert stops == [10, 20, 25, 30, 40, 50, 60, 70, 75, 80, 90, 100]
  assert fit.Schedule(7, 0, 0, 0).next_boundary(3) == 7  # intervals of 0: only the end


def test_stacked_metrics_come_back_one_record_per_step():
  pending = [{"a": np.float32(1.0)}, ({"a": np.arange(4, dtype=np.float32)}, 3)]
  assert [float(m["a"]) for m in dispatch.per_step_metrics(pending)] == [1.0, 0.0, 1.0, 2.0]


@pytest.mark.parametrize("n", [1, 3, 4])
def test_a_chunk_of_n_steps_is_the_n_fold_step_whatever_its_padding(n):
  step = lambda state, fault, batch: (state * 2 + batch, fault + 1, {"x": state})  # noqa: E731
  state, fault, metrics = jax.jit(dispatch.loop_steps(step))(1.0, 0, np.arange(4.0), n)
  expected_state, expected_x = 1.0, []
  for batch in range(n):
    expected_x.append(expected_state)
    expected_state = expected_state * 2 + batch
  assert float(state) == expected_state and int(fault) == n
  assert list(np.asarray(metrics["x"])[:n]) == expected_x


def test_one_finished_rule():
  final = [{"step": 10, "train/loss": 1.0}, {"step": 10, "final": True}]
  assert fit.is_finished(final, 10, 10)
  assert not fit.is_finished(final[:1], 10, 10)  # no final record yet
  assert not fit.is_finished(final, 8, 10)  # the last checkpoint is not the last step
  assert not fit.is_finished([], None, 10)


def test_steps_per_dispatch_must_be_a_positive_int():
  with pytest.raises(loop.ConfigError, match="config.steps_per_dispatch must be an integer >= 1, got 0"):
    loop.train_and_evaluate(loop.override_config(rbm_digits.get_config("smoke"), {"steps_per_dispatch": 0}),
                            "/nonexistent/never-written")


def test_pcd_chains_advance_bitwise_alike_one_or_four_steps_per_dispatch(tmp_path):
  runs = {}
  for k in (1, 4):
    config = loop.override_config(rbm_digits.get_config("smoke"), {
        "steps_per_dispatch": k, "figures": False, "linear_eval.enabled": False, "num_epochs": 1,
        "log_every_steps": 6, "checkpoint_every_steps": 9})
    loop.train_and_evaluate(config, str(tmp_path / f"k{k}"))
    state, step = read_state(str(tmp_path / f"k{k}" / "checkpoints"))
    records = [{key: v for key, v in r.items() if key != "steps_per_second"} for r in read_metrics(str(tmp_path / f"k{k}"))]
    runs[k] = (state, step, records)
  (a, step_a, records_a), (b, step_b, records_b) = runs[1], runs[4]
  assert step_a == step_b and records_a == records_b
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
      x, y = jax.random.key_data(x), jax.random.key_data(y)
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
