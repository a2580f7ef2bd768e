"""A step KL schedule: beta = 0 for the first ``at`` share of the run, then ``beta``."""

from __future__ import annotations


class StepSchedule:
    def __init__(self, total_steps: int, at: float = 0.2, beta: float = 1.0):
        self.switch = int(at * total_steps)
        self.beta = beta

    def __call__(self, step: int, epoch: int) -> float:
        return 0.0 if step < self.switch else self.beta
