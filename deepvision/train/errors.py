"""The errors a training run reports; the launcher maps them to exit codes (2: bad input, 1: diverged,
0: preempted after saving)."""

from deepvision.errors import ConfigError  # noqa: F401  (raised by the config schema, below train)


class TrainingDivergedError(FloatingPointError):
  """The loss, the gradients or the parameters became NaN or infinite; nothing from that step is saved."""


class TrainingPreempted(Exception):
  """The run received SIGTERM or SIGINT and saved a checkpoint; re-running the same command resumes it."""

  def __init__(self, message: str, step: int):
    super().__init__(message)
    self.step = step
