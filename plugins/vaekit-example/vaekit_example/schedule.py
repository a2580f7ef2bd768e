"""A step KL schedule: beta = 0 for the first ``at`` share of the run, then ``beta``."""

from __future__ import annotations

from typing import Annotated


class StepSchedule:
    """beta = 0 for the first ``at`` of the run's steps, then ``beta``."""

    def __init__(
        self,
        total_steps: int,
        at: Annotated[float, "share of the run's steps with beta = 0"] = 0.2,
        beta: Annotated[float, "the KL weight from then on"] = 1.0,
    ):
        self.switch = int(at * total_steps)
        self.beta = beta

    def __call__(self, step: int, epoch: int) -> float:
        return 0.0 if step < self.switch else self.beta
