"""Reading sources: files, stdin, bucket objects, HTTPS -> ``SourceRow | RowFailure``, streaming
in constant memory.

``resolve`` expands SOURCE arguments (directories, globs, bucket listings) into ``Location``s
(``locations``) and opens them; ``remote`` streams a remote one, resuming from the byte reached
after a drop, through ``cloud`` (s3://, gs://) or ``web`` (https://). ``lines`` turns bytes
(plain or gzip, any encoding) into numbered physical lines; ``csv_records`` and
``jsonl_records`` turn lines into records (a CSV parser keeps the decoded lines it still needs in
``line_window``); ``source`` opens a source and settles everything that can stop a run before
anything is sent. A source is named by ``display_name``: a URL's credentials (userinfo,
presigned query values) stay in memory where the object is opened.
"""

from importer.read.csv_ranges import LineRecord, Ranges, RangeText, parse_range
from importer.read.csv_records import CsvLayout
from importer.read.jsonl_records import MAX_DEPTH, integer_out_of_range, json_depth
from importer.read.lines import Block, LineIssue
from importer.read.locations import (
    Location,
    check_shown_apart,
    display_name,
    redact_urls,
    url_secrets,
)
from importer.read.resolve import describe, expand
from importer.read.source import MAX_CELL_BYTES_LIMIT, Source, fingerprint, open_source, open_stream

__all__ = [
    "MAX_CELL_BYTES_LIMIT",
    "MAX_DEPTH",
    "Block",
    "CsvLayout",
    "LineIssue",
    "LineRecord",
    "Location",
    "RangeText",
    "Ranges",
    "Source",
    "check_shown_apart",
    "describe",
    "display_name",
    "expand",
    "fingerprint",
    "integer_out_of_range",
    "json_depth",
    "open_source",
    "open_stream",
    "parse_range",
    "redact_urls",
    "url_secrets",
]
