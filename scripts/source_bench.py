"""Reading from a bucket against reading the same file locally (issue 14).

Starts moto's standalone server and the sandbox on 127.0.0.1, puts one gzip CSV in a bucket,
then runs ``braze-import run`` (rate limit off) on the local file and on the s3:// object,
alternately, and prints rows per second and the importer's peak RSS for each. With
``--big-mb N`` it also streams an N MB plain CSV object through ``--dry-run --workers 1`` and
prints that run's peak RSS.

    PYTHONPATH=. .venv/bin/python scripts/source_bench.py --rows 300000 --rounds 2 --big-mb 1024
"""

from __future__ import annotations

import argparse
import gzip
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from importer.sandbox import SandboxSettings, sandbox_in_thread
from tests.read.servers import moto_server

MAPPING = """
[identity]
external_id = "id"
[attributes]
points = { column = "points", type = "integer" }
"""


def _write_csv(path: Path, rows: int, opener: object = open) -> None:
    rng = random.Random(7)
    with opener(path, "wt", encoding="utf-8") as out:  # type: ignore[operator]
        out.write("id,points,pad\n")
        for start in range(0, rows, 50_000):
            block = range(start, min(rows, start + 50_000))
            out.write("".join(f"u{n},{n},{rng.getrandbits(64):016x}\n" for n in block))


def _peak_rss_mb(pid: int) -> float:
    """The process's peak RSS since it started the importer (VmHWM; ``ru_maxrss`` would count
    this script's memory copied at fork time)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _run(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of one importer process (its main process)."""
    started = time.perf_counter()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL)
    peak = 0.0
    while proc.poll() is None:
        peak = max(peak, _peak_rss_mb(proc.pid))
        time.sleep(0.05)  # sampling; the peak only grows
    if proc.returncode != 0:
        raise SystemExit(f"{args} failed")
    return time.perf_counter() - started, peak


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--big-mb", type=int, default=0)
    options = parser.parse_args()
    with moto_server() as moto:
        env = {**os.environ, **moto.env(), "BRAZE_API_KEY": "sandbox-key"}
        s3 = moto.client()
        s3.create_bucket(Bucket="bench")
        with tempfile.TemporaryDirectory() as folder:
            work = Path(folder)
            (work / "map.toml").write_text(MAPPING)
            local = work / "users.csv.gz"
            _write_csv(local, options.rows, gzip.open)
            s3.upload_file(str(local), "bench", "users.csv.gz")
            print(f"{options.rows:,} rows, {local.stat().st_size / 2**20:.1f} MB gzip")
            with sandbox_in_thread(SandboxSettings(batch_mode="combined")) as sandbox:
                for n in range(options.rounds):
                    for label, source in (("local", str(local)), ("s3", "s3://bench/users.csv.gz")):
                        run = [
                            sys.executable,
                            "-m",
                            "importer",
                            "run",
                            source,
                            "--mapping",
                            str(work / "map.toml"),
                        ]
                        run += [
                            "--endpoint",
                            sandbox.url,
                            "--rate",
                            "0",
                            "--quiet",
                            "--run-dir",
                            str(work / f"run-{label}-{n}"),
                        ]
                        seconds, rss = _run(run, env)
                        rate = options.rows / seconds
                        print(
                            f"round {n + 1} {label:5}: {rate:9,.0f} rows/s  {seconds:6.1f} s",
                            end="",
                        )
                        print(f"  peak RSS {rss:5.0f} MB")
            if options.big_mb:
                big = work / "big.csv"
                _write_csv(big, options.big_mb * 2**20 // 27)
                s3.upload_file(str(big), "bench", "big.csv")
                size = big.stat().st_size
                big.unlink()
                run = [
                    sys.executable,
                    "-m",
                    "importer",
                    "run",
                    "s3://bench/big.csv",
                    "--mapping",
                    str(work / "map.toml"),
                ]
                run += [
                    "--dry-run",
                    "--workers",
                    "1",
                    "--quiet",
                    "--run-dir",
                    str(work / "run-big"),
                ]
                seconds, rss = _run(run, env)
                print(f"{size / 2**20:,.0f} MB object, --dry-run --workers 1: ", end="")
                print(f"{seconds:.0f} s, peak RSS {rss:.0f} MB")


if __name__ == "__main__":
    main()
