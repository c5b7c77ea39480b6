"""The Python blocks of the docs run as written and show what they claim.

Every ```python block of `DOCS` is executed in a fresh namespace, in this process, from the test's temporary
directory (so the `runs/...` paths a block writes land there). `CHECKS` holds, for each block the docs have
today, a function that asserts what the block says on the namespace it leaves and on what it printed; a block
added later must at least run (its failure fails `test_python_block_runs_and_shows_what_it_claims`), and a
check whose block has gone fails `test_every_check_has_its_block`.

The block that trains the default experiment runs its `:smoke` variant here: the full run took 63 s under
`nice` on the 2-core CPU (the README's figure is about a minute), and its accuracy is the slow tier's
`tests/test_experiments.py::test_default_experiment_reaches_target_accuracy_over_three_seeds`.
"""

import contextlib
import io
import json
import os
import re

import numpy as np
import pytest

from deepvision import pretrained
from experiments.configs import lcn_convnet_digits

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = ("README.md", "BUILD.md", os.path.join("notebooks", "README.md"))
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)
# Fence tags that would hide Python from this test: such code must be tagged `python` (and run) or be prose.
PYTHON_LIKE = {"py", "py3", "python3", "pycon", "ipython", "ipython3"}


def fenced_blocks() -> list[tuple[str, int, str, str]]:
  """(doc, line of the block's first code line, fence tag, code) of every fenced block of `DOCS`."""
  blocks = []
  for doc in DOCS:
    with open(os.path.join(ROOT, doc), encoding="utf-8") as f:
      text = f.read()
    for match in FENCE.finditer(text):
      line = text.count("\n", 0, match.start()) + 2
      blocks.append((doc, line, match.group(1).strip(), match.group(2)))
  return blocks


def python_blocks() -> list[tuple[str, int, str]]:
  return [(doc, line, code) for doc, line, tag, code in fenced_blocks() if tag == "python"]


# ----------------------------------------------------------------------------- what each block claims


def _train_and_evaluate(ns, printed, code, workdir):
  """`train_and_evaluate(config, "runs/lcn")` writes the run there; its record is metrics.jsonl's last line."""
  run = workdir / "runs" / "lcn"
  for name in ("metrics.jsonl", "config.json", "checkpoints", "curves.png", "filters.png"):
    assert (run / name).exists(), f"the README's run writes {name}"
  with open(run / "metrics.jsonl", encoding="utf-8") as f:
    records = [json.loads(line) for line in f]
  record = ns["record"]
  assert record["final"] is True and records[-1].keys() == record.keys()
  assert records[-1] == pytest.approx(record)
  assert printed.splitlines()[-1] == str(record["test/accuracy"])
  # The README's table: val/* keys once per epoch only with an eval_split; the default config has none.
  assert lcn_convnet_digits.get_config().eval_split == ""
  smoke = lcn_convnet_digits.get_config("smoke")
  val = [r for r in records if any(k.startswith("val/") for k in r)]
  assert smoke.eval_split and len(val) == smoke.num_epochs
  assert all(set(r) >= {"train/loss", "train/accuracy", "learning_rate"} for r in records[:-1] if r not in val)


def _rbm_from_python(ns, printed, code, workdir):
  """Exact log Z of the 64 × 12 RBM, its AIS estimate with bounds, Gibbs chains, pseudo-likelihoods."""
  exact, estimate = float(ns["log_z"]), ns["estimate"]
  assert estimate.log_z_lower <= exact <= estimate.log_z_upper, (exact, estimate)
  assert abs(estimate.log_z - exact) < 0.1
  digits = ns["digits"]
  assert digits.shape == (1077, 64) and digits.min() >= 0 and digits.max() <= 1
  assert ns["state"].position.shape == (10, 64) and len(ns["infos"].mean_hidden_prob) == 1000
  pl = np.asarray(ns["pl"])
  assert pl.shape == (1077,) and np.all(pl < 0)


def _model_zoo(ns, printed, code, workdir):
  """A zoo module's logits and intermediates; the shipped classifier's 99.17% on test; mcRBM features of raw
  8×8 patches through the shipped whitening; both inputs in the pretrained model card."""
  assert ns["intermediates"].keys() >= {"stage1/conv", "stage1/lcn", "stage3/pool"}
  assert ns["logits"].shape == (360, 10)
  metric = pretrained.manifest("lcn_convnet_digits")["metric"]
  assert f"{100 * metric['value']:.2f}% on test" in code, "the block's comment quotes the recorded accuracy"
  assert abs(float(ns["accuracy"]) - metric["value"]) <= metric["tolerance"]
  assert ns["raw"].shape == (100, 8, 8, 1) and ns["whitened"].shape == (100, 52)
  features = np.asarray(ns["features"])
  assert features.shape == (100, 48) and np.all((features >= 0) & (features <= 1))
  lenet = re.search(r"^lenet5_1998 \(.*?^total +([\d,]+)$", printed, re.MULTILINE | re.DOTALL)
  assert lenet and lenet.group(1) == "60,000", "zoo.describe('lenet5_1998'): LeCun's 60,000 parameters"
  assert "raw input: 8×8×1 patches of dv_natural_images" in printed and "model input: 52 per example" in printed


def _notebook_parameters(ns, printed, code, workdir):
  """The notebooks' parameter cell: the small size, a temporary work dir, seed 0."""
  assert (ns["SMALL"], ns["WORKDIR"], ns["SEED"]) == (True, "", 0)


# A line that identifies the block -> (its check, substitutions made before running it here).
CHECKS = {
    'record = train_and_evaluate(lcn_convnet_digits.get_config(), "runs/lcn")': (
        _train_and_evaluate,
        {"lcn_convnet_digits.get_config()": 'lcn_convnet_digits.get_config("smoke")'}),
    "log_z = partition.log_partition(rbm, variables)": (_rbm_from_python, {}),
    'module, variables = pretrained.load("lcn_convnet_digits")': (_model_zoo, {}),
    "SMALL = True": (_notebook_parameters, {}),
}


def _check_of(code: str):
  found = [key for key in CHECKS if key in code]
  assert len(found) <= 1, f"the block matches several checks: {found}"
  return CHECKS[found[0]] if found else (None, {})


# ----------------------------------------------------------------------------- tests


def test_docs_have_python_blocks_and_hide_none():
  assert {doc for doc, _, _ in python_blocks()} >= {"README.md"}
  hidden = [(doc, line, tag) for doc, line, tag, _ in fenced_blocks() if tag.lower() in PYTHON_LIKE]
  assert not hidden, f"tag these blocks ```python so that they run here: {hidden}"


def test_every_check_has_its_block():
  codes = [code for _, _, code in python_blocks()]
  for key in CHECKS:
    assert sum(key in code for code in codes) == 1, f"no single Python block of the docs holds {key!r}"


@pytest.mark.parametrize("doc, line, code", [pytest.param(*block, id=f"{block[0]}:{block[1]}")
                                              for block in python_blocks()])
def test_python_block_runs_and_shows_what_it_claims(doc, line, code, tmp_path, monkeypatch):
  check, substitutions = _check_of(code)
  source = code
  for old, new in substitutions.items():
    assert old in source, f"{doc}:{line}: the test replaces {old!r}, which the block no longer holds"
    source = source.replace(old, new)
  monkeypatch.chdir(tmp_path)
  namespace = {"__name__": "__readme__"}
  printed = io.StringIO()
  with contextlib.redirect_stdout(printed):
    exec(compile(source, f"{doc}:{line}", "exec"), namespace)  # noqa: S102  the docs' own code
  if check is not None:
    check(namespace, printed.getvalue(), code, tmp_path)
