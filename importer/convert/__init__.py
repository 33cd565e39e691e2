"""Conversion: ``SourceRow`` -> ``Item | RowFailure | RowSkipped`` with a compiled mapping.

``converter`` is the stage; ``builder`` and ``codegen`` turn a mapping's fields (each a plan,
``field_plans``) into one generated function per mapping; ``checks`` compiles Braze's rules per
mapped field.
"""

from importer.convert.converter import Conversion, Converter

__all__ = ["Conversion", "Converter"]
