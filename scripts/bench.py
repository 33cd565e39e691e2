"""`make bench`: a generated 1,000,000-row CSV through the importer into the sandbox.

The sandbox runs in its own process; the rate limit is off. Prints rows/s, requests/s,
objects/s, CPU seconds per 1,000 rows and peak RSS of the importer process, per batch mode.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sandbox_proc import SANDBOX_KEY, sandbox_process

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench-data"
MAPPING = ROOT / "scripts" / "bench-mapping.toml"
HEADER = (
    "external_id,first_name,last_name,email,city,points,vip,signup,plan,sku,amount,order_date\n"
)
FIRST = ["Anna", "Ben", "Chloé", "Dmitri", "Eva", "Farid", "Greta", "Hugo", "Ines", "Jonas"]
LAST = ["Meyer", "Schulz", "Novak", "Rossi", "Dubois", "Jensen", "García", "Kowalski"]
CITIES = ["Berlin", "Hamburg", "Wien", "Zürich", "Lyon", "Milano", "Praha", "Gdańsk"]


def generate(path: Path, rows: int) -> None:
    """A 12-column legacy user file: every row an attributes object and an event, every
    third row a purchase."""
    rng = random.Random(42)
    start = datetime(2015, 1, 1, tzinfo=UTC)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        out.write(HEADER)
        for n in range(rows):
            signup = start + timedelta(seconds=rng.randrange(300_000_000))
            when = signup.strftime("%Y-%m-%dT%H:%M:%S+00:00")
            purchase = n % 3 == 0
            sku = f"SKU-{rng.randrange(500)}" if purchase else ""
            amount = f"{rng.randrange(100, 99_999) / 100:.2f}" if purchase else ""
            out.write(
                f"U{n:08d},{rng.choice(FIRST)},{rng.choice(LAST)},user{n}@example.com,"
                f"{rng.choice(CITIES)},{rng.randrange(10_000)},{rng.choice(('yes', 'no'))},"
                f"{when},{rng.choice(('free', 'pro', 'team'))},{sku},{amount},"
                f"{when if purchase else ''}\n"
            )


def run_once(source: Path, url: str, mode: str, concurrency: int) -> dict[str, float]:
    run_dir = DATA / f"run-{mode}-{int(time.time() * 1000)}"
    command = [
        sys.executable,
        "-m",
        "importer",
        "run",
        str(source),
        "--mapping",
        str(MAPPING),
        "--endpoint",
        url,
        "--rate",
        "0",
        "--concurrency",
        str(concurrency),
        "--batch-mode",
        mode,
        "--run-dir",
        str(run_dir),
        "--quiet",
    ]
    started = time.perf_counter()
    proc = subprocess.Popen(
        command, env={**os.environ, "BRAZE_API_KEY": SANDBOX_KEY}, stdout=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    summary = json.loads((run_dir / "summary.json").read_text())
    if os.waitstatus_to_exitcode(status) != 0 or summary["status"] != "complete":
        raise SystemExit(f"bench run failed: {summary}")
    cpu = usage.ru_utime + usage.ru_stime
    objects = sum(summary["objects_sent"].values())
    return {
        "rows": summary["rows_read"],
        "wall_s": wall,
        "rows_per_s": summary["rows_read"] / wall,
        "requests_per_s": summary["requests"] / wall,
        "objects_per_s": objects / wall,
        "cpu_s_per_1000_rows": cpu / summary["rows_read"] * 1000,
        "cpu_s_per_1000_objects": cpu / objects * 1000,
        "peak_rss_mb": usage.ru_maxrss / 1024,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--modes", default="legacy,combined")
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    source = DATA / f"users-{args.rows}.csv"
    if not source.exists():
        print(f"generating {source.relative_to(ROOT)} ...", flush=True)
        generate(source, args.rows)
    print(
        f"{'mode':9} {'rows/s':>9} {'req/s':>7} {'objects/s':>10} "
        f"{'CPU s/1k rows':>13} {'CPU s/1k obj':>12} {'peak RSS MB':>11} {'wall s':>7}"
    )
    with sandbox_process("--batch-mode", "legacy") as url:
        for mode in args.modes.split(","):
            r = run_once(source, url, mode, args.concurrency)
            print(
                f"{mode:9} {r['rows_per_s']:9,.0f} {r['requests_per_s']:7,.0f} "
                f"{r['objects_per_s']:10,.0f} {r['cpu_s_per_1000_rows']:13.4f} "
                f"{r['cpu_s_per_1000_objects']:12.5f} {r['peak_rss_mb']:11.1f} "
                f"{r['wall_s']:7.1f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
