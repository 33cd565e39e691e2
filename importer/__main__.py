"""``python -m importer`` is ``braze-import``."""

from importer.cli import main

main(prog_name="braze-import")
