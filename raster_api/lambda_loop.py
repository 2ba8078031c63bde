"""Mangum with every Lambda event run on one event loop that lives as long as the sandbox.

Mangum runs each event as `loop.run_until_complete(task)`, and anyio takes a task started that way for the root of
its task tree: the worker threads it starts for sync endpoints and dependencies are stopped when that task ends. Under
plain Mangum every invocation therefore started a new OS thread for the tile endpoint and ended it, and PROJ keeps its
context per thread: the first coordinate transformation in each new thread rebuilt it (about 1 ms of a 10 ms tile,
measured by `python -m bench --only floor`, docs/benchmarking.md).

Here the events run on one event loop, run by `asyncio.run` on a daemon thread for the life of the process: anyio
takes that loop's main task for the root, so its worker threads, and PROJ's and GDAL's per-thread state in them, are
reused from one invocation to the next. (anyio's own blocking portal would do the same, at 0.6 ms per call against
0.1 ms here.) A daemon thread never keeps the process from exiting; with SnapStart it is part of the snapshot like
the rest of the process.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from typing import Any

from mangum import Mangum
from mangum.protocols import HTTPCycle
from mangum.types import ASGI, LambdaContext, LambdaEvent


def _loop_thread() -> asyncio.AbstractEventLoop:
    """An event loop running on a daemon thread until the process ends."""
    handed: queue.Queue[asyncio.AbstractEventLoop] = queue.Queue(maxsize=1)

    async def serve() -> None:
        handed.put(asyncio.get_running_loop())
        await asyncio.Event().wait()  # never set: the loop runs as long as the process

    threading.Thread(target=asyncio.run, args=(serve(),), name="asgi-loop", daemon=True).start()
    return handed.get()


class OneLoopMangum(Mangum):
    """`Mangum(app, lifespan="off")` whose events share one long-lived event loop (see the module's docstring)."""

    def __init__(self, app: ASGI, **options: Any) -> None:
        if options.setdefault("lifespan", "off") != "off":
            raise ValueError("OneLoopMangum runs no lifespan: the app is set up when it is built")
        super().__init__(app, **options)
        self.loop = _loop_thread()

    def __call__(self, event: LambdaEvent, context: LambdaContext) -> dict[str, Any]:
        handler = self.infer(event, context)
        cycle = HTTPCycle(handler.scope, handler.body)
        asyncio.run_coroutine_threadsafe(cycle.run(self.app), self.loop).result()
        return handler({"status": cycle.status, "headers": cycle.headers, "body": cycle.body})
