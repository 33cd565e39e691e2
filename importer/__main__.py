"""``python -m importer`` is ``braze-import``."""

import gc
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
    # A run's collection thresholds (importer.runner.execute) from the start: importing and
    # preparing a run make ~40,000 objects that live as long as the process and little garbage,
    # and the default thresholds walked them 94 times before the first row was read (~22 M
    # instructions of a run's start).
    gc.set_threshold(100_000, 50, 100)
    from importer.cli.main import entry  # after the handlers: importing takes a moment

    entry()


if __name__ == "__main__":
    run()
