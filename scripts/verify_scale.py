"""How `braze-import verify` scales: import N users into a sandbox, then verify a sample.

    python scripts/verify_scale.py --users 100000 --sample 5000          # paced at 250/min
    python scripts/verify_scale.py --users 1000000 --sample 1000 --rate 6000

Prints the import's and verify's wall time, verify's CPU seconds and its peak RSS (from the
kernel's accounting of the child process), and verify's own counts. Files go to
bench-data/verify-<users>/ (git-ignored); the CSV is made once.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from sandbox_proc import SANDBOX_KEY, sandbox

ROOT = Path(__file__).resolve().parents[1]
MAPPING = """
[identity]
external_id = "id"
[attributes]
points = { column = "points", type = "integer" }
plan = "plan"
seen_at = { column = "when", type = "time" }
[[events]]
name = { value = "visit" }
time = "when"
"""


def _data(directory: Path, users: int) -> Path:
    source = directory / "users.csv"
    if source.exists():
        return source
    directory.mkdir(parents=True, exist_ok=True)
    start = time.time() - 86_400
    with source.open("w", encoding="utf-8") as out:
        out.write("id,points,plan,when\n")
        for n in range(users):
            when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start + n % 80_000))
            out.write(f"u{n},{n},{('basic', 'gold')[n % 2]},{when}\n")
    (directory / "map.toml").write_text(MAPPING, encoding="utf-8")
    return source


def _measured(command: list[str], env: dict[str, str]) -> tuple[int, float, float, float]:
    """(exit code, wall s, CPU s, peak RSS MB) of one child process."""
    started = time.monotonic()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - started
    assert proc.stdout is not None
    sys.stdout.write(proc.stdout.read().decode())
    code = os.waitstatus_to_exitcode(status)
    return code, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--sample", type=int, default=5_000)
    parser.add_argument("--rate", type=int, default=250, help="verify's export requests/min")
    args = parser.parse_args()
    directory = ROOT / "bench-data" / f"verify-{args.users}"
    source = _data(directory, args.users)
    env = {**os.environ, "BRAZE_API_KEY": SANDBOX_KEY}
    cli = [sys.executable, "-m", "importer"]
    run_dir = directory / f"run-{time.strftime('%Y%m%dT%H%M%S')}"
    with sandbox("--profiles", "--batch-mode", "legacy") as server:
        started = time.monotonic()
        run = [*cli, "run", str(source), "--mapping", str(directory / "map.toml")]
        run += ["--endpoint", server.url, "--run-dir", str(run_dir), "--rate", "0", "--quiet"]
        subprocess.run(
            [*run, "--batch-mode", "legacy", "--output", "json"],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        imported = time.monotonic() - started
        command = [*cli, "verify", str(run_dir), "--sample", str(args.sample)]
        command += ["--rate", str(args.rate), "--settle", "0", "--quiet", "--output", "json"]
        code, wall, cpu, rss = _measured(command, env)
    report = json.loads((run_dir / "verify.json").read_text())
    print(
        f"{args.users:,} users imported in {imported:.1f} s; verify --sample {args.sample:,} "
        f"--rate {args.rate}: exit {code}, {wall:.1f} s wall, {cpu:.1f} s CPU, "
        f"peak RSS {rss:.0f} MB ({report['reading_s']:.1f} s reading the source, "
        f"{report['asking_s']:.1f} s asking), {report['requests']} export requests, "
        f"{report['users_checked']:,} users checked, {report['matched']:,} matched"
    )


if __name__ == "__main__":
    main()
