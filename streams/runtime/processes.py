"""Process-level helpers: children that never outlive their parent and stop politely, then
firmly; the garbage collector tuned for a long-running worker."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import os
import signal
import subprocess
import threading
import time
from typing import Any


def die_with_parent() -> None:
    """``preexec_fn``: ask Linux to SIGTERM the child if the process that started it dies."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def stop(process: subprocess.Popen[Any], timeout: float, sig: int = signal.SIGTERM) -> int:
    """Send ``sig`` (SIGTERM: controlled shutdown), SIGKILL after ``timeout``; the exit code."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return int(process.returncode)


GC_THRESHOLDS = (50_000, 20, 10)


def tune_gc() -> None:
    """Collect cycles less often than CPython's default (700, 10, 10).

    The worker holds its tables in memory (hundreds of thousands of long-lived
    objects) and allocates a few dozen objects per record, so the default thresholds
    ran a collection every few records and a full one, which walks every table
    object, every few thousand: 20-50 % more records/s with these (docs/performance.md).
    """
    gc.set_threshold(*GC_THRESHOLDS)


M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter (malloc.h)


def fix_mmap_threshold(kib: int) -> bool:
    """Serve every allocation of ``kib`` KiB or more with its own ``mmap``, returned to the
    system when freed; 0 leaves glibc's default. Whether it took (False: not glibc).

    glibc starts at 128 KiB but raises the threshold to the size of each such block freed
    (up to 32 MiB). A table held in a dict is one block: once one of 14.7 MiB (2**20
    slots, ~190,000 customers) was freed, the next large blocks came from the heap, where
    a block freed stays resident: the soak's step of ~14 MiB at minute 40.6, when a dict
    was rebuilt under churn (docs/reliability.md). A fixed threshold turns the adjustment
    off. The worker's 1 MiB (``malloc_mmap_threshold_kib``) leaves live fetches in the
    heap: with 128 KiB, freshness p99 reached 1.7 s in one of four bench runs.
    """
    if kib <= 0:
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, kib * 1024))


log = logging.getLogger(__name__)
CRASH_EXIT_S = 30.0  # a crashed worker that has not exited by then is ended
STOP_EXIT_S = 30.0  # a worker told to stop (SIGTERM, SIGINT) that has not exited by then


def exit_if_stop_hangs(after_s: float, cause: str = "a failed batch") -> None:
    """End the process ``after_s`` seconds from now if it is still alive.

    After a failed batch Faust's stop can wait forever for stream buffers to empty (seen
    in full test runs: "Wait for streams..." and nothing more), and after SIGTERM with the
    broker gone it waits on the broker. Exiting is safe: nothing past the last done batch
    was acknowledged, so the restart replays the rest.
    """

    def watchdog() -> None:
        time.sleep(after_s)
        log.error("the worker did not stop within %.0f s of %s; exiting", after_s, cause)
        logging.shutdown()
        os._exit(1)

    threading.Thread(target=watchdog, name="crash-exit", daemon=True).start()
