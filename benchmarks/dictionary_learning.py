r"""Dictionary learning on 8×8 natural-image patches: deepvision against scikit-learn at equal wall time, the
atoms against PCA, and PSD's encoder against FISTA, in one run.

Data: the patches of `experiments/configs/sparse_coding_patches.py` (40,000 random 8×8 patches of 14
embedded photographs, each patch's mean removed, PCA-whitened to K = 52 components with ε = 0.01), the same
float arrays for both sides. Problem: 128 unit-norm atoms, λ = 0.5, the objective
mean_x ½‖x − Dz*‖² + λ‖z*‖₁ (scikit-learn's `MiniBatchDictionaryLearning(alpha=λ)` minimises
½‖X − ZD‖²_F + λ‖Z‖₁,₁ with atoms of norm ≤ 1: the same objective, summed instead of averaged).

1. Equal wall time. Both learners read the same sequence of mini-batches of 256 (numpy seed 0) for
   `--seconds` of wall time each: deepvision's is the library's training step (`SparseCodingTask.make_step`:
   FISTA codes, Mairal's statistics, one block-coordinate sweep), scanned over 8 batches per jitted call,
   compilation included in its time; scikit-learn's is `partial_fit` per batch (its online algorithm, codes
   by coordinate descent, `fit_algorithm='cd'`, and by LARS in a third run). A copy of each dictionary is
   taken at fixed times; afterwards every copy is scored by the same solver (FISTA to a relative change of
   1e-6) on 5,000 training patches and on the 4,000 test patches (a held-out photograph). The contestants
   take turns (rotating order over `--rounds`); the final objectives of the last round are also checked with
   scikit-learn's own lasso (LARS) on 500 patches.
2. Atoms: the mean localisation and orientation-selectivity index (`deepvision.estimators.receptive_fields`)
   of each side's final atoms in pixel space (de-whitened patterns, U_K diag(λ + ε)^½ d, as `filters.png`
   draws them; and `_whitened_pixels`, U_K d, the atom rotated back to pixels without de-whitening) and of
   the 52 PCA components (the columns of U_K, the same in both views).
3. PSD: `experiments/configs/psd_patches.py` (52 atoms on plain-whitened patches) and the same at 128 atoms
   on the ε = 0.01 patches, trained through `train_and_evaluate`; on the 4,000 test patches, the encoder's
   relative error ‖F(X) − Z*‖_F / ‖Z*‖_F against the lasso codes, and the time to extract features: the
   encoder against FISTA at the model's inference tolerance (1e-3) and at 1e-6, median of 7 calls after a
   warm-up, one jitted call per method on the whole batch.

Results go to benchmarks/results/dictionary_learning.json (with the machine, versions and commit).

Usage (about six minutes on 2 cores; --quick: about two):
  python benchmarks/dictionary_learning.py [--seconds 30] [--rounds 2] [--quick] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import sys
import tempfile
import time

import jax

import run_timing  # benchmarks/run_timing.py: machine(), versions(), git_state()

jax.config.update("jax_platforms", "cpu")  # The comparison is defined on CPU.

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import sklearn  # noqa: E402
from sklearn.decomposition import MiniBatchDictionaryLearning, SparseCoder  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
  sys.path.insert(0, str(ROOT))

from deepvision.estimators import receptive_fields  # noqa: E402
from deepvision.models.fista import fista, lasso_objective  # noqa: E402
from deepvision.pretrained import runs  # noqa: E402
from deepvision.train import loop  # noqa: E402
from deepvision.train import sparse_coding as sc  # noqa: E402
from experiments.configs import psd_patches, sparse_coding_patches  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
BATCH, K = 256, 8


def deepvision_run(task, x: np.ndarray, batches: np.ndarray, seconds: float, marks: list[float]) -> dict:
  """The library's step on `batches` (K per jitted call) for `seconds`; dictionaries at `marks`."""
  step = task.make_step(None)
  run = jax.jit(lambda state, b: jax.lax.scan(step, state, b)[0], donate_argnums=0)
  start = time.perf_counter()
  state = task.init_state()
  snapshots, steps, i = [], 0, 0
  while True:
    state = run(state, {"image": jnp.asarray(x[batches[i:i + K]])})
    jax.block_until_ready(state.params["D"])
    i, steps = i + K, steps + K
    elapsed = time.perf_counter() - start
    while marks[len(snapshots):] and elapsed >= marks[len(snapshots)]:
      snapshots.append({"seconds": elapsed, "steps": steps, "D": np.asarray(state.params["D"])})
    if len(snapshots) == len(marks):
      return {"snapshots": snapshots, "steps": steps, "seconds": elapsed}


def sklearn_run(algorithm: str, x: np.ndarray, batches: np.ndarray, seconds: float, marks: list[float]) -> dict:
  """scikit-learn's online learner, `partial_fit` per batch, for `seconds`; dictionaries at `marks`."""
  learner = MiniBatchDictionaryLearning(n_components=128, alpha=0.5, batch_size=BATCH, fit_algorithm=algorithm,
                                        random_state=0)
  start = time.perf_counter()
  snapshots, steps = [], 0
  while True:
    learner.partial_fit(x[batches[steps]])
    steps += 1
    elapsed = time.perf_counter() - start
    while marks[len(snapshots):] and elapsed >= marks[len(snapshots)]:
      snapshots.append({"seconds": elapsed, "steps": steps, "D": learner.components_.T.copy()})
    if len(snapshots) == len(marks):
      return {"snapshots": snapshots, "steps": steps, "seconds": elapsed}


def scorer(lam: float):
  """mean ½‖x − Dz*‖² + λ‖z*‖₁ with z* by FISTA to 1e-6 (atoms of norm ≤ 1 are scored as they are)."""
  score = jax.jit(lambda x, D: jnp.mean(lasso_objective(x, D, fista(x, D, lam, tol=1e-6, max_iter=5000)[0], lam)))
  return lambda x, D: float(score(jnp.asarray(x, jnp.float32), jnp.asarray(D, jnp.float32)))


def lars_objective(x: np.ndarray, D: np.ndarray, lam: float) -> float:
  z = SparseCoder(dictionary=D.T, transform_algorithm="lasso_lars", transform_alpha=lam).transform(x)
  return float(np.mean(0.5 * np.sum((x - z @ D.T) ** 2, axis=1) + lam * np.abs(z).sum(axis=1)))


def timed(fn, x, repeats: int = 7) -> float:
  jax.block_until_ready(fn(x))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(x))
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def psd_case(config, workdir: str) -> dict:
  record = loop.train_and_evaluate(config, workdir)
  task = sc.build_task(config)
  _, variables = runs.trained_model(config, workdir)
  params, model = variables["params"], task.model
  x = jnp.asarray(task.data.splits["test"].reshape(len(task.data.splits["test"]), -1))
  encoder = jax.jit(lambda x: model.apply({"params": params}, x, method="predict"))
  codes = jax.jit(lambda x: model.apply({"params": params}, x, method="lasso_codes"))  # the model's tol, 1e-3
  exact = jax.jit(lambda x: fista(x, params["D"], model.lam, tol=1e-6, max_iter=5000)[0])
  z = exact(x)
  relative = lambda p: float(jnp.linalg.norm(p - z) / jnp.linalg.norm(z))  # noqa: E731
  t_encoder, t_fista, t_exact = timed(encoder, x), timed(codes, x), timed(exact, x)
  return {"model": config.model, "model_kwargs": dict(config.model_kwargs), "whiten_epsilon": config.whiten.epsilon,
          "test_examples": int(x.shape[0]), "prediction_error_vs_lasso_codes": relative(encoder(x)),
          "record_test_prediction_error": record["test/prediction_error"],
          "fista_tol_1e-3_error_vs_tol_1e-6": relative(codes(x)),
          "fista_iterations_tol_1e-3": int(fista(x, params["D"], model.lam, tol=1e-3, max_iter=500)[1].iterations),
          "seconds_encoder": t_encoder, "seconds_fista_tol_1e-3": t_fista, "seconds_fista_tol_1e-6": t_exact,
          "speedup_vs_fista_tol_1e-3": t_fista / t_encoder, "speedup_vs_fista_tol_1e-6": t_exact / t_encoder,
          "atoms": {k.split("/")[1]: v for k, v in record.items() if k.startswith("atoms/")}}


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--seconds", type=float, default=30.0)
  parser.add_argument("--rounds", type=int, default=2)
  parser.add_argument("--quick", action="store_true")
  parser.add_argument("--out", default=str(RESULTS / "dictionary_learning.json"))
  args = parser.parse_args(argv)
  seconds = 8.0 if args.quick else args.seconds
  rounds = 1 if args.quick else args.rounds
  marks = [seconds * f for f in (0.25, 0.5, 1.0)]
  before = run_timing.machine()

  config = sparse_coding_patches.get_config()
  task = sc.build_task(config)
  lam = task.model.lam
  x = task.data.splits["train"].reshape(len(task.data.splits["train"]), -1).astype(np.float32)
  test = task.data.splits["test"].reshape(len(task.data.splits["test"]), -1).astype(np.float32)
  train_eval = x[np.random.default_rng(1).permutation(len(x))[:5000]]
  batches = np.random.default_rng(0).integers(0, len(x), (100_000, BATCH))
  x64 = x.astype(np.float64)
  score = scorer(lam)

  contestants = {"deepvision": lambda: deepvision_run(task, x, batches, seconds, marks),
                 "sklearn_cd": lambda: sklearn_run("cd", x64, batches, seconds, marks)}
  runs: dict[str, list] = {name: [] for name in contestants}
  order = list(contestants)
  for r in range(rounds):
    for name in order[r % 2:] + order[:r % 2]:
      result = contestants[name]()
      for snap in result["snapshots"]:
        snap["objective_train"] = score(train_eval, snap["D"])
        snap["objective_test"] = score(test, snap["D"])
      runs[name].append(result)
      print(name, [(round(s["seconds"], 1), s["steps"], round(s["objective_train"], 4))
                   for s in result["snapshots"]], flush=True)
  lars = sklearn_run("lars", x64, batches, seconds, marks)
  for snap in lars["snapshots"]:
    snap["objective_train"], snap["objective_test"] = score(train_eval, snap["D"]), score(test, snap["D"])
  runs["sklearn_lars"] = [lars]

  finals = {name: result[-1]["snapshots"][-1]["D"] for name, result in runs.items()}
  check = {name: lars_objective(train_eval[:500].astype(np.float64), D.astype(np.float64), lam)
           for name, D in finals.items()}
  whitener = task.data.whitener
  atoms = {name: receptive_fields.summary(whitener.filters_to_pixels(D, "patterns"), (8, 8))
           for name, D in finals.items()}
  atoms.update({f"{name}_whitened_pixels": receptive_fields.summary(whitener.components @ D, (8, 8))
                for name, D in finals.items()})
  atoms["pca_components"] = receptive_fields.summary(whitener.components, (8, 8))

  def table(name):
    return [{"round": i, "steps": [s["steps"] for s in r["snapshots"]],
             "seconds": [round(s["seconds"], 3) for s in r["snapshots"]],
             "objective_train": [s["objective_train"] for s in r["snapshots"]],
             "objective_test": [s["objective_test"] for s in r["snapshots"]]} for i, r in enumerate(runs[name])]

  final = {name: statistics.median(r["snapshots"][-1]["objective_train"] for r in runs[name]) for name in runs}
  psd = {}
  with tempfile.TemporaryDirectory() as tmp:
    complete = psd_patches.get_config()
    overcomplete = loop.override_config(psd_patches.get_config(), {"model_kwargs.n_atoms": 128, "whiten.epsilon": 0.01})
    if args.quick:
      complete = loop.override_config(complete, {"num_epochs": 1, "figures": False})
      overcomplete = loop.override_config(overcomplete, {"num_epochs": 1, "figures": False})
    psd["complete_52_atoms"] = psd_case(complete, f"{tmp}/complete")
    psd["overcomplete_128_atoms"] = psd_case(overcomplete, f"{tmp}/overcomplete")
    print(json.dumps(psd, indent=1), flush=True)

  report = {
      "benchmark": "dictionary_learning", "quick": args.quick,
      "problem": {"patches": "8x8 dv_natural_images, DC removed, PCA-whitened (variance 0.99, epsilon 0.01)",
                  "n_visible": int(x.shape[1]), "n_atoms": 128, "lambda": lam, "batch_size": BATCH,
                  "train_examples": int(len(x)), "objective": "mean over patches of 0.5|x - Dz*|^2 + lambda|z*|_1, "
                  "z* by FISTA to relative change 1e-6 for every dictionary",
                  "objective_train_on": "5000 training patches", "objective_test_on": "4000 patches of a held-out photograph"},
      "budget_seconds": seconds, "marks_seconds": marks, "rounds": rounds,
      "equal_time": {name: table(name) for name in runs},
      "final_objective_train_median": final,
      "deepvision_minus_sklearn_cd": final["deepvision"] - final["sklearn_cd"],
      "deepvision_lower_than_sklearn": all(final["deepvision"] < final[n] for n in ("sklearn_cd", "sklearn_lars")),
      "lars_check_500_patches": check,
      "atoms_pixel_space": atoms,
      "psd": psd,
      "sklearn": sklearn.__version__, "versions": run_timing.versions(),
      "machine_before": before, "machine_after": run_timing.machine(), "git": run_timing.git_state(),
      "notes": "deepvision's time includes compilation; scikit-learn ran with its default BLAS threads. "
               "deepvision starts from 128 random training patches, scikit-learn from its own initialisation "
               "(an SVD of the first batch).",
  }
  print(json.dumps({k: report[k] for k in ("final_objective_train_median", "atoms_pixel_space")}, indent=1))
  out = pathlib.Path(args.out)
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
  main()
