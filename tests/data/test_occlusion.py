"""Occlusion masks: the exact regions of the halves, squares inside the image and uniform, seeds, errors."""

import jax
import numpy as np
import pytest

from deepvision.data.occlusion import occlude, occlusion_mask, square_side


@pytest.mark.parametrize("height, width", [(6, 8), (7, 5)])
def test_halves_occlude_exactly_the_named_half(height, width):
  expected_occluded = {  # written out by hand: ⌊n/2⌋ rows or columns, the middle one kept when odd
      "left_half": lambda r, c: c < width // 2,
      "right_half": lambda r, c: c >= width - width // 2,
      "top_half": lambda r, c: r < height // 2,
      "bottom_half": lambda r, c: r >= height - height // 2,
  }
  rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
  for kind, occluded in expected_occluded.items():
    mask = np.asarray(occlusion_mask(kind, (height, width, 2), 0, batch=3))
    assert mask.shape == (3, height, width, 2) and mask.dtype == np.bool_
    np.testing.assert_array_equal(mask, np.broadcast_to(~occluded(rows, cols)[None, :, :, None],
                                                        mask.shape))
    side = width if kind in ("left_half", "right_half") else height
    assert mask.mean() == pytest.approx((side - side // 2) / side, abs=1e-12)


def test_left_and_right_halves_are_mirror_images():
  left = np.asarray(occlusion_mask("left_half", (5, 7), 0, batch=1))
  right = np.asarray(occlusion_mask("right_half", (5, 7), 0, batch=1))
  np.testing.assert_array_equal(left, right[:, :, ::-1])
  top = np.asarray(occlusion_mask("top_half", (7, 5), 0, batch=1))
  np.testing.assert_array_equal(top, np.asarray(occlusion_mask("bottom_half", (7, 5), 0, batch=1))[:, ::-1])


@pytest.mark.parametrize("square_size, side", [(3, 3), (0.5, 3), (0.34, 2), (1, 1)])
def test_each_random_square_is_one_solid_block_inside_the_image(square_size, side):
  assert square_side(square_size, 6, 7) == side
  mask = np.asarray(occlusion_mask("random_square", (6, 7, 3), jax.random.key(4), batch=200,
                                   square_size=square_size))
  assert mask.shape == (200, 6, 7, 3)
  np.testing.assert_array_equal(mask, np.broadcast_to(mask[..., :1], mask.shape))  # channels together
  for image in ~mask[..., 0]:
    assert image.sum() == side * side  # exactly s² pixels: the square is never clipped by an edge
    rows, cols = np.flatnonzero(image.any(1)), np.flatnonzero(image.any(0))
    assert rows.size == cols.size == side and np.ptp(rows) == np.ptp(cols) == side - 1
    assert image[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()


def test_square_positions_are_uniform_over_every_valid_corner():
  height, width, side, batch = 6, 5, 3, 6000
  mask = ~np.asarray(occlusion_mask("random_square", (height, width), 11, batch=batch, square_size=side))
  tops = np.argmax(mask.any(2), axis=1)
  lefts = np.argmax(mask.any(1), axis=1)
  counts = np.zeros((height - side + 1, width - side + 1))
  np.add.at(counts, (tops, lefts), 1)
  assert counts.min() > 0  # every corner, the last row and column of corners included
  expected = batch / counts.size
  # Each count is Binomial(batch, 1/12): the largest of 12 deviations stays within 4.5 standard errors.
  assert np.abs(counts - expected).max() < 4.5 * np.sqrt(expected * (1 - 1 / counts.size)), counts


def test_masks_repeat_with_the_seed_and_differ_between_seeds():
  def square(seed):
    return np.asarray(occlusion_mask("random_square", (8, 8), seed, batch=16, square_size=0.25))

  np.testing.assert_array_equal(square(3), square(3))
  np.testing.assert_array_equal(square(3), np.asarray(
      occlusion_mask("random_square", (8, 8), jax.random.key(3), batch=16, square_size=0.25)))
  assert not np.array_equal(square(3), square(4))
  assert len({m.tobytes() for m in square(3)}) > 1  # each image of the batch draws its own position


def test_occlude_fills_exactly_the_occluded_pixels():
  images = np.random.default_rng(0).uniform(size=(4, 6, 6, 1)).astype(np.float32)
  mask = occlusion_mask("random_square", (6, 6, 1), 2, batch=4, square_size=2)
  out = np.asarray(occlude(images, mask, fill=-1.0))
  assert out.dtype == np.float32
  np.testing.assert_array_equal(out[np.asarray(mask)], images[np.asarray(mask)])
  np.testing.assert_array_equal(out[~np.asarray(mask)], -1.0)
  shared = np.asarray(occlusion_mask("top_half", (6, 6, 1), 0, batch=1))[0]
  holes = np.asarray(occlude(images, shared, fill=np.nan))
  assert np.isnan(holes[:, :3]).all() and np.array_equal(holes[:, 3:], images[:, 3:])


@pytest.mark.parametrize("args, kwargs, message", [
    (("middle", (8, 8), 0, 2), {}, "left_half, right_half, top_half, bottom_half, random_square"),
    (("random_square", (8, 8), 0, 2), {"square_size": 0}, r"\[1, 8\]"),
    (("random_square", (8, 8), 0, 2), {"square_size": 9}, r"\[1, 8\]"),
    (("random_square", (8, 8), 0, 2), {"square_size": 1.5}, r"\(0, 1\]"),
    (("random_square", (8, 8), 0, 2), {"square_size": 1.0}, "whole"),
    (("random_square", (8, 8), 0, 2), {"square_size": "big"}, "int .pixels. or a float"),
    (("left_half", (8, 1), 0, 2), {}, "2 pixels wide"),
    (("left_half", (8,), 0, 2), {}, "image_shape"),
    (("left_half", (8, 8), 0, 0), {}, "batch"),
    (("left_half", (8, 8), "seed", 2), {}, "key_or_seed"),
])
def test_bad_arguments_raise_naming_the_choices(args, kwargs, message):
  with pytest.raises(ValueError, match=message):
    occlusion_mask(*args, **kwargs)


def test_occlude_rejects_bad_masks():
  images = np.zeros((2, 4, 4))
  with pytest.raises(ValueError, match="bool"):
    occlude(images, np.ones((2, 4, 4), np.int32))
  with pytest.raises(ValueError, match=r"per image, \(2, 4, 4\), or shared, \(4, 4\)"):
    occlude(images, np.ones((4, 5), bool))
