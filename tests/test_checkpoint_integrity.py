"""Checkpoints are verified against their manifests: damaged steps are skipped, never trusted or deleted."""

from __future__ import annotations

import glob
import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from deepvision.checkpoint import (MANIFEST_NAME, Checkpointer, CheckpointCorruptedError,
                                   CheckpointIntegrityWarning, CheckpointRestoreError)
from deepvision.train.state import TrainState

METADATA = {"config_hash": "0123abcd", "versions": {"deepvision": "test"}}


def _initial_state(seed: int = 0, width: int = 32) -> TrainState:
  """A train state whose kernel (32 × width float32) is large enough for orbax to store it out of line."""
  params = {"dense": {"kernel": jnp.arange(32 * width, dtype=jnp.float32).reshape(32, width) / 7,
                      "bias": jnp.full((width,), 0.25, jnp.float32)}}
  state = TrainState.create(apply_fn=None, params=params, tx=optax.sgd(0.1, momentum=0.9),
                            key=jax.random.key(seed))
  return state.replace(step=jnp.zeros((), jnp.int32))


def _advance(state: TrainState) -> TrainState:
  grads = jax.tree.map(lambda p: jnp.full_like(p, 1.0 + float(state.step)), state.params)
  return state.apply_gradients(grads=grads)


def _states(n: int) -> dict[int, TrainState]:
  """States after 1..n updates, each with different parameters and momentum."""
  state, out = _initial_state(), {}
  for step in range(1, n + 1):
    state = _advance(state)
    out[step] = state
  return out


STATES = _states(4)


def _assert_same(restored: TrainState, expected: TrainState) -> None:
  assert int(restored.step) == int(expected.step)
  assert jax.random.key_data(restored.key).tolist() == jax.random.key_data(expected.key).tolist()
  for a, b in zip(jax.tree.leaves((expected.params, expected.opt_state)),
                  jax.tree.leaves((restored.params, restored.opt_state)), strict=True):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
  """A checkpoint directory holding verified steps 1, 2 and 3 (copied by each test)."""
  directory = tmp_path_factory.mktemp("pristine") / "ckpt"
  ckpt = Checkpointer(directory, keep=3, metadata=METADATA)
  for step in (1, 2, 3):
    ckpt.save(STATES[step], {"position": step})
  ckpt.close()
  return directory


@pytest.fixture
def ckpt_dir(pristine, tmp_path):
  directory = tmp_path / "ckpt"
  shutil.copytree(pristine, directory)
  return directory


def _data_file(step_dir) -> str:
  """The largest OCDBT data file of the state item: the one holding the arrays' bytes."""
  candidates = glob.glob(os.path.join(step_dir, "state", "**", "d", "*"), recursive=True)
  assert candidates, f"no OCDBT data file under {step_dir}: {sorted(os.listdir(step_dir))}"
  return max(candidates, key=os.path.getsize)


def _flip_byte(path: str) -> None:
  data = bytearray(open(path, "rb").read())
  data[len(data) // 2] ^= 0x01
  open(path, "wb").write(bytes(data))


def _corrupt(step_dir, case: str) -> None:
  manifest_path = os.path.join(step_dir, MANIFEST_NAME)
  if case == "flipped_byte":
    _flip_byte(_data_file(step_dir))
  elif case == "truncated":
    path = _data_file(step_dir)
    with open(path, "r+b") as f:
      f.truncate(os.path.getsize(path) // 2)
  elif case == "missing_file":
    os.remove(_data_file(step_dir))
  elif case == "missing_manifest":  # e.g. a kill between orbax's commit and the manifest write
    os.remove(manifest_path)
  elif case in ("wrong_checksum", "wrong_step"):
    manifest = json.load(open(manifest_path))
    if case == "wrong_checksum":
      entry = manifest["files"]["data/metadata"]
      entry["sha256"] = ("0" if entry["sha256"][0] != "0" else "1") + entry["sha256"][1:]
    else:
      manifest["step"] = 2
    json.dump(manifest, open(manifest_path, "w"))
  elif case == "garbage_manifest":
    open(manifest_path, "w").write('{"format": "deepvision-checkpoint-manifest", "files": {')
  else:
    raise AssertionError(case)


REASONS = {
    "flipped_byte": "sha256 mismatch: state/",
    "truncated": "size mismatch: state/.*truncated",
    "missing_file": "file missing: state/",
    "missing_manifest": "no manifest",
    "wrong_checksum": "sha256 mismatch: data/metadata",
    "garbage_manifest": "manifest unreadable",
    "wrong_step": "manifest is for step 2, not step 3",
}


@pytest.mark.parametrize("case", sorted(REASONS))
def test_damaged_newest_step_falls_back_to_the_previous_one(ckpt_dir, case, capsys):
  _corrupt(ckpt_dir / "3", case)
  ckpt = Checkpointer(ckpt_dir, keep=3)
  assert ckpt.latest_step() == 3  # orbax still lists it
  with pytest.warns(CheckpointIntegrityWarning, match=f"step 3 .*failed verification: {REASONS[case]}"):
    state, data, step = ckpt.restore_latest_valid(_initial_state(seed=9))
  assert step == 2 and ckpt.restored_step == 2
  assert data == {"position": 2}
  _assert_same(state, STATES[2])
  err = capsys.readouterr().err
  assert "checkpoint step 3" in err and "trying step 2" in err
  assert ckpt.latest_valid_step() == 2
  assert (ckpt_dir / "3").is_dir() and ckpt.all_steps() == [1, 2, 3]  # nothing deleted
  ckpt.close()


def test_flipped_byte_file_holds_the_arrays(ckpt_dir):
  """Without verification the same damage is not harmless: orbax returns other values (or fails)."""
  _flip_byte(_data_file(ckpt_dir / "3"))
  ckpt = Checkpointer(ckpt_dir)
  try:
    state, _ = ckpt.restore(_initial_state(), step=3, verify=False)
  except CheckpointRestoreError as e:
    assert "step 3" in str(e) and e.__cause__ is not None
  else:
    assert not all(np.array_equal(a, b) for a, b in zip(
        jax.tree.leaves((state.params, state.opt_state)), jax.tree.leaves((STATES[3].params, STATES[3].opt_state))))
  ckpt.close()


def test_intact_newest_step_restores_without_warning(ckpt_dir, recwarn):
  (ckpt_dir / "3" / "notes.txt").write_text("an extra file is tolerated")
  ckpt = Checkpointer(ckpt_dir)
  assert ckpt.verify(3) is None and ckpt.latest_valid_step() == 3
  state, data = ckpt.restore(_initial_state())
  assert ckpt.restored_step == 3 and data == {"position": 3}
  _assert_same(state, STATES[3])
  assert not [w for w in recwarn if issubclass(w.category, CheckpointIntegrityWarning)]
  ckpt.close()


def test_every_step_damaged_raises_naming_each(ckpt_dir):
  _corrupt(ckpt_dir / "3", "flipped_byte")
  _corrupt(ckpt_dir / "2", "missing_manifest")
  _corrupt(ckpt_dir / "1", "truncated")
  ckpt = Checkpointer(ckpt_dir)
  with pytest.warns(CheckpointIntegrityWarning) as announced:
    assert ckpt.latest_valid_step() is None
  assert len(announced) == 3  # each rejected step announced once, not again by restore
  with pytest.raises(CheckpointCorruptedError) as info:
    ckpt.restore(_initial_state())
  assert set(info.value.rejected) == {1, 2, 3}
  message = str(info.value)
  for line in ("step 3: sha256 mismatch", "step 2: no manifest", "step 1: size mismatch"):
    assert line in message
  assert sorted(os.listdir(ckpt_dir)) == ["1", "2", "3"]  # nothing deleted or moved
  ckpt.close()


def test_explicit_step_is_verified_and_verify_false_reads_it_as_is(ckpt_dir):
  _corrupt(ckpt_dir / "2", "missing_manifest")  # like a step saved before manifests existed
  ckpt = Checkpointer(ckpt_dir)
  with pytest.raises(CheckpointCorruptedError, match="step 2: no manifest"):
    ckpt.restore(_initial_state(), step=2)
  state, data = ckpt.restore(_initial_state(), step=2, verify=False)
  assert data == {"position": 2} and ckpt.restored_step == 2
  _assert_same(state, STATES[2])
  with pytest.raises(FileNotFoundError, match="step 7"):
    ckpt.restore(_initial_state(), step=7)
  ckpt.close()


def test_verified_step_that_does_not_fit_the_template_is_an_error_not_a_fallback(ckpt_dir, recwarn):
  ckpt = Checkpointer(ckpt_dir)
  with pytest.raises(CheckpointRestoreError, match="step 3 .*could not be restored"):
    ckpt.restore(_initial_state(width=5))  # kernel (32, 5), saved (32, 32)
  assert ckpt.restored_step is None
  assert not [w for w in recwarn if issubclass(w.category, CheckpointIntegrityWarning)]
  ckpt.close()


def test_leftovers_of_interrupted_saves_are_removed_and_nothing_else(ckpt_dir):
  for name in ("4.orbax-checkpoint-tmp-123", "5.orbax-checkpoint-tmp", "notes.orbax-checkpoint-tmp-1",
               "unrelated", "3.damaged-20240101T000000000000Z"):
    (ckpt_dir / name).mkdir()
    (ckpt_dir / name / "file").write_text("x")
  (ckpt_dir / "6.orbax-checkpoint-tmp-7").write_text("a file, not a directory")
  (ckpt_dir / "3" / f"{MANIFEST_NAME}.tmp-999").write_text('{"trunc')
  ckpt = Checkpointer(ckpt_dir)
  assert sorted(os.path.relpath(p, ckpt_dir) for p in ckpt.removed_temporaries) == [
      os.path.join("3", f"{MANIFEST_NAME}.tmp-999"), "4.orbax-checkpoint-tmp-123", "5.orbax-checkpoint-tmp"]
  assert sorted(os.listdir(ckpt_dir)) == ["1", "2", "3", "3.damaged-20240101T000000000000Z",
                                          "6.orbax-checkpoint-tmp-7", "notes.orbax-checkpoint-tmp-1", "unrelated"]
  assert ckpt.all_steps() == [1, 2, 3] and ckpt.latest_valid_step() == 3
  ckpt.close()


def test_resaving_a_damaged_step_moves_it_aside(ckpt_dir):
  _corrupt(ckpt_dir / "3", "flipped_byte")
  ckpt = Checkpointer(ckpt_dir, keep=3)
  with pytest.warns(CheckpointIntegrityWarning):
    state, data, step = ckpt.restore_latest_valid(_initial_state())
  assert step == 2
  state = _advance(state)  # re-trains step 3
  with pytest.warns(CheckpointIntegrityWarning, match=r"step 3 .*moved it aside to 3\.damaged-"):
    ckpt.save(state, {"position": 3})
  damaged = [n for n in os.listdir(ckpt_dir) if n.startswith("3.damaged-")]
  assert len(damaged) == 1 and os.path.isfile(os.path.join(ckpt_dir, damaged[0], MANIFEST_NAME))
  assert ckpt.all_steps() == [1, 2, 3] and ckpt.verify(3) is None
  ckpt.close()
  reopened = Checkpointer(ckpt_dir, keep=3)
  assert reopened.all_steps() == [1, 2, 3]  # the damaged copy is not a step
  restored, data = reopened.restore(_initial_state())
  assert reopened.restored_step == 3 and data == {"position": 3}
  _assert_same(restored, STATES[3])
  reopened.close()


def test_saving_an_intact_existing_step_is_skipped(ckpt_dir):
  before = (ckpt_dir / "3" / MANIFEST_NAME).read_bytes()
  ckpt = Checkpointer(ckpt_dir)
  ckpt.save(STATES[3].replace(params=jax.tree.map(jnp.zeros_like, STATES[3].params)), {"position": -1})
  assert (ckpt_dir / "3" / MANIFEST_NAME).read_bytes() == before
  assert ckpt.restore(_initial_state())[1] == {"position": 3}
  ckpt.close()


def test_damaged_newer_steps_are_moved_aside_when_an_older_step_is_saved(ckpt_dir):
  _corrupt(ckpt_dir / "2", "truncated")
  _corrupt(ckpt_dir / "3", "missing_manifest")
  ckpt = Checkpointer(ckpt_dir, keep=3)
  with pytest.warns(CheckpointIntegrityWarning):
    state, _, step = ckpt.restore_latest_valid(_initial_state())
  assert step == 1
  with pytest.warns(CheckpointIntegrityWarning, match="moved it aside"):
    ckpt.save(_advance(state), {"position": 2})
  assert ckpt.all_steps() == [1, 2] and ckpt.latest_valid_step() == 2
  assert sorted(n.split(".")[0] for n in os.listdir(ckpt_dir) if ".damaged-" in n) == ["2", "3"]
  ckpt.close()


def test_manifest_records_files_versions_and_metadata(ckpt_dir):
  ckpt = Checkpointer(ckpt_dir)
  manifest = ckpt.read_manifest(3)
  assert manifest["step"] == 3 and manifest["metadata"] == METADATA
  assert set(manifest["versions"]) == {"python", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy"}
  assert manifest["versions"]["jax"] == jax.__version__
  files = manifest["files"]
  assert "data/metadata" in files and any(f.startswith("state/") for f in files)
  for rel, entry in files.items():
    assert os.path.getsize(ckpt_dir / "3" / rel) == entry["size"]
  ckpt.close()


def test_keep_prunes_manifests_with_their_steps(tmp_path):
  ckpt = Checkpointer(tmp_path / "ckpt", keep=2)
  for step in (1, 2, 3, 4):
    ckpt.save(STATES[step], {"position": step})
  assert ckpt.all_steps() == [3, 4]
  assert sorted(os.listdir(tmp_path / "ckpt")) == ["3", "4"]
  assert all(ckpt.verify(step) is None for step in (3, 4))
  assert ckpt.read_manifest(4)["metadata"] is None
  ckpt.close()


def test_bad_metadata_is_rejected_before_anything_is_written(tmp_path):
  with pytest.raises(ValueError, match="JSON"):
    Checkpointer(tmp_path / "a", metadata={"seed": object()})
  with pytest.raises(ValueError, match="JSON"):
    Checkpointer(tmp_path / "b", metadata={"loss": float("nan")})
  with pytest.raises(ValueError, match="dict"):
    Checkpointer(tmp_path / "c", metadata=["not", "a", "dict"])
  assert not os.path.exists(tmp_path / "a")
