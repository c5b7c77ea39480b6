"""Models hold energies and conditionals; the procedures that sample them live in deepvision.samplers.

The layer rule (models sit below samplers) is checked here by reading every module of
deepvision/models with `ast`: none may import deepvision.samplers, directly or relatively.
"""

import ast
import pathlib

import deepvision.models

MODELS = pathlib.Path(deepvision.models.__file__).parent


def _imported_modules(path: pathlib.Path) -> set[str]:
  names = set()
  for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
    if isinstance(node, ast.Import):
      names.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
      if node.level:  # relative: resolve against the deepvision.models package
        parts = ["deepvision", "models"][:max(0, 3 - node.level)] if node.level <= 2 else []
        base = ".".join(parts + ([node.module] if node.module else []))
      else:
        base = node.module or ""
      names.add(base)
      names.update(f"{base}.{alias.name}" for alias in node.names)
  return names


def test_no_model_module_imports_the_samplers():
  modules = sorted(MODELS.rglob("*.py"))
  assert len(modules) >= 5, modules
  offenders = {path.name: sorted(name for name in _imported_modules(path)
                                 if name == "deepvision.samplers" or name.startswith("deepvision.samplers."))
               for path in modules}
  assert not {name: found for name, found in offenders.items() if found}, offenders


def test_the_scan_sees_sampler_imports(tmp_path):
  for source in ("from deepvision.samplers import hmc\n", "import deepvision.samplers.gibbs\n",
                 "from ..samplers.base import run_chain\n", "from deepvision import samplers\n"):
    path = tmp_path / "module.py"
    path.write_text(source)
    names = _imported_modules(path)
    assert any(n == "deepvision.samplers" or n.startswith("deepvision.samplers.") for n in names), source
