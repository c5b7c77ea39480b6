r"""The learning-rate search's probes: one compiled step for every rate against a compile per rate.

`deepvision.train.probe.Prober` keeps the rate in the optimiser's state, so the halving search of
`train.lr_search` and the doctor's probes share one compiled train step; before, every rate was a constant
of its own program (one compile per trial). Both ways run here in the same process on the same plan (the
digits convnet of `lcn_convnet_digits:smoke`, batch 16, 128 examples), and must give the same losses:

* `compile_per_rate`: `probe.probe(config, plan, rate, steps)` per rate, each with its own optimiser and
  jitted step (what the search did before);
* `one_prober`: one `probe.Prober(config, plan)` whose `run(rate, steps)` serves every rate.

Reported: the seconds of the whole search (6 rates halving from 0.4, 60 steps each, the data path warmed
first), the median over `--rounds` rounds with the two ways taking turns, and their ratio.

Usage (about a minute on 2 idle cores):
  python benchmarks/lr_search_probes.py [--rounds 3] [--steps 60] [--out PATH]
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import statistics
import time

import numpy as np

from deepvision.train import probe
from experiments.configs import lcn_convnet_digits


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--steps", type=int, default=60)
  parser.add_argument("--out", default=str(pathlib.Path(__file__).parent / "results" / "lr_search_probes.json"))
  args = parser.parse_args()
  config = lcn_convnet_digits.get_config("smoke")
  config.batch_size = 16
  plan = probe.make_plan(config, 128)
  rates = [0.4 / 2 ** i for i in range(6)]
  probe.Prober(config, plan).run(0.3, 2)  # warms the data path

  def compile_per_rate():
    return [probe.probe(config, plan, rate, args.steps).losses for rate in rates]

  def one_prober():
    prober = probe.Prober(config, plan)
    return [prober.run(rate, args.steps).losses for rate in rates]

  seconds = {"compile_per_rate": [], "one_prober": []}
  losses = {}
  for round_ in range(args.rounds):
    order = list(seconds) if round_ % 2 == 0 else list(reversed(seconds))
    for name in order:
      start = time.perf_counter()
      losses[name] = {"compile_per_rate": compile_per_rate, "one_prober": one_prober}[name]()
      seconds[name].append(time.perf_counter() - start)
  same = all(np.array_equal(a, b) for a, b in zip(losses["compile_per_rate"], losses["one_prober"]))
  median = {name: statistics.median(values) for name, values in seconds.items()}
  record = {
      "what": __doc__.splitlines()[0],
      "command": "python benchmarks/lr_search_probes.py " + f"--rounds {args.rounds} --steps {args.steps}",
      "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
      "rates": rates, "steps_per_rate": args.steps,
      "seconds": seconds, "median_seconds": median,
      "speedup_one_prober": median["compile_per_rate"] / median["one_prober"],
      "losses_bitwise_equal": same,
  }
  pathlib.Path(args.out).write_text(json.dumps(record, indent=1) + "\n")
  print(f"search of {len(rates)} rates × {args.steps} steps: a compile per rate {median['compile_per_rate']:.2f} s, "
        f"one prober {median['one_prober']:.2f} s: {record['speedup_one_prober']:.1f}×; "
        f"losses bitwise equal: {same}")


if __name__ == "__main__":
  main()
