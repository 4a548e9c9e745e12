"""`ticketpulse worker` whose Nth table write fails, as a broker refusing it would.

Fault injection for test_kpis.py: the real worker, with ``streams.app.write_changes``
wrapped so that write number ``FAIL_WRITE_AT`` raises.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import streams.app
from streams.cli import main

FAIL_AT = int(os.environ["FAIL_WRITE_AT"])
MESSAGE = "the broker refused a write (injected)"
_write = streams.app.write_changes
_calls = 0


async def write_changes(*args: Any, **kwargs: Any) -> int:
    global _calls
    _calls += 1
    if _calls == FAIL_AT:
        raise RuntimeError(MESSAGE)
    return await _write(*args, **kwargs)


streams.app.write_changes = write_changes  # type: ignore[assignment]
sys.exit(main(sys.argv[1:]))
