"""`make demo`: start the sandbox, import the fixtures, print each summary."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sandbox_proc import SANDBOX_KEY, sandbox_process

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
IMPORTS = [
    ("a legacy CRM export (CSV)", "crm.csv", "crm.toml"),
    ("the same data as JSONL", "crm.jsonl", "crm-jsonl.toml"),
    ("deliberately bad rows", "bad-rows.csv", "crm.toml"),
]


def main() -> int:
    record = ROOT / "braze-runs" / "demo-sandbox-record"
    env = {**os.environ, "BRAZE_API_KEY": SANDBOX_KEY}
    with sandbox_process("--record", str(record)) as url:
        print(f"sandbox: {url}\n")
        for title, source, mapping in IMPORTS:
            print(f"== {title}: braze-import run fixtures/{source} --mapping fixtures/{mapping}")
            sys.stdout.flush()
            command = [sys.executable, "-m", "importer", "run", str(FIXTURES / source)]
            command += ["--mapping", str(FIXTURES / mapping), "--endpoint", url, "--quiet"]
            subprocess.run(command, env=env, check=False)
            print()
    print(f"the objects the sandbox accepted are in {record.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
