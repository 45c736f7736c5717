"""How Cairn's processes live and end: children that end with their parent (a `kill -9` of
`cairn up` must not leave the server writing its AOF, or an API holding its port, with nobody
to stop them), and the pause a loop takes that a stop cuts short."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Callable

PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>
PARENT_PID_VARIABLE = "CAIRN_PARENT_PID"


def child_setup(death_signal: signal.Signals, umask: int | None = None) -> Callable[[], None]:
    """A `preexec_fn` that asks Linux to send `death_signal` to the child when its parent dies
    (elsewhere it does nothing more than the umask; `watch_parent` covers the rest)."""
    parent = os.getpid()
    # Resolved here, in the parent: the child between fork and exec should only call it.
    prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None

    def setup() -> None:
        if umask is not None:
            os.umask(umask)
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, int(death_signal), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the request was made
            os.kill(os.getpid(), death_signal)

    return setup


def watch_parent(parent: int, interval_s: float = 1.0, give_up_s: float = 60.0) -> None:
    """Send ourselves SIGTERM once `parent` is no longer our parent (the fallback where the
    death signal is not available, or was lost), and exit outright if that has not ended us
    `give_up_s` later (a stop that waits on something that will not come)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval_s)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(give_up_s)
        os._exit(1)

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()


async def wait_for_stop(stop: asyncio.Event, seconds: float) -> None:
    """Sleep `seconds`, or less if `stop` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
