"""The reconstruction head: output shapes, exact parameter counts, clear errors for a bad stage."""

import jax
import jax.numpy as jnp
import pytest

from deepvision import zoo


def _shapes(model, batch=3):
  x = jax.ShapeDtypeStruct((batch, *model.input_shape), jnp.float32)
  return jax.eval_shape(lambda v, x: model.apply(v, x, train=False), zoo.abstract_variables(model), x)


def test_reconstruction_has_the_input_shape_and_the_logits_are_the_backbones():
  for name in ("lcn_convnet_digits_recon", "lcn_convnet_digits_recon_tiny"):
    model = zoo.create(name)
    logits, acts = _shapes(model)
    assert logits.shape == (3, 10) and acts["reconstruction"].shape == (3, 8, 8, 1)
    assert set(acts) - {"reconstruction"} == set(_shapes(model.backbone)[1])
  # A pooled (4×4) stage is resized to 8×8 first; a flat one gets a dense decoder.
  assert _shapes(zoo.create("lcn_convnet_digits_recon_tiny", stage="stage2/pool"))[1]["reconstruction"].shape == (
      3, 8, 8, 1)
  assert _shapes(zoo.create("lcn_convnet_digits_recon_tiny", stage="features"))[1]["reconstruction"].shape == (
      3, 8, 8, 1)


def test_parameter_counts_by_hand():
  params = zoo.abstract_variables(zoo.create("lcn_convnet_digits_recon"))["params"]
  backbone = zoo.count_params(zoo.abstract_variables(zoo.create("lcn_convnet_digits"))["params"])
  assert zoo.layer_param_counts(params) == {"backbone": backbone, "decoder1": 3 * 3 * 64 * 32 + 32,
                                            "decoder2": 3 * 3 * 32 * 1 + 1}
  assert zoo.count_params(params) == 113_162 + 18_464 + 289 == 131_915
  tiny = zoo.abstract_variables(zoo.create("lcn_convnet_digits_recon_tiny"))["params"]
  assert zoo.layer_param_counts(tiny)["decoder1"] == 3 * 3 * 4 * 4 + 4  # stage2/lcn of the tiny net: 4 maps
  flat = zoo.abstract_variables(zoo.create("lcn_convnet_digits_recon_tiny", stage="features"))["params"]
  assert zoo.layer_param_counts(flat)["decoder2"] == 4 * 64 + 64  # dense 4 → 8·8·1 (features: 2·2·8 = 32)
  assert zoo.layer_param_counts(flat)["decoder1"] == 32 * 4 + 4


def test_backbone_fields_pass_through_and_bad_values_are_named():
  assert zoo.create("lcn_convnet_digits_recon", dropout_rate=0.0).backbone.dropout_rate == 0.0
  with pytest.raises(ValueError, match="'dropout'.*valid fields"):
    zoo.create("lcn_convnet_digits_recon", dropout=0.1)
  with pytest.raises(ValueError, match=r"stage 'stage9/lcn' is not an intermediate map.*stage2/lcn"):
    _shapes(zoo.create("lcn_convnet_digits_recon_tiny", stage="stage9/lcn"))
  with pytest.raises(ValueError, match="decoder_features must be a positive integer, got 0"):
    zoo.create("lcn_convnet_digits_recon_tiny", decoder_features=0)
