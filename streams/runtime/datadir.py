"""A worker's data dir: one process at a time, and a consumer-group identity that survives
restarts.

- **Lock.** ``<data_dir>/.lock`` is held with ``flock`` for the life of the process (the
  kernel lets go when the process dies, SIGKILL included) and names the holder's pid. A
  second worker on the same dir would share the RocksDB files and the group identity: it
  stops at once with one clear line instead of a traceback 35 s later.
- **Static membership.** ``<data_dir>/instance-id`` is created once and reused, unless
  ``instance_id`` is set (the Kubernetes StatefulSet passes the pod name). A restarted worker
  then rejoins the consumer group as the same member and gets its own partitions back at once,
  instead of waiting out the dead member's session (53-61 s before, issue 15).
"""

from __future__ import annotations

import fcntl
import os
import socket
import uuid
from pathlib import Path
from typing import IO

LOCK_NAME = ".lock"
INSTANCE_NAME = "instance-id"


class DataDirInUseError(RuntimeError):
    """Another live process holds the data dir."""


def claim(data_dir: Path) -> IO[str]:
    """Lock ``data_dir`` for this process; keep the returned file open until exit."""
    data_dir.mkdir(parents=True, exist_ok=True)
    handle = (data_dir / LOCK_NAME).open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        msg = (
            f"data dir {data_dir} is in use by another worker (pid {holder}); "
            "give each worker its own --data-dir"
        )
        raise DataDirInUseError(msg) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def instance_id(data_dir: Path, configured: str | None, metrics_port: int) -> str:
    """The configured id, else the one this data dir was given on its first run plus the
    metrics port.

    A static member that rejoins gets its previous assignment back, and Faust's assignor
    asserts that the web URL stored with it is its own (``partition_assignor.py``,
    ``on_assignment``): a worker restarted on another port would stop processing. With the
    port in the id it joins as a new member instead (and the old one times out)."""
    if configured:
        return configured
    path = data_dir / INSTANCE_NAME
    if path.is_file() and path.read_text().strip():
        return f"{path.read_text().strip()}-{metrics_port}"
    value = f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
    data_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(value + "\n")
    return f"{value}-{metrics_port}"


def check_port_free(host: str, port: int, what: str) -> None:
    """Fail with one line, before anything starts, when ``port`` cannot be listened on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            msg = f"{what} port {port} on {host} is not free ({exc.strerror}); set another one"
            raise PortInUseError(msg) from None


class PortInUseError(RuntimeError):
    """A port the worker must listen on is taken."""
