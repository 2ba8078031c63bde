"""`python -m bench`: run every benchmark side by side, write `bench/results.json`, `docs/benchmarks.md` and
`docs/benchmarks-latency.png`.

Options: `--quick` (fewer samples, for a smoke run), `--only NAME` (repeatable: latency, secrets, cold, mosaic,
throughput, fuzz, cdn, hostile, floor, md). The whole run starts its own moto (and PostgreSQL when installed) and stops them at
the end. `fuzz` (generated requests counted by status), `cdn` (the nginx cache in front of the API, S3 GETs per tile)
and `hostile` (each hostile request's time and memory) are not part of the default run and write their own tables,
`docs/benchmarks-<name>.md` and `bench/results-<name>.json`, so they never replace the timing table.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from bench.report import Row, Section, machine, now, with_earlier, write
from bench.world import SAFE_ENV, BenchWorld, bench_world
from local_stack.aws_world import DAAC_A_BUCKET, DAAC_B_BUCKET, OWN_BUCKET, PARTNER_BUCKET, patched_environ

ROOT = Path(__file__).resolve().parent.parent
ALL = ("latency", "secrets", "cold", "mosaic", "throughput")
SEPARATE = ("fuzz", "cdn", "hostile", "floor", "md")
REFRESH_INTERVAL_S = 4.0
# What SnapStart's sandboxes lack: the Lambda's keys arrive through a container credentials endpoint instead.
NO_ENV_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")

log = logging.getLogger("bench")


def _latency(bw: BenchWorld, quick: bool, workdir: Path) -> Section:
    from rasterio.session import AWSSession

    from bench.inprocess import create_ours
    from bench.latency import run_tile_latency
    from bench.vanilla import create_vanilla_app

    daac = bw.daac_keys["daac-a"]
    static_daac = AWSSession(
        aws_access_key_id=daac.access_key_id,
        aws_secret_access_key=daac.secret_access_key,
        aws_session_token=daac.session_token,
        region_name="us-west-2",
    )
    with patched_environ({**SAFE_ENV, **bw.api_env()}):
        return run_tile_latency(
            create_ours(),
            {
                "own-data (default kind)": create_vanilla_app(),
                "daac-a (earthdata kind)": create_vanilla_app(static_daac),
            },
            [
                ("own-data (default kind)", bw.sample_urls[OWN_BUCKET], "own"),
                ("daac-a (earthdata kind)", bw.sample_urls[DAAC_A_BUCKET], "daac-a"),
            ],
            count=60 if quick else 200,
            repeats=1 if quick else 3,
        )


def _floor(bw: BenchWorld, quick: bool, workdir: Path) -> Section:
    from rasterio.session import AWSSession

    from bench.floor import container_credentials, run_floor, run_floor_uvicorn
    from bench.inprocess import create_ours
    from bench.vanilla import create_vanilla_app
    from raster_api.gdal import gdal_config

    own = bw.lambda_keys
    session = AWSSession(
        aws_access_key_id=own.access_key_id,
        aws_secret_access_key=own.secret_access_key,
        aws_session_token=own.session_token,
        region_name="us-west-2",
    )
    gdal_path = bw.sample_urls[OWN_BUCKET].replace("s3://", "/vsis3/", 1)
    count = 60 if quick else 240
    # The Lambda's own keys as SnapStart hands them over (the stack's default): a container credentials endpoint, no
    # AWS_* variables. Then as an on-demand Lambda has them, in AWS_* variables: rasterio turns those into a boto3
    # session for every `Env()` opened without one, including those inside rasterio's warp functions.
    no_env_keys = dict.fromkeys(NO_ENV_KEYS)
    sections: list[Section] = []
    with container_credentials(own) as uri:
        for label, env in (
            ("SnapStart (container credentials)", {**no_env_keys, "AWS_CONTAINER_CREDENTIALS_FULL_URI": uri}),
            ("on-demand (AWS_* variables)", {}),
        ):
            with patched_environ({**SAFE_ENV, **bw.api_env(), **env}):
                ours = create_ours()
                raw_env = {**ours.state.provider_router.gdal_config, "session": session, "AWS_REGION": "us-west-2"}
                vanilla = create_vanilla_app(session)
                url = bw.sample_urls[OWN_BUCKET]
                profile = not sections
                sections.append(run_floor(ours, vanilla, url, "own", gdal_path, raw_env, count, label, profile))
    # As the local stack serves it: uvicorn processes with the identity in AWS_* variables, and raw rio-tiler in this
    # process with the same variables (rasterio's own `Env()`s then cost it what they cost the servers).
    ours_env, vanilla_env = {**SAFE_ENV, **bw.api_env()}, {**SAFE_ENV, **bw.vanilla_env()}
    with patched_environ(ours_env):
        raw_env = {**gdal_config(), "session": session, "AWS_REGION": "us-west-2"}  # the servers' GDAL settings
        served = {name: value for name, value in ours_env.items() if value is not None}
        vanilla_served = {name: value for name, value in vanilla_env.items() if value is not None}
        url = bw.sample_urls[OWN_BUCKET]
        sections.append(run_floor_uvicorn(served, vanilla_served, url, "own", gdal_path, raw_env, count, workdir))
    first = sections[0]
    for other in sections[1:]:
        first.rows += other.rows
    first.data = {"snapstart": sections[0].data, "on_demand": sections[1].data, "uvicorn": sections[2].data}
    first.samples = {}
    return first


def _secrets(bw: BenchWorld, quick: bool, workdir: Path) -> Section:
    from bench.inprocess import create_ours
    from bench.secret_reads import run_secret_reads
    from local_stack.aws_world import DAAC_A_SECRET, DAAC_B_SECRET

    env = {**SAFE_ENV, **bw.api_env(RASTER_API_CREDENTIALS_REFRESH_INTERVAL=str(REFRESH_INTERVAL_S))}
    with patched_environ(env):
        urls = {
            "daac-a": (bw.sample_urls[DAAC_A_BUCKET], DAAC_A_SECRET),
            "daac-b": (bw.sample_urls[DAAC_B_BUCKET], DAAC_B_SECRET),
            "partner": (bw.sample_urls[PARTNER_BUCKET], bw.world.role_arns["partner-reader"]),
            "own": (bw.sample_urls[OWN_BUCKET], None),
        }
        return run_secret_reads(
            create_ours(), urls, REFRESH_INTERVAL_S, min_requests=200 if quick else 1000, min_intervals=2.5
        )


def _cold(bw: BenchWorld, quick: bool, workdir: Path) -> Section:
    from bench.cold_start import run_cold_start
    from bench.floor import container_credentials

    with container_credentials(bw.lambda_keys) as uri:
        snapstart = {**dict.fromkeys(NO_ENV_KEYS), "AWS_CONTAINER_CREDENTIALS_FULL_URI": uri}
        return run_cold_start(
            {**bw.api_env(), **_clean(SAFE_ENV)},
            bw.sample_urls[OWN_BUCKET],
            runs=3 if quick else 11,
            snapstart_credentials=snapstart,
        )


def _mosaic(bw: BenchWorld, quick: bool, workdir: Path) -> Section:
    from local_stack.pgstac_db import pgstac_database, postgis_missing

    reason = postgis_missing()
    if reason:
        return Section(name="mosaic threads", skipped=f"PostgreSQL/PostGIS unavailable: {reason}")
    from bench.mosaic import load_mosaic, run_mosaic

    with pgstac_database() as db:  # its own temp dir: the postgres account cannot enter our private workdir
        load_mosaic(db.dsn, bw.mosaic_urls)
        env = {**bw.api_env(RASTER_API_PGSTAC_ENABLED="true"), **_clean(SAFE_ENV)}
        return run_mosaic(env, db.env(), workdir, rounds=3 if quick else 12)


def _throughput(bw: BenchWorld, quick: bool, workdir: Path) -> Section:
    from bench.throughput import run_throughput

    ours_sources: list[tuple[str, str | None]] = [
        (bw.sample_urls[OWN_BUCKET], "own"),
        (bw.sample_urls[DAAC_A_BUCKET], "daac-a"),
        (bw.sample_urls[DAAC_B_BUCKET], "daac-b"),
        (bw.sample_urls[PARTNER_BUCKET], "partner"),
    ]
    return run_throughput(
        {**bw.api_env(), **_clean(SAFE_ENV)},
        {**bw.vanilla_env(), **_clean(SAFE_ENV)},
        ours_sources,
        [(bw.sample_urls[OWN_BUCKET], None)],
        workdir,
        total=400 if quick else 2000,
        block=100 if quick else 200,
    )


def _fuzz(bw: BenchWorld, quick: bool, workdir: Path) -> Section:
    from bench.fuzz import run_fuzz
    from bench.inprocess import create_ours

    with patched_environ({**SAFE_ENV, **bw.api_env()}):
        return run_fuzz(create_ours(), bw.sample_urls, bw.sample_urls[OWN_BUCKET], examples=200 if quick else 2000)


def _cdn(bw: BenchWorld, quick: bool, workdir: Path) -> Section:
    from bench.cdn import run_cdn

    return run_cdn(
        {**bw.api_env(), **_clean(SAFE_ENV)},
        {**bw.vanilla_env(), **_clean(SAFE_ENV)},
        bw.world,
        bw.sample_urls[OWN_BUCKET],
        workdir,
        latency_tiles=40 if quick else 150,
        throughput_requests=80 if quick else 300,
        fresh_cogs=2 if quick else 5,
    )


def _hostile(bw: BenchWorld, quick: bool, workdir: Path) -> Section:
    from bench.hostile import run_hostile

    return run_hostile({**bw.api_env(), **_clean(SAFE_ENV)}, bw.world, workdir)


def _md(bw: BenchWorld, quick: bool, workdir: Path) -> Section:
    from bench.md import run_md

    return run_md(bw, {**SAFE_ENV, **bw.api_env()}, bw.world.endpoint, count=30 if quick else 150)


def _clean(env: dict[str, str | None]) -> dict[str, str]:
    return {k: v for k, v in env.items() if v is not None}


RUNNERS: dict[str, Callable[[BenchWorld, bool, Path], Section]] = {
    "latency": _latency,
    "secrets": _secrets,
    "cold": _cold,
    "mosaic": _mosaic,
    "throughput": _throughput,
    "fuzz": _fuzz,
    "cdn": _cdn,
    "hostile": _hostile,
    "floor": _floor,
    "md": _md,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer samples (smoke run); results still written")
    parser.add_argument("--only", action="append", choices=ALL + SEPARATE, help="run only these benchmarks")
    args = parser.parse_args(argv)
    # Progress on stderr for the bench logger only: the apps' own INFO logs (access log) are built but not printed.
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    started, t0, load0 = now(), time.monotonic(), os.getloadavg()
    sections: list[Section] = []
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp, patched_environ(SAFE_ENV):
        workdir = Path(tmp)
        log.info("starting moto and building the world")
        with bench_world(workdir) as bw:
            for name in args.only or ALL:
                log.info("running %s", name)
                t = time.monotonic()
                try:
                    sections.append(RUNNERS[name](bw, args.quick, workdir))
                except Exception as exc:  # one broken benchmark must not hide the others' figures
                    traceback.print_exc()
                    sections.append(
                        Section(
                            name=name, rows=[Row(name, "run", "error", "", False, f"{type(exc).__name__}: {exc}"[:300])]
                        )
                    )
                log.info("%s done in %.0f s", name, time.monotonic() - t)
    meta = {
        "started": started,
        "finished": now(),
        "duration_s": time.monotonic() - t0,
        "machine": machine(),
        "loadavg_start": "/".join(f"{x:.2f}" for x in load0),
        "loadavg_end": "/".join(f"{x:.2f}" for x in os.getloadavg()),
        "quick": args.quick,
        "command": "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    timing = [s for s in sections if s.name not in SEPARATE]
    if timing:
        partial = not set(ALL) <= {s.name for s in timing}
        write(with_earlier(timing, ROOT) if partial else timing, meta, ROOT, plot=not partial)
    for name in SEPARATE:
        separate = [s for s in sections if s.name == name]
        if separate:
            write(separate, meta, ROOT, suffix=f"-{name}")
    for s in sections:
        for r in s.rows:
            log.info("%-12s %-8s %s", r.benchmark, r.verdict.strip("*"), r.value)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
