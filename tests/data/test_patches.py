"""Patch extraction and standardisation: patches found in their images, coverage, exact stats."""

import dataclasses
import json

import numpy as np
import pytest
from scipy import stats

from deepvision.data import patches
from deepvision.data.patches import Standardizer, extract_patches, natural_image_patches


def _random_images(seed=0):
  """Three uint8 images of different sizes, in both accepted layouts, one too small for p=4."""
  rng = np.random.default_rng(seed)
  return [rng.integers(0, 256, (9, 11), dtype=np.uint8),
          rng.integers(0, 256, (12, 7, 1), dtype=np.uint8),
          rng.integers(0, 256, (3, 20), dtype=np.uint8)]


def _find(patch, images):
  """Every (image, row, col) whose p × p window equals patch (brute-force search)."""
  p = patch.shape[0]
  hits = []
  for i, image in enumerate(images):
    grey = image.reshape(image.shape[:2])
    for r in range(grey.shape[0] - p + 1):
      for c in range(grey.shape[1] - p + 1):
        if np.array_equal(grey[r:r + p, c:c + p], patch):
          hits.append((i, r, c))
  return hits


def test_shape_dtype_and_range_are_uint8_over_255():
  out = extract_patches(_random_images(), patch_size=4, num_patches=200, seed=0)
  assert out.shape == (200, 4, 4, 1) and out.dtype == np.float32
  assert 0.0 <= out.min() and out.max() <= 1.0
  levels = out * 255
  np.testing.assert_array_equal(levels, np.round(levels))  # exactly k / 255


def test_same_seed_same_patches_other_seed_other_patches():
  images = _random_images()
  a = extract_patches(images, 4, 50, seed=3)
  np.testing.assert_array_equal(a, extract_patches(images, 4, 50, seed=3))
  np.testing.assert_array_equal(a, extract_patches(images, 4, 50, np.random.default_rng(3)))
  assert not np.array_equal(a, extract_patches(images, 4, 50, seed=4))


@pytest.mark.parametrize("weighting", ["positions", "images"])
def test_every_patch_occurs_in_a_source_image_that_fits(weighting):
  images = _random_images()
  out = extract_patches(images, 4, 30, seed=1, image_weighting=weighting)
  for patch in out:
    hits = _find(np.round(patch[..., 0] * 255).astype(np.uint8), images)
    assert hits, "a patch that is in none of the images"
    assert all(i != 2 for i, _, _ in hits)  # the 3 × 20 image is too small for 4 × 4


def test_remove_dc_subtracts_each_patch_mean_from_the_same_patches():
  images = _random_images()
  plain = extract_patches(images, 4, 40, seed=2)
  centred = extract_patches(images, 4, 40, seed=2, remove_dc=True)
  np.testing.assert_allclose(centred, plain - plain.mean(axis=(1, 2, 3), keepdims=True), atol=1e-6)
  np.testing.assert_allclose(centred.sum(axis=(1, 2, 3)), 0.0, atol=1e-5)


def test_float_images_are_kept_and_a_patch_the_size_of_the_image_is_the_image():
  image = np.linspace(0.0, 1.0, 16).reshape(4, 4)
  out = extract_patches([image], 4, 3, seed=0)
  np.testing.assert_array_equal(out, np.broadcast_to(image.astype(np.float32)[..., None], (3, 4, 4, 1)))


def _id_images():
  """Float images whose pixels are all different: a patch's top-left pixel names its position."""
  shapes = [(4, 4), (6, 5), (2, 2)]  # 2×2 = 4 and 4×3 = 12 positions for p = 3; the last none
  images, start = [], 1
  for h, w in shapes:
    images.append((np.arange(start, start + h * w).reshape(h, w) / 1000.0))
    start += h * w
  return images


def _positions_of(out, images):
  lookup = {}
  for i, image in enumerate(images):
    for (r, c), value in np.ndenumerate(image.astype(np.float32)):
      lookup[float(value)] = (i, r, c)
  found = [lookup[float(v)] for v in out[:, 0, 0, 0]]
  for (i, r, c), patch in zip(found[:20], out[:20]):  # each whole patch matches its position
    np.testing.assert_array_equal(patch[..., 0], images[i][r:r + 3, c:c + 3].astype(np.float32))
  return found


def test_positions_weighting_is_uniform_over_all_valid_positions():
  images = _id_images()
  n = 32_000
  found = _positions_of(extract_patches(images, 3, n, seed=0), images)
  counts = {}
  for key in found:
    counts[key] = counts.get(key, 0) + 1
  valid = [(0, r, c) for r in range(2) for c in range(2)] + \
          [(1, r, c) for r in range(4) for c in range(3)]
  assert sorted(counts) == valid  # every valid position, nothing else
  observed = np.array([counts[k] for k in valid])
  chi2 = np.sum((observed - n / 16) ** 2 / (n / 16))
  assert chi2 < stats.chi2.ppf(1 - 1e-6, df=15)


def test_images_weighting_gives_each_fitting_image_the_same_share():
  images = _id_images()
  n = 20_000
  found = _positions_of(extract_patches(images, 3, n, seed=0, image_weighting="images"), images)
  which = np.array([i for i, _, _ in found])
  assert set(which) == {0, 1}
  share = np.mean(which == 0)
  assert abs(share - 0.5) < 6 * np.sqrt(0.25 / n)  # vs 4/16 under "positions"
  # Within image 1 (12 positions) the draws are uniform.
  positions = [(r, c) for i, r, c in found if i == 1]
  observed = np.unique(np.array(positions), axis=0, return_counts=True)[1]
  assert len(observed) == 12
  expected = len(positions) / 12
  assert np.sum((observed - expected) ** 2 / expected) < stats.chi2.ppf(1 - 1e-6, df=11)


def test_patch_larger_than_every_image_names_the_sizes():
  images = [np.zeros((5, 7), np.uint8), np.zeros((6, 6, 1), np.uint8)]
  with pytest.raises(ValueError, match=r"patch_size 7 is larger than every image.*\(6, 6\).*up to 6"):
    extract_patches(images, 7, 10, seed=0)


@pytest.mark.parametrize("kwargs, message", [
    ({"patch_size": 0}, "patch_size must be a positive integer, got 0"),
    ({"patch_size": 2.5}, "patch_size must be a positive integer, got 2.5"),
    ({"patch_size": True}, "patch_size must be a positive integer, got True"),
    ({"num_patches": 0}, "num_patches must be a positive integer, got 0"),
    ({"image_weighting": "area"}, "unknown image_weighting 'area'; valid choices: positions, images"),
])
def test_bad_arguments_are_named(kwargs, message):
  args = {"images": _random_images(), "patch_size": 4, "num_patches": 5, "seed": 0} | kwargs
  with pytest.raises(ValueError, match=message):
    extract_patches(**args)


@pytest.mark.parametrize("images, message", [
    ([np.zeros((8, 8, 3), np.uint8)], r"image 0 has shape \(8, 8, 3\): expected a grey image"),
    ([np.zeros((8, 8)), np.zeros(8)], r"image 1 has shape \(8,\)"),
    ([np.zeros((8, 8), np.int32)], "image 0 has dtype int32: expected uint8"),
    ([], "images is empty"),
])
def test_bad_images_are_named(images, message):
  with pytest.raises(ValueError, match=message):
    extract_patches(images, 4, 5, seed=0)


# ----------------------------------------------------------------------------- Standardizer


def test_standardizer_fit_equals_hand_computed_values():
  scaler = Standardizer.fit(np.array([[0.0, 1.0], [2.0, 5.0]]), eps=0.0)
  np.testing.assert_array_equal(scaler.mean, [1.0, 3.0])
  np.testing.assert_array_equal(scaler.std, [1.0, 2.0])  # √var: var = [1, 4]
  np.testing.assert_array_equal(scaler.transform(np.array([[3.0, 7.0]])), [[2.0, 2.0]])
  np.testing.assert_allclose(Standardizer.fit(np.array([[0.0], [2.0]]), eps=3.0).std, [2.0])  # √(1+3)


def test_standardizer_gives_zero_mean_unit_variance_and_round_trips():
  rng = np.random.default_rng(0)
  x = rng.normal(loc=np.arange(12).reshape(4, 3, 1), scale=np.linspace(0.1, 3, 12).reshape(4, 3, 1),
                 size=(500, 4, 3, 1))
  scaler = Standardizer.fit(x, eps=0.0)
  assert scaler.feature_shape == (4, 3, 1) and scaler.num_features == 12
  z = scaler.transform(x)
  assert z.shape == x.shape and z.dtype == np.float64
  np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-12)
  np.testing.assert_allclose(z.var(axis=0), 1.0, atol=1e-12)
  np.testing.assert_allclose(scaler.inverse(z), x, atol=1e-12)
  # Flattened batches are transformed the same way, and float32 stays float32.
  flat = x.reshape(500, 12).astype(np.float32)
  z_flat = scaler.transform(flat)
  assert z_flat.shape == (500, 12) and z_flat.dtype == np.float32
  np.testing.assert_allclose(z_flat, z.reshape(500, 12), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(scaler.inverse(z_flat), flat, rtol=1e-5, atol=1e-5)


def test_standardizer_survives_json_exactly_and_is_frozen():
  rng = np.random.default_rng(1)
  scaler = Standardizer.fit(rng.random((50, 8, 8, 1)), eps=1e-2)
  restored = Standardizer.from_dict(json.loads(json.dumps(scaler.to_dict())))
  np.testing.assert_array_equal(restored.mean, scaler.mean)
  np.testing.assert_array_equal(restored.std, scaler.std)
  assert restored.feature_shape == (8, 8, 1)
  with pytest.raises(dataclasses.FrozenInstanceError):
    scaler.mean = np.zeros(3)
  with pytest.raises(ValueError, match="read-only"):
    scaler.mean[0] = 1.0
  with pytest.raises(ValueError, match="missing \\['std'\\]"):
    Standardizer.from_dict({"mean": [0.0]})


def test_standardizer_wrong_feature_size_names_both_shapes():
  scaler = Standardizer.fit(np.random.default_rng(0).random((10, 8, 8, 1)))
  message = (r"transform got an array of shape \(5, 7, 7, 1\), but the Standardizer was fitted "
             r"on features of shape \(8, 8, 1\) \(64 features\)")
  with pytest.raises(ValueError, match=message):
    scaler.transform(np.zeros((5, 7, 7, 1)))
  with pytest.raises(ValueError, match=r"inverse got an array of shape \(5, 63\)"):
    scaler.inverse(np.zeros((5, 63)))


@pytest.mark.parametrize("x, eps, message", [
    (np.zeros((1, 3)), 1e-8, r"N ≥ 2 examples, got shape \(1, 3\)"),
    (np.ones((4, 3)), 0.0, r"feature\(s\) are constant and eps is 0"),
    (np.ones((4, 3)), -1.0, "eps must be a number ≥ 0, got -1.0"),
    (np.array([[0.0, np.nan], [1.0, 2.0]]), 1e-8, "fit got 1 non-finite values"),
])
def test_standardizer_fit_errors(x, eps, message):
  with pytest.raises(ValueError, match=message):
    Standardizer.fit(x, eps=eps)


def test_standardizer_is_a_no_op_on_constant_features_with_eps():
  x = np.concatenate([np.full((6, 1), 0.5), np.arange(6.0)[:, None]], axis=1)
  z = Standardizer.fit(x, eps=1e-2).transform(x)
  np.testing.assert_array_equal(z[:, 0], 0.0)  # a constant feature maps to 0, not NaN


# ----------------------------------------------------------------------------- natural images


def test_natural_image_patches_come_from_the_embedded_photographs(prepared_data_dir):
  out = natural_image_patches(8, 1000, seed=0, data_dir=prepared_data_dir)
  assert out.shape == (1000, 8, 8, 1) and out.dtype == np.float32
  assert 0.0 <= out.min() and out.max() <= 1.0 and out.std() > 0.05
  np.testing.assert_array_equal(out, natural_image_patches(8, 1000, seed=0, data_dir=prepared_data_dir))
  assert not np.array_equal(out, natural_image_patches(8, 1000, seed=1, data_dir=prepared_data_dir))
  centred = natural_image_patches(8, 1000, seed=0, data_dir=prepared_data_dir, remove_dc=True)
  np.testing.assert_allclose(centred, out - out.mean(axis=(1, 2, 3), keepdims=True), atol=1e-6)
  # A few patches found by search in the photographs (candidates by their top-left pixel).
  source = patches.datasets.get_source("dv_natural_images", "train", prepared_data_dir)
  images = [source[i]["image"][..., 0] for i in range(len(source))]
  for patch in np.round(out[:5, ..., 0] * 255).astype(np.uint8):
    found = False
    for image in images:
      for r, c in zip(*np.nonzero(image[:-7, :-7] == patch[0, 0])):
        if np.array_equal(image[r:r + 8, c:c + 8], patch):
          found = True
          break
      if found:
        break
    assert found


def test_natural_image_patches_checks_arguments_before_reading(tmp_path):
  # An empty data dir would need preparing: the bad argument is reported first.
  with pytest.raises(ValueError, match="patch_size must be a positive integer, got 0"):
    natural_image_patches(0, 10, seed=0, data_dir=tmp_path)
  with pytest.raises(ValueError, match="unknown image_weighting 'area'"):
    natural_image_patches(8, 10, seed=0, data_dir=tmp_path, image_weighting="area")
  assert not any(tmp_path.iterdir())
