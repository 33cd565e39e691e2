"""Read a run directory back: which records already have a final outcome.

The journal is the truth: a row is delivered when a 2xx result line carried it and no failure
line names it; it is failed when a failure line names it. Everything else is sent again by
``resume``. A torn last line (a crash mid-write) is ignored.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from importer.errors import ConfigError


class LineSet:
    """A growable bitmap of line numbers: 10,000,000 lines cost 1.25 MB, not a set's ~500 MB."""

    __slots__ = ("_bits",)

    def __init__(self) -> None:
        self._bits = bytearray()

    def add(self, line: int) -> None:
        byte = line >> 3
        if byte >= len(self._bits):
            self._bits.extend(bytes(byte - len(self._bits) + 1 + len(self._bits) // 2))
        self._bits[byte] |= 1 << (line & 7)

    def __contains__(self, line: int) -> bool:
        byte = line >> 3
        return byte < len(self._bits) and bool(self._bits[byte] & (1 << (line & 7)))


@dataclass(slots=True)
class RecordedOutcomes:
    """Final outcomes recorded so far, per source name."""

    delivered: dict[str, LineSet] = field(default_factory=dict)
    failed: dict[str, LineSet] = field(default_factory=dict)
    last_batch: int = 0
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    ambiguous: int = 0
    objects_sent: dict[str, int] = field(
        default_factory=lambda: {"attributes": 0, "events": 0, "purchases": 0}
    )
    failed_by_code: dict[str, int] = field(default_factory=dict)

    def outcome(self, source: str, line: int) -> str | None:
        """ "failed", "delivered" or None (no final outcome yet)."""
        failed = self.failed.get(source)
        if failed is not None and line in failed:
            return "failed"
        delivered = self.delivered.get(source)
        if delivered is not None and line in delivered:
            return "delivered"
        return None

    def __bool__(self) -> bool:
        return bool(self.delivered or self.failed)


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Parsed lines of a journal file; a torn or foreign line is skipped, never fatal."""
    if not path.exists():
        return
    with path.open("rb") as handle:
        for raw in handle:
            try:
                data = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if isinstance(data, dict):
                yield data


def read_outcomes(run_dir: Path) -> RecordedOutcomes:
    found = RecordedOutcomes()
    for failure in read_jsonl(run_dir / "failures.jsonl"):
        source, line = failure.get("source"), failure.get("line")
        if isinstance(source, str) and isinstance(line, int):
            found.failed.setdefault(source, LineSet()).add(line)
            code = str(failure.get("error"))
            found.failed_by_code[code] = found.failed_by_code.get(code, 0) + 1
    for result in read_jsonl(run_dir / "results.jsonl"):
        _count_result(found, result)
    return found


def _count_result(found: RecordedOutcomes, result: dict[str, Any]) -> None:
    attempts = result.get("attempts")
    if isinstance(attempts, int):
        found.requests += attempts
        found.retries += max(0, attempts - 1)
    found.rate_limited += int(result.get("rate_limited") or 0)
    found.ambiguous += bool(result.get("ambiguous"))
    accepted = result.get("accepted")
    if isinstance(accepted, dict):
        for array, count in accepted.items():
            if array in found.objects_sent and isinstance(count, int):
                found.objects_sent[array] += count
    batch = str(result.get("batch", "0")).split(".", 1)[0]
    if batch.isdigit():
        found.last_batch = max(found.last_batch, int(batch))
    status = result.get("status")
    if not (isinstance(status, int) and 200 <= status < 300):
        return
    lines = result.get("lines")
    if not isinstance(lines, dict):
        return
    for source, numbers in lines.items():
        delivered = found.delivered.setdefault(source, LineSet())
        for line in numbers if isinstance(numbers, list) else ():
            if isinstance(line, int):
                delivered.add(line)


def read_manifest(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "run.json"
    try:
        data = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise ConfigError(f"{run_dir} is not a run directory (no run.json)") from None
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict) or "settings" not in data:
        raise ConfigError(f"{path} is not a braze-import run manifest")
    return data
