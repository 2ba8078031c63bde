"""Summary statistics and ratio estimates for interleaved timings (numpy only)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def summarize(samples: Sequence[float]) -> dict[str, Any]:
    """Median, spread and tail of a list of durations in seconds (reported in milliseconds)."""
    a = np.asarray(samples, dtype=float) * 1000.0
    if a.size == 0:
        return {"n": 0}
    return {
        "n": int(a.size),
        "median_ms": float(np.median(a)),
        "mean_ms": float(a.mean()),
        "p10_ms": float(np.percentile(a, 10)),
        "p90_ms": float(np.percentile(a, 90)),
        "p99_ms": float(np.percentile(a, 99)),
        "min_ms": float(a.min()),
        "max_ms": float(a.max()),
    }


def median_ratio(ours: Sequence[float], base: Sequence[float], seed: int = 7, rounds: int = 2000) -> dict[str, float]:
    """median(ours) / median(base) with a bootstrap 95% interval (pairs resampled together: they were interleaved)."""
    a = np.asarray(ours, dtype=float)
    b = np.asarray(base, dtype=float)
    n = min(a.size, b.size)
    a, b = a[:n], b[:n]
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(rounds, n))
    boot = np.median(a[idx], axis=1) / np.median(b[idx], axis=1)
    return {
        "ratio": float(np.median(a) / np.median(b)),
        "ci95_low": float(np.percentile(boot, 2.5)),
        "ci95_high": float(np.percentile(boot, 97.5)),
        "paired_median_ratio": float(np.median(a / b)),
    }
