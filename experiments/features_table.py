r"""The README's feature-learning tables, generated from the committed records.

  python -m experiments.features_table            # print
  python -m experiments.features_table --write    # replace the tables in README.md
  python -m experiments.features_table --check    # exit 1 if README.md's tables differ from the records

"Which feature learner?": one table per record in `results/compare_features/` (`experiments.compare_features`,
one data set each): per learner the test accuracy of the linear read-out with every training label and with
100, mean ± std over the seeds, the training run's wall time, the extraction time per 1,000 images, and a
sentence comparing it with raw pixels: a difference counts as beyond noise when it exceeds twice its standard
error from the seeds and from the size of the test set (`versus_pixels`).

"Multi-task learning and sparse hidden units": `results/multitask_digits.json`
(`experiments.multitask_ablation`: the convnet with and without its reconstruction loss, paired over seeds)
and `results/ablation_sparsity.json` (`experiments.ablate` and `experiments.sparsity_table`). The test suite
checks that README.md holds these tables.
"""

from __future__ import annotations

import json
import math
import pathlib

from deepvision.diagnostics import ablation
from experiments import compare_features, readme_tables, sparsity_table

ROOT = pathlib.Path(__file__).resolve().parent.parent
RECORDS = ROOT / "results" / "compare_features"
MULTITASK_RECORD = ROOT / "results" / "multitask_digits.json"
SPARSITY_RECORD = ROOT / "results" / "ablation_sparsity.json"
DICTIONARY_RECORD = ROOT / "benchmarks" / "results" / "dictionary_learning.json"
DICTIONARY_COMMAND = "python benchmarks/dictionary_learning.py"
PSD_TARGET = {"max_relative_error": 0.15, "min_speedup": 50.0}  # the encoder within 15%, ≥ 50× FISTA




def _accuracy(entry: dict) -> str:
  return f"{100 * entry['mean']:.1f} ± {100 * entry['std']:.1f}"


def versus_pixels(row: dict, pixels: dict, key: str, seeds: int) -> str:
  """'+1.2 (beyond noise)', '−0.4 (within noise)': the row's mean accuracy minus the pixels', in points.

  Beyond noise: |difference| > 2 σ, σ² = (s₁² + s₂²) / n over the n seeds plus each accuracy's binomial
  variance p(1 − p) / N on the N test examples (the test set's own sampling noise, counted as if the two
  were scored on independent test sets: conservative)."""
  difference = 100 * (row[key]["mean"] - pixels[key]["mean"])
  examples = row["per_seed"][0]["test_examples"]
  variance = sum(s[key]["std"] ** 2 / seeds + s[key]["mean"] * (1 - s[key]["mean"]) / examples
                 for s in (row, pixels))
  verdict = "beyond noise" if abs(difference) > 2 * 100 * math.sqrt(variance) else "within noise"
  return f"{difference:+.1f} ({verdict})".replace("-", "−")


def _rank(name: str) -> int:
  return compare_features.ORDER.index(name) if name in compare_features.ORDER else len(compare_features.ORDER)


def table(record: dict) -> str:
  """The markdown table of one data set's record."""
  budget = f"{record['label_budget']}_labels"
  rows = record["learners"]
  pixels = rows.get("pixels")
  header = [("| features | dim | accuracy %, all labels | accuracy %, 100 labels | learning s (median of seeds) | "
             "extraction s / 1,000 | against raw pixels, points (all / 100 labels) |"),
            "|---|---|---|---|---|---|---|"]
  lines = []
  for name, row in sorted(rows.items(), key=lambda item: _rank(item[0])):
    against = "—" if pixels is None or name == "pixels" else (
        f"{versus_pixels(row, pixels, 'all_labels', record['seeds'])} / "
        f"{versus_pixels(row, pixels, budget, record['seeds'])}")
    lines.append(f"| `{name}`: {row['summary']} | {row['feature_dim']} | {_accuracy(row['all_labels'])} | "
                 f"{_accuracy(row[budget])} | {row['learn_seconds']:.1f} | {row['extract_seconds_per_1000']:.3f} | "
                 f"{against} |")
  return "\n".join(header + lines)


def tables() -> str:
  """Every record's table, each after a line saying what produced it."""
  parts = []
  for path in sorted(RECORDS.glob("*.json")):
    with open(path, encoding="utf-8") as f:
      record = json.load(f)
    parts += [(f"**`{record['dataset']}`** (train / validation / test: {', '.join(record['splits'])}; "
               f"{record['seeds']} seeds; {record['machine']['cores']} cores of {record['machine']['cpu_model']}, "
               f"{record['date']}; `{record['command']}`; record `{path.relative_to(ROOT)}`):"), "",
              table(record), ""]
  return "\n".join(parts).rstrip()


def multitask_table(record: dict) -> str:
  """Per label budget: accuracy with and without the reconstruction loss, the paired difference and its t."""
  lines = [("| labels | with reconstruction (λ, decoded map) | without | paired difference, points (± s.e.) | "
            "t (5% point) | beats seed noise? |"), "|---|---|---|---|---|---|"]
  for labels, row in record["labels"].items():
    d = row["difference"]
    lines.append(f"| {labels} | {_accuracy(row['with'])} (λ = {row['reconstruction_weight']:g}, `{row['stage']}`) | "
                 f"{_accuracy(row['without'])} | {_signed(100 * d['mean'])} ± {100 * d['standard_error']:.2f} | "
                 f"{_signed(d['t'])} ({d['t_critical_5pct']:g}) | {'yes' if d['beats_seed_noise'] else 'no'} |")
  return "\n".join(lines)


def _signed(value: float) -> str:
  return f"{value:+.2f}".replace("-", "−")


def multitask_tables() -> str:
  """The multi-task table and the hidden-unit sparsity table, each after the command that produced it."""
  with open(MULTITASK_RECORD, encoding="utf-8") as f:
    multitask = json.load(f)
  with open(SPARSITY_RECORD, encoding="utf-8") as f:
    sparsity = json.load(f)
  seeds = len(next(iter(multitask["labels"].values()))["with"]["test_accuracy"])
  return "\n".join([
      (f"Test accuracy % on `dv_digits` (mean ± std over {seeds} seeds, each seed the same labelled digits and "
       f"initialisation with and without; `{multitask['command']}`, record `{MULTITASK_RECORD.relative_to(ROOT)}`):"),
      "", multitask_table(multitask), "",
      ("The default experiment with an L1 penalty on its rectified maps (`sparse_activations`), activations "
       "measured on the test split (`python -m experiments.ablate --config=lcn_convnet_digits "
       "--variants=baseline,sparse_activations --seeds=3`, then `python -m experiments.sparsity_table`; record "
       f"`{SPARSITY_RECORD.relative_to(ROOT)}`):"),
      "", sparsity_table.table(sparsity, ablation.SPARSE_STAGES).rstrip()])


def dictionary_tables(record: dict) -> str:
  """Online dictionary learning against scikit-learn at equal time, and the PSD encoders against FISTA."""
  final, atoms, problem = record["final_objective_train_median"], record["atoms_pixel_space"], record["problem"]
  peers = [name for name in ("sklearn_cd", "sklearn_lars") if name in final]
  index = lambda name: f"{atoms[name]['localisation']:.2f} / {atoms[name]['orientation_index']:.2f}"
  lines = [(f"`{record.get('command', DICTIONARY_COMMAND)}` ({problem['n_atoms']} atoms of {problem['n_visible']} "
            f"whitened components, λ = {problem['lambda']:g}; record `{DICTIONARY_RECORD.relative_to(ROOT)}`):"), "",
           "| | deepvision | " + " | ".join(f"scikit-learn `MiniBatchDictionaryLearning` ({p.split('_')[1]})"
                                           for p in peers) + " |",
           "|---|---|" + "---|" * len(peers),
           (f"| mean objective on {problem['objective_train_on']} after {record['budget_seconds']:g} s (median "
            f"of {record['rounds']} rounds) | **{final['deepvision']:.3f}** | "
            + " | ".join(f"{final[p]:.3f}" for p in peers) + " |"),
           ("| atoms' localisation / orientation index (pixel space) | " + index("deepvision") + " | "
            + " | ".join(index(p) for p in peers) + " |"),
           *([] if "pca_components" not in atoms else
             ["", f"PCA components of the same patches: localisation / orientation index {index('pca_components')}."]),
           "", (f"PSD encoders against FISTA on {next(iter(record['psd'].values()))['test_examples']:,} held-out "
                "patches (target: prediction error ≤ 15% of the lasso codes' norm and ≥ 50× faster than FISTA):"),
           "", ("| encoder | error against the lasso codes | encoder s | FISTA to 1e-3 s (iterations) | "
                "speed-up vs FISTA 1e-3 / 1e-6 | target |"), "|---|---|---|---|---|---|"]
  for name, run in record["psd"].items():
    met = (run["prediction_error_vs_lasso_codes"] <= PSD_TARGET["max_relative_error"]
           and run["speedup_vs_fista_tol_1e-3"] >= PSD_TARGET["min_speedup"])
    lines.append(f"| `{name}` | {100 * run['prediction_error_vs_lasso_codes']:.1f}% | {run['seconds_encoder']:.4f} | "
                 f"{run['seconds_fista_tol_1e-3']:.4f} ({run['fista_iterations_tol_1e-3']}) | "
                 f"{run['speedup_vs_fista_tol_1e-3']:.0f}× / {run['speedup_vs_fista_tol_1e-6']:.0f}× | "
                 f"{'met' if met else '**not met**'} |")
  return "\n".join(lines)


TABLES = (readme_tables.Table("feature-learners", "README.md", ("results/compare_features",), tables),
          readme_tables.Table("multitask", "README.md",
                              ("results/multitask_digits.json", "results/ablation_sparsity.json"), multitask_tables),
          readme_tables.Table("dictionary-learning", "README.md", (str(DICTIONARY_RECORD.relative_to(ROOT)),),
                              lambda: dictionary_tables(json.loads(DICTIONARY_RECORD.read_text(encoding="utf-8")))))


if __name__ == "__main__":
  readme_tables.run_cli(TABLES)
