"""A value reused for a while: the pgstac secret's conninfo, the collections' declared providers, the tile-grant
keys. One load at a time (concurrent callers wait for it), through cachetools."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import cachetools


def reused_for[T](ttl: float, load: Callable[[], T], timer: Callable[[], float] = time.monotonic) -> Callable[[], T]:
    """`load`, its value reused for `ttl` seconds of `timer`; a load that raises is not kept."""
    cache = cachetools.TTLCache(maxsize=1, ttl=ttl, timer=timer)
    return cachetools.cached(cache, condition=threading.Condition())(load)
