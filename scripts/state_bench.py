"""CPU per row of ``--state``'s work in the main process, without the network or the workers.

.venv/bin/python scripts/state_bench.py [--mapping crm] [--rows 100000] [--nights 2]

Rows of a benchmark file are converted and hashed first, as a conversion worker would (each
item pickled and unpickled, so the main process meets fresh objects as it does in a run); then,
timed per night against one state file (fresh at the first): ``filter`` (``filter_many`` in
chunks of 500) and ``record`` (``record`` of what was left, in groups of 2,000 rows, as
``DeltaStage.flush`` does). The first night is a fresh state, the second the same rows again.
"""

from __future__ import annotations

import argparse
import gc
import pickle
import tempfile
import time
from functools import partial
from itertools import islice
from pathlib import Path

from bench_data import NAMES, ensure, mapping_path

from importer.config import ReadOptions
from importer.convert.converter import Converter
from importer.mapping.load import load_mapping
from importer.models import Item, SourceRow
from importer.read.source import open_source
from importer.send.packer import serialised
from importer.state import DeliveryState, item_digests

FILTER_CHUNK = 500
RECORD_ROWS = 2_000


def worker_items(source: str, mapping: Path, rows: int, values: bool) -> list[Item]:
    """Items as the main process gets them from a worker: wire, digests, no objects."""
    converter = Converter(load_mapping(mapping))
    digests = partial(item_digests, sources=None)
    items = []
    with open_source(source, ReadOptions()) as opened:
        for row in islice(opened.rows(), rows):
            if isinstance(row, SourceRow):
                out = converter.convert(row)
                if isinstance(out, Item):
                    out = out._replace(digests=digests(out, values))
                    wire = serialised(out).wire
                    items.append(Item(out.ref, row.record, out.user, (), (), (), out.digests, wire))
    return pickle.loads(pickle.dumps(items, protocol=pickle.HIGHEST_PROTOCOL))


def night(state: DeliveryState, items: list[Item]) -> tuple[float, float]:
    """CPU seconds of filtering and of recording ``items``."""
    filter_s = record_s = 0.0
    queued = []
    for start in range(0, len(items), FILTER_CHUNK):
        chunk = items[start : start + FILTER_CHUNK]
        t0 = time.process_time()
        left = state.filter_many(chunk)
        filter_s += time.process_time() - t0
        queued += [(f.item.ref, f.item.digests) for f in left if f.item is not None]
        if len(queued) >= RECORD_ROWS:
            t0 = time.process_time()
            state.record(queued)
            record_s += time.process_time() - t0
            queued = []
    t0 = time.process_time()
    state.record(queued)
    record_s += time.process_time() - t0
    return filter_s, record_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mapping", choices=NAMES, default="crm")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--nights", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3, help="the least CPU of so many tries")
    args = parser.parse_args()
    source = str(ensure(args.mapping, 1_000_000))
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)  # as importer.runner.entry does for a run
    items = [
        worker_items(source, mapping_path(args.mapping), args.rows, n == 0)
        for n in range(min(args.nights, 2))
    ]
    best: dict[int, tuple[float, float]] = {}
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "state.sqlite"
            for n in range(args.nights):
                with DeliveryState.open(path, run_label=f"night {n + 1}") as state:
                    times = night(state, items[min(n, 1)])
                best[n] = min(best.get(n, times), times, key=sum)
    for n, (filter_s, record_s) in best.items():
        name = "first night" if n == 0 else f"night {n + 1} (unchanged)"
        print(
            f"{name:22} filter {filter_s * 1e6 / args.rows:6.2f} µs/row, "
            f"record {record_s * 1e6 / args.rows:6.2f} µs/row"
        )


if __name__ == "__main__":
    main()
