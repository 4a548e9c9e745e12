"""Process-level helpers: children that never outlive their parent and stop politely, then
firmly; the garbage collector tuned for a long-running worker."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import signal
import subprocess
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
