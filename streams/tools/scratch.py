"""The scratch directories of the long tools (``make bench``, ``make soak``).

A run's broker logs and worker stores take 0.6-10 GB. Kept after every run, they filled this
machine's disk in two days, and the next soak's broker stopped with ``No space left on
device`` 56 minutes in. So a run that ends well removes its directory; one that fails (an
exception, or a verdict the caller marks ``keep``), or ``--keep``, keeps it and says where.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Scratch:
    path: Path
    keep: bool  # set it when the run failed in a way that raised nothing


@contextmanager
def scratch_dir(prefix: str, *, keep: bool = False) -> Iterator[Scratch]:
    """A fresh directory under the system's temp dir, removed on a clean exit unless kept."""
    scratch = Scratch(Path(tempfile.mkdtemp(prefix=prefix)), keep)
    try:
        yield scratch
    except BaseException:
        scratch.keep = True
        raise
    finally:
        if scratch.keep:
            print(f"kept the work dir (logs, broker, stores): {scratch.path}", file=sys.stderr)
        else:
            shutil.rmtree(scratch.path, ignore_errors=True)
