"""Whether a worker's partitions have settled: assigned, and their tables recovered.

Until then a worker exports no figure of them (``Worker.served``): a partition is assigned
before its tables are recovered, and its figures would be missing or read from a partial
copy, too low rather than late. Faust's own flag (``app.rebalancing``) is not enough: the
end of a recovery clears it, even when the recovery belongs to the generation before a
rebalance that has begun meanwhile (revoked, still joining). Faust only looks at the
generation after ``on_rebalance_complete``, and the consumer's generation id changes only
once the join is done. So the flag read False from then until the new generation's
recovery began, while the assignor already listed the new partitions. Here a recovery's
end counts only when an assignment came after the latest revoke: Faust begins a
generation's recovery and sends ``on_partitions_assigned`` in one step of the event loop,
so that generation's recovery always ends after the assignment hook.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Handover:
    """Fed by the worker's rebalance hooks (``Worker._rebalance_hooks``)."""

    settled: bool = False  # assigned and recovered, no revoke since
    assigned: bool = False  # an assignment came since the latest revoke
    changes: int = 0  # moves on at every hook: a rendering spanning one is begun again

    def revoked(self) -> None:
        self.settled = self.assigned = False
        self.changes += 1

    def assigned_partitions(self) -> None:
        self.assigned = True
        self.changes += 1

    def recovered(self) -> None:
        """A recovery ended: the assignment's, if one came since the latest revoke (else an
        older generation's, which the rebalance under way overtook)."""
        self.settled = self.assigned
        self.changes += 1
