"""CPU per row of each synchronous stage on the benchmark file (no network).

.venv/bin/python scripts/stages.py [--rows 200000]   (after `make bench` generated the file)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from importer.config import BatchLimits, ReadOptions
from importer.converter import Converter
from importer.mapping import load_mapping
from importer.models import Item
from importer.packer import pack
from importer.reader import open_source

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args()
    source = str(ROOT / "bench-data" / f"users-{args.rows}.csv")
    converter = Converter(load_mapping(ROOT / "scripts" / "bench-mapping.toml"))

    started = time.process_time()
    with open_source(source, ReadOptions()) as opened:
        rows = list(opened.rows())
    read = time.process_time() - started

    started = time.process_time()
    items = [converter.convert(row) for row in rows]  # type: ignore[arg-type]
    convert = time.process_time() - started

    started = time.process_time()
    batches = list(pack((i for i in items if isinstance(i, Item)), BatchLimits.for_mode("legacy")))
    packed = time.process_time() - started

    per_row = 1e6 / len(rows)
    print(
        f"{len(rows):,} rows: read {read * per_row:.2f} µs/row, convert (with the Braze checks) "
        f"{convert * per_row:.2f} µs/row, pack {packed * per_row:.2f} µs/row, "
        f"{len(batches):,} legacy requests"
    )


if __name__ == "__main__":
    main()
