"""experiments.prepare_data: the launcher's exit codes and messages (in-process, one subprocess)."""

import os
import subprocess
import sys

import numpy as np
import pytest
from absl import flags
from absl.testing import flagsaver

from deepvision.data import datasets
from experiments import cli, prepare_data

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(capsys, *args):
  """Parses `args` as the launcher would and runs main; returns (exit code, stdout, stderr)."""
  code = 0
  with flagsaver.flagsaver():
    flags.FLAGS.unparse_flags()
    try:
      main_argv = cli.make_parser(prepare_data.USAGE)(["prepare_data", *args])
      prepare_data.main(main_argv)
    except SystemExit as e:
      code = e.code
  out, err = capsys.readouterr()
  return code, out, err


def _npz(path, n=4, shape=(28, 28), **overrides):
  rng = np.random.default_rng(0)
  arrays = {"train_images": rng.integers(0, 256, (n, *shape), dtype=np.uint8),
            "train_labels": rng.integers(0, 10, n), "test_images": rng.integers(0, 256, (2, *shape), dtype=np.uint8),
            "test_labels": np.array([3, 4])}
  arrays.update(overrides)
  np.savez(path, **arrays)
  return arrays


def test_prepares_a_catalog_set_from_an_npz(tmp_path, capsys):
  arrays = _npz(tmp_path / "m.npz")
  code, out, err = _run(capsys, "--name=mnist", f"--arrays={tmp_path}/m.npz", f"--data_dir={tmp_path}/data")
  assert (code, err) == (0, "")
  assert out == f"prepared 'mnist' in {tmp_path}/data/mnist/3.0.1: train 4, test 2 examples; images (28, 28, 1) " \
                "uint8, 10 classes\n"
  images, labels = datasets.load_arrays("mnist", "test", data_dir=tmp_path / "data")
  np.testing.assert_array_equal(np.round(images[..., 0] * 255).astype(np.uint8), arrays["test_images"])
  np.testing.assert_array_equal(labels, arrays["test_labels"])


def test_prepares_a_user_set_from_images_and_labels_with_a_split(tmp_path, capsys):
  np.savez(tmp_path / "u.npz", images=np.zeros((3, 5, 6, 3), np.uint8), labels=np.array([0, 1, 1]))
  code, out, _ = _run(capsys, "--name=my_set", f"--arrays={tmp_path}/u.npz", "--split=validation",
                      "--num_classes=4", f"--data_dir={tmp_path}/data")
  assert code == 0 and out.startswith(f"prepared 'my_set' in {tmp_path}/data/my_set/1.0.0: validation 3 examples")
  assert datasets.dataset_info("my_set", tmp_path / "data") == datasets.DatasetInfo(
      "my_set", (5, 6, 3), 4, {"validation": 3}, (0, 255))


def _first_line(err):
  return err.splitlines()[0] if err else ""


@pytest.mark.parametrize("args, first_line", [
    ((), "error: --name is required"),
    (("--name=mnist",), "error: give exactly one of --arrays (an .npz), --source_dir (original files) and --images (a folder of "
     "image files)"),
    (("--name=mnist", "--arrays=a.npz", "--source_dir=d"),
     "error: give exactly one of --arrays (an .npz), --source_dir (original files) and --images (a folder of "
     "image files)"),
    (("--name=mnist", "--source_dir=d", "--split=train"),
     "error: --split=train goes with --arrays; original files name their own splits"),
    (("--name=mnist", "--arrays=a.npz", "extra"), "error: unexpected arguments ['extra']"),
    (("--name=mnist", "--num_classes=ten"), ("error: flag --num_classes=ten: invalid literal for int() with base 10: "
                                             "'ten'")),
])
def test_usage_errors_exit_2(tmp_path, capsys, args, first_line):
  code, out, err = _run(capsys, *args, f"--data_dir={tmp_path}/data")
  assert (code, out, _first_line(err)) == (2, "", first_line)
  assert "Usage: python -m experiments.prepare_data --name=NAME" in err
  assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("overrides, first_line", [
    ({"train_images": np.zeros((4, 27, 28), np.uint8)},
     ("error: split 'train': images have shape (27, 28, 1) each but 'mnist' takes (N, 28, 28) or (N, 28, 28, 1) "
      "uint8 images")),
    ({"train_images": np.zeros((4, 28, 28), np.float32)},
     ("error: split 'train': images have dtype float32 but 'mnist' takes uint8 (0..255) images; convert float "
      "images in [0, 1] with np.round(x * 255).astype(np.uint8)")),
    ({"test_labels": np.array([3, 10])},
     "error: split 'test': label 10 at index 1 is out of range; 'mnist' takes labels 0..9 (10 classes)"),
    ({"train_labels": np.array([1, 2, 3])}, "error: split 'train': 4 images but 3 labels; the counts must be equal"),
])
def test_bad_arrays_exit_2_naming_the_value_and_write_nothing(tmp_path, capsys, overrides, first_line):
  _npz(tmp_path / "m.npz", **overrides)
  code, out, err = _run(capsys, "--name=mnist", f"--arrays={tmp_path}/m.npz", f"--data_dir={tmp_path}/data")
  assert (code, out, err) == (2, "", first_line + "\n")
  assert not (tmp_path / "data").exists()


def test_missing_arrays_in_the_npz_exit_2(tmp_path, capsys):
  np.savez(tmp_path / "m.npz", train_images=np.zeros((2, 28, 28), np.uint8))
  code, _, err = _run(capsys, "--name=mnist", f"--arrays={tmp_path}/m.npz", f"--data_dir={tmp_path}/data")
  assert code == 2 and err == (f"error: arrays file '{tmp_path}/m.npz' has no 'train_labels' array (arrays: "
                               "train_images); every split needs both train_images and train_labels\n")


def test_prepared_data_are_refused_byte_identical_without_overwrite(tmp_path, capsys):
  _npz(tmp_path / "a.npz")
  assert _run(capsys, "--name=mnist", f"--arrays={tmp_path}/a.npz", f"--data_dir={tmp_path}/data")[0] == 0
  folder = tmp_path / "data" / "mnist" / "3.0.1"
  before = {name: (folder / name).read_bytes() for name in os.listdir(folder)}
  _npz(tmp_path / "b.npz", n=6)
  code, _, err = _run(capsys, "--name=mnist", f"--arrays={tmp_path}/b.npz", f"--data_dir={tmp_path}/data")
  assert code == 2 and err == (f"error: data set 'mnist' is already prepared in {folder}; set overwrite=True "
                               "(--overwrite) to replace it\n")
  assert {name: (folder / name).read_bytes() for name in os.listdir(folder)} == before
  assert _run(capsys, "--name=mnist", f"--arrays={tmp_path}/b.npz", f"--data_dir={tmp_path}/data",
              "--overwrite")[0] == 0
  assert datasets.dataset_info("mnist", tmp_path / "data").splits == {"train": 6, "test": 2}


def test_source_dir_reads_original_files(tmp_path, capsys):
  """A source folder without the IDX files is refused naming them; the reader itself is tested elsewhere."""
  (tmp_path / "src").mkdir()
  code, _, err = _run(capsys, "--name=fashion_mnist", f"--source_dir={tmp_path}/src", f"--data_dir={tmp_path}/d")
  assert code == 2 and _first_line(err).startswith(
      f"error: train-images-idx3-ubyte[.gz] is missing from source folder '{tmp_path}/src'")
  code, _, err = _run(capsys, "--name=own", f"--source_dir={tmp_path}/src", f"--data_dir={tmp_path}/d")
  assert code == 2 and _first_line(err).startswith("error: no reader of original files for data set 'own'")
  assert not (tmp_path / "d").exists()


def test_launcher_subprocess_exit_codes(tmp_path):
  """As a user runs it: exit 2 with one error line and nothing written, then exit 0 and the data read back."""
  _npz(tmp_path / "bad.npz", test_labels=np.array([-1, 2]))
  _npz(tmp_path / "good.npz")
  command = [sys.executable, "-m", "experiments.prepare_data", "--name=mnist", f"--data_dir={tmp_path}/data"]
  env = {**os.environ, "PYTHONPATH": ROOT}
  bad = subprocess.run([*command, f"--arrays={tmp_path}/bad.npz"], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=120, check=False)
  assert bad.returncode == 2 and bad.stdout == ""
  assert bad.stderr.splitlines()[0] == ("error: split 'test': label -1 at index 0 is negative; labels are "
                                         "0..num_classes - 1")
  assert not (tmp_path / "data").exists()
  good = subprocess.run([*command, f"--arrays={tmp_path}/good.npz"], cwd=ROOT, env=env, capture_output=True,
                        text=True, timeout=120, check=False)
  assert good.returncode == 0, good.stderr
  assert good.stdout.startswith(f"prepared 'mnist' in {tmp_path}/data/mnist/3.0.1: train 4, test 2 examples")
  assert datasets.dataset_info("mnist", tmp_path / "data").splits == {"train": 4, "test": 2}


def test_prepares_a_folder_of_images(tmp_path, capsys):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  for label, name in enumerate(("circle", "square")):
    (tmp_path / "img" / name).mkdir(parents=True)
    Image.fromarray(np.full((3, 4), 10 * label, np.uint8)).save(tmp_path / "img" / name / "a.png")
  code, out, err = _run(capsys, "--name=shapes", f"--images={tmp_path}/img", "--split=train",
                        f"--data_dir={tmp_path}/data")
  assert (code, err) == (0, ""), err
  assert out.splitlines()[0] == "classes: 0 circle, 1 square"
  images, labels = datasets.load_arrays("shapes", "train", data_dir=tmp_path / "data")
  assert images.shape == (2, 3, 4, 1) and list(labels) == [0, 1]
