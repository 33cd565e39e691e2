"""`make demo`: start the sandbox, import the fixtures, print each summary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from sandbox_proc import SANDBOX_KEY, sandbox_process

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
IMPORTS = [
    ("a legacy CRM export (CSV)", "crm.csv", "crm.toml"),
    ("the same data as JSONL", "crm.jsonl", "crm-jsonl.toml"),
    ("deliberately bad rows", "bad-rows.csv", "crm.toml"),
]


def _show_failures(run_dir: Path) -> None:
    lines = (run_dir / "failures.jsonl").read_text(encoding="utf-8").splitlines()
    if not lines:
        return
    print(f"failures.jsonl ({len(lines)} records):")
    for line in lines:
        failure = json.loads(line)
        print(
            f"  line {failure['line']:>3}  {failure['stage']:<8} {failure['error']:<20} "
            f"{failure['message'][:90]}"
        )


def main() -> int:
    stamp = time.strftime("%Y%m%dT%H%M%S")
    record = ROOT / "braze-runs" / f"demo-{stamp}-sandbox-record"
    env = {**os.environ, "BRAZE_API_KEY": SANDBOX_KEY}
    with sandbox_process("--record", str(record)) as url:
        print(f"sandbox: {url}\n")
        for number, (title, source, mapping) in enumerate(IMPORTS, 1):
            print(f"== {title}: braze-import run fixtures/{source} --mapping fixtures/{mapping}")
            sys.stdout.flush()
            run_dir = ROOT / "braze-runs" / f"demo-{stamp}-{number}"
            command = [sys.executable, "-m", "importer", "run", str(FIXTURES / source)]
            command += ["--mapping", str(FIXTURES / mapping), "--endpoint", url, "--quiet"]
            command += ["--run-dir", str(run_dir)]
            subprocess.run(command, env=env, check=False)
            _show_failures(run_dir)
            print()
    print(f"the objects the sandbox accepted are in {record.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
