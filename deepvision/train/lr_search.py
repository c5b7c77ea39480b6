"""Learning-rate search as the talk prescribes: on a subset, start large and halve until the loss
does not diverge within a few hundred steps.

"Pick the learning rate by running on a subset of the data: start with a large value and divide
by 2 until the loss does not diverge" (Ranzato 2013). A trial diverges when its loss becomes
non-finite or does not fall by `min_decrease` from its initial value to the mean of its last tenth
(a stalled loss counts: it is what too large a rate does to a net with LCN or saturating units).
"""

from __future__ import annotations

import dataclasses

import ml_collections

from deepvision.train import probe as probe_lib


@dataclasses.dataclass(frozen=True)
class Trial:
  learning_rate: float
  start_loss: float
  end_loss: float
  diverged: bool


@dataclasses.dataclass(frozen=True)
class SearchResult:
  """The chosen rate (None if every trial diverged) and the trail of trials, largest rate first."""

  learning_rate: float | None
  trail: tuple[Trial, ...]

  def format(self) -> str:
    lines = ["learning rate   loss first → last   verdict"]
    for t in self.trail:
      lines.append(f"{t.learning_rate:<15.6g} {t.start_loss:8.4f} → {t.end_loss:<8.4f}  "
                   f"{'diverges' if t.diverged else 'converges'}")
    lines.append(f"chosen: {self.learning_rate}" if self.learning_rate is not None
                 else "no rate converged: check the gradients and the loss")
    return "\n".join(lines)


def search_learning_rate(config: ml_collections.ConfigDict, start: float = 1.0, steps: int = 300,
                         subset: int = 512, max_trials: int = 12, min_decrease: float = 0.1,
                         model=None) -> SearchResult:
  """Halves the rate from `start` until a `steps`-step probe on `subset` examples converges.

  Args:
    config: the experiment config; its model, data, batch size and optimiser are used.
    start: the first (large) rate.
    steps: updates per trial ("a few hundred").
    subset: training examples used (0: all).
    max_trials: at most this many halvings.
    min_decrease: relative fall of the loss a trial needs.
    model: another Linen module to probe instead of the config's (e.g. in tests).
  """
  if not start > 0 or steps < 10 or max_trials < 1:
    raise ValueError(f"need start > 0, steps >= 10 and max_trials >= 1; got start={start!r}, "
                     f"steps={steps!r}, max_trials={max_trials!r}")
  prober = probe_lib.Prober(config, probe_lib.make_plan(config, subset, model=model))
  trail, rate = [], float(start)
  for _ in range(max_trials):
    run = prober.run(rate, steps, seed=config.seed, min_decrease=min_decrease)
    trail.append(Trial(rate, run.start_loss, run.end_loss, run.diverged))
    if not run.diverged:
      return SearchResult(rate, tuple(trail))
    rate /= 2.0
  return SearchResult(None, tuple(trail))
