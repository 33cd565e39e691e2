"""A run's counters in Prometheus text format, for node_exporter's textfile collector."""

from __future__ import annotations

import os
import time
from pathlib import Path

from importer.models import ImportStats

PREFIX = "braze_import_"


def _line(name: str, value: float, help_text: str, kind: str = "gauge", **labels: str) -> str:
    label_text = ",".join(f'{k}="{v}"' for k, v in labels.items())
    metric = f"{PREFIX}{name}{{{label_text}}}" if labels else f"{PREFIX}{name}"
    return f"# HELP {PREFIX}{name} {help_text}\n# TYPE {PREFIX}{name} {kind}\n{metric} {value:g}\n"


def prometheus_text(stats: ImportStats, exit_code: int) -> str:
    parts = [
        _line("rows_read", stats.rows_read, "Rows read from the sources."),
        _line("delivered", stats.delivered, "Records delivered to Braze."),
        _line("failed", stats.failed, "Records failed (see failures.jsonl)."),
        _line("requests", stats.requests, "Requests sent (attempts included)."),
        _line("retries", stats.retries, "Requests sent again."),
        _line("rate_limited", stats.rate_limited, "Answers 429."),
        _line("ambiguous", stats.ambiguous, "Requests that may have been applied twice."),
        _line("attributes_unchanged", stats.attributes_unchanged, "Attribute values left out."),
        _line("events_already_sent", stats.events_already_sent, "Events/purchases left out."),
        _line("elapsed_seconds", round(stats.elapsed_s, 3), "Duration of the run."),
        _line("exit_code", exit_code, "Exit code: 0 ok, 1 some failed, 3 aborted, 130 stopped."),
        _line("last_run_timestamp_seconds", int(time.time()), "When the run ended (epoch)."),
    ]
    name = "skipped"
    lines = [f"# HELP {PREFIX}{name} Records skipped, by reason.", f"# TYPE {PREFIX}{name} gauge"]
    for reason, count in sorted(stats.skipped.items()):
        lines.append(f'{PREFIX}{name}{{reason="{reason}"}} {count}')
    name = "objects_sent"
    lines += [f"# HELP {PREFIX}{name} Objects Braze accepted.", f"# TYPE {PREFIX}{name} gauge"]
    for kind, count in stats.objects_sent.items():
        lines.append(f'{PREFIX}{name}{{kind="{kind}"}} {count}')
    return "".join(parts) + "\n".join(lines) + "\n"


def write_metrics(path: Path, text: str) -> None:
    """Atomically: the collector must never read half a file."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
