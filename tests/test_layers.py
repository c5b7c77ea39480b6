"""The import layers of pyproject.toml are kept, every module has a layer, and no import hides in a function."""

import ast
import os
import subprocess
import sys
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Imports inside a function, on purpose: heavy third-party modules that only one rarely taken path needs.
# Keys: (file under the repository root, imported module). Anything else belongs at the top of its module.
LAZY_IMPORTS_ALLOWED = {
    # scikit-learn and scikit-image load their data sets only when a builder prepares its data set (once);
    # importing them on every `import deepvision.data` would cost seconds.
    ("deepvision/data/builders/digits.py", "sklearn.datasets"),
    ("deepvision/data/builders/faces.py", "skimage.data"),
    ("deepvision/data/builders/natural_images.py", "skimage.color"),
    ("deepvision/data/builders/natural_images.py", "skimage.data"),
    ("deepvision/data/builders/natural_images.py", "sklearn.datasets"),
    # tensorboardX (and protobuf under it) only for runs that write TensorBoard event files.
    ("deepvision/train/writers.py", "tensorboardX"),
}


def _contracts() -> dict:
  with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
    return tomllib.load(f)["tool"]["importlinter"]


def test_the_import_contracts_are_kept():
  # `lint-imports` of this interpreter's environment, run on the working tree (no cache: never stale).
  command = "from importlinter.cli import lint_imports_command; lint_imports_command()"
  result = subprocess.run([sys.executable, "-c", command, "--no-cache"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, check=False)
  assert result.returncode == 0, result.stdout + result.stderr
  count = len(_contracts()["contracts"])
  assert f"Contracts: {count} kept, 0 broken." in result.stdout, result.stdout


def test_every_module_of_the_library_has_a_layer():
  (layers,) = [c["layers"] for c in _contracts()["contracts"] if c["type"] == "layers"]
  placed = {name.strip() for layer in layers for name in layer.split("|")}
  package = os.path.join(ROOT, "deepvision")
  children = {f"deepvision.{name.removesuffix('.py')}" for name in os.listdir(package)
              if (name.endswith(".py") and name != "__init__.py")
              or os.path.exists(os.path.join(package, name, "__init__.py"))}
  assert children - placed == set(), "give these modules a layer in pyproject.toml [tool.importlinter]"
  assert placed - children - {"experiments"} == set(), "the layers name modules that do not exist"


def _function_imports(tree: ast.AST):
  """(line, imported module) of every import statement inside a function body of `tree`."""
  for node in ast.walk(tree):
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
      for inner in ast.walk(node):
        if isinstance(inner, ast.Import):
          yield from ((inner.lineno, alias.name) for alias in inner.names)
        elif isinstance(inner, ast.ImportFrom):
          yield inner.lineno, "." * inner.level + (inner.module or "")


def test_no_import_hides_in_a_function():
  found = set()
  for top in ("deepvision", "experiments"):
    for directory, _, files in os.walk(os.path.join(ROOT, top)):
      for name in sorted(f for f in files if f.endswith(".py")):
        path = os.path.join(directory, name)
        with open(path, encoding="utf-8") as f:
          tree = ast.parse(f.read(), path)
        relative = os.path.relpath(path, ROOT).replace(os.sep, "/")
        found |= {(relative, line, module) for line, module in _function_imports(tree)}
  hidden = sorted(f"{path}:{line}: {module}" for path, line, module in found
                  if (path, module) not in LAZY_IMPORTS_ALLOWED)
  assert not hidden, "imports inside functions (move them to the top of the module):\n" + "\n".join(hidden)
  unused = LAZY_IMPORTS_ALLOWED - {(path, module) for path, _, module in found}
  assert not unused, f"allowed lazy imports that no longer exist: {sorted(unused)}"
