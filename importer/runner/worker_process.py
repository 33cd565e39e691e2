"""What ties a conversion worker process to the main process (importer.runner.worker starts
each with it): the worker dies with it, however it went.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import threading
import time

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with(parent: int) -> None:
    """End this worker when the main process is gone, however it went (SIGKILL, OOM): a forked
    worker holds both ends of the pool's pipes, so it would never see them close, and an
    orphan keeps the caller's stderr open. Linux says so at once (PR_SET_PDEATHSIG); elsewhere
    a thread looks every half second."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0:
            if os.getppid() != parent:  # it died before the request was made
                os._exit(1)
            return

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
