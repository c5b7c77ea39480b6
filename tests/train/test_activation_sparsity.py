"""The hidden units' sparsity penalty: closed forms, finite differences, the step bitwise unchanged when off,
clear config errors, the ablation variant."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepvision import config_blocks, schema
from deepvision.diagnostics import ablation, gradcheck
from deepvision.errors import ConfigError
from deepvision.train import activation_sparsity
from deepvision.train.loop import override_config, plan_supervised, supervised_task
from experiments.configs import lcn_convnet_digits

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _settings(**fields):
  return config_blocks.ActivationSparsity(**{"stages": ("a", "b"), "weight": 0.3, **fields})


def _acts():
  rng = np.random.default_rng(0)
  return {"a": np.maximum(rng.normal(size=(3, 4, 4, 5)), 0.0), "b": rng.normal(size=(3, 7)), "c": np.ones((3, 2))}


def test_l1_and_kl_values_are_the_closed_forms():
  acts = _acts()
  value, metrics = activation_sparsity.make_penalty(_settings(kind="l1"))(acts)
  assert float(value) == pytest.approx(0.3 * (np.abs(acts["a"]).mean() + np.abs(acts["b"]).mean()), rel=1e-6)
  rho = 0.1

  def kl(h):
    rate = np.tanh(np.abs(h)).reshape(-1, h.shape[-1]).mean(axis=0)  # one activity per channel
    return np.sum(rho * np.log(rho / rate) + (1 - rho) * np.log((1 - rho) / (1 - rate)))

  value, _ = activation_sparsity.make_penalty(_settings(kind="kl", target=rho))(acts)
  assert float(value) == pytest.approx(0.3 * (kl(acts["a"]) + kl(acts["b"])), rel=1e-5)
  assert float(metrics["train/activation_penalty"]) == pytest.approx(
      0.3 * (np.abs(acts["a"]).mean() + np.abs(acts["b"]).mean()), rel=1e-6)
  assert float(metrics["train/activation_zeros/a"]) == pytest.approx(np.mean(acts["a"] == 0))
  assert 0.3 < float(metrics["train/activation_zeros/a"]) < 0.7  # ReLU of a normal: about half are zero
  assert float(metrics["train/activation_mean/b"]) == pytest.approx(acts["b"].mean(), rel=1e-5)
  assert activation_sparsity.make_penalty(_settings(weight=0.0, stages=())) is None
  # KL is zero at the target activity and positive elsewhere.
  at_target = np.full((2, 3), np.arctanh(rho))
  assert float(activation_sparsity.stage_penalty(jnp.asarray(at_target), "kl", rho)) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.usefixtures("x64")
@pytest.mark.parametrize("kind", ["l1", "kl"])
def test_the_gradient_matches_finite_differences(kind):
  penalty = activation_sparsity.make_penalty(_settings(kind=kind, target=0.2))
  rng = np.random.default_rng(1)
  tree = {"a": jnp.asarray(rng.normal(size=(2, 3, 3, 4))), "b": jnp.asarray(rng.normal(size=(3, 5)) + 0.5)}
  report = gradcheck.check_gradients(lambda t: penalty(t)[0], tree, key=jax.random.key(0), elements_per_leaf=40,
                                     image_leaves=())
  assert report.ok and report.max_rel_error < 1e-6, report.format()


def _smoke(**overrides):
  config = lcn_convnet_digits.get_config("smoke")
  config.figures = False
  return override_config(config, overrides)


def _one_step(config):
  task = supervised_task(config, quiet=True)
  state = task.init_state()
  batch = next(task.train_batches())
  return jax.jit(task.make_step(None))(state, batch)


def test_with_the_penalty_off_the_step_is_bitwise_the_plain_step():
  plain, plain_metrics = _one_step(_smoke())
  off, off_metrics = _one_step(_smoke(**{"activation_sparsity.stages": ("stage1/rect",),
                                         "activation_sparsity.weight": 0.0}))
  assert all(jax.tree.leaves(jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), plain.params, off.params)))
  assert set(off_metrics) == set(plain_metrics)
  on, on_metrics = _one_step(_smoke(**{"activation_sparsity.stages": ("stage1/rect", "stage3/rect"),
                                       "activation_sparsity.weight": 0.5}))
  assert not np.array_equal(on.params["conv1"]["kernel"], plain.params["conv1"]["kernel"])
  assert float(on_metrics["train/activation_penalty"]) > 0
  assert float(on_metrics["train/loss"]) == pytest.approx(
      float(plain_metrics["train/loss"]) + float(on_metrics["train/activation_penalty"]), rel=1e-5)
  assert 0 < float(on_metrics["train/activation_zeros/stage1/rect"]) < 1


def test_bad_settings_are_named_before_any_compute(tmp_path):
  with pytest.raises(ConfigError, match=r"config.activation_sparsity.kind must be one of l1, kl, got 'l2'"):
    plan_supervised(_smoke(**{"activation_sparsity.kind": "l2"}))
  with pytest.raises(ConfigError, match=r"config.activation_sparsity.stages must name at least one"):
    plan_supervised(_smoke(**{"activation_sparsity.weight": 0.1}))
  with pytest.raises(ConfigError, match=r"config.activation_sparsity.target must be a number in \(0, 1\)"):
    schema.load(config_blocks.Supervised, _smoke(**{"activation_sparsity.target": 1.0}))
  with pytest.raises(ConfigError, match=r"'stage4/rect' is not an intermediate map of model "
                                        r"'lcn_convnet_digits_tiny'; its maps: .*stage3/rect"):
    plan_supervised(_smoke(**{"activation_sparsity.stages": ("stage1/rect", "stage4/rect"),
                              "activation_sparsity.weight": 0.1}))
  result = subprocess.run([sys.executable, "-m", "experiments.main", "--config=lcn_convnet_digits:smoke",
                           f"--workdir={tmp_path}/w", "--config.activation_sparsity.stages=('stage9/rect',)",
                           "--config.activation_sparsity.weight=0.1"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
  assert result.returncode == 2, result.stderr
  assert "config.activation_sparsity.stages: 'stage9/rect' is not an intermediate map" in result.stderr
  assert not os.path.exists(tmp_path / "w")


def test_the_ablation_variant_applies_to_the_default_net_and_not_to_a_dbn():
  variant = ablation.VARIANTS.get("sparse_activations")
  plan = plan_supervised(_smoke(**variant.overrides))
  assert plan.sparsity.stages == ablation.SPARSE_STAGES and plan.sparsity.weight > 0
  dbn = _smoke(model="dbn_classifier_tiny")
  with pytest.raises(ConfigError) as error:
    plan_supervised(override_config(dbn, variant.overrides))
  assert ablation._is_missing_model_field(error.value, variant)
