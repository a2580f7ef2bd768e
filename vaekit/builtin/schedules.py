"""Built-in plugin: KL-weight schedules ``constant``, ``warmup``, ``sigmoid``, ``cyclical``.

Each is a pure function of the optimiser step, so a resumed run continues exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated

from vaekit import hookimpl
from vaekit.options import option_ranges

DEFAULT_WARMUP_FRACTION = 0.3

#: The KL weight a schedule reaches (every schedule's ``beta``).
Beta = Annotated[float, "the KL weight beta it reaches (1: the exact ELBO)"]


def _steps(steps: int | None, total_steps: int, fraction: float) -> int:
    return max(1, int(steps if steps is not None else fraction * total_steps))


@dataclass(frozen=True)
class ConstantSchedule:
    """beta = ``beta`` at every step."""

    beta: float = 1.0

    def __call__(self, step: int, epoch: int) -> float:
        return self.beta


@option_ranges(steps=(1, None), beta=(0, 1e6))
class WarmupSchedule:
    """beta rises linearly from 0 to ``beta`` over ``steps`` steps, then stays.

    ``steps`` defaults to 30% of the run's optimiser steps.
    """

    def __init__(
        self,
        total_steps: int,
        steps: Annotated[
            int | None, "optimiser steps beta rises over (none: 30% of the run)"
        ] = None,
        beta: Beta = 1.0,
    ):
        self.steps = _steps(steps, total_steps, DEFAULT_WARMUP_FRACTION)
        self.beta = beta

    def __call__(self, step: int, epoch: int) -> float:
        return self.beta * min(1.0, step / self.steps)


@option_ranges(midpoint=(1, None), k=(0, None), beta=(0, 1e6))
class SigmoidSchedule:
    """beta = beta / (1 + exp(-k (step - midpoint))) (Bowman et al. 2016).

    ``midpoint`` defaults to 15% of the run's steps; ``k`` to 10 / midpoint.
    """

    def __init__(
        self,
        total_steps: int,
        midpoint: Annotated[
            int | None, "step at which beta is half its value (none: 15% of the run)"
        ] = None,
        k: Annotated[float | None, "steepness, per optimiser step (none: 10 / midpoint)"] = None,
        beta: Beta = 1.0,
    ):
        self.midpoint = _steps(midpoint, total_steps, DEFAULT_WARMUP_FRACTION / 2)
        self.k = k if k is not None else 10.0 / self.midpoint
        self.beta = beta

    def __call__(self, step: int, epoch: int) -> float:
        x = -self.k * (step - self.midpoint)
        return self.beta / (1.0 + math.exp(min(x, 700.0)))


@option_ranges(cycles=(1, 10_000), ratio=(1e-9, 1), beta=(0, 1e6))
class CyclicalSchedule:
    """Fu et al. 2019: ``cycles`` cycles; in each, beta rises linearly over the first
    ``ratio`` of the cycle, then stays at ``beta``. The cycles split the run's steps
    exactly, so the run ends at the top of its last cycle (beta = ``beta``), never at the
    start of a new one."""

    def __init__(
        self,
        total_steps: int,
        cycles: Annotated[int, "cycles the run's optimiser steps are split into"] = 4,
        ratio: Annotated[float, "share of each cycle over which beta rises from 0"] = 0.5,
        beta: Beta = 1.0,
    ):
        if cycles < 1 or not 0 < ratio <= 1:
            raise ValueError("cyclical needs cycles >= 1 and 0 < ratio <= 1")
        self.period = max(1.0, total_steps / cycles)  # a fraction: no leftover steps
        self.cycles = cycles
        self.ratio, self.beta = ratio, beta

    def __call__(self, step: int, epoch: int) -> float:
        cycle = min(int(step // self.period), self.cycles - 1)  # steps past the end: the last
        phase = (step - cycle * self.period) / self.period
        return self.beta * min(1.0, phase / self.ratio)


@option_ranges(beta=(0, 1e6))
def _constant(
    total_steps: int, beta: Annotated[float, "the KL weight beta at every step"] = 1.0
) -> ConstantSchedule:
    """beta = ``beta`` at every step."""
    return ConstantSchedule(beta)


@hookimpl
def register_kl_schedules(register):
    """Register the built-in KL schedules."""
    register("constant", _constant)
    register("warmup", WarmupSchedule)
    register("sigmoid", SigmoidSchedule)
    register("cyclical", CyclicalSchedule)
