"""The denoising autoencoder family: its loss and gradient, its noise, and its task run end to end."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
from jax.test_util import check_grads

from deepvision import zoo
from deepvision.models.autoencoder import DenoisingAutoencoder, corrupt
from deepvision.train import loop
from experiments.configs import dae_digits


def test_parameter_count_and_tied_decoder():
  model = zoo.create("dae")
  params = model.init(jax.random.key(0), jnp.zeros((1, 64)))["params"]
  assert zoo.count_params(params) == 64 * 100 + 64 + 100
  assert set(params) == {"W", "b_v", "b_h"}


def test_loss_is_the_closed_form_cross_entropy_and_its_gradient_matches_finite_differences():
  with jax.enable_x64(True):
    model = DenoisingAutoencoder(n_visible=5, n_hidden=3)
    x = jax.random.uniform(jax.random.key(1), (4, 5), jnp.float64)
    params = jax.tree.map(lambda p: p.astype(jnp.float64) + 0.3,
                          model.init(jax.random.key(2), x)["params"])
    h = jax.nn.sigmoid(x @ params["W"] + params["b_h"])
    r = jax.nn.sigmoid(h @ params["W"].T + params["b_v"])
    expected = -(x * jnp.log(r) + (1 - x) * jnp.log(1 - r)).sum(-1)
    loss = lambda p: model.apply({"params": p}, x, x, method="reconstruction_loss")  # noqa: E731
    np.testing.assert_allclose(loss(params), expected, rtol=1e-10)
    check_grads(lambda p: loss(p).sum(), (params,), order=1, modes=("rev",), eps=1e-6)


def test_masking_noise_zeroes_the_given_fraction():
  x = jnp.ones((200, 500))
  kept = float(jnp.mean(corrupt(jax.random.key(3), x, 0.25)))
  assert abs(kept - 0.75) < 5 * np.sqrt(0.25 * 0.75 / x.size)


def test_smoke_run_learns_features_and_k_steps_per_dispatch_change_no_number(tmp_path):
  records = {}
  for k in (1, 16):
    config = loop.override_config(dae_digits.get_config("smoke"), {"steps_per_dispatch": k, "figures": False})
    record = loop.train_and_evaluate(config, str(tmp_path / f"k{k}"))
    with open(tmp_path / f"k{k}" / "metrics.jsonl") as f:
      records[k] = [{key: v for key, v in json.loads(line).items() if key != "steps_per_second"} for line in f]
    first = records[k][0]["train/recon_loss"]
    assert record["final"] and record["test/recon_loss"] < first
    assert record["test/feature_accuracy"] > 0.5  # 4 features of the digits, read out linearly
  assert records[1] == records[16]
  assert os.path.exists(tmp_path / "k1" / "checkpoints")
