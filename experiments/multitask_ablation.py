r"""The reconstruction loss with few labels: `multitask_digits` with and without it, over seeds.

  python -m experiments.multitask_ablation --workdir=runs/multitask_ablation \
      --out=results/multitask_digits.json [--labels=50,100] [--seeds=5]

For every label count N and seed s, two ordinary runs of `experiments/configs/multitask_digits.py:N` in their
own work dirs (re-running resumes; finished runs are read back): "with" (the config's reconstruction_weight)
and "without" (reconstruction_weight = 0: the same net, labelled digits and steps, no reconstruction). A seed
draws both the labelled selection and the initialisation, the same for the two runs, so the comparison is
paired. The record has, per N, the test accuracies per seed, their means and sample standard deviations, the
per-seed differences (with − without), their mean, standard deviation and standard error, the paired t
statistic and whether |t| exceeds the two-sided 5% point of Student's t with (seeds − 1) degrees of freedom
("beats seed noise"), plus the command. Cost on a 2-core CPU: 16 minutes for 5 seeds × {50, 100} while other
jobs shared the cores (load average 5-6; about 35 s per run with the reconstruction, 20 s without).

How λ and the stage were chosen (50 labels, validation accuracy, never the test split): seed 0, λ = 0:
85.8%; λ = 0.1 (stage2/lcn): 85.8%; λ = 1 (stage2/lcn): 82.8%; λ = 10: diverged at step 5; λ = 1 (stage1/lcn):
87.2%; λ = 0.3 (stage1/lcn): 85.3%; λ = 1 (stage3/rect): 85.8%. Seed 1, λ = 0: 88.1%; λ = 1 (stage1/lcn):
88.3%. The config's λ = 1 from stage1/lcn was the best of these, by one or two validation digits: within the
seed-to-seed spread, so the choice itself is weak.
"""

from __future__ import annotations

import io
import json
import os
import sys
from contextlib import redirect_stdout

import numpy as np
from absl import app, flags, logging

from deepvision.train.loop import ConfigError, override_config, train_and_evaluate
from experiments.configs import multitask_digits

FLAGS = flags.FLAGS


# Two-sided 5% points of Student's t for 1..10 degrees of freedom.
T_CRITICAL = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262,
              10: 2.228}


def compare(with_acc: list[float], without_acc: list[float]) -> dict:
  """Means, sample stds, the paired differences and the verdict (module docstring) of two accuracy lists."""
  a, b = np.asarray(with_acc, float), np.asarray(without_acc, float)
  diff = a - b
  n = len(diff)
  std = float(np.std(diff, ddof=1))
  se = std / np.sqrt(n)
  t = float(np.mean(diff) / se) if se > 0 else (0.0 if np.mean(diff) == 0 else float("inf"))
  critical = T_CRITICAL.get(n - 1, 1.96)
  return {"with": {"test_accuracy": a.tolist(), "mean": float(a.mean()), "std": float(np.std(a, ddof=1))},
          "without": {"test_accuracy": b.tolist(), "mean": float(b.mean()), "std": float(np.std(b, ddof=1))},
          "difference": {"per_seed": diff.tolist(), "mean": float(diff.mean()), "std": std, "standard_error": se,
                         "t": t, "t_critical_5pct": critical, "beats_seed_noise": bool(abs(t) > critical)}}


def run(labels: list[int], seeds: int, workdir: str, smoke: bool = False, log=print) -> dict:
  """Trains the (N, seed, with / without) runs, resuming finished ones, and returns the record."""
  configs = {n: multitask_digits.get_config(f"{n},smoke" if smoke else str(n)) for n in labels}
  record = {"config": "experiments/configs/multitask_digits.py", "seeds": list(range(seeds)), "labels": {}}
  for n, config in configs.items():
    weight = config.reconstruction_weight
    accuracies = {"with": [], "without": []}
    for seed in range(seeds):
      for arm, lam in (("with", weight), ("without", 0.0)):
        run_config = override_config(config, {"seed": seed, "reconstruction_weight": lam, "figures": False})
        with redirect_stdout(io.StringIO()):
          final = train_and_evaluate(run_config, os.path.join(workdir, f"labels{n}", arm, f"seed{seed}"))
        accuracies[arm].append(final["test/accuracy"])
        log(f"N={n} {arm} (λ={lam:g}) seed {seed}: test accuracy {100 * final['test/accuracy']:.2f}%")
    record["labels"][str(n)] = {"reconstruction_weight": weight, "stage": config.model_kwargs.stage,
                                **compare(accuracies["with"], accuracies["without"])}
  return record


def main(argv: list[str]) -> None:
  if len(argv) > 1 or not FLAGS.workdir:
    print("usage: python -m experiments.multitask_ablation --workdir=DIR [--out=FILE.json] [--labels=50,100] "
          "[--seeds=5] [--smoke]", file=sys.stderr)
    sys.exit(2)
  logging.set_verbosity(logging.WARNING)
  try:
    labels = [int(n) for n in FLAGS.labels]
    for n in labels:
      multitask_digits.get_config(str(n))
  except ValueError as e:
    print(f"error: --labels={','.join(FLAGS.labels)}: {e}", file=sys.stderr)
    sys.exit(2)
  out = FLAGS.out or os.path.join(FLAGS.workdir, "multitask_digits.json")
  try:
    record = run(labels, FLAGS.seeds, FLAGS.workdir, FLAGS.smoke)
  except ConfigError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  record["command"] = ("python -m experiments.multitask_ablation --workdir=WORKDIR --out=" + out
                       + f" --labels={','.join(map(str, labels))} --seeds={FLAGS.seeds}"
                       + (" --smoke" if FLAGS.smoke else ""))
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  with open(out + ".tmp", "w") as f:
    json.dump(record, f, indent=2)
  os.replace(out + ".tmp", out)
  for n, row in record["labels"].items():
    d = row["difference"]
    print(f"N={n}: with {100 * row['with']['mean']:.2f}% ± {100 * row['with']['std']:.2f}, without "
          f"{100 * row['without']['mean']:.2f}% ± {100 * row['without']['std']:.2f}; difference "
          f"{100 * d['mean']:+.2f} ± {100 * d['standard_error']:.2f} (s.e.), t = {d['t']:.2f}: "
          + ("beats" if d["beats_seed_noise"] else "does not beat") + " seed noise")
  print(f"wrote {out}")


def define_flags() -> None:
  """The command-line flags (defined when run as a script, so importing this module defines none)."""
  flags.DEFINE_string("workdir", None, "Directory for the runs (one work dir per run below it).")
  flags.DEFINE_string("out", "", "Where to write the JSON record (default: WORKDIR/multitask_digits.json).")
  flags.DEFINE_list("labels", ["50", "100"], "Label counts N (each >= 10).")
  flags.DEFINE_integer("seeds", 5, "Number of seeds (0, 1, ...) per label count.", lower_bound=2)
  flags.DEFINE_bool("smoke", False, "Use the configs' smoke variant (seconds; for tests).")


if __name__ == "__main__":
  define_flags()
  app.run(main)
