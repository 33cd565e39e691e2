"""The one exception tree of braze-importer.

Every error the library raises on purpose derives from ``ImporterError``. Each branch has one
behaviour, and each class carries the process exit code the CLI uses for it::

    ImporterError                    base; never raised itself
    ├── FatalError                   abort the run                           (exit_code 3)
    │   ├── ConfigError              bad option, endpoint or key; nothing sent (exit_code 2)
    │   │   ├── MappingError         bad mapping file: file, line, column, key (exit_code 2)
    │   │   └── InputError           unreadable source / bad header, before sending (exit_code 2)
    │   ├── Locked                   state file or run directory held by a running job; nothing
    │   │                            sent; try again later                   (exit_code 75)
    │   ├── AbortError               401/403, endpoint unreachable after retries (exit_code 3)
    │   │   └── SourceLost           a remote source kept failing mid-read, or changed (exit_code 3)
    │   ├── StorageError             run directory not writable (full disk, read-only, permissions);
    │   │                            the message names the path and the fix  (exit_code 3)
    │   ├── Interrupted              SIGINT/SIGTERM stopped the run; logs complete (exit_code 130)
    │   └── InternalError            a bug: an exception nobody expected; its traceback goes to
    │                                error.log in the run directory          (exit_code 70)
    ├── RetryableError               transient: the sender tries again with backoff
    │   ├── RateLimited              429: every worker waits ``wait_s`` before trying again
    │   └── TransientError           5xx, timeout, dropped connection
    │       └── Unreachable          could not connect at all (nothing was sent)
    └── RecordError                  one record fails; it is logged and the run goes on
                                     (``stage`` and ``code`` go to failures.jsonl; a run that
                                     ends with failed records exits with its exit_code 1)

A run that delivered or skipped every record exits ``EXIT_OK``. Every other exit code of the
program is the ``exit_code`` of a class above; ``EXIT_MEANINGS`` says what each one means.

Foreign exceptions (aiohttp, asyncio timeouts, csv, json, tomllib, UnicodeDecodeError) are
translated into this tree at one seam per stage: ``importer.send.client.translate_transport_errors``
for the network, ``importer.read`` for files, ``importer.mapping.load_mapping`` for the mapping
file. Whatever else escapes reaches the CLI as an ``InternalError``.
"""

from __future__ import annotations

from typing import ClassVar


class ImporterError(Exception):
    """Base of every error the importer raises on purpose."""

    exit_code: ClassVar[int] = 1


class FatalError(ImporterError):
    """The run cannot go on."""

    exit_code: ClassVar[int] = 3


class ConfigError(FatalError):
    """A usage error found before anything was sent (options, endpoint, API key)."""

    exit_code: ClassVar[int] = 2


class MappingError(ConfigError):
    """The mapping file is wrong. The message names the file, line, column and key."""

    def __init__(
        self, message: str, *, path: str = "", line: int = 0, column: int = 0, key: str = ""
    ) -> None:
        self.path = path
        self.line = line
        self.column = column
        self.key = key
        location = path
        if line:
            location += f":{line}:{column or 1}"
        super().__init__(f"{location}: {message}" if location else message)


class InputError(ConfigError):
    """A source cannot be used at all (missing, unreadable header, duplicate columns)."""


class Locked(FatalError):
    """Another live process holds the state file or the run directory; the message names it.
    Nothing was sent: a scheduler should try again later (EX_TEMPFAIL)."""

    exit_code: ClassVar[int] = 75


class AbortError(FatalError):
    """Braze refused us for good (401/403) or could not be reached after retries."""


class SourceLost(AbortError):
    """A remote source (bucket object, HTTPS) kept dropping the connection mid-read after the
    retries from the byte reached, or changed while being read. Rows read so far are accounted
    for; ``resume`` goes on once the source reads again."""


class StorageError(FatalError):
    """The run directory (or the metrics file) cannot be written: a full disk, a read-only mount,
    missing permissions. The journal stays consistent; ``resume`` completes once it is fixed."""


class Interrupted(FatalError):
    """A signal asked the run to stop; logs are complete up to this point."""

    exit_code: ClassVar[int] = 130


class InternalError(FatalError):
    """An exception the importer did not expect: a bug. Wraps it for a one-line message
    (EX_SOFTWARE); the CLI writes the traceback to error.log in the run directory."""

    exit_code: ClassVar[int] = 70

    @classmethod
    def wrapping(cls, exc: BaseException) -> InternalError:
        return cls(f"{type(exc).__name__}: {exc}")


def innermost(exc: BaseException) -> BaseException:
    """The one exception inside task-group wrappers (``ExceptionGroup`` of one), or ``exc``."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


class RetryableError(ImporterError):
    """A transient failure; the request may be sent again."""

    def __init__(self, message: str, *, ambiguous: bool = False) -> None:
        super().__init__(message)
        # True when the body may have reached Braze (timeout or reset after sending).
        self.ambiguous = ambiguous


class RateLimited(RetryableError):
    """HTTP 429: wait ``wait_s`` seconds (the server's word) before any worker sends again."""

    def __init__(self, message: str, *, wait_s: float) -> None:
        super().__init__(message)
        self.wait_s = wait_s


class TransientError(RetryableError):
    """5xx, timeout or dropped connection: retry with capped, jittered exponential backoff."""


class RecordError(ImporterError):
    """One record cannot be imported. It goes to failures.jsonl; the run continues."""

    exit_code: ClassVar[int] = 1

    def __init__(self, code: str, message: str, *, stage: str = "convert") -> None:
        super().__init__(message)
        self.code = code
        self.stage = stage
        self.message = message


class Unreachable(TransientError):
    """The endpoint refused or never accepted a connection; nothing was sent."""


EXIT_OK = 0

EXIT_MEANINGS: dict[int, str] = {
    EXIT_OK: "every record was delivered or skipped by rule",
    RecordError.exit_code: "the run finished but some records failed: see failures.jsonl",
    ConfigError.exit_code: "usage, mapping or input error; nothing was sent",
    AbortError.exit_code: (
        "aborted: Braze refused the key, could not be reached, a remote source kept failing, or "
        "the run directory could not be written; logs are complete to this point: fix the cause, "
        "then resume"
    ),
    Locked.exit_code: "temporary: the state file or run directory is in use; try again later",
    InternalError.exit_code: "internal error (a bug): see error.log in the run directory",
    Interrupted.exit_code: "interrupted by a signal; logs are complete to this point",
}
