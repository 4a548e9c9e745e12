"""`ticketpulse worker` made slow where partitions change hands, so that what its /metrics
says meanwhile can be read, not caught in a window of a few milliseconds.

Fault injection for test_wallboard.py, from the environment:
- ``SLOW_RECOVERY_S``: every recovery of active tables waits that long first, as with
  large changelogs; the partitions it was handed stay assigned, their tables unrecovered;
- ``NO_STANDBYS``: no standby replicas of the tables (Faust keeps one by default), so a
  worker handed a partition has none of its table until the recovery reads it.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from streams.cli import main
from streams.runtime import worker
from streams.runtime.faust_internals import BulkRecovery

RECOVERY_S = float(os.environ.get("SLOW_RECOVERY_S", "0"))
_build_offsets = BulkRecovery._build_offsets
_faust_app = worker.faust_app


def faust_app_without_standbys(settings: Any) -> Any:
    app = _faust_app(settings)
    app.conf.table_standby_replicas = 0
    return app


async def slow_build_offsets(
    self: BulkRecovery, consumer: Any, tps: Any, destination: Any, title: str
) -> None:
    if title == "active" and tps:
        await asyncio.sleep(RECOVERY_S)
    await _build_offsets(self, consumer, tps, destination, title)


BulkRecovery._build_offsets = slow_build_offsets  # type: ignore[method-assign]
if os.environ.get("NO_STANDBYS"):
    worker.faust_app = faust_app_without_standbys
sys.exit(main(sys.argv[1:]))
