"""Whether a worker's partitions have settled: assigned, and their tables recovered.

Until then a worker exports no figure of them (``Worker.served``): a partition is assigned
before its tables are recovered, and its figures would be missing or read from a partial
copy, too low rather than late. Faust's own flag (``app.rebalancing``) is not enough: the
end of a recovery clears it, even when the recovery belongs to the generation before a
rebalance that has begun meanwhile (revoked, still joining). Faust only looks at the
generation after ``on_rebalance_complete``, and the consumer's generation id changes only
once the join is done. So the flag read False from then until the new generation's
recovery began, while the assignor already listed the new partitions. Here a recovery's
end counts only after the latest revoke: if its assignment came first, or if the
consumer's generation has moved on since the revoke.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Handover:
    """Fed by the worker's rebalance hooks (``Worker._rebalance_hooks``)."""

    settled: bool = False  # assigned and recovered, no revoke since
    assigned: bool = False  # an assignment came since the latest revoke
    revoked_in: int | None = None  # the consumer's generation at the latest revoke
    changes: int = 0  # moves on at every hook: a rendering spanning one is begun again

    def revoked(self, generation: int) -> None:
        self.settled = self.assigned = False
        self.revoked_in = generation
        self.changes += 1

    def assigned_partitions(self) -> None:
        self.assigned = True
        self.changes += 1

    def recovered(self, generation: int) -> None:
        """``generation``: the consumer's, as the recovery ends (a recovery of the
        generation revoked leaves it unchanged: the rebalance is still joining)."""
        if self.assigned or generation != self.revoked_in:
            self.settled = True
        self.changes += 1
