"""Per-worker ingest bookkeeping: plain counters the agent bumps, read at scrape time.

The agent only increments dict entries (no metric-library locks on the hot path);
``streams.metrics.pipeline_exporter`` turns them into Prometheus families when /metrics is scraped.
Counts are per process and cumulative, for ``rate()``; a crash replays records
after the last commit, so these operational counters may count a record twice
(the KPI figures are idempotent, these are not: documented in docs/metrics.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import get_args

from streams.core.events import EVENT_TYPES, TicketEvent
from streams.core.ticket import Outcome
from streams.ingest.schema import REJECT_REASONS
from streams.processing.table_cache import BadRows

# the outcomes of an accepted event besides "applied" (``streams.core.ticket.Outcome``)
NOT_APPLIED = tuple(outcome for outcome in get_args(Outcome) if outcome != "applied")


@dataclass
class PipelineState:
    accepted: dict[str, int] = field(default_factory=lambda: dict.fromkeys(EVENT_TYPES, 0))
    rejected: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REJECT_REASONS, 0))
    # accepted events no figure took in: an event_id applied already, or past the lateness
    not_applied: dict[str, int] = field(default_factory=lambda: dict.fromkeys(NOT_APPLIED, 0))
    watermark: dict[int, float] = field(default_factory=dict)
    next_offset: dict[int, int] = field(default_factory=dict)  # per input partition
    last_processed_at: float = 0.0
    rebalances: int = 0
    contacts_forwarded: int = 0  # contact records sent to the contacts topic
    contacts_received: int = 0  # contact records the customer agent consumed
    batches: int = 0  # batches the agents processed
    applied: int = 0  # batches applied to the tables (step 1): what /metrics renders changed
    table_writes: int = 0  # table keys written (changelog records), after coalescing
    bad_rows: BadRows = field(default_factory=BadRows)  # stored rows left out, per table
    broker_up: bool = True  # a bootstrap server answers (streams.runtime.quiet_logs)

    def record_offset(self, partition: int, offset: int) -> None:
        self.next_offset[partition] = offset + 1

    def keep_partitions(self, assigned: set[int]) -> None:
        """A new assignment: the watermark and next offset of a partition moved away would
        grow stale while another worker owns it, and if it came back its lag would be read
        from them until the seek that ends recovery (Faust revokes every partition at each
        rebalance, so the partitions kept are told apart only here)."""
        for kept in (self.watermark, self.next_offset):
            for partition in kept.keys() - assigned:
                del kept[partition]

    def record_accepted(self, partition: int, event: TicketEvent, now: float) -> None:
        self.accepted[event.type] += 1
        if event.occurred_at > self.watermark.get(partition, 0.0):
            self.watermark[partition] = event.occurred_at
        self.last_processed_at = now

    def record_rejected(self, reason: str, now: float) -> None:
        self.rejected[reason] += 1
        self.last_processed_at = now
