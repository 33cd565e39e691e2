"""`make bench`: a generated 1,000,000-row CSV through the importer into the sandbox.

The sandbox runs in its own process; the rate limit is off. Prints rows/s, requests/s,
objects/s, CPU seconds per 1,000 rows and peak RSS of the importer process, per batch mode.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench_data import BENCHMARK_HEADER as HEADER
from bench_data import CITIES, DATA, FIRST, LAST, ensure, mapping_path
from sandbox_proc import SANDBOX_KEY, sandbox_process

MAPPING = mapping_path("benchmark")


def run_once(
    sources: list[Path], url: str, mode: str, *extra: str, stop_after_s: float | None = None
) -> dict[str, float]:
    """One import in its own process; its CPU and peak RSS come from wait4()."""
    run_dir = DATA / f"run-{mode}-{int(time.time() * 1000)}"
    command = [sys.executable, "-m", "importer", "run", *map(str, sources)]
    command += ["--mapping", str(MAPPING), "--endpoint", url, "--batch-mode", mode]
    command += ["--run-dir", str(run_dir), "--quiet", *extra]
    started = time.perf_counter()
    proc = subprocess.Popen(
        command, env={**os.environ, "BRAZE_API_KEY": SANDBOX_KEY}, stdout=subprocess.DEVNULL
    )
    peak_kb = 0
    deadline = None if stop_after_s is None else started + stop_after_s
    while True:
        # VmHWM is the process's own high-water mark since exec (wait4's ru_maxrss would count
        # the bench's memory copied at fork); reading it until exit misses only the last 0.2 s.
        peak_kb = max(peak_kb, _vm_hwm_kb(proc.pid))
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)  # CPU time of the importer alone
        if pid:
            break
        if deadline is not None and time.perf_counter() >= deadline:
            proc.send_signal(signal.SIGINT)  # a clean stop: in-flight requests finish
            deadline = None
        time.sleep(0.2)
    wall = time.perf_counter() - started
    summary = json.loads((run_dir / "summary.json").read_text())
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 130) or summary["failed"]:
        raise SystemExit(f"bench run failed (exit {code}): {summary}")
    cpu = usage.ru_utime + usage.ru_stime
    objects = sum(summary["objects_sent"].values())
    rows = summary["delivered"]
    return {
        "rows": rows,
        "wall_s": wall,
        "rows_per_s": rows / wall,
        "requests": summary["requests"],
        "requests_per_s": summary["requests_per_s"],
        "objects_per_s": objects / wall,
        "cpu_s_per_1000_rows": cpu / max(rows, 1) * 1000,
        "cpu_s_per_1000_objects": cpu / max(objects, 1) * 1000,
        "peak_rss_mb": peak_kb / 1024,
        "rate_limited": summary["rate_limited"],
        "rate_limit_wait_s": summary["rate_limit_wait_s"],
        "unsent": summary.get("unsent", 0),
        "max_in_flight": summary["max_in_flight"],
    }


def _vm_hwm_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _data(rows: int) -> Path:
    return ensure("benchmark", rows)


def throughput(args: argparse.Namespace) -> None:
    """Rate limit off: how fast one process reads, converts, packs and sends."""
    source = _data(args.rows)
    print(
        f"{args.rows:,} rows, rate limit off, {args.concurrency} in flight, sandbox in its "
        "own process"
    )
    print(
        f"{'mode':9} {'rows/s':>9} {'req/s':>7} {'objects/s':>10} "
        f"{'CPU s/1k rows':>13} {'CPU s/1k obj':>12} {'peak RSS MB':>11} {'wall s':>7}"
    )
    with sandbox_process("--batch-mode", "legacy") as url:
        for mode in args.modes.split(","):
            r = run_once([source], url, mode, "--rate", "0", "--concurrency", str(args.concurrency))
            print(
                f"{mode:9} {r['rows_per_s']:9,.0f} {r['requests_per_s']:7,.0f} "
                f"{r['objects_per_s']:10,.0f} {r['cpu_s_per_1000_rows']:13.4f} "
                f"{r['cpu_s_per_1000_objects']:12.5f} {r['peak_rss_mb']:11.1f} "
                f"{r['wall_s']:7.1f}",
                flush=True,
            )


def ceiling(args: argparse.Namespace) -> None:
    """Default rate against a sandbox that answers after 50 ms and enforces Braze's limits."""
    source = _data(args.rows)
    latency = f"{args.latency_ms:g}"
    limits = ["--limit-per-minute", "50000", "--limit-per-3s", "3000", "--latency-ms", latency]
    with sandbox_process("--batch-mode", "legacy", *limits) as url:
        r = run_once([source] * 8, url, "legacy", stop_after_s=args.seconds)
    print(
        f"default --rate 50000, legacy mode, sandbox: {latency} ms answers, 50,000/min + "
        f"3,000/3 s; stopped after {args.seconds:.0f} s"
    )
    print(
        f"achieved {r['requests_per_s']:,.1f} requests/s = {r['requests_per_s'] / 833.33:.1%} "
        f"of 833.3; {r['rate_limited']} answered 429; at most {r['max_in_flight']} in flight; "
        f"{r['rows_per_s']:,.0f} rows/s; CPU {r['cpu_s_per_1000_objects'] * 1000:.1f} µs/object"
    )


def shared(args: argparse.Namespace) -> None:
    """The server allows 6,000/min while the importer is set to 50,000: it must converge."""
    source = _data(args.rows)
    # combined mode: ~32 rows per request, so the file outlasts several one-minute windows.
    with sandbox_process("--batch-mode", "legacy", "--limit-per-minute", "6000") as url:
        r = run_once([source], url, "combined", "--rate", "50000")
    share = r["rate_limited"] / max(r["requests"], 1)
    print(
        f"server 6,000/min, importer --rate 50000: {r['requests']:,} requests in "
        f"{r['wall_s']:.0f} s ({r['requests_per_s'] * 60:,.0f}/min), {r['rate_limited']} 429s "
        f"({share:.2%}), {r['rate_limit_wait_s']:.1f} s waiting, {r['rows']:,} of "
        f"{args.rows:,} rows delivered"
    )


def memory(args: argparse.Namespace) -> None:
    """Peak RSS at 1,000,000 and at args.rows rows (rate off)."""
    with sandbox_process("--batch-mode", "legacy") as url:
        for rows in (1_000_000, args.rows):
            r = run_once([_data(rows)], url, "legacy", "--rate", "0")
            print(
                f"{rows:>11,} rows: peak RSS {r['peak_rss_mb']:.1f} MB, "
                f"{r['rows_per_s']:,.0f} rows/s",
                flush=True,
            )


def _nightly_export(path: Path, users: int, night: int) -> None:
    """Night 3 changes one attribute of 1% of users and gives another 1% a new event."""
    with path.open("w", encoding="utf-8") as out:
        out.write(HEADER)
        for n in range(users):
            city = "Paris" if night == 3 and n % 100 == 0 else CITIES[n % len(CITIES)]
            when = f"2024-01-{1 + n % 28:02}T10:00:00+00:00"
            out.write(
                f"U{n:08d},{FIRST[n % 10]},{LAST[n % 8]},user{n}@example.com,{city},"
                f"{n % 1000},yes,{when},free,,,\n"
            )
            if night == 3 and n % 100 == 50:
                later = f"2024-06-{1 + n % 28:02}T10:00:00+00:00"
                out.write(
                    f"U{n:08d},{FIRST[n % 10]},{LAST[n % 8]},user{n}@example.com,"
                    f"{city},{n % 1000},yes,{later},free,,,\n"
                )


def nightly(args: argparse.Namespace) -> None:
    """--state over three nights of a generated export (issue 5's measurement)."""
    state = DATA / "nightly-state.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{state}{suffix}").unlink(missing_ok=True)
    with sandbox_process("--batch-mode", "legacy") as url:
        for night in (1, 2, 3):
            export = DATA / f"nightly-{args.rows}-{night}.csv"
            _nightly_export(export, args.rows, night)
            r = run_once([export], url, "legacy", "--rate", "0", "--state", str(state))
            summary = json.loads(
                sorted(DATA.glob("run-legacy-*"))[-1].joinpath("summary.json").read_text()
            )
            print(
                f"night {night}: {summary['rows_read']:,} rows, {summary['requests']:,} requests, "
                f"objects sent {summary['objects_sent']}, skipped {summary['skipped']}, "
                f"attributes unchanged {summary['attributes_unchanged']:,}, events already sent "
                f"{summary['events_already_sent']:,}, "
                f"{summary['rows_read'] / r['wall_s']:,.0f} rows/s, state file "
                f"{state.stat().st_size / 1e6:.1f} MB",
                flush=True,
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--scenario",
        choices=["throughput", "ceiling", "shared", "memory", "nightly"],
        default="throughput",
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--modes", default="legacy,combined")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--latency-ms", type=float, default=50.0, help="ceiling: the sandbox's")
    args = parser.parse_args()
    scenarios = {
        "throughput": throughput,
        "ceiling": ceiling,
        "shared": shared,
        "memory": memory,
        "nightly": nightly,
    }
    scenarios[args.scenario](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
