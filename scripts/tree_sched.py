"""Where a process tree's wall time goes: run a command, sample its processes, print per process.

    .venv/bin/python scripts/tree_sched.py [--every S] -- COMMAND [ARG ...]

Linux only (/proc). For each process of the tree, at its last sample: CPU run time and time
spent runnable but waiting for a core (``/proc/PID/schedstat``), voluntary context switches
(waits: for a pipe, a poll) and involuntary ones (preempted), minor page faults, and where it
slept when sampled (``/proc/PID/wchan``: ``anon_pipe_read`` is a conversion worker waiting for a
task, ``pipe_write`` one waiting for room for its answer, ``do_epoll_wait`` the main process
waiting for an answer). Then the peak of the tree's summed RSS (as ``scripts/bench.py`` takes
it). Why: the wide --dry-run with two workers on two cores spends CPU the workers could have
had in waits, and the CPU counters (perf's cycles, instructions) are not available in this VM.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Seen:
    name: str = ""
    run_s: float = 0.0
    wait_s: float = 0.0
    voluntary: int = 0
    involuntary: int = 0
    faults: int = 0
    rss_mb: float = 0.0
    slept: Counter[str] = field(default_factory=Counter)


def _tree(root: int) -> list[int]:
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                todo += [int(child) for child in f.read().split()]
        except OSError:
            pass
    return found


def _sample(pid: int, seen: Seen) -> float:
    """Update ``seen`` from /proc; return the process's RSS in MB (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            run, wait, _ = (int(x) for x in f.read().split())
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open(f"/proc/{pid}/status") as f:
            status = dict(line.split(":", 1) for line in f if ":" in line)
        with open(f"/proc/{pid}/wchan") as f:
            wchan = f.read().strip()
    except (OSError, ValueError):
        return 0.0
    state = fields[0]
    seen.name = status["Name"].strip()
    seen.run_s, seen.wait_s = run / 1e9, wait / 1e9
    seen.voluntary = int(status["voluntary_ctxt_switches"])
    seen.involuntary = int(status["nonvoluntary_ctxt_switches"])
    seen.faults = int(fields[7])
    seen.rss_mb = int(status.get("VmRSS", "0 kB").split()[0]) / 1024
    seen.slept[wchan if state == "S" else state] += 1
    return seen.rss_mb


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--every", type=float, default=0.01, help="seconds between samples")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give a command after --")
    started = time.monotonic()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    processes: dict[int, Seen] = {}
    peak = 0.0
    while child.poll() is None:
        peak = max(peak, sum(_sample(p, processes.setdefault(p, Seen())) for p in _tree(child.pid)))
        time.sleep(args.every)
    wall = time.monotonic() - started
    print(f"wall {wall:.2f} s, exit {child.returncode}, peak RSS of the tree {peak:.1f} MB")
    head = f"{'pid':>7} {'run s':>6} {'runnable s':>10} {'vol':>6} {'invol':>6} {'faults':>7}"
    print(f"{head}  state when sampled (R: running or runnable; else where it slept)")
    for pid, seen in processes.items():
        if not seen.name:
            continue
        slept = ", ".join(f"{where} {n}" for where, n in seen.slept.most_common(4))
        print(
            f"{pid:>7} {seen.run_s:6.2f} {seen.wait_s:10.2f} {seen.voluntary:6} "
            f"{seen.involuntary:6} {seen.faults:7}  {slept}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
