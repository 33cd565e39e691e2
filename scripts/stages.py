"""CPU per row of each synchronous stage on a benchmark file (no network, one process).

.venv/bin/python scripts/stages.py [--mapping benchmark|crm|wide] [--rows 300000]

The file is scripts/bench_data.py's 1,000,000-row file of that mapping (generated if missing).

Rows stream through the stages as in a run (nothing is held between them); the GC is set up as a
run sets it. Each stage's cost is the difference between streaming up to it and up to the one
before. The last line holds 45 packed requests alive, as a run at 833 requests/s with 50 ms
answers keeps about that many in flight: memory that was touched long ago costs more.
"""

from __future__ import annotations

import argparse
import gc
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from itertools import islice

from bench_data import NAMES, ensure, mapping_path

from importer.config import BatchLimits, ReadOptions
from importer.convert.converter import Converter
from importer.mapping.load import load_mapping
from importer.models import Batch, Item, RowFailure, SourceRow
from importer.read.source import open_source
from importer.send.packer import pack

IN_FLIGHT = 45


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mapping", choices=NAMES, default="benchmark")
    parser.add_argument("--rows", type=int, default=300_000)
    args = parser.parse_args()
    source = str(ensure(args.mapping, 1_000_000))
    converter = Converter(load_mapping(mapping_path(args.mapping)))
    limits = BatchLimits.for_mode("legacy")
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)  # as importer.runner.entry does for a run

    def rows() -> Iterator[SourceRow | RowFailure]:
        with open_source(source, ReadOptions()) as opened:
            yield from islice(opened.rows(), args.rows)

    def items() -> Iterator[Item]:
        for row in rows():
            if isinstance(row, SourceRow):
                out = converter.convert(row)
                if isinstance(out, Item):
                    yield out

    def batches() -> Iterator[Batch | RowFailure]:
        return pack(items(), limits)

    def per_row(stream: Callable[[], Iterable[object]], keep: int = 0) -> float:
        started = time.process_time()
        deque(stream(), maxlen=keep)
        return (time.process_time() - started) * 1e6 / args.rows

    read, converted, packed = per_row(rows), per_row(items), per_row(batches)
    held = per_row(batches, keep=IN_FLIGHT)
    print(f"{args.rows:,} rows of the {args.mapping} file, legacy mode (75 rows per request)")
    for name, cost in (
        ("read", read),
        ("convert (with the Braze checks)", converted - read),
        ("pack (serialise, limits, merge)", packed - converted),
        ("all three", packed),
        (f"all three, {IN_FLIGHT} requests held", held),
    ):
        print(f"{name:34} {cost:6.2f} µs/row {cost * 75:8.0f} µs/request")


if __name__ == "__main__":
    main()
