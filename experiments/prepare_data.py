r"""Prepares a data set in a TFDS data dir from arrays or original files, without TensorFlow or internet.

  # a catalog set from its original files (IDX, CIFAR-10 python batches, SVHN .mat):
  python -m experiments.prepare_data --name=mnist --source_dir=downloads/mnist --data_dir=data
  # a catalog set from arrays: train_images, train_labels, test_images, test_labels in one .npz
  python -m experiments.prepare_data --name=cifar10 --arrays=cifar10.npz --data_dir=data
  # a set of your own: any (N, H, W[, C]) uint8 images, integer labels; one split from images / labels
  python -m experiments.prepare_data --name=my_digits --arrays=digits.npz --split=train --data_dir=data
  # a folder of image files: images/train/<class>/*.png, images/test/<class>/*.png (or --split=train)
  python -m experiments.prepare_data --name=my_shapes --images=images --data_dir=data

Catalog names (`mnist`, `fashion_mnist`, `cifar10`, `svhn_cropped`) are written as `tfds build` would
write them, so the configs (`--config.data_dir=data`) and `datasets.load_arrays(NAME, split,
data_dir="data")` read them unchanged; any other name is read by the same loader and by
`--config.dataset=NAME`. Everything is checked before anything is written, prepared data are replaced
only with --overwrite, and a failed run leaves the data dir as it was. See `deepvision.data.prepare`
and `deepvision.data.original_files`.

Exit status: 0 prepared, 2 bad flag or input (named in the message) or the set already prepared, 1 the
writing itself failed (e.g. disk full; nothing is left half-written).
"""

from __future__ import annotations

import sys

from absl import app, flags

from deepvision.data import image_folder, original_files, prepare
from experiments import cli

_NAME = flags.DEFINE_string("name", None, "Data set name: mnist, fashion_mnist, cifar10, svhn_cropped, or a "
                            "name of your own (lower case letters, digits, _).")
_ARRAYS = flags.DEFINE_string("arrays", None, "An .npz with <split>_images and <split>_labels arrays, or "
                              "images and labels (then give --split).")
_SOURCE_DIR = flags.DEFINE_string("source_dir", None, "Folder with the original files of a catalog set "
                                  "(MNIST / Fashion-MNIST IDX, cifar-10-batches-py, SVHN *_32x32.mat).")
_IMAGES = flags.DEFINE_string("images", None, "A folder of image files: <split>/<class>/* (or <class>/* with "
                               "--split); labels are the class folders in sorted order.")
_SPLIT = flags.DEFINE_string("split", None, "The split of an .npz holding images and labels (e.g. train).")
_NUM_CLASSES = flags.DEFINE_integer("num_classes", None, "Number of classes of a set of your own "
                                    "(default: largest label + 1).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data dir to write into (default: $DEEPVISION_DATA_DIR, "
                                "else TFDS's default, where the loader looks).")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace the set if it is already prepared in --data_dir.")
USAGE = ("python -m experiments.prepare_data --name=NAME (--arrays=FILE.npz [--split=SPLIT] | --source_dir=DIR "
         "| --images=DIR [--split=SPLIT]) "
         "[--data_dir=DIR] [--num_classes=N] [--overwrite]")


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    cli.usage_error(f"unexpected arguments {argv[1:]}", USAGE)
  if not _NAME.value:
    cli.usage_error("--name is required", USAGE)
  if sum(bool(v) for v in (_ARRAYS.value, _SOURCE_DIR.value, _IMAGES.value)) != 1:
    cli.usage_error("give exactly one of --arrays (an .npz), --source_dir (original files) and --images (a "
                    "folder of image files)", USAGE)
  if _SOURCE_DIR.value and _SPLIT.value:
    cli.usage_error(f"--split={_SPLIT.value} goes with --arrays; original files name their own splits", USAGE)
  try:
    prepare.check_target(_NAME.value, _DATA_DIR.value, overwrite=_OVERWRITE.value)  # fail before reading
    if _ARRAYS.value:
      splits = prepare.load_npz(_ARRAYS.value, _SPLIT.value)
    elif _IMAGES.value:
      splits, classes = image_folder.read_image_folder(_IMAGES.value, _SPLIT.value)
      print("classes: " + ", ".join(f"{label} {name}" for label, name in enumerate(classes)))
    else:
      splits = original_files.read_original(_NAME.value, _SOURCE_DIR.value)
    prepared = prepare.prepare_arrays(_NAME.value, splits, _DATA_DIR.value, num_classes=_NUM_CLASSES.value,
                                      overwrite=_OVERWRITE.value)
  except prepare.PrepareError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(cli.USAGE_ERROR)
  except OSError as e:
    print(f"error: writing failed, nothing half-written is left: {e}", file=sys.stderr)
    sys.exit(1)
  print(prepared.summary())


if __name__ == "__main__":
  app.run(main, flags_parser=cli.make_parser(USAGE))
