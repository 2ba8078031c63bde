"""The interleaved timing loop: each item is run by every contender in a fresh random order, so drift on a shared
machine (another process's burst, thermal throttling) spreads evenly over both sides instead of biasing one."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence


def interleaved[T](
    contenders: Mapping[str, Callable[[T], None]], items: Sequence[T], seed: int = 42
) -> dict[str, list[float]]:
    """Run every item through every contender (random order per item); returns contender -> durations (s)."""
    rng = random.Random(seed)
    names = list(contenders)
    out: dict[str, list[float]] = {name: [] for name in names}
    for item in items:
        rng.shuffle(names)
        for name in names:
            start = time.perf_counter()
            contenders[name](item)
            out[name].append(time.perf_counter() - start)
    return out
