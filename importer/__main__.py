"""``python -m importer`` is ``braze-import``."""

import signal
import sys
from types import FrameType

from importer.errors import Interrupted  # cheap: the package is imported already


def _interrupted(signum: int, frame: FrameType | None) -> None:
    # A signal while the program is still starting: leave quietly, nothing was sent.
    sys.exit(Interrupted.exit_code)


def run() -> None:
    signal.signal(signal.SIGINT, _interrupted)
    signal.signal(signal.SIGTERM, _interrupted)
    from importer.cli.main import entry  # after the handlers: importing takes a moment

    entry()


if __name__ == "__main__":
    run()
