"""Reading sources: a file or stdin -> ``SourceRow | RowFailure``, streaming in constant memory.

``lines`` turns bytes (plain or gzip, any encoding) into numbered physical lines; ``csv_records``
and ``jsonl_records`` turn lines into records; ``source`` opens a source and settles everything
that can stop a run before anything is sent.
"""

from importer.read.jsonl_records import MAX_DEPTH, integer_out_of_range, json_depth
from importer.read.source import MAX_CELL_BYTES_LIMIT, Source, fingerprint, open_source, open_stream

__all__ = [
    "MAX_CELL_BYTES_LIMIT",
    "MAX_DEPTH",
    "Source",
    "fingerprint",
    "integer_out_of_range",
    "json_depth",
    "open_source",
    "open_stream",
]
