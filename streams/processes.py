"""Child processes that never outlive their parent and stop politely, then firmly."""

from __future__ import annotations

import contextlib
import ctypes
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
