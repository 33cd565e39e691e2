"""The delivery state (``--state FILE``): what Braze confirmed, and so what changed since.

``delivery`` is the state file's API; ``store`` its SQLite tables, ``lookups`` a chunk's reads
of them; ``digest`` what is remembered of a value; ``row_digests`` all of it for one item
(``item_digests``, in any process); ``changes`` decides what of a row is new, ``filtered`` is
what is left of it, ``in_flight`` what this run sent and Braze has not yet confirmed; ``record``
writes what Braze confirmed; ``snapshot`` looks rows up, also in conversion workers;
``chunk_digests`` readies a chunk's digests for them; ``row_keys`` knows a row unchanged
before it is converted; ``delta_stage`` is the pipeline stage between converter and packer.
"""

from importer.state.delivery import DeliveryState, StateView, inspect_state
from importer.state.delta_stage import DeltaStage
from importer.state.row_digests import item_digests
from importer.state.row_keys import converted, salt
from importer.state.snapshot import is_verdict

__all__ = [
    "DeliveryState",
    "DeltaStage",
    "StateView",
    "converted",
    "inspect_state",
    "is_verdict",
    "item_digests",
    "salt",
]
