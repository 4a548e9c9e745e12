"""`ticketpulse worker` whose Nth ingest batch fails at step 2, as a broker refusing a
changelog write would.

Fault injection for test_kpis.py through the commit sequence's own seam: the worker's
changelog step (``Worker.changelog_class``) refuses the first send after ingest batch
number ``FAIL_WRITE_AT`` has been applied.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from streams.cli import main
from streams.runtime.worker import Worker
from streams.runtime.writers import FaustChangelog

FAIL_AT = int(os.environ["FAIL_WRITE_AT"])
MESSAGE = "the broker refused a write (injected)"
_apply_tickets = Worker.apply_tickets


class RefusingChangelog(FaustChangelog):
    batches = 0
    armed = False

    async def send(self, changes: Any) -> Any:
        if RefusingChangelog.armed:
            RefusingChangelog.armed = False
            raise RuntimeError(MESSAGE)
        return await super().send(changes)


def apply_tickets(self: Worker, records: list[Any]) -> Any:
    RefusingChangelog.batches += 1
    RefusingChangelog.armed = RefusingChangelog.batches == FAIL_AT
    return _apply_tickets(self, records)


Worker.changelog_class = RefusingChangelog
Worker.apply_tickets = apply_tickets  # type: ignore[method-assign]
sys.exit(main(sys.argv[1:]))
