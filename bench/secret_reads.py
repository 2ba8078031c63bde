"""Secrets Manager (and STS) calls made by our app during a long run of tiles over several providers, against the
target of at most one read per provider per refresh interval per process."""

from __future__ import annotations

import itertools
import math
import time
from collections import Counter
from collections.abc import Mapping

from fastapi import FastAPI

from bench.inprocess import AwsCallLog, client
from bench.report import Row, Section
from bench.tiles import tile_path, tiles_within
from local_stack.samples import DEFAULT_BOUNDS


def run_secret_reads(
    app: FastAPI,
    urls: Mapping[str, tuple[str, str | None]],  # provider -> (s3 url, secret id or role arn it reads)
    interval_s: float,
    min_requests: int = 1000,
    min_intervals: float = 2.5,
) -> Section:
    section = Section(name="secret reads")
    tiles = tiles_within(DEFAULT_BOUNDS, (9, 10, 11, 12, 13), 400, seed=5)
    plan = itertools.cycle([(p, t) for t in tiles for p in urls])
    log = AwsCallLog()
    errors: list[str] = []
    done = 0
    with client(app) as c, log.recording():
        start = time.monotonic()
        while done < min_requests or time.monotonic() - start < min_intervals * interval_s:
            provider, tile = next(plan)
            r = c.get(tile_path(tile, urls[provider][0], provider))
            if r.status_code != 200:
                errors.append(f"{provider}: {r.status_code} {r.text[:100]}")
            done += 1
        elapsed = time.monotonic() - start
    allowed = math.floor(elapsed / interval_s) + 1
    secrets = log.count("secretsmanager", "GetSecretValue")
    roles = log.count("sts", "AssumeRole")
    per_provider = {
        p: (secrets if ident and ident.startswith("raster/") else roles).get(ident or "", 0)
        for p, (_, ident) in urls.items()
        if ident
    }
    ok = all(n <= allowed for n in per_provider.values()) and not errors
    section.data = {
        "requests": done,
        "elapsed_s": elapsed,
        "refresh_interval_s": interval_s,
        "allowed_per_provider": allowed,
        "reads_per_provider": per_provider,
        "get_secret_value_by_id": dict(secrets),
        "assume_role_by_arn": dict(roles),
        "all_aws_calls": dict(Counter(f"{svc}:{op}" for _, svc, op, _ in log.calls)),
        "errors": errors[:10],
        "error_count": len(errors),
    }
    reads = ", ".join(f"{p} {n}" for p, n in per_provider.items())
    section.rows.append(
        Row(
            "secret reads",
            f"GetSecretValue / AssumeRole calls per provider during {done} tile requests over {elapsed:.0f} s "
            f"(refresh interval {interval_s:g} s = {elapsed / interval_s:.1f} intervals), one process",
            f"{reads} (allowed {allowed} each)",
            "≤ 1 per provider per refresh interval",
            ok,
            f"{len(errors)} failed requests" if errors else "",
        )
    )
    return section
