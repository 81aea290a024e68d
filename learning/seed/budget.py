"""A wall-clock budget for a training loop: cut the planned steps to what fits.

The seed must train within 10 minutes on 2 CPU cores, and CPUs differ by 2x or more (one with
native bf16 tunes all six layers in the time an AVX2-only one needs for two). Rather than tune
the epochs per machine, the loop measures its own step rate on its first steps and, if the
planned steps would run past the deadline, plans fewer; the learning-rate schedule decays over
the new total, so a cut run still ends at a low learning rate. It re-measures every ``every``
steps (other work on the machine slows it down). A plan cut on a slow start grows back, up to
the planned steps, once the measured rate shows more fit, by more than one re-measure interval
so that it does not flap; the learning rate then rises a little, to the schedule of the new
total. Without that, one slow probe cost the rest of the run: the plan stayed cut, and the run
ended long before its deadline.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass
class StepBudget:
    deadline: float | None  # on ``clock``; None: no limit
    skip: int = 5  # first steps warm caches and allocators: not timed
    probe: int = 20  # steps timed before the first estimate
    every: int = 50
    clock: Callable[[], float] = time.monotonic
    planned: int = 0
    total: int = 0
    _t0: float | None = field(default=None, repr=False)

    @classmethod
    def from_now(cls, budget_s: float | None, reserve_s: float = 0.0) -> StepBudget:
        """A budget of ``budget_s`` seconds from now, ``reserve_s`` of them kept for the work
        after the loop; None: no limit."""
        return cls(deadline=time.monotonic() + budget_s - reserve_s if budget_s else None)

    def plan(self, steps: int) -> int:
        self.planned = self.total = steps
        return steps

    @property
    def cut(self) -> bool:
        return self.total < self.planned

    def step_done(self, step: int) -> int:
        """Call after step number ``step`` (1-based) finished; returns the (new) total."""
        if self.deadline is None:
            return self.total
        now = self.clock()
        if step == self.skip:
            self._t0 = now
        timed = step - self.skip
        if self._t0 is None or timed < self.probe or (timed - self.probe) % self.every:
            return self.total
        per_step = (now - self._t0) / timed
        fits = step + int(max(0.0, self.deadline - now) / per_step)
        if fits < self.total:
            say, again = log.info if self.cut else log.warning, ""
            self.total = max(step, fits)
        elif self.cut and fits > self.total + self.every:
            say, again = log.info, " again"
            self.total = min(self.planned, fits)
        else:
            return self.total
        say(
            "time budget: %d of %d planned steps fit%s (%.0f ms/step)",
            self.total,
            self.planned,
            again,
            per_step * 1000,
        )
        return self.total
