r"""The sparsity ablation's record: test error and the measured sparsity of the hidden units, with / without.

  python -m experiments.ablate --config=lcn_convnet_digits --variants=baseline,sparse_activations \
      --seeds=3 --workdir=runs/ablation_sparsity
  python -m experiments.sparsity_table --workdir=runs/ablation_sparsity --out=results/ablation_sparsity

Reads the ablation's `ablation.json` and every run's final checkpoint, measures on the test split (evaluation
mode, no dropout) the mean activation and the fraction of exactly-zero units of the maps the penalty acts on
(`deepvision.diagnostics.ablation.SPARSE_STAGES`), and writes OUT.json (the ablation's rows, each with
`sparsity`: per map, the per-seed values and their mean) and OUT.md (the table). Seconds on a 2-core CPU.
"""

from __future__ import annotations

import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from deepvision.data import datasets, pipeline
from deepvision.diagnostics import ablation
from deepvision.pretrained import runs
from deepvision.train import supervised

FLAGS = flags.FLAGS


def measure(run_dir: str, stages: tuple[str, ...], split: str) -> dict[str, dict[str, float]]:
  """{map: {'mean': mean activation, 'zeros': fraction exactly zero}} of a finished run on `split`."""
  config = runs.read_run_config(run_dir)
  module, variables = runs.trained_model(config, run_dir)
  source = datasets.get_source(config.dataset, split, data_dir=config.get("data_dir") or None, in_memory=True)
  batch = pipeline.read_batch(source, np.arange(len(source)))
  preprocess = supervised.Preprocess(**config.augment.to_dict())
  _, acts = jax.jit(lambda x: module.apply(variables, preprocess(x, train=False), train=False))(
      jnp.asarray(batch["image"]))
  return {stage: {"mean": float(jnp.mean(acts[stage])), "zeros": float(jnp.mean(acts[stage] == 0))}
          for stage in stages}


def table(rows: list[dict], stages: tuple[str, ...]) -> str:
  """Markdown: variant, test error mean ± std, and per map the mean activation and the fraction of zeros."""
  head = " | ".join(f"{s} mean / zeros" for s in stages)
  lines = [f"| variant | test error % (mean ± std, {len(rows[0]['seeds'])} seeds) | {head} |",
           "|---|---|" + "---|" * len(stages)]
  for r in rows:
    cells = " | ".join(f"{r['sparsity'][s]['mean']['mean']:.3f} / {100 * r['sparsity'][s]['zeros']['mean']:.1f}%"
                       for s in stages)
    lines.append(f"| {r['variant']} | {r['mean']:.2f} ± {r['std']:.2f} | {cells} |")
  return "\n".join(lines) + "\n"


def main(argv: list[str]) -> None:
  if len(argv) > 1 or not FLAGS.workdir or not FLAGS.out:
    print("usage: python -m experiments.sparsity_table --workdir=ABLATION_DIR --out=PATH [--split=test]",
          file=sys.stderr)
    sys.exit(2)
  path = os.path.join(FLAGS.workdir, "ablation.json")
  if not os.path.isfile(path):
    print(f"error: --workdir={FLAGS.workdir} has no ablation.json; run experiments.ablate first", file=sys.stderr)
    sys.exit(2)
  with open(path) as f:
    rows = json.load(f)
  stages = ablation.SPARSE_STAGES
  for row in rows:
    per_seed = [measure(os.path.join(FLAGS.workdir, row["variant"], f"seed{seed}"), stages, FLAGS.split)
                for seed in row["seeds"]]
    row["sparsity"] = {s: {k: {"per_seed": [m[s][k] for m in per_seed],
                               "mean": float(np.mean([m[s][k] for m in per_seed]))} for k in ("mean", "zeros")}
                       for s in stages}
    row["sparsity_split"] = FLAGS.split
  os.makedirs(os.path.dirname(os.path.abspath(FLAGS.out)), exist_ok=True)
  with open(FLAGS.out + ".json", "w") as f:
    json.dump(rows, f, indent=2)
  text = ("Made by `python -m experiments.ablate --config=lcn_convnet_digits --variants=baseline,sparse_activations "
          f"--seeds={len(rows[0]['seeds'])} --workdir=DIR` and `python -m experiments.sparsity_table --workdir=DIR "
          f"--out=PATH`; activations measured on the {FLAGS.split} split (mean activation / fraction exactly zero).\n\n"
          + table(rows, stages))
  with open(FLAGS.out + ".md", "w") as f:
    f.write(text)
  print(text)


def define_flags() -> None:
  """The command-line flags (defined when run as a script, so importing this module defines none)."""
  flags.DEFINE_string("workdir", None, "The ablation's work dir (with ablation.json).")
  flags.DEFINE_string("out", None, "Path of the record without extension: OUT.json and OUT.md are written.")
  flags.DEFINE_string("split", "test", "The split the activations are measured on.")


if __name__ == "__main__":
  define_flags()
  app.run(main)
