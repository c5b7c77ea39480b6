"""The launchers' first contact: `--config` as a path or a bare name, one-line exit-2 errors, `--help`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from experiments import config_catalog

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(module, *args):
  return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True,
                        timeout=120, check=False)


def test_resolve_takes_a_path_or_a_bare_name_with_its_argument():
  path = config_catalog.path_of("rbm_digits")
  assert config_catalog.resolve("rbm_digits") == path
  assert config_catalog.resolve("rbm_digits:smoke") == path + ":smoke"
  assert config_catalog.resolve("rbm_digits.py:smoke") == path + ":smoke"
  assert os.path.abspath(os.path.join(ROOT, config_catalog.resolve("experiments/configs/rbm_digits.py"))) == path
  assert config_catalog.resolve(path + ":smoke") == path + ":smoke"  # an existing file stays as given
  with pytest.raises(config_catalog.UnknownConfigError, match=r"--config=rbm_digit: no such config; configs"):
    config_catalog.resolve("rbm_digit")
  with pytest.raises(config_catalog.UnknownConfigError, match=r"no such file; .*lcn_convnet_digits"):
    config_catalog.resolve("experiments/configs/lcn_convnet_digit.py")
  with pytest.raises(config_catalog.UnknownConfigError):
    config_catalog.resolve("elsewhere/rbm_digits.py")  # a name in another folder is not the shipped config


def test_every_config_states_its_summary_and_cost():
  assert "lcn_convnet_digits" in config_catalog.names() and "common" not in config_catalog.names()
  for name in config_catalog.names():
    entry = config_catalog.summary(name)
    assert entry.summary and entry.cost, (name, entry)
    assert "smoke" in entry.arguments, name
  assert config_catalog.summary("gmrf_digits").arguments == ("mpot", "smoke")


def test_describe_lists_every_field_with_its_value():
  text = config_catalog.describe("rbm_digits", "smoke")
  fields = config_catalog.flat_fields(config_catalog.load("rbm_digits", "smoke"))
  assert f"fields ({len(fields)};" in text
  assert "  contrastive.method" in text and "'pcd'" in text


def test_bad_config_paths_names_and_arguments_exit_2_with_one_line(tmp_path):
  """The same resolution in every launcher: nothing written, the first line says what is valid."""
  cases = [
      ("experiments.main", ["--config=experiments/configs/lcn_convnet_digit.py", f"--workdir={tmp_path}/a"],
       "error: --config=experiments/configs/lcn_convnet_digit.py: no such file; configs"),
      ("experiments.doctor", ["--config=lcn_convnet_digit", f"--workdir={tmp_path}/b"],
       "error: --config=lcn_convnet_digit: no such config; configs"),
      ("experiments.ablate", ["--config=lcn_convnet_digits:smok", f"--workdir={tmp_path}/c"],
       "error: unknown argument 'smok' for config lcn_convnet_digits; valid: '' or 'smoke'"),
      # A bare name resolves: the error now comes from the config's own check of a bad value.
      ("experiments.main", ["--config=lcn_convnet_digits:smoke", f"--workdir={tmp_path}/d",
                            "--config.optimiser.learning_rate=0.1"],
       "error: unknown config field 'optimiser'; Did you mean \"optimizer\""),
  ]
  for module, args, first_line in cases:
    result = _run(module, *args)
    assert result.returncode == 2, (module, args, result.stderr)
    assert result.stderr.splitlines()[0].startswith(first_line), result.stderr
    assert "Traceback" not in result.stderr
  assert "valid fields here: activation_sparsity, allow_config_change" in result.stderr  # the typo'd block's siblings
  assert os.listdir(tmp_path) == []


def test_help_shows_the_config_flag_and_the_configs_and_exits_0():
  result = _run("experiments.main", "--help")
  assert result.returncode == 0, result.stderr
  assert "--config:" in result.stdout and "--workdir:" in result.stdout
  assert "rbm_digits" in result.stdout and "sdae_digits" in result.stdout
  listing = _run("experiments.configs")
  assert listing.returncode == 0, listing.stderr
  for name in config_catalog.names():
    assert f"\n{name}  [:" in listing.stdout, name
  assert "cost on 2 CPU cores: about a minute" in listing.stdout


def test_the_launcher_keeps_compiled_programs_in_a_persistent_cache(tmp_path):
  """A repeated run reads its programs from `$XDG_CACHE_HOME/deepvision/xla`, compiles nothing new and ends
  bit for bit as the first."""
  env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}  # not the test session's cache
  env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
  cache = tmp_path / "cache" / "deepvision" / "xla"

  def run(name):
    done = subprocess.run([sys.executable, "-m", "experiments.main", "--config=lcn_convnet_digits:smoke",
                           f"--workdir={tmp_path / name}", "--config.figures=False"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    with open(tmp_path / name / "metrics.jsonl") as f:
      return [{k: v for k, v in json.loads(line).items() if k != "steps_per_second"} for line in f]

  first = run("first")
  entries = set(os.listdir(cache))
  assert entries
  assert run("again") == first
  assert set(os.listdir(cache)) == entries  # nothing compiled anew


def test_the_cache_directory_follows_the_environment(monkeypatch, tmp_path):
  """`$JAX_COMPILATION_CACHE_DIR` wins, else `$XDG_CACHE_HOME/deepvision/xla`; `DEEPVISION_COMPILATION_CACHE=0`
  leaves JAX's settings alone."""
  import jax  # pylint: disable=g-import-not-at-top

  from experiments import cli  # pylint: disable=g-import-not-at-top
  updates = []
  monkeypatch.setattr(jax.config, "update", lambda name, value: updates.append((name, value)))
  assert cli.use_compilation_cache({"DEEPVISION_COMPILATION_CACHE": "0"}) is None and not updates
  assert cli.use_compilation_cache({"XDG_CACHE_HOME": str(tmp_path)}) == str(tmp_path / "deepvision" / "xla")
  assert ("jax_compilation_cache_dir", str(tmp_path / "deepvision" / "xla")) in updates
  updates.clear()
  assert cli.use_compilation_cache({"JAX_COMPILATION_CACHE_DIR": "/x", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS":
                                    "1"}) == "/x"
  assert updates == []  # JAX reads its own variables
