"""The records a gradient check returns: per element, per leaf, and the whole report with its table.

Produced by `deepvision.diagnostics.gradcheck.check_gradients`: element i of a leaf passes when
|g_i − ĝ_i| / max(|g_i|, |ĝ_i|, floor) ≤ rtol, with g the reverse-mode gradient and ĝ the central
finite difference (the talk's "check the gradient numerically").
"""

from __future__ import annotations

import dataclasses

RETRY_FACTOR = 16  # The retry step is step / RETRY_FACTOR.


@dataclasses.dataclass(frozen=True)
class ElementCheck:
  """One checked element that failed.

  Attributes:
    index: its index in the leaf.
    analytic: ∂f/∂θ_i from `jax.grad`.
    numeric: the central difference at the step h.
    numeric_retry: the central difference at h / 16.
    rel_error: the smaller of the two relative errors.
  """

  index: tuple[int, ...]
  analytic: float
  numeric: float
  numeric_retry: float
  rel_error: float


@dataclasses.dataclass(frozen=True)
class LeafCheck:
  """The check of one leaf of the pytree.

  Attributes:
    path: the leaf's key path, such as 'params/conv1/kernel' or 'inputs'.
    shape: the leaf's shape.
    checked: number of elements compared.
    border: how many of them lie on the image border (0 for leaves that are not images).
    max_rel_error: the worst relative error over the checked elements (an element retried at
      h / 16 counts with the smaller of its two errors).
    worst_index: the element with that error.
    rescued: elements that failed at h and passed at h / 16 (a kink or tie within h).
    failures: the elements that failed at both steps.
  """

  path: str
  shape: tuple[int, ...]
  checked: int
  border: int
  max_rel_error: float
  worst_index: tuple[int, ...]
  rescued: int
  failures: tuple[ElementCheck, ...]

  @property
  def ok(self) -> bool:
    return not self.failures


@dataclasses.dataclass(frozen=True)
class GradCheckReport:
  """The result of `check_gradients`: one `LeafCheck` per leaf, in pytree order.

  Attributes:
    value: f(θ).
    leaves: the per-leaf checks.
    step: the finite-difference step h (the retry uses h / 16).
    rtol: the largest relative error that passes.
    floor: the floor of the relative error's denominator.
  """

  value: float
  leaves: tuple[LeafCheck, ...]
  step: float
  rtol: float
  floor: float

  @property
  def ok(self) -> bool:
    """Whether every checked element of every leaf passed."""
    return all(leaf.ok for leaf in self.leaves)

  @property
  def max_rel_error(self) -> float:
    return max((leaf.max_rel_error for leaf in self.leaves), default=0.0)

  def leaf(self, path: str) -> LeafCheck:
    """The check of the leaf at `path`; KeyError naming the paths if there is none."""
    for leaf in self.leaves:
      if leaf.path == path:
        return leaf
    raise KeyError(f"no leaf {path!r}; leaves: {', '.join(l.path for l in self.leaves)}")

  def failing_leaves(self) -> list[str]:
    """Paths of the leaves with at least one failing element."""
    return [leaf.path for leaf in self.leaves if not leaf.ok]

  def format(self, max_failures: int = 10) -> str:
    """A printable table: one row per leaf, then the failing elements (at most
    `max_failures` per leaf)."""
    checked = sum(leaf.checked for leaf in self.leaves)
    status = "OK" if self.ok else f"FAILED in {len(self.failing_leaves())} leaves"
    lines = [f"gradient check: f = {self.value:.6g}, step {self.step:g} (retry "
             f"{self.step / RETRY_FACTOR:g}), rtol {self.rtol:g}, floor {self.floor:.3g}: "
             f"{status} ({len(self.leaves)} leaves, {checked} elements)"]
    rows = [("leaf", "shape", "checked", "border", "max rel err", "worst index", "rescued",
             "status")]
    rows += [(leaf.path, str(leaf.shape), str(leaf.checked), str(leaf.border),
              f"{leaf.max_rel_error:.2e}", str(leaf.worst_index), str(leaf.rescued),
              "ok" if leaf.ok else f"FAIL ({len(leaf.failures)})") for leaf in self.leaves]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines += ["  ".join(cell.ljust(w) if i in (0, 1, 5, 7) else cell.rjust(w)
                        for i, (cell, w) in enumerate(zip(row, widths))).rstrip()
              for row in rows]
    for leaf in self.leaves:
      for failure in leaf.failures[:max_failures]:
        lines.append(f"FAIL {leaf.path}{list(failure.index)}: analytic {failure.analytic:.6e}, "
                     f"numeric {failure.numeric:.6e} (retry {failure.numeric_retry:.6e}), "
                     f"rel error {failure.rel_error:.2e}")
      if len(leaf.failures) > max_failures:
        lines.append(f"  ... {len(leaf.failures) - max_failures} more in {leaf.path}")
    return "\n".join(lines)

  def __str__(self) -> str:
    return self.format()
