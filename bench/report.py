"""Benchmark results: rows with target and verdict, written as `bench/results.json`, a markdown table in
`docs/benchmarks.md` and a PNG of the latency distributions."""

from __future__ import annotations

import json
import platform
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class Row:
    """One figure of the table: what was measured, the value, the target and whether it was met."""

    benchmark: str
    measure: str
    value: str
    target: str = ""
    ok: bool | None = None  # None: informational, no target
    note: str = ""

    @property
    def verdict(self) -> str:
        return {True: "met", False: "**missed**", None: "info"}[self.ok]


@dataclass
class Section:
    """The result of one benchmark: table rows, raw figures for the JSON, samples for the plot, profiles on misses."""

    name: str
    rows: list[Row] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    samples: dict[str, list[float]] = field(default_factory=dict)  # label -> durations (s), plotted
    profile: str = ""
    skipped: str = ""
    notes: list[str] = field(default_factory=list)


def _fmt_md(sections: list[Section], meta: dict[str, Any], plot: bool = True) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Produced by `.venv/bin/python -m bench` (see `bench/`); raw figures in `bench/results.json`, latency",
        "distributions in `benchmarks-latency.png`. Every comparison ran both sides in the same run, interleaved",
        "(random order per item), on a shared 2-core machine: read the ratios, not the absolute times.",
        "",
        f"Run: {meta['started']} → {meta['finished']} ({meta['duration_s']:.0f} s), {meta['machine']}, "
        f"load average at start {meta['loadavg_start']}, at end {meta['loadavg_end']}.",
        "",
        "| Benchmark | Measure | Value | Target | Verdict | Note |",
        "|---|---|---|---|---|---|",
    ]
    for s in sections:
        if s.skipped:
            lines.append(f"| {s.name} | — | skipped | | skipped | {s.skipped} |")
        for r in s.rows:
            lines.append(f"| {r.benchmark} | {r.measure} | {r.value} | {r.target} | {r.verdict} | {r.note} |")
    notes = [f"- **{s.name}**: {n}" for s in sections for n in s.notes]
    if notes:
        lines += ["", "Notes:", "", *notes]
    if plot:
        lines += ["", "![latency distributions](benchmarks-latency.png)", ""]
    for s in sections:
        if s.profile:
            lines += [f"## Profile: {s.name}", "", "```text", s.profile.rstrip(), "```", ""]
    return "\n".join(lines)


def _plot(sections: list[Section], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [s for s in sections if s.samples]
    if not groups:
        return
    fig, axes = plt.subplots(1, len(groups), figsize=(4.6 * len(groups), 4.6), squeeze=False)
    for ax, s in zip(axes[0], groups, strict=True):
        labels = list(s.samples)
        data = [np.asarray(s.samples[k]) * 1000.0 for k in labels]
        ax.boxplot(data, tick_labels=labels, showfliers=False, whis=(5, 95))
        for i, d in enumerate(data, start=1):
            jitter = np.random.default_rng(i).uniform(-0.12, 0.12, d.size)
            ax.scatter(np.full(d.size, i) + jitter, d, s=3, alpha=0.25)
        ax.set_title(s.name, fontsize=10)
        ax.set_ylabel("ms")
        ax.tick_params(axis="x", labelsize=8)
        ax.set_ylim(bottom=0)
    fig.suptitle("Latency distributions (box: 25-75 %, whiskers: 5-95 %)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


KEPT_NOTE = "figures of the run started"


def with_earlier(sections: list[Section], root: Path) -> list[Section]:
    """`sections`, plus the sections of the committed `bench/results.json` that were not run again (a run of some
    benchmarks keeps the others' figures, each marked with the run it comes from), in the committed order."""
    path = root / "bench" / "results.json"
    fresh = {s.name: s for s in sections}
    merged: list[Section] = []
    if path.exists():
        earlier = json.loads(path.read_text())
        started = earlier["meta"]["started"]
        fields = set(Row.__dataclass_fields__)
        for s in earlier["sections"]:
            if s["name"] in fresh:
                merged.append(fresh.pop(s["name"]))
                continue
            rows = [Row(**{k: v for k, v in r.items() if k in fields}) for r in s["rows"]]
            notes = list(s["notes"])
            if not any(n.startswith(KEPT_NOTE) for n in notes):  # kept before: its note names the run already
                notes.append(f"{KEPT_NOTE} {started} (not run again since)")
            merged.append(Section(s["name"], rows, s["data"], profile=s["profile"], skipped=s["skipped"], notes=notes))
    return merged + list(fresh.values())


def write(sections: list[Section], meta: dict[str, Any], root: Path, suffix: str = "", plot: bool = True) -> None:
    """`bench/results{suffix}.json` and `docs/benchmarks{suffix}.md` (+ the latency plot for the main table, unless
    `plot` is off: a partial run keeps the committed plot)."""
    results = {
        "meta": meta,
        "sections": [
            {
                "name": s.name,
                "skipped": s.skipped,
                "rows": [{**asdict(r), "verdict": r.verdict.strip("*")} for r in s.rows],
                "data": s.data,
                "profile": s.profile,
                "notes": s.notes,
            }
            for s in sections
        ],
    }
    (root / "bench" / f"results{suffix}.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    docs = root / "docs"
    docs.mkdir(exist_ok=True)
    (docs / f"benchmarks{suffix}.md").write_text(_fmt_md(sections, meta, plot=not suffix))
    if not suffix and plot:
        _plot(sections, docs / "benchmarks-latency.png")


def machine() -> str:
    import os

    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
