"""A folder of image files, one sub-folder per class, read as arrays for `prepare.prepare_arrays`.

  images/train/cat/001.png, images/train/dog/a.jpg, ...   → splits train (and test, ...), classes cat, dog
  images/cat/001.png, images/dog/a.jpg, ...  with split='train'  → one split

Labels are the class folders' indices in sorted order (the same in every split: a class missing from one
split keeps its number). Every image must have the same size; grey-level files give (H, W) images, colour
ones (H, W, 3) (a folder mixing them is converted to RGB). Files PIL cannot open are an error, named.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image, UnidentifiedImageError

from deepvision.data.prepare import Arrays, PrepareError

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".ppm", ".pgm", ".webp")


def _subfolders(path: str) -> list[str]:
  return sorted(d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d)) and not d.startswith("."))


def _files(path: str) -> list[str]:
  return sorted(f for f in os.listdir(path) if f.lower().endswith(EXTENSIONS))


def read_image_folder(directory: str | os.PathLike, split: str | None = None) -> tuple[dict[str, Arrays],
                                                                                        list[str]]:
  """Reads `directory` (module docstring) as split → (uint8 images, int64 labels), and the class names.

  Args:
    directory: `<split>/<class>/<file>` folders, or `<class>/<file>` when `split` is given.
    split: the split name of a folder of class folders.

  Raises:
    PrepareError: a missing folder, no class folders or images, images of different sizes, or a file that
      is not an image.
  """
  directory = os.path.expanduser(os.fspath(directory))
  if not os.path.isdir(directory):
    raise PrepareError(f"image folder {directory!r} does not exist or is not a folder")
  layout = {split: directory} if split else {s: os.path.join(directory, s) for s in _subfolders(directory)}
  if not layout:
    raise PrepareError(f"image folder {directory!r} has no split folders (e.g. train/, test/, each holding one "
                       "folder per class); for a folder of class folders give --split")
  classes = sorted({c for path in layout.values() for c in _subfolders(path)})
  if not classes:
    raise PrepareError(f"image folder {directory!r}: no class folders in {', '.join(layout.values())}")
  paths = {s: [(os.path.join(path, c, f), label) for label, c in enumerate(classes)
               if os.path.isdir(os.path.join(path, c)) for f in _files(os.path.join(path, c))]
           for s, path in layout.items()}
  empty = [s for s, files in paths.items() if not files]
  if empty:
    raise PrepareError(f"image folder {directory!r}: split(s) {', '.join(empty)} hold no image files "
                       f"({', '.join(EXTENSIONS)})")
  opened = {s: [(_open(p), label, p) for p, label in files] for s, files in paths.items()}
  colour = any(image.mode not in ("L", "1", "I;16") for items in opened.values() for image, _, _ in items)
  first = next(iter(opened.values()))[0]
  size = first[0].size
  out = {}
  for s, items in opened.items():
    images = []
    for image, _, path in items:
      if image.size != size:
        raise PrepareError(f"image {path} is {image.size[0]}×{image.size[1]} pixels but {first[2]} is "
                           f"{size[0]}×{size[1]}: every image must have the same size (resize them first)")
      images.append(np.asarray(image.convert("RGB" if colour else "L"), dtype=np.uint8))
    out[s] = (np.stack(images), np.asarray([label for _, label, _ in items], dtype=np.int64))
  return out, classes


def _open(path: str) -> Image.Image:
  try:
    with Image.open(path) as image:
      image.load()
      return image
  except (UnidentifiedImageError, OSError) as e:
    raise PrepareError(f"{path} is not an image PIL can read: {e}") from None
