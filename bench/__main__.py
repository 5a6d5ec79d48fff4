"""``python -m bench``: every benchmark, one after the other, then the figures table in
``bench/README.md`` rewritten (between its ``figures`` markers) with the date and the commit.

Each benchmark runs as ``python -m bench.NAME`` in a child process (its own interpreter: the
scale figures must not include another benchmark's memory); its ``name: value`` lines are echoed
as ``NAME.name: value``. ``--only NAME …`` runs a subset (the table keeps the other rows' last
figures). Exit status 1 when a benchmark failed or a commitment was missed.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.common import parse_lines

README = Path(__file__).with_name("README.md")
BEGIN, END = "<!-- figures:begin -->", "<!-- figures:end -->"
BENCHMARKS = ("confirm", "ratelimit", "scale", "recovery", "store", "fleet", "soak")


@dataclass(frozen=True)
class Row:
    bench: str
    figure: str  # the name printed by the benchmark
    commitment: str  # as written in the table
    holds: Callable[[float], bool] | None = None  # None: a figure shown for comparison


ROWS = (
    Row("confirm", "actors.bound_p95", "≤ 1 (overshoot p95 ≤ max(2 s, 20 % of age))", lambda v: v <= 1.0),
    Row("confirm", "actors.overshoot_max_s", "≤ 120 s", lambda v: v <= 120.0),
    Row("confirm", "actors.status_per_confirmed_20plus_seconds", "≤ 1.5", lambda v: v <= 1.5),
    Row("confirm", "actors.status_429", "0", lambda v: v == 0),
    Row("confirm", "actors.overshoot_p95_s", ""),
    Row("confirm", "peer.overshoot_p95_s", ""),
    Row("confirm", "ratio.overshoot_p95_s", "(peer / ours)"),
    Row("confirm", "actors.status_per_confirmed", ""),
    Row("confirm", "peer.status_per_confirmed", ""),
    *(
        Row("confirm", f"{who}.{scenario}.status_per_confirmed", "")
        for scenario in ("p20_seconds", "p50_seconds", "mixed_seconds", "mixed_minutes", "mixed_hours")
        for who in ("actors", "peer")
    ),
    Row("confirm", "actors.budget_peak_share", ""),
    Row("confirm", "peer.budget_peak_share", ""),
    Row("ratelimit", "actors.share_of_limit", "≥ 0.975", lambda v: v >= 0.975),
    Row("ratelimit", "actors.status_429", "0", lambda v: v == 0),
    Row("ratelimit", "peer.share_of_limit", ""),
    Row("scale", "practices", ""),
    Row("scale", "kib_per_practice", "≤ 16 KiB", lambda v: v <= 16.0),
    Row("scale", "loop_lag_p99_ms", "≤ 10 ms", lambda v: v <= 10.0),
    Row("scale", "actors_s", "≤ 15 s (restart, every actor running)", lambda v: v <= 15.0),
    Row("scale", "loop_lag_max_ms", ""),
    Row("scale", "cpu_share", "(one core = 1)"),
    Row("scale", "ready_s", ""),
    Row("scale", "key_check_interval_s", "(SIKKA_KEY_CHECK_INTERVAL)"),
    Row("scale", "key_checks_due_per_s", ""),
    Row("scale", "sim_requests_per_s", ""),
    Row("scale", "sim_cpu_share", "(one core = 1)"),
    Row("recovery", "recovery_s", "≤ 10 s", lambda v: v <= 10.0),
    Row("recovery", "actors_s", ""),
    Row("recovery", "first_checks_s", ""),
    Row("store", "single_vs_raw", "≥ 0.5", lambda v: v >= 0.5),
    Row("store", "append_events_per_s_single", ""),
    *(
        Row("store", f"{figure}_concurrent_{writers}", "")
        for writers in (1, 16)
        for figure in ("raw_insert_per_s", "append_events_per_s", "append_vs_raw")
    ),
    Row("store", "raw_insert_per_s_concurrent_64", ""),
    Row("store", "append_events_per_s_concurrent_64", "≥ 10,000", lambda v: v >= 10000),
    Row("store", "append_vs_raw_concurrent_64", "≥ 2", lambda v: v >= 2.0),
    Row("store", "append_latency_p50_ms_concurrent_64", ""),
    Row("store", "append_latency_p99_ms_concurrent_64", "≤ 25 ms", lambda v: v <= 25.0),
    Row("store", "append_events_per_s_batched", "≥ 20,000", lambda v: v >= 20000),
    Row("store", "replay_events_per_s", "≥ 100,000", lambda v: v >= 100000),
    Row("fleet", "ours.100000.status_per_confirmed", "≤ 1.5", lambda v: v <= 1.5),
    Row("fleet", "ours.100000.app_peak_share", "≤ 0.8 (of 200 a minute)", lambda v: v <= 0.8),
    Row("fleet", "ours.100000.bound_p95", "≤ 1", lambda v: v <= 1.0),
    Row("fleet", "before.100000.status_per_confirmed", "(before issue 21)"),
    Row("fleet", "before.100000.app_peak_share", "(before issue 21)"),
    *(
        Row("fleet", f"{who}.{volume}.{figure}", "" if who == "ours" else "(before issue 21)")
        for volume in (1000, 10000)
        for figure in ("status_per_confirmed", "app_calls_per_min")
        for who in ("ours", "before")
    ),
    Row("soak", "lost", "0", lambda v: v == 0),
    Row("soak", "duplicated", "0", lambda v: v == 0),
    Row("soak", "app_429", "0", lambda v: v == 0),
    Row("soak", "practice_429", "0", lambda v: v == 0),
    Row("soak", "rss_growth_mib_per_1000", "≤ 1 MiB", lambda v: v <= 1.0),
    Row("soak", "events_per_writeback", "≤ 6", lambda v: v <= 6.0),
    Row("soak", "app_calls_per_confirmation", "≤ 0.1", lambda v: v <= 0.1),
    Row("soak", "pages_per_list_round", ""),
    Row("soak", "status_reads_per_confirmation", ""),
    Row("soak", "app_max_in_any_60s", "(simulator's limit 250)"),
    Row("soak", "submit_p99_ms", ""),
)


def run(name: str) -> dict[str, str] | None:
    proc = subprocess.run([sys.executable, "-m", f"bench.{name}"], capture_output=True, text=True)
    sys.stderr.write(proc.stderr[-4000:] if proc.returncode else "")
    if proc.returncode:
        print(f"{name}.failed: exit {proc.returncode}")
        return None
    figures = parse_lines(proc.stdout)
    for key, value in figures.items():
        print(f"{name}.{key}: {value}", flush=True)
    return figures


def commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=README.parent)
    dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, cwd=README.parent).stdout
    return (out.stdout.strip() or "unknown") + ("+dirty" if dirty.strip() else "")


def old_cells(text: str) -> dict[tuple[str, str], tuple[str, str]]:
    """(bench, figure) → (measured, holds) cells of the table now in the README."""
    cells = {}
    for bench, figure, measured, holds in re.findall(
        r"^\| `(\w+)` \| `([\w.]+)` \| ([^|]*) \| [^|]* \| ([^|]*) \|", text, flags=re.M
    ):
        cells[(bench, figure)] = (measured.strip(), holds.strip())
    return cells


def table(
    results: dict[str, dict[str, str] | None], previous: dict[tuple[str, str], tuple[str, str]], stamp: str
) -> str:
    lines = [BEGIN, f"Measured {stamp}; rows of benchmarks not run then are kept from an earlier run.", "",
             "| benchmark | figure | measured | commitment | holds |", "|---|---|---|---|---|"]
    for row in ROWS:
        figures = results.get(row.bench)
        value = figures.get(row.figure) if figures else None
        if value is None:
            cell, holds = previous.get((row.bench, row.figure), ("—", ""))
        else:
            cell = value
            holds = "" if row.holds is None else ("yes" if row.holds(float(value)) else "**no**")
        lines.append(f"| `{row.bench}` | `{row.figure}` | {cell} | {row.commitment} | {holds} |")
    lines.append(END)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, default=list(BENCHMARKS))
    args = parser.parse_args(argv)
    results = {name: run(name) for name in args.only}
    text = README.read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    stamp = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC at commit `{commit()}` ({', '.join(args.only)})"
    README.write_text(text[:start] + table(results, old_cells(text[start:end]), stamp) + text[end:])
    failed = any(r is None for r in results.values())
    missed = [
        f"{row.bench}.{row.figure}"
        for row in ROWS
        if row.holds is not None and results.get(row.bench) and row.figure in results[row.bench]
        and not row.holds(float(results[row.bench][row.figure]))
    ]
    for name in missed:
        print(f"missed.{name}: true")
    return 1 if failed or missed else 0


if __name__ == "__main__":
    sys.exit(main())
