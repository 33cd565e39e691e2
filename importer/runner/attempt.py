"""What one attempt of a run is given (``Attempt``), prepared by ``importer.runner.entry`` before
a byte is sent and run by the engine (``importer.runner.engine``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from importer.config import ImportConfig
from importer.models import RowConverter, RowSource
from importer.rundir import RecordedOutcomes
from importer.runner.pool import ConvertPool
from importer.runner.worker import ConverterSpec
from importer.state import DeliveryState


@dataclass(slots=True)
class Attempt:
    """Everything one attempt of a run needs, prepared before a byte is sent."""

    config: ImportConfig
    sources: list[RowSource]
    converters: list[RowConverter]
    # What earlier attempts settled (resume); empty for a new run.
    outcomes: RecordedOutcomes = field(default_factory=RecordedOutcomes)
    earlier_elapsed_s: float = 0.0
    state: DeliveryState | None = None  # --state: send only what changed
    # How worker processes rebuild ``converters`` (None: they cannot, e.g. a retry's).
    specs: list[ConverterSpec] | None = None
    # --state: how rows without an [operations] key name their operations (source name -> the
    # fingerprint run.json recorded); None: the mapping has no operations.
    operation_sources: dict[str, str] | None = None
    # The conversion workers, started before the sources were opened (``ConvertPool.started``);
    # the engine configures them, or closes them when it converts here. Its caller closes
    # them too (idempotent), should the attempt end before an engine exists.
    pool: ConvertPool | None = None
