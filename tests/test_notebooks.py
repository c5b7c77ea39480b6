"""The Colab notebooks: paired with their scripts, committed without outputs, and run headless when small.

Each `notebooks/NAME.ipynb` is paired by jupytext (`notebooks/jupytext.toml`) with the percent script
`notebooks/NAME.py`, the source that is edited; the committed notebook must hold the script's cells.

Every notebook is executed with nbclient in a `python3` (ipykernel) kernel started in the repository root,
its parameter cell as committed (`SMALL = True`: the `:smoke` configs). The kernel inherits the test's
environment: single-threaded XLA:CPU (conftest), the session's data dir (`DEEPVISION_DATA_DIR`), the
session's persistent compilation cache, and a temporary directory of the test as `TMPDIR`, where the
notebooks' default work dirs go (a `tempfile.TemporaryDirectory` that the notebook's last cell removes).
"""

import os
import re
import time
import tomllib

import jax
import jupytext
import nbformat
import pytest
from nbclient import NotebookClient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK_DIR = os.path.join(ROOT, "notebooks")

# Notebook -> figures it draws (image/png outputs) at its small size.
FIGURES = {
    "01_quickstart.ipynb": 3,  # learning curves, filters, predictions
    "02_tricks_of_the_trade.ipynb": 6,  # gradient check, lr search, overfit, 2 unit-statistics pictures, doctor
    "03_rbm_dbn.ipynb": 6,  # curves, filters, Gibbs chains, AIS, DBN samples, DBN features
    "04_gated_mrf.ipynb": 5,  # log-likelihoods, filters C, samples, inpainted faces, occlusion
    "05_feature_learning.ipynb": 3,  # filters of four learners, read-out accuracies, extraction times
}
# Notebooks whose execution runs in the slow tier (`-m slow`) instead of the default one.
SLOW_NOTEBOOKS: frozenset[str] = frozenset()
# Time limit of each notebook, in seconds (also the limit of any one cell). Measured with a cold compilation
# cache on a 2-core CPU shared with other jobs: 29, 42, 49 and 64 s (kernel CPU time 18, 21, 28 and 47 s);
# with programs already in the cache, 14-24 s each.
TIME_LIMIT_S = 300


def test_every_notebook_is_tested():
  on_disk = sorted(f for f in os.listdir(NOTEBOOK_DIR) if f.endswith(".ipynb"))
  assert on_disk == sorted(FIGURES)


def test_every_notebook_has_a_script_and_every_script_a_notebook():
  notebooks = sorted(f.removesuffix(".ipynb") for f in os.listdir(NOTEBOOK_DIR) if f.endswith(".ipynb"))
  scripts = sorted(f.removesuffix(".py") for f in os.listdir(NOTEBOOK_DIR) if f.endswith(".py"))
  assert scripts == notebooks, "each notebooks/NAME.ipynb pairs with notebooks/NAME.py, and only those"
  with open(os.path.join(NOTEBOOK_DIR, "jupytext.toml"), "rb") as f:
    assert tomllib.load(f)["formats"] == "ipynb,py:percent"


def _read(name: str) -> nbformat.NotebookNode:
  return nbformat.read(os.path.join(NOTEBOOK_DIR, name), as_version=4)


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_committed_without_outputs_and_colab_ready(name):
  notebook = _read(name)
  nbformat.validate(notebook)
  code = [c for c in notebook.cells if c.cell_type == "code"]
  for i, cell in enumerate(code):
    assert cell.outputs == [] and cell.execution_count is None, f"{name}: code cell {i} has outputs"
  assert all("attachments" not in c for c in notebook.cells)
  # The first code cell installs deepvision on Colab only.
  assert "google.colab" in code[0].source and "git+https://github.com/deepvision/deepvision" in code[0].source
  # Exactly one papermill-style parameter cell, selecting the small size.
  tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
  assert len(tagged) == 1, f"{name}: {len(tagged)} cells tagged 'parameters'"
  assert "SMALL = True" in tagged[0].source and 'WORKDIR = ""' in tagged[0].source
  assert notebook.metadata.kernelspec.name == "python3"


def _cells(notebook: nbformat.NotebookNode) -> list[tuple[str, str, dict]]:
  """What pairing keeps of each cell: its type, source and metadata (tags), not ids or outputs."""
  return [(c.cell_type, c.source, dict(c.metadata)) for c in notebook.cells]


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_committed_notebook_matches_its_script(name):
  path = os.path.join(NOTEBOOK_DIR, name.removesuffix(".ipynb") + ".py")
  with open(path, encoding="utf-8") as f:
    text = f.read()
  compile(text, path, "exec")  # the script is valid Python (markdown cells are comments)
  script = jupytext.reads(text, fmt="py:percent")
  hint = f"{name} differs from its script: run jupytext --sync {os.path.relpath(path, ROOT)}"
  assert _cells(script) == _cells(_read(name)), hint
  assert script.metadata.kernelspec == _read(name).metadata.kernelspec, hint


def _png_outputs(notebook: nbformat.NotebookNode) -> int:
  return sum("image/png" in output.get("data", {}) for cell in notebook.cells if cell.cell_type == "code"
             for output in cell.outputs)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_NOTEBOOKS else n
                                  for n in sorted(FIGURES)])
def test_runs_headless_at_small_size(name, tmp_path, monkeypatch):
  kernel_tmp = tmp_path / "tmp"
  kernel_tmp.mkdir()
  monkeypatch.setenv("TMPDIR", str(kernel_tmp))  # the notebooks' work dirs (tempfile.TemporaryDirectory)
  cache = jax.config.jax_compilation_cache_dir
  if cache:  # the session's persistent cache (conftest): programs other tests compiled load from it
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", cache)
    monkeypatch.setenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    monkeypatch.setenv("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
  notebook = _read(name)
  client = NotebookClient(notebook, timeout=TIME_LIMIT_S, kernel_name="python3",
                          resources={"metadata": {"path": ROOT}})
  start = time.perf_counter()
  client.execute()  # raises CellExecutionError, with the cell and its traceback, on any error
  elapsed = time.perf_counter() - start
  print(f"{name}: executed in {elapsed:.1f} s")
  assert elapsed < TIME_LIMIT_S, f"{name} took {elapsed:.0f} s, over its {TIME_LIMIT_S} s"

  errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
  assert not errors
  assert all(c.execution_count is not None for c in notebook.cells if c.cell_type == "code")
  assert _png_outputs(notebook) >= FIGURES[name], f"{name}: {_png_outputs(notebook)} figures"
  # The default work dir was a temporary directory under TMPDIR, and the notebook removed it at the end.
  printed = "".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.outputs
                    if o.output_type == "stream")
  workdir = re.search(r"^work dir: ([^;\s]+)", printed, re.MULTILINE)
  assert workdir, f"{name} does not print its work dir"
  assert os.path.dirname(workdir.group(1)) == str(kernel_tmp), "the notebook wrote its work dir elsewhere"
  assert not os.path.exists(workdir.group(1)), "the notebook left its temporary work dir behind"
  # tensorflow_datasets leaves one empty `tmp…tfds` directory per data set it prepares (its builder's
  # DatasetInfo.initialize_from_bucket): not the notebook's, and empty. Nothing else may remain.
  left = [e for e in os.listdir(kernel_tmp) if not (e.endswith("tfds") and not os.listdir(kernel_tmp / e))]
  assert left == [], f"{name} left {left} in its TMPDIR"
