"""The library's surface is deliberate: ``importer.__all__`` is pinned, and every type a public
function takes or returns is exported beside it."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
import typing
from importlib import metadata
from pathlib import Path

import importer

PINNED = [
    "EXIT_MEANINGS",
    "EXIT_OK",
    "AbortError",
    "BatchLimits",
    "ConfigError",
    "FatalError",
    "ImportConfig",
    "ImportStats",
    "ImporterError",
    "InputError",
    "InternalError",
    "Interrupted",
    "Locked",
    "MappingError",
    "RateLimited",
    "ReadOptions",
    "RecordError",
    "Reporter",
    "RetryPolicy",
    "RetryableError",
    "RunReport",
    "SourceLost",
    "StorageError",
    "TransientError",
    "Unreachable",
    "VerifyReport",
    "VerifyReporter",
    "resolve_endpoint",
    "resume_import",
    "retry_import",
    "run_import",
    "verify_run",
]
PUBLIC_FUNCTIONS = ("run_import", "resume_import", "retry_import", "resolve_endpoint", "verify_run")


def test_the_surface_is_exactly_the_pinned_one() -> None:
    assert sorted(importer.__all__) == sorted(PINNED)
    for name in PINNED:
        assert getattr(importer, name) is not None


def _importer_types(annotation: object) -> set[type]:
    """The importer's own classes named anywhere in an annotation (unions, generics)."""
    found: set[type] = set()
    if isinstance(annotation, type) and annotation.__module__.startswith("importer"):
        found.add(annotation)
    for arg in typing.get_args(annotation):
        found |= _importer_types(arg)
    return found


def test_every_type_a_public_function_takes_or_returns_is_exported() -> None:
    exported = {
        getattr(importer, n) for n in importer.__all__ if inspect.isclass(getattr(importer, n))
    }
    seen: set[type] = set()
    for name in PUBLIC_FUNCTIONS:
        function = getattr(importer, name)
        hints = typing.get_type_hints(function)
        used = set().union(*(_importer_types(hint) for hint in hints.values()))
        assert used <= exported, (name, used - exported)
        seen |= used
    assert {importer.ImportConfig, importer.RunReport} <= seen  # the hints were read at all
    report_hints = typing.get_type_hints(importer.RunReport)
    assert _importer_types(report_hints["stats"]) <= exported


def test_the_runner_is_imported_only_when_asked_for() -> None:
    code = "import sys, importer; print('aiohttp' in sys.modules, importer.run_import.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "run_import"]


def test_version_and_typing_marker() -> None:
    assert importer.__version__ == metadata.version("braze-importer")
    assert (Path(importer.__file__).parent / "py.typed").is_file()
    assert "py.typed" in Path(importer.__file__).parents[1].joinpath("pyproject.toml").read_text()


def test_every_error_in_the_tree_is_used() -> None:
    """A leaf of the tree that no stage raises, wraps, catches or takes an exit code from is
    dead weight, or a path the product forgot."""
    package = Path(importer.__file__).parent
    source = "\n".join(
        path.read_text()
        for path in package.rglob("*.py")
        if path not in (package / "errors.py", package / "__init__.py")
    )
    errors = [
        name
        for name in importer.__all__
        if inspect.isclass(getattr(importer, name))
        and issubclass(getattr(importer, name), importer.ImporterError)
    ]
    assert len(errors) == 16
    for name in errors:
        if getattr(importer, name).__subclasses__():
            continue  # a branch of the tree: its leaves are raised
        assert re.search(rf"\b{name}\b", source), name
