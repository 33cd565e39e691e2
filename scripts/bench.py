"""The benchmarks: seeded files (scripts/bench_data.py) of several mappings through the importer
into the sandbox, each in its own process (a fresh sandbox for every run).

Scenarios (``--scenario``):
- ``throughput`` (`make bench`): rate limit off, 32 in flight; per mapping and worker setting:
  rows/s, requests/s, objects/s, CPU µs per row and peak RSS of the importer's process tree.
- ``ceiling`` (`make bench-rate`): the default ``--rate 50000`` in legacy mode against a sandbox
  answering after 50 ms and enforcing 50,000/min + 3,000/3 s, stopped with SIGINT after
  ``--seconds``; per mapping, worker setting and state (none / a fresh ``--state`` file): the
  best 60 s window of requests/s, answered 429s.
- ``unchanged`` (`make bench-rate`): a first night with a fresh ``--state``, the same file again
  (nothing changed) and a ``--dry-run`` of it, in one sitting: rows/s of each.
- ``prototype``: scripts/prototype_crm.py against ``braze-import run --workers 1 --rate 0`` on
  the CRM file, each pinned to CPU 0 with the sandbox on CPU 1: CPU µs per row, objects/s.
- ``shared``: the server allows 6,000/min, the importer is set to 50,000.
- ``memory`` (`make bench-memory`): peak RSS at 1,000,000 and ``--rows`` rows.
- ``nightly``: ``--state`` over three nights of a generated export (issue 5).

Worker settings (``--workers-list 1,default``): ``1`` passes ``--workers 1`` and pins the importer
to CPU 0 and the sandbox to CPU 1 (as ``taskset -c``; ``--no-pin`` to leave them free);
``default`` passes no ``--workers`` and pins nothing. An importer without ``--workers`` runs
every setting as its single process (a note says so).

CPU is the importer's process tree: ``wait4``'s rusage of the importer, which on Linux includes
every descendant it reaped, checked against the sum of each process's utime + stime sampled
from /proc every 0.2 s (a worker that was never reaped would be missing from the former).
Peak RSS is the largest sum of the tree's resident sets sampled every 0.2 s (the sum of each
process's own peak would overstate it: they peak at different times).
"""

from __future__ import annotations

import argparse
import atexit
import functools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from bench_data import BENCHMARK_HEADER as HEADER
from bench_data import CITIES, DATA, FIRST, LAST, ROOT, ensure, ensure_part, mapping_path
from sandbox_proc import SANDBOX_KEY, Sandbox, pinned, sandbox

CEILING = 50_000 / 60
SAMPLE_S = 0.2
_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")
_ATTEMPTS = re.compile(rb'"attempts":(\d+)')
_DELIVERED = re.compile(rb'"delivered":(\d+)')


# --- watching a process tree -------------------------------------------------------------------


def _pss(pid: int) -> int:
    """The proportional set size of ``pid`` in bytes (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as rollup:
            for line in rollup:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _stat(pid: int) -> tuple[int, int, int] | None:
    """(parent, utime + stime in ticks, resident pages) of ``pid``, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), int(fields[11]) + int(fields[12]), int(fields[21])


class TreeWatch:
    """Samples a process and its descendants: the peak of their summed RSS and each one's CPU.
    Every fifth sample walks all of /proc for new descendants (~4 ms here); the others read only
    the processes already known (< 0.1 ms).

    Where the memory is, too: each process's own peak RSS, and at the tree's peak each one's
    RSS and PSS (/proc/PID/smaps_rollup: a page shared by n processes counts 1/n). A forked
    worker shares the main process's pages until either writes them, so the summed RSS counts
    those pages once per process; the summed PSS counts them once."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.peak_rss = 0  # bytes
        self.cpu_ticks: dict[int, int] = {}  # last seen utime + stime of every process seen
        self.most_processes = 0
        self.tree: set[int] = {root}
        self.samples = 0
        self.peaks: dict[int, int] = {}  # each process's own peak RSS, bytes
        self.at_peak: dict[int, tuple[int, int]] = {}  # (RSS, PSS) of each at the tree's peak
        self.peak_pss = 0  # the largest summed PSS seen (sampled with the RSS peaks)

    def _scan(self) -> None:
        children: dict[int, list[int]] = {}
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                found = _stat(int(entry.name))
                if found is not None:
                    children.setdefault(found[0], []).append(int(entry.name))
        tree, todo = set(), [self.root]
        while todo:
            pid = todo.pop()
            tree.add(pid)
            todo.extend(children.get(pid, ()))
        self.tree = tree

    def sample(self) -> None:
        if self.samples % 5 == 0:
            self._scan()
        self.samples += 1
        rss, alive = 0, 0
        each: dict[int, int] = {}
        for pid in self.tree:
            found = _stat(pid)
            if found is None:
                continue
            _, ticks, pages = found
            self.cpu_ticks[pid] = ticks
            each[pid] = pages * _PAGE
            self.peaks[pid] = max(self.peaks.get(pid, 0), pages * _PAGE)
            rss += pages * _PAGE
            alive += 1
        if rss >= self.peak_rss:  # PSS only here: smaps_rollup walks every mapping
            self.at_peak = {pid: (size, _pss(pid)) for pid, size in each.items()}
            self.peak_pss = max(self.peak_pss, sum(pss for _, pss in self.at_peak.values()))
        self.peak_rss = max(self.peak_rss, rss)
        self.most_processes = max(self.most_processes, alive)

    def breakdown(self) -> str:
        """E.g. 'main 120.1 (PSS 93.0) + 2 workers 61.0, 60.2 (PSS 41.1, 40.0) MB at the peak,
        tree PSS 174.1 MB; own peaks: main 125.0, workers 62.3, 61.9 MB'."""
        main = self.at_peak.get(self.root, (0, 0))
        others = sorted(
            ((r, p) for pid, (r, p) in self.at_peak.items() if pid != self.root), reverse=True
        )
        own = sorted((v for pid, v in self.peaks.items() if pid != self.root), reverse=True)

        def mb(values: Iterable[int]) -> str:
            return ", ".join(f"{v / 1e6:.1f}" for v in values)

        text = f"main {main[0] / 1e6:.1f} (PSS {main[1] / 1e6:.1f})"
        if others:
            text += (
                f" + {len(others)} workers {mb(r for r, _ in others)} "
                f"(PSS {mb(p for _, p in others)})"
            )
        text += f" MB at the peak, tree PSS {self.peak_pss / 1e6:.1f} MB"
        if own:
            text += f"; own peaks: main {self.peaks[self.root] / 1e6:.1f}, workers {mb(own)} MB"
        return text

    def tree_cpu_s(self, reaped: float) -> tuple[float, bool]:
        """The tree's CPU: ``reaped`` (wait4's figure) unless the samples saw more (a process
        the importer never reaped); the flag says the samples won."""
        sampled = sum(self.cpu_ticks.values()) / _TICK
        return (sampled, True) if sampled > reaped * 1.02 + 0.05 else (reaped, False)


class ResultsTail:
    """Follows a run's results.jsonl: (time, requests sent, rows delivered) as answers arrive."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.rest = b""
        self.requests = 0
        self.delivered = 0
        self.points: list[tuple[float, int, int]] = []

    def sample(self, now: float) -> None:
        try:
            with self.path.open("rb") as results:
                results.seek(self.offset)
                chunk = results.read()
        except OSError:
            return
        self.offset += len(chunk)
        lines = (self.rest + chunk).split(b"\n")
        self.rest = lines.pop()
        for line in lines:
            attempts, delivered = _ATTEMPTS.search(line), _DELIVERED.search(line)
            self.requests += int(attempts[1]) if attempts else 1
            self.delivered += int(delivered[1]) if delivered else 0
        self.points.append((now, self.requests, self.delivered))

    def best_window(self, seconds: float) -> tuple[float, float, float]:
        """(requests/s, rows/s, start s) of the best ``seconds``-long window, or zeros."""
        best = (0.0, 0.0, 0.0)
        points, j = self.points, 0
        if not points:
            return best
        start = points[0][0]
        for i, (t0, r0, d0) in enumerate(points):
            j = max(j, i)
            while j < len(points) and points[j][0] - t0 < seconds:
                j += 1
            if j == len(points):
                break
            t1, r1, d1 = points[j]
            rate = (r1 - r0) / (t1 - t0)
            if rate > best[0]:
                best = (rate, (d1 - d0) / (t1 - t0), t0 - start)
        return best


# --- one import ---------------------------------------------------------------------------------


@functools.cache
def workers_supported() -> bool:
    command = [sys.executable, "-m", "importer", "run", "--help"]
    return "--workers" in subprocess.run(command, capture_output=True, text=True).stdout


def worker_options(setting: str) -> list[str]:
    if setting == "default" or not workers_supported():
        return []
    return ["--workers", setting]


def cpus_for(setting: str, pin: bool) -> tuple[set[int] | None, set[int] | None]:
    """(importer CPUs, sandbox CPUs): ``--workers 1`` on one core, the sandbox on another."""
    allowed = sorted(os.sched_getaffinity(0))
    if not pin or setting != "1" or len(allowed) < 2:
        return None, None
    return {allowed[0]}, {allowed[-1]}


def run_once(
    sources: Sequence[Path],
    url: str,
    mode: str,
    *extra: str,
    mapping: Path,
    cpus: Iterable[int] | None = None,
    stop_after_s: float | None = None,
    server: Sandbox | None = None,
    label: str = "run",
    window_s: float = 60.0,
) -> dict[str, Any]:
    """One import in its own process, watched until it exits."""
    run_dir = DATA / f"run-{label}-{int(time.time() * 1000)}"
    command = [sys.executable, "-m", "importer", "run", *map(str, sources)]
    command += ["--mapping", str(mapping), "--endpoint", url, "--batch-mode", mode]
    command += ["--run-dir", str(run_dir), "--quiet", *extra]
    server_cpu = server.cpu_s() if server else 0.0
    started = time.perf_counter()
    with tempfile.TemporaryFile() as errors:  # the importer's log: shown only if it fails
        proc = subprocess.Popen(
            command,
            env={**os.environ, "BRAZE_API_KEY": SANDBOX_KEY},
            stdout=subprocess.DEVNULL,
            stderr=errors,
            preexec_fn=pinned(cpus),  # type: ignore[arg-type]
        )
        watch, tail = TreeWatch(proc.pid), ResultsTail(run_dir / "results.jsonl")
        deadline = None if stop_after_s is None else started + stop_after_s
        while True:
            watch.sample()
            tail.sample(time.perf_counter())
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if deadline is not None and time.perf_counter() >= deadline:
                proc.send_signal(signal.SIGINT)  # a clean stop: in-flight requests finish
                deadline = None
            time.sleep(SAMPLE_S)
        wall = time.perf_counter() - started
        tail.sample(time.perf_counter())
        server_cpu = (server.cpu_s() - server_cpu) if server else 0.0
        code = os.waitstatus_to_exitcode(status)
        errors.seek(0)
        log = errors.read().decode(errors="replace")[-3000:]
    if not (run_dir / "summary.json").exists():
        raise SystemExit(f"bench run failed (exit {code}) without a summary: {command}\n{log}")
    summary = json.loads((run_dir / "summary.json").read_text())
    if code not in (0, 130) or summary["failed"]:
        raise SystemExit(
            f"bench run failed (exit {code}), run directory {run_dir}: {summary}\n{log}"
        )
    shutil.rmtree(run_dir)  # only a failed run's directory is worth keeping
    cpu, sampled = watch.tree_cpu_s(usage.ru_utime + usage.ru_stime)
    if sampled:
        print("  (note: a process of the tree was not reaped; its CPU comes from /proc samples)")
    objects = sum(summary["objects_sent"].values())
    rows = summary["rows_read"]
    best_rps, best_rows, best_at = tail.best_window(window_s)
    return {
        "rows": rows,
        "wall_s": wall,
        "rows_per_s": rows / wall,
        "requests": summary["requests"],
        "requests_per_s": summary["requests_per_s"],
        "objects": objects,
        "objects_per_s": objects / wall,
        "cpu_s": cpu,
        "cpu_us_per_row": cpu / max(rows, 1) * 1e6,
        "cpu_us_per_object": cpu / max(objects, 1) * 1e6,
        "peak_rss_mb": watch.peak_rss / 1e6,
        "memory": watch.breakdown(),
        "processes": watch.most_processes,
        "server_cpu_share": server_cpu / wall,
        "rate_limited": summary["rate_limited"],
        "rate_limit_wait_s": summary["rate_limit_wait_s"],
        "unsent": summary.get("unsent", 0),
        "max_in_flight": summary["max_in_flight"],
        "best_window_requests_per_s": best_rps,
        "best_window_rows_per_s": best_rows,
        "best_window_start_s": best_at,
        "summary": summary,
    }


def _list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _note_workers(settings: Sequence[str]) -> None:
    if any(setting != "default" for setting in settings) and not workers_supported():
        print("  (this importer has no --workers: every setting runs as its single process)")


@functools.cache
def _states_dir() -> Path:
    """This process's own directory for state files (beside the data: the same disk), so two
    benchmarks run at once never share one; removed when the process exits."""
    DATA.mkdir(parents=True, exist_ok=True)
    made = Path(tempfile.mkdtemp(prefix="states-", dir=DATA))
    atexit.register(shutil.rmtree, made, ignore_errors=True)
    return made


def _state_file(name: str) -> Path:
    state = _states_dir() / f"{name}.db"
    for suffix in ("", "-wal", "-shm", ".lock"):
        Path(f"{state}{suffix}").unlink(missing_ok=True)
    return state


# --- scenarios ----------------------------------------------------------------------------------


def throughput(args: argparse.Namespace) -> None:
    """Rate limit off: how fast the importer reads, converts, packs and sends, per mapping."""
    settings = _list(args.workers_list)
    print(
        f"{args.rows:,} rows per mapping, rate limit off, {args.concurrency} in flight, "
        f"a fresh sandbox in its own process per run; workers: {', '.join(settings)} "
        f"({'pinned: importer CPU 0, sandbox CPU 1' if args.pin else 'not pinned'} for 1)"
    )
    _note_workers(settings)
    header = (
        f"{'mapping':10} {'mode':7} {'workers':>7} {'rows/s':>8} {'objects/s':>9} "
        f"{'obj/row':>7} {'req/s':>6} {'CPU µs/row':>10} {'peak RSS MB':>11} {'procs':>5} "
        f"{'sandbox CPU':>11} {'wall s':>6}"
    )
    print(header, flush=True)
    for name in _list(args.mappings):
        source = ensure(name, args.rows)
        for mode in _list(args.modes):
            for setting in settings:
                mine, server_cpus = cpus_for(setting, args.pin)
                with sandbox("--batch-mode", mode, cpus=server_cpus) as server:
                    r = run_once(
                        [source],
                        server.url,
                        mode,
                        "--rate",
                        "0",
                        "--concurrency",
                        str(args.concurrency),
                        *worker_options(setting),
                        mapping=mapping_path(name),
                        cpus=mine,
                        server=server,
                        label=f"{name}-{setting}",
                    )
                print(
                    f"{name:10} {mode:7} {setting:>7} {r['rows_per_s']:8,.0f} "
                    f"{r['objects_per_s']:9,.0f} {r['objects'] / max(r['rows'], 1):7.2f} "
                    f"{r['requests_per_s']:6,.0f} {r['cpu_us_per_row']:10.2f} "
                    f"{r['peak_rss_mb']:11.1f} {r['processes']:5} "
                    f"{r['server_cpu_share']:11.0%} {r['wall_s']:6.1f}",
                    flush=True,
                )
                print(f"  {r['memory']}", flush=True)


def ceiling(args: argparse.Namespace) -> None:
    """Default rate against a sandbox that answers after 50 ms and enforces Braze's limits."""
    settings = _list(args.workers_list)
    latency = f"{args.latency_ms:g}"
    limits = ["--limit-per-minute", "50000", "--limit-per-3s", "3000", "--latency-ms", latency]
    print(
        f"default --rate 50000, legacy mode, sandbox: {latency} ms answers, 50,000/min + "
        f"3,000/3 s (a fresh one per run); each run stopped after {args.seconds:.0f} s; the best "
        f"{args.window:.0f} s window of requests sent (results.jsonl, sampled every {SAMPLE_S} s)"
    )
    _note_workers(settings)
    print(
        f"{'mapping':10} {'state':5} {'workers':>7} {'best window req/s':>17} {'of 833.3':>8} "
        f"{'429s':>5} {'in flight':>9} {'rows/s':>7} {'CPU µs/row':>10} {'peak RSS MB':>11}",
        flush=True,
    )
    # Parts of the file with other identifiers: no user is sent twice, so --state sees only
    # new users, as on a first night.
    for name in _list(args.mappings):
        sources = [ensure_part(name, args.rows, part) for part in range(args.parts)]
        for state in _list(args.states):
            for setting in settings:
                extra = worker_options(setting)
                if state == "fresh":
                    extra += ["--state", str(_state_file(f"ceiling-{name}"))]
                mine, server_cpus = cpus_for(setting, args.pin)
                with sandbox("--batch-mode", "legacy", *limits, cpus=server_cpus) as server:
                    r = run_once(
                        sources,
                        server.url,
                        "legacy",
                        *extra,
                        mapping=mapping_path(name),
                        cpus=mine,
                        stop_after_s=args.seconds,
                        server=server,
                        label=f"ceiling-{name}-{setting}",
                        window_s=args.window,
                    )
                rps = r["best_window_requests_per_s"]
                print(
                    f"{name:10} {state:5} {setting:>7} {rps:17,.1f} {rps / CEILING:8.1%} "
                    f"{r['rate_limited']:5} {r['max_in_flight']:9} "
                    f"{r['best_window_rows_per_s']:7,.0f} {r['cpu_us_per_row']:10.2f} "
                    f"{r['peak_rss_mb']:11.1f}",
                    flush=True,
                )
                print(f"  {r['memory']}", flush=True)


def unchanged(args: argparse.Namespace) -> None:
    """A night where nothing changed (the same file again with --state) vs a --dry-run of it."""
    settings = _list(args.workers_list)
    print(
        f"{args.rows:,} rows; per mapping and workers, in one sitting: --dry-run, a first night "
        "with a fresh --state (rate limit off), the same file again (nothing changed)"
    )
    _note_workers(settings)
    print(
        f"{'mapping':10} {'workers':>7} {'run':16} {'rows/s':>8} {'CPU µs/row':>10} "
        f"{'skipped':>9} {'objects':>9} {'peak RSS MB':>11}",
        flush=True,
    )
    for name in _list(args.mappings):
        source = ensure(name, args.rows)
        for setting in settings:
            mine, server_cpus = cpus_for(setting, args.pin)
            state = _state_file(f"unchanged-{name}")
            dry = ["--dry-run"]
            stateful = ["--rate", "0", "--state", str(state)]
            speeds = {}
            for run, extra in (
                ("dry-run", dry),
                ("first night", stateful),
                ("unchanged", stateful),
            ):
                with sandbox("--batch-mode", "legacy", cpus=server_cpus) as server:
                    r = run_once(
                        [source],
                        server.url,
                        "legacy",
                        *extra,
                        *worker_options(setting),
                        mapping=mapping_path(name),
                        cpus=mine,
                        server=server,
                        label=f"unchanged-{name}-{setting}",
                    )
                speeds[run] = r["rows_per_s"]
                skipped = sum(r["summary"]["skipped"].values())
                print(
                    f"{name:10} {setting:>7} {run:16} {r['rows_per_s']:8,.0f} "
                    f"{r['cpu_us_per_row']:10.2f} {skipped:9,} {r['objects']:9,} "
                    f"{r['peak_rss_mb']:11.1f}",
                    flush=True,
                )
            ratio = speeds["unchanged"] / speeds["dry-run"]
            print(f"{name:10} {setting:>7} unchanged / dry-run = {ratio:.2f}×", flush=True)


def prototype(args: argparse.Namespace) -> None:
    """The throw-away single-process CRM pipeline vs the importer, both pinned to one core."""
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        raise SystemExit("the prototype scenario needs two CPUs (client and sandbox)")
    client, server_cpus = {allowed[0]}, {allowed[-1]}
    source = ensure("crm", args.rows)
    mapping = mapping_path("crm")
    print(
        f"{args.rows:,} rows of the CRM file, legacy mode, rate limit off; client pinned to CPU "
        f"{allowed[0]}, a fresh sandbox per run pinned to CPU {allowed[-1]}; "
        f"{args.repeat} alternating pair(s)"
    )
    _note_workers(["1"])
    print(
        f"{'client':10} {'rows/s':>8} {'objects/s':>9} {'req/s':>6} {'CPU µs/row':>10} "
        f"{'CPU µs/obj':>10} {'sandbox CPU':>11} {'wall s':>6}",
        flush=True,
    )
    per_row: dict[str, list[float]] = {"prototype": [], "importer": []}
    for _ in range(args.repeat):
        for client_name in ("prototype", "importer"):
            with sandbox("--batch-mode", "legacy", cpus=server_cpus) as server:
                if client_name == "prototype":
                    r = _run_prototype(source, server, client, args.concurrency)
                else:
                    r = run_once(
                        [source],
                        server.url,
                        "legacy",
                        "--rate",
                        "0",
                        "--concurrency",
                        str(args.concurrency),
                        *worker_options("1"),
                        mapping=mapping,
                        cpus=client,
                        server=server,
                        label="prototype-importer",
                    )
            per_row[client_name].append(r["cpu_us_per_row"])
            print(
                f"{client_name:10} {r['rows_per_s']:8,.0f} {r['objects_per_s']:9,.0f} "
                f"{r['requests_per_s']:6,.0f} {r['cpu_us_per_row']:10.2f} "
                f"{r['cpu_us_per_object']:10.2f} {r['server_cpu_share']:11.0%} "
                f"{r['wall_s']:6.1f}",
                flush=True,
            )
    best = {name: min(values) for name, values in per_row.items()}
    print(
        f"CPU per row, importer / prototype (best of each): "
        f"{best['importer']:.2f} / {best['prototype']:.2f} = "
        f"{best['importer'] / best['prototype']:.2f}× (the issue asks ≤ 1.25×)"
    )


def _run_prototype(
    source: Path, server: Sandbox, cpus: set[int], concurrency: int
) -> dict[str, Any]:
    command = [sys.executable, str(ROOT / "scripts" / "prototype_crm.py"), str(source)]
    command += ["--endpoint", server.url, "--concurrency", str(concurrency), "--json"]
    server_cpu = server.cpu_s()
    started = time.perf_counter()
    proc = subprocess.Popen(
        command,
        env={**os.environ, "BRAZE_API_KEY": SANDBOX_KEY},
        stdout=subprocess.PIPE,
        preexec_fn=pinned(cpus),  # type: ignore[arg-type]
    )
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    server_cpu = server.cpu_s() - server_cpu
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"prototype failed: {out!r}")
    report = json.loads(out)
    cpu = usage.ru_utime + usage.ru_stime
    rows, objects = report["rows"], report["objects"]
    return {
        "rows_per_s": rows / wall,
        "objects_per_s": objects / wall,
        "requests_per_s": report["requests"] / wall,
        "cpu_us_per_row": cpu / rows * 1e6,
        "cpu_us_per_object": cpu / objects * 1e6,
        "server_cpu_share": server_cpu / wall,
        "wall_s": wall,
    }


def shared(args: argparse.Namespace) -> None:
    """The server allows 6,000/min while the importer is set to 50,000: it must converge."""
    source = ensure("benchmark", args.rows)
    # combined mode: ~32 rows per request, so the file outlasts several one-minute windows.
    with sandbox("--batch-mode", "legacy", "--limit-per-minute", "6000") as server:
        r = run_once(
            [source],
            server.url,
            "combined",
            "--rate",
            "50000",
            mapping=mapping_path("benchmark"),
            label="shared",
        )
    share = r["rate_limited"] / max(r["requests"], 1)
    print(
        f"server 6,000/min, importer --rate 50000: {r['requests']:,} requests in "
        f"{r['wall_s']:.0f} s ({r['requests_per_s'] * 60:,.0f}/min), {r['rate_limited']} 429s "
        f"({share:.2%}), {r['rate_limit_wait_s']:.1f} s waiting, "
        f"{r['summary']['delivered']:,} of {args.rows:,} rows delivered"
    )


def memory(args: argparse.Namespace) -> None:
    """Peak RSS of the process tree at 1,000,000 and at args.rows rows (rate off)."""
    settings = _list(args.workers_list)
    _note_workers(settings)
    for name in _list(args.mappings):
        for rows in sorted({1_000_000, args.rows}):
            for setting in settings:
                with sandbox("--batch-mode", "legacy") as server:
                    r = run_once(
                        [ensure(name, rows)],
                        server.url,
                        "legacy",
                        "--rate",
                        "0",
                        *worker_options(setting),
                        mapping=mapping_path(name),
                        label=f"memory-{name}",
                    )
                print(
                    f"{name:10} {rows:>11,} rows, workers {setting}: peak RSS of the tree "
                    f"{r['peak_rss_mb']:.1f} MB ({r['processes']} processes at most), "
                    f"{r['rows_per_s']:,.0f} rows/s, {r['max_in_flight']} in flight at most",
                    flush=True,
                )
                print(f"  {r['memory']}", flush=True)


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
    state = _state_file("nightly-state")
    with sandbox("--batch-mode", "legacy") as server:
        for night in (1, 2, 3):
            export = DATA / f"nightly-{args.rows}-{night}.csv"
            _nightly_export(export, args.rows, night)
            r = run_once(
                [export],
                server.url,
                "legacy",
                "--rate",
                "0",
                "--state",
                str(state),
                mapping=mapping_path("benchmark"),
                label="nightly",
            )
            summary = r["summary"]
            print(
                f"night {night}: {summary['rows_read']:,} rows, {summary['requests']:,} requests, "
                f"objects sent {summary['objects_sent']}, skipped {summary['skipped']}, "
                f"attributes unchanged {summary['attributes_unchanged']:,}, events already sent "
                f"{summary['events_already_sent']:,}, "
                f"{summary['rows_read'] / r['wall_s']:,.0f} rows/s, state file "
                f"{state.stat().st_size / 1e6:.1f} MB",
                flush=True,
            )


def _machine() -> str:
    """The machine in one line, with the CPU time of a fixed pure-Python loop: figures from
    two sittings compare only as far as that loop's time does."""
    cpu = time.process_time()
    total = 0
    for n in range(2_000_000):
        total += n & 7
    loop_ms = (time.process_time() - cpu) * 1000
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    where = subprocess.run(
        [sys.executable, "-c", "import importer; print(importer.__file__)"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return (
        f"machine: {len(os.sched_getaffinity(0))} CPUs for us, load average {load}; "
        f"calibration loop {loop_ms:.0f} ms CPU; python {sys.version.split()[0]}; "
        f"importer from {Path(where).parent.parent}"
    )


SCENARIOS = {
    "throughput": throughput,
    "ceiling": ceiling,
    "unchanged": unchanged,
    "prototype": prototype,
    "shared": shared,
    "memory": memory,
    "nightly": nightly,
}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="throughput")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--mappings", default="benchmark,crm,wide", help="bench-mappings names")
    parser.add_argument(
        "--workers-list",
        default="1,default",
        help="worker settings: a number passes --workers N, 'default' passes nothing",
    )
    parser.add_argument(
        "--no-pin",
        dest="pin",
        action="store_false",
        help="do not pin --workers 1 runs (importer CPU 0, sandbox CPU 1)",
    )
    parser.add_argument("--modes", default="legacy", help="throughput: batch modes")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=80.0, help="ceiling: run length")
    parser.add_argument("--window", type=float, default=60.0, help="ceiling: best window, s")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="ceiling: the sandbox's")
    parser.add_argument(
        "--states", default="none,fresh", help="ceiling: none and/or fresh (a new --state file)"
    )
    parser.add_argument(
        "--parts", type=int, default=8, help="ceiling: files of --rows rows, other users each"
    )
    parser.add_argument("--repeat", type=int, default=2, help="prototype: alternating pairs")
    parser.add_argument(
        "--importer-path",
        type=Path,
        help="import the importer (and the sandbox) from this directory instead of the work "
        "tree, e.g. a `git archive` of one commit, so that edits in progress do not leak in",
    )
    args = parser.parse_args()
    if args.importer_path:
        path = str(args.importer_path.resolve())
        os.environ["PYTHONPATH"] = os.pathsep.join(
            filter(None, [path, os.environ.get("PYTHONPATH")])
        )
        os.chdir(path)  # `python -m` puts the working directory first on sys.path
    print(_machine(), flush=True)
    started = time.perf_counter()
    SCENARIOS[args.scenario](args)
    print(f"({args.scenario}: {time.perf_counter() - started:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
