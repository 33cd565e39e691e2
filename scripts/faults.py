"""Faults cost what the server asks, not more: a clean run against a fault-mix run.

100,000 rows (legacy mode, 75 rows a request) go through the importer at its default rate into
a sandbox in its own process that answers after 50 ms and enforces Braze's 50,000/min and
3,000/3 s (so every answer reports a budget, as Braze's do). The fault run adds 1% spurious
429s (``X-Ratelimit-Retry-After: 1``), 0.5% 500s and 0.5% dropped connections.

The pauses the server mandated are measured by the server, not by the importer: the sandbox
adds up the union of ``[answered, answered + Retry-After]`` over every 429 it answered
(``SandboxStats.wait_asked_s``). The importer passes when

    fault wall time <= (clean wall time + that union) * 1.2

Wall times are of the importer's process, start-up included, in both runs alike.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from sandbox_proc import SANDBOX_KEY

from importer.sandbox import SandboxSettings, serve_forever

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench-data" / "faults"
SLACK = 1.2
BRAZE_LIMITS = {"limit_per_minute": 50_000, "limit_per_3s": 3_000}
# Every row an attributes object and an event, every third a purchase: in legacy mode a request
# carries 75 rows, whatever the mapping costs to convert (the CPU is not what is measured here).
MAPPING = """
[identity]
external_id = "id"
[attributes]
email = "email"
points = { column = "points", type = "integer" }
[[events]]
name = { value = "signup" }
time = "when"
[[purchases]]
product_id = "sku"
currency = { value = "EUR" }
price = { column = "amount", type = "float" }
time = "when"
"""


def _inputs(rows: int) -> tuple[Path, Path]:
    DATA.mkdir(parents=True, exist_ok=True)
    mapping, source = DATA / "faults.toml", DATA / f"faults-{rows}.csv"
    mapping.write_text(MAPPING, encoding="utf-8")
    if not source.exists():
        partial = source.with_suffix(".partial")
        with partial.open("w", encoding="utf-8") as out:
            out.write("id,email,points,when,sku,amount\n")
            for n in range(rows):
                sku, amount = ("SKU-1", "9.99") if n % 3 == 0 else ("", "")
                out.write(
                    f"U{n:08d},u{n}@example.com,{n % 1000},2024-05-01T10:00:00Z,{sku},{amount}\n"
                )
        partial.rename(source)
    return mapping, source


def run_import(url: str, rows: int) -> dict[str, Any]:
    """One import in its own process at the default --rate and --concurrency."""
    mapping, source = _inputs(rows)
    run_dir = DATA / f"run-{time.time_ns()}"
    command = [sys.executable, "-m", "importer", "run", str(source), "--mapping", str(mapping)]
    command += ["--endpoint", url, "--batch-mode", "legacy", "--run-dir", str(run_dir), "--quiet"]
    env = {**os.environ, "BRAZE_API_KEY": SANDBOX_KEY}
    started = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    shutil.rmtree(run_dir)
    if code != 0 or summary["delivered"] != rows:
        raise SystemExit(f"the import failed (exit {code}): {summary}")
    return {**summary, "wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime}


def _serve(settings: SandboxSettings, pipe: Connection) -> None:
    """The sandbox process: sends its URL when bound, its stats when stopped (SIGTERM)."""
    serve_forever(
        settings,
        on_ready=pipe.send,
        on_stop=lambda stats: pipe.send(dataclasses.asdict(stats)),
    )


@contextmanager
def sandbox(settings: SandboxSettings, stats: dict[str, Any]) -> Iterator[str]:
    """Yield the URL of a sandbox in its own process; fill ``stats`` once it has stopped."""
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    proc = context.Process(target=_serve, args=(settings, theirs), daemon=True)
    proc.start()
    try:
        if not ours.poll(30):
            raise RuntimeError("the sandbox did not start")
        yield ours.recv()
    finally:
        proc.terminate()
        if ours.poll(30):
            stats.update(ours.recv())
        proc.join(10)


def measure(rows: int, latency_ms: float, faults: dict[str, float], seed: int) -> dict[str, Any]:
    settings = SandboxSettings(
        api_key=SANDBOX_KEY,
        batch_mode="legacy",
        latency_ms=latency_ms,
        keep_in_memory=False,
        seed=seed,
        **BRAZE_LIMITS,
        **faults,
    )
    stats: dict[str, Any] = {}
    with sandbox(settings, stats) as url:
        run = run_import(url, rows)
    return {**run, "server": stats}


def _line(label: str, run: dict[str, Any]) -> str:
    server = run["server"]
    faults = server["faults"]
    return (
        f"{label:6} {run['wall_s']:6.2f} s (importer CPU {run['cpu_s']:.2f} s)  "
        f"{run['requests']:5} requests, "
        f"{server['rate_limited']} 429s ({faults.get('429', 0)} injected), "
        f"{faults.get('500', 0)} 500s, {faults.get('drop', 0)} dropped, {run['retries']} "
        f"retries; server asked {server['wait_asked_s']:.2f} s of pauses (union), importer "
        f"paused {run['rate_limit_wait_s']:.2f} s; at most {run['max_in_flight']} in flight"
    )


def one_round(args: argparse.Namespace, seed: int) -> bool:
    """A clean run, then the fault run judged against it (the machine's load changes)."""
    faults = {"p_429": args.p_429, "p_500": args.p_500, "p_drop": args.p_drop}
    clean = measure(args.rows, args.latency_ms, {}, seed)
    print(_line("clean", clean), flush=True)
    run = measure(args.rows, args.latency_ms, faults, seed)
    asked = run["server"]["wait_asked_s"]
    bound = (clean["wall_s"] + asked) * SLACK
    passed = run["wall_s"] <= bound
    print(_line("faults", run))
    print(
        f"       bound ({clean['wall_s']:.2f} + {asked:.2f}) x {SLACK} = {bound:.2f} s: "
        f"{'PASS' if passed else 'FAIL'} ({run['wall_s'] / bound:.0%} of the bound; "
        f"{run['wall_s'] - clean['wall_s'] - asked:+.2f} s beyond clean + asked)",
        flush=True,
    )
    return passed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--p-429", type=float, default=0.01)
    parser.add_argument("--p-500", type=float, default=0.005)
    parser.add_argument("--p-drop", type=float, default=0.005)
    parser.add_argument("--seed", type=int, default=15, help="the fault dice's, + 1 per round")
    parser.add_argument("--rounds", type=int, default=1, help="clean run + fault run, each")
    args = parser.parse_args()
    print(
        f"{args.rows:,} rows, legacy mode, sandbox in its own process: {args.latency_ms:g} ms "
        f"answers, 50,000/min + 3,000/3 s; faults: {args.p_429:.1%} 429 (Retry-After 1 s), "
        f"{args.p_500:.1%} 500, {args.p_drop:.1%} dropped; load average "
        f"{', '.join(f'{n:.2f}' for n in os.getloadavg())} on {os.cpu_count()} CPUs",
        flush=True,
    )
    passed = [one_round(args, args.seed + n) for n in range(args.rounds)]
    return 0 if all(passed) else 1


if __name__ == "__main__":
    sys.exit(main())
