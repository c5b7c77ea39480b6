"""The model zoo: names, creation with overrides, exact parameter counts, descriptions."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepvision import pretrained, zoo
from deepvision.diagnostics import flops
from deepvision.models import convnets
from deepvision.registry import UnknownNameError
from experiments import readme_tables, zoo_table

CONVNET_VARIANTS = {
    "lenet5_1998", "lenet5", "lenet5_tiny", "jarrett", "jarrett_tiny", "cifar_convnet",
    "cifar_convnet_tiny", "lcn_convnet_digits", "lcn_convnet_digits_tiny"}
CONVNETS = (convnets.LeNet5_1998, convnets.LeNet5, convnets.MultiStageConvNet,
            convnets.CifarConvNet)


def _params(name, **overrides):
  return zoo.abstract_variables(zoo.create(name, **overrides))["params"]


def test_every_convnet_family_is_registered_with_a_tiny_variant():
  registered = {name for name in zoo.names() if isinstance(zoo.create(name), CONVNETS)}
  assert registered == CONVNET_VARIANTS
  assert zoo.MODELS.get("lenet5") is not None and zoo.names() == sorted(zoo.names())


@pytest.mark.parametrize("name", sorted(CONVNET_VARIANTS))
def test_output_and_feature_shapes(name):
  model = zoo.create(name)
  x = jax.ShapeDtypeStruct((3, *model.input_shape), jnp.float32)
  logits, acts = jax.eval_shape(model.apply, zoo.abstract_variables(model), x)
  assert logits.shape == (3, 10) and logits.dtype == jnp.float32
  assert acts["features"].shape[0] == 3
  if isinstance(model, convnets.MultiStageConvNet):
    assert [k for k in acts if k.endswith("/lcn")] == [
        f"stage{i + 1}/lcn" for i, s in enumerate(model.stages()) if s["lcn"]]


def test_parameter_counts_by_hand():
  counts = zoo.layer_param_counts(_params("lenet5_1998"))
  assert counts == {"C1": 156, "S2": 12, "C3": 1_516, "S4": 32, "C5": 48_120, "F6": 10_164}
  assert zoo.count_params(_params("lenet5_1998")) == 60_000
  assert zoo.count_params(_params("lenet5")) == (
      6 * 26 + 16 * (6 * 25 + 1) + 120 * (400 + 1) + 84 * (120 + 1) + 10 * (84 + 1)) == 61_706
  # jarrett: 28 → conv 5 → 24 → pool 2 → 12 → conv 5 → 8 → pool 2 → 4: 4·4·64 features.
  assert zoo.layer_param_counts(_params("jarrett")) == {
      "conv1": 32 * 26, "gain1": 32, "conv2": 64 * (32 * 25 + 1), "gain2": 64,
      "output": 10 * (4 * 4 * 64 + 1)}
  # lcn_convnet_digits: 8 → 8 → 8 → pool 2 → 4: 4·4·128 features.
  assert zoo.count_params(_params("lcn_convnet_digits")) == (
      32 * 10 + 64 * (9 * 32 + 1) + 128 * (9 * 64 + 1) + 10 * (4 * 4 * 128 + 1)) == 113_162
  assert zoo.count_params(_params("cifar_convnet")) == 89_578


def test_count_params_on_real_arrays_and_describe():
  model = zoo.create("lenet5_tiny")
  params = model.init(jax.random.key(0), jnp.zeros((1, 12, 12, 1)))["params"]
  assert zoo.count_params(params) == 2 * 26 + 4 * (2 * 25 + 1) + 8 * 5 + 10 * 9
  text = zoo.describe("lenet5_1998")
  rows = [line.split() for line in text.split("activations:")[0].splitlines()]
  expected = {"C1": "156", "S2": "12", "C3": "1,516", "S4": "32", "C5": "48,120",
              "F6": "10,164", "total": "60,000"}
  table = {row[0]: row[1] for row in rows if row and row[0] in expected}
  assert table == expected
  assert [r[0] for r in rows if r and r[0] in table][:6] == ["C1", "S2", "C3", "S4", "C5", "F6"]
  assert "C3 (1, 10, 10, 16)" in text and "output (1, 10)" in text


def test_overrides_replace_fields():
  model = zoo.create("lcn_convnet_digits_tiny", num_classes=26, lcn_mode="torch7",
                     lcn=[True, False, False])
  assert model.num_classes == 26 and model.lcn_mode == "torch7" and model.dropout_rate == 0.5
  assert model.lcn == (True, False, False) and hash(model) == hash(zoo.create(
      "lcn_convnet_digits_tiny", num_classes=26, lcn_mode="torch7", lcn=(True, False, False)))
  x = jax.ShapeDtypeStruct((2, 8, 8, 1), jnp.float32)
  logits, _ = jax.eval_shape(model.apply, zoo.abstract_variables(model), x)
  assert logits.shape == (2, 26)
  assert "output (1, 26)" in zoo.describe("lenet5_tiny", num_classes=26)


def test_errors_name_the_valid_choices():
  with pytest.raises(UnknownNameError,
                     match="Did you mean 'lenet5'.*Valid choices: .*jarrett_tiny"):
    zoo.create("lenet")
  with pytest.raises(ValueError, match="unknown field 'kernel_size' for model 'jarrett'; valid "
                                       "fields: stage_features, kernel_sizes"):
    zoo.create("jarrett", kernel_size=3)
  with pytest.raises(ValueError, match="rectification of stage 1 'sigmoid'"):
    zoo.create("jarrett", rectification="sigmoid")


def test_wrong_input_message_names_expected_shape():
  model = zoo.create("lenet5")
  bad = np.zeros((3, 32, 32, 3), np.uint8)
  with pytest.raises(ValueError, match=r"\(batch, 28, 28, 1\), float; got \(3, 32, 32, 3\) uint8"):
    model.init(jax.random.key(0), bad)


def test_describe_gives_the_paper_the_forward_flops_and_the_input_shape():
  text = zoo.describe("rbm_tiny")
  assert "default input shape (6,)" in text and "paper: Hinton" in text
  # F(v) = −b_vᵀv − Σ_j softplus(b_h,j + W_jᵀv): n_v·n_h + n_v + n_h multiply-adds, 2 FLOPs each.
  card = pretrained.describe("rbm_tiny")
  assert card.startswith(text) and f"forward FLOPs per example {2 * (6 * 4 + 6 + 4)} (of free_energy)" in card
  assert flops.forward_flops("rbm", n_visible=64, n_hidden=256) == 2 * (64 * 256 + 64 + 256)
  assert zoo.paper("mcrbm") == zoo.paper("mcrbm_tiny") == "Ranzato & Hinton 2010"
  assert all(zoo.paper(name) for name in zoo.names())  # every family cites its paper


def test_describe_a_pretrained_name_uses_its_trained_fields_and_metric():
  text = pretrained.describe("rbm_digits")  # not a variant: the zoo's `rbm` with the experiment's 64 × 256
  assert text.startswith("rbm (RBM), input (1, 64)") and f"total  {64 * 256 + 64 + 256:>10,}" in text
  assert "pretrained: pretrained.load('rbm_digits'), trained by experiments/configs/rbm_digits.py" in text
  assert "pretrained: pretrained.load('lcn_convnet_digits')" in pretrained.describe("lcn_convnet_digits")
  assert "pretrained" not in pretrained.describe("lenet5")


def test_the_readme_zoo_tables_are_the_generated_ones():
  assert readme_tables.stale(zoo_table.TABLES) == [], "README.md's zoo tables are stale: run " + readme_tables.COMMAND
  tables = pretrained.markdown_table()
  assert all(f"| `{name}` |" in tables for name in zoo.names() + pretrained.names())
  assert "| `lcn_convnet_digits` | `lcn_convnet_digits` | Jarrett et al. 2009 | 113,162 |" in tables
