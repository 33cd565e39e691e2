"""The mapping: a TOML file -> a ``CompiledMapping`` of field readers; value and time parsing;
the ``init-mapping`` draft.

``document`` locates keys in the TOML text (errors name file, line and column) and
``toml_checks`` checks a value's TOML kind there; ``field_spec`` checks and compiles one field
into a reader (``readers``) with the converter ``field_converters`` picks (``values``, ``times``,
which places wall times with ``zone_days``); ``load`` compiles the whole file into
``compiled``'s types, its attribute tables in ``attribute_tables`` and its events and purchases
in ``object_tables``. ``draft`` samples a source and writes a first mapping for a person to
edit: ``column_types`` (with ``column_times``, ``column_words`` and their ``guess``) types each
column, ``naming`` names it, ``draft_text`` writes the lines.
"""

from importer.mapping.compiled import CompiledMapping, GroupSpec, ObjectSpec
from importer.mapping.draft import draft_file, draft_mapping
from importer.mapping.field_spec import CompiledField
from importer.mapping.load import IDENTIFIERS, default_mapping, load_mapping, mapping_from_text
from importer.mapping.readers import ColumnReader, FieldReader, LiteralReader
from importer.mapping.values import OMIT, show

__all__ = [
    "IDENTIFIERS",
    "OMIT",
    "ColumnReader",
    "CompiledField",
    "CompiledMapping",
    "FieldReader",
    "GroupSpec",
    "LiteralReader",
    "ObjectSpec",
    "default_mapping",
    "draft_file",
    "draft_mapping",
    "load_mapping",
    "mapping_from_text",
    "show",
]
