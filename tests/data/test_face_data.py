"""Faces for inpainting: cropping, pooling and augmentation against brute force."""

from __future__ import annotations

import numpy as np

from deepvision.data import face_data


def test_crop_and_pool_and_augmentation_match_brute_force():
  images = np.random.default_rng(0).random((3, 25, 25, 1)).astype(np.float32)
  pooled = face_data.crop_and_pool(images, crop=24, pool=4, top=1, left=0)
  expected = np.zeros((3, 6, 6, 1))
  for n in range(3):
    for i in range(6):
      for j in range(6):
        expected[n, i, j, 0] = images[n, 1 + 4 * i:5 + 4 * i, 4 * j:4 + 4 * j, 0].mean()
  np.testing.assert_allclose(pooled, expected, rtol=1e-6)
  faces = face_data.FaceSettings("train", "test", crop=24, pool=4, shifts=1, flips=True)
  augmented = face_data.augment_faces(images, faces)
  assert augmented.shape == (3 * 4 * 2, 6, 6, 1)
  np.testing.assert_allclose(augmented[3 * 2:3 * 3], expected, rtol=1e-6)  # offset (1, 0): third group
  np.testing.assert_array_equal(augmented[3 * 4 + 3 * 2:3 * 4 + 3 * 3], augmented[3 * 2:3 * 3][:, :, ::-1])
