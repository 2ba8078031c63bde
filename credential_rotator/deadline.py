"""How much of the Lambda invocation's time each provider may spend, so one hanging DAAC costs only that provider.

The run's budget is the invocation's remaining time (`context.get_remaining_time_in_millis()`) less a safety reserve
in which the summary, the metrics and the error still go out. Providers rotate in a bounded pool of `concurrency`
workers, so with `n` providers there are `ceil(n / concurrency)` waves; each provider gets an equal share of the
budget (`budget / waves`) from the moment it starts, and never more than what is left of the run. A provider in the
last wave therefore still gets its full share, however long the providers before it hung.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass


def _seconds(value: float) -> str:
    return f"{round(value, 1):g} s"


@dataclass(frozen=True)
class Deadline:
    """One provider's deadline: a `time.monotonic()` instant, and how it was set (for messages)."""

    at: float
    share_seconds: float
    reserve_seconds: float

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def expired(self) -> bool:
        return self.remaining() <= 0

    def describe(self) -> str:
        return (
            f"this provider's {_seconds(self.share_seconds)} deadline (its share of the Lambda invocation's "
            f"remaining time, less a {_seconds(self.reserve_seconds)} reserve)"
        )


@dataclass(frozen=True)
class RunBudget:
    """The run's time: when it ends (monotonic) and each provider's share."""

    ends_at: float
    share_seconds: float
    reserve_seconds: float

    @classmethod
    def plan(cls, seconds: float, providers: int, concurrency: int, reserve_seconds: float) -> RunBudget:
        """`seconds` of budget (remaining time already less the reserve) for `providers` run `concurrency` at once."""
        waves = max(1, math.ceil(providers / max(1, concurrency)))
        return cls(time.monotonic() + seconds, max(0.0, seconds) / waves, reserve_seconds)

    def remaining(self) -> float:
        return self.ends_at - time.monotonic()

    def exhausted(self) -> bool:
        return self.remaining() <= 0

    def provider_deadline(self) -> Deadline:
        """The deadline of a provider starting now."""
        at = min(self.ends_at, time.monotonic() + self.share_seconds)
        return Deadline(at, self.share_seconds, self.reserve_seconds)
