"""Cold start in fresh interpreters: importing our Lambda handler vs bare titiler + mangum, and the time to the
first tile through the Mangum handler (an API Gateway HTTP API v2 event), alternating the contenders run by run."""

from __future__ import annotations

import compileall
import json
import os
import random
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.report import Row, Section
from bench.stats import median_ratio, summarize
from bench.tiles import tile_path, tiles_within
from local_stack.samples import DEFAULT_BOUNDS as SAMPLE_BOUNDS

ROOT = Path(__file__).resolve().parent.parent
# Our packages imported by the contenders: compiled before timing, like site-packages (pip) and the Lambda bundle.
OWN_PACKAGES = ("providers", "raster_api", "bench")

IMPORT_OURS = "import raster_api.handler"
IMPORT_BARE = "import titiler.core, titiler.pgstac, mangum"
IMPORT_VANILLA_HANDLER = "import mangum, bench.vanilla; mangum.Mangum(bench.vanilla.create_vanilla_app())"

_IMPORT_SNIPPET = """
import json, time
t0 = time.perf_counter()
{stmt}
print(json.dumps({{"import_s": time.perf_counter() - t0}}))
"""

# An API Gateway HTTP API v2 event for a tile `url` and a Lambda context: shared by the fresh-process snippets.
_EVENT_DEF = """
import base64, json, time, types

def event(url):
    path, _, query = url.partition("?")
    return {
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": query,
        "headers": {"host": "abc123.execute-api.us-west-2.amazonaws.com", "accept": "image/png"},
        "requestContext": {
            "accountId": "123456789012", "apiId": "abc123", "domainName": "abc123.execute-api.us-west-2.amazonaws.com",
            "domainPrefix": "abc123", "requestId": "bench-1", "routeKey": "$default", "stage": "$default",
            "time": "23/Nov/2026:20:00:00 +0000", "timeEpoch": 1795464000000,
            "http": {"method": "GET", "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "b"},
        },
        "isBase64Encoded": False,
    }

context = types.SimpleNamespace(function_name="raster-api", aws_request_id="b", get_remaining_time_in_millis=lambda: 30000)

def png(response):
    body = base64.b64decode(response["body"]) if response.get("isBase64Encoded") else response["body"].encode()
    return response["statusCode"] == 200 and body[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
"""

_FIRST_TILE_SNIPPET = """
t0 = time.perf_counter()
from raster_api.handler import handler
t1 = time.perf_counter()
response = handler(event(PATHS[0]), context)
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "first_tile_s": t2 - t0, "ok": png(response)}))
"""

# SnapStart as Lambda runs it, import excluded (it is the snapshot): the before-snapshot hooks, then the restore
# hooks and the first tile (timed), then further tiles of the same COG (warm: credentials and header cached).
_RESTORE_SNIPPET = """
import snapshot_restore_py
from raster_api.handler import handler
for hook, args, kwargs in snapshot_restore_py.get_before_snapshot():
    hook(*args, **kwargs)
t0 = time.perf_counter()
for hook, args, kwargs in snapshot_restore_py.get_after_restore():
    hook(*args, **kwargs)
t1 = time.perf_counter()
first = handler(event(PATHS[0]), context)
t2 = time.perf_counter()
warm, ok = [], png(first)
for path in PATHS[1:]:
    start = time.perf_counter()
    ok = png(handler(event(path), context)) and ok
    warm.append(time.perf_counter() - start)
print(json.dumps({"restore_s": t1 - t0, "restore_first_tile_s": t2 - t0, "warm_tile_s": sorted(warm)[len(warm) // 2],
                  "ok": ok}))
"""


def _tile_snippet(body: str, paths: list[str]) -> str:
    return f"{_EVENT_DEF}\nPATHS = {paths!r}\n{body}"


def _run(snippet: str, env: Mapping[str, str | None], timeout: float = 120) -> dict[str, Any]:
    """`snippet` in a fresh interpreter with this environment changed by `env` (None: removed)."""
    merged = {**os.environ, **env}
    proc = subprocess.run(  # noqa: S603 - fixed interpreter, our own snippet
        [sys.executable, "-c", snippet],
        env={k: v for k, v in merged.items() if v is not None},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"fresh process failed ({proc.returncode}): {proc.stderr[-800:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def _importtime(stmt: str, env: Mapping[str, str]) -> list[tuple[int, int, str]]:
    """(cumulative us, self us, module) for each module `stmt` imports, from `python -X importtime`."""
    proc = subprocess.run(  # noqa: S603
        [sys.executable, "-X", "importtime", "-c", stmt],
        env={**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    entries = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cum_us, name = (part.strip() for part in line.split(":", 1)[1].split("|"))
        entries.append((int(cum_us), int(self_us), name))
    return sorted(entries, reverse=True)


_CREATE_APP_PROFILE = """
import cProfile, io, pstats
import raster_api.main
prof = cProfile.Profile()
prof.enable()
raster_api.main.create_app()
prof.disable()
out = io.StringIO()
pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(12)
print(out.getvalue())
"""


def import_profile(env: Mapping[str, str], top: int = 15) -> str:
    """What the handler import adds over the bare import: the extra modules (by cumulative import time) and a
    cProfile of `create_app()`, which the handler runs at import (Lambda's init phase)."""
    ours = _importtime(IMPORT_OURS, env)
    bare_names = {name.strip() for _, _, name in _importtime(IMPORT_BARE, env)}
    extra = [(c, s, n) for c, s, n in ours if n.strip() not in bare_names]
    out = [
        f"python -X importtime: modules imported by `{IMPORT_OURS}` but not by `{IMPORT_BARE}`, top {top}",
        "cumulative_ms  self_ms  module",
        *(f"{c / 1000:13.1f}  {s / 1000:7.1f}  {n}" for c, s, n in extra[:top]),
        f"(sum of self time of the {len(extra)} extra modules: {sum(s for _, s, _ in extra) / 1000:.0f} ms; "
        "raster_api.handler's self time is create_app())",
        "",
        "cProfile of create_app() in a fresh process (cumulative):",
    ]
    proc = subprocess.run(  # noqa: S603
        [sys.executable, "-c", _CREATE_APP_PROFILE],
        env={**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out += [line for line in proc.stdout.splitlines() if line.strip()]
    return "\n".join(out)


def _cold_note(ok: bool, ci_high: float, target: float, vs_vanilla: float) -> str:
    if not ok:
        return (
            f"our handler builds titiler's routes at import (Lambda init) as any titiler handler does: x{vs_vanilla:.2f} "
            "of a vanilla titiler handler (next row); see the profile below. SnapStart (`DEPLOY_SNAP_START`) takes "
            "init out of cold starts"
        )
    if ci_high > target:
        return f"met at the median, but the 95% CI reaches x{ci_high:.2f}: marginal on this shared machine"
    return ""


def run_cold_start(
    api_env: Mapping[str, str],
    tile_url: str,
    runs: int = 7,
    target: float = 1.25,
    snapstart_credentials: Mapping[str, str | None] | None = None,
) -> Section:
    """`snapstart_credentials`: the environment changes that hand the Lambda's keys over as SnapStart does (for the
    restore rows)."""
    section = Section(name="cold start")
    stmts = {"ours": IMPORT_OURS, "bare": IMPORT_BARE, "vanilla": IMPORT_VANILLA_HANDLER}
    times: dict[str, list[float]] = {name: [] for name in stmts}
    # With PYTHONDONTWRITEBYTECODE set (as on this machine) a fresh process would compile every module of ours
    # whose cached byte-code is missing or stale, on every run; the deployed bundle ships byte-code.
    for package in OWN_PACKAGES:
        compileall.compile_dir(ROOT / package, quiet=1)
    for stmt in stmts.values():  # unrecorded: page the files in, so no side pays the disk alone
        _run(_IMPORT_SNIPPET.format(stmt=stmt), api_env)
    rng = random.Random(17)
    for _ in range(runs):
        order = list(stmts)
        rng.shuffle(order)
        for name in order:
            times[name].append(_run(_IMPORT_SNIPPET.format(stmt=stmts[name]), api_env)["import_s"])
    ours, bare, vanilla = times["ours"], times["bare"], times["vanilla"]
    ratio = median_ratio(ours, bare)
    ratio_vanilla = median_ratio(ours, vanilla)
    ok = ratio["ratio"] <= target
    section.samples = {"ours\nhandler": ours, "bare\nimports": bare, "vanilla\nhandler": vanilla}
    section.data = {
        "import_ours": summarize(ours),
        "import_bare": summarize(bare),
        "import_vanilla_handler": summarize(vanilla),
        "ratio": ratio,
        "ratio_vs_vanilla_handler": ratio_vanilla,
    }
    section.rows.append(
        Row(
            "cold start",
            f"fresh-process import: `{IMPORT_OURS}` vs `{IMPORT_BARE}` (median of {runs}, random order per run)",
            f"{summarize(ours)['median_ms']:.0f} ms vs {summarize(bare)['median_ms']:.0f} ms = "
            f"x{ratio['ratio']:.3f} (95% CI {ratio['ci95_low']:.2f}-{ratio['ci95_high']:.2f})",
            f"ratio ≤ {target}",
            ok,
            _cold_note(ok, ratio["ci95_high"], target, ratio_vanilla["ratio"]),
        )
    )
    section.rows.append(
        Row(
            "cold start",
            "context: the same import vs a vanilla titiler handler that also builds its app at import "
            "(`Mangum(create_vanilla_app())`)",
            f"{summarize(ours)['median_ms']:.0f} ms vs {summarize(vanilla)['median_ms']:.0f} ms = "
            f"x{ratio_vanilla['ratio']:.3f} (95% CI {ratio_vanilla['ci95_low']:.2f}-{ratio_vanilla['ci95_high']:.2f})",
        )
    )
    if not ok:
        section.profile = import_profile(api_env)
    first: list[dict[str, Any]] = []
    path = tile_path(tiles_within(SAMPLE_BOUNDS, (10,), 1)[0], tile_url, "own")
    for _ in range(max(3, runs // 2)):
        first.append(_run(_tile_snippet(_FIRST_TILE_SNIPPET, [path]), api_env))
    first_times = [f["first_tile_s"] for f in first]
    good = all(f["ok"] for f in first)
    section.data["first_tile"] = {"runs": first, **summarize(first_times)}
    section.rows.append(
        Row(
            "cold start",
            "time to first tile through the Mangum handler (fresh process: import + API GW v2 event → PNG)",
            f"{summarize(first_times)['median_ms']:.0f} ms (median of {len(first_times)})",
            "PNG 200",
            good,
            "" if good else "not every run answered a PNG 200",
        )
    )
    restore_env = {**api_env, **(snapstart_credentials or {})}
    section.rows.append(_restore_row(section, restore_env, tile_url, max(3, runs // 2)))
    return section


def _restore_row(section: Section, api_env: Mapping[str, str | None], tile_url: str, runs: int) -> Row:
    """SnapStart: restore hooks + first tile vs a warm tile, each run in a fresh process (import excluded)."""
    paths = [tile_path(tile, tile_url, "own") for tile in tiles_within(SAMPLE_BOUNDS, (10,), 6)]
    snapstart_env = {**api_env, "AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start"}  # as Lambda sets it: primed
    restores = [_run(_tile_snippet(_RESTORE_SNIPPET, paths), snapstart_env) for _ in range(runs)]
    first = [r["restore_first_tile_s"] for r in restores]
    warm = [r["warm_tile_s"] for r in restores]
    ratio = median_ratio(first, warm)
    section.data["restore"] = {"runs": restores, "first": summarize(first), "warm": summarize(warm), "ratio": ratio}
    target = 2.0
    ok = all(r["ok"] for r in restores) and ratio["ratio"] <= target
    return Row(
        "cold start",
        "SnapStart: restore hooks (credentials fetched, pool reopened) + first tile vs a warm tile of the same COG "
        f"(fresh process each, import excluded as a restore excludes it, the Lambda's keys from a container "
        f"credentials endpoint as SnapStart hands them over; median of {runs})",
        f"{summarize(first)['median_ms']:.0f} ms vs {summarize(warm)['median_ms']:.0f} ms = x{ratio['ratio']:.2f} "
        f"(restore hooks alone {summarize([r['restore_s'] for r in restores])['median_ms']:.0f} ms)",
        f"ratio ≤ {target:g}",
        ok,
    )
