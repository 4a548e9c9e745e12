"""When a worker's partitions count as settled (assigned and recovered): the order in which
Faust's rebalance hooks come, stale recoveries included."""

from __future__ import annotations

from streams.runtime.handover import Handover


def test_settled_once_the_assignment_is_recovered_and_no_sooner() -> None:
    handover = Handover()
    assert not handover.settled  # a worker starting has nothing recovered
    handover.revoked()  # Faust revokes the empty set before the first join
    handover.assigned_partitions()
    assert not handover.settled
    handover.recovered()
    assert handover.settled
    handover.revoked()  # the next rebalance begins
    assert not handover.settled


def test_the_end_of_a_recovery_the_next_rebalance_overtook_does_not_settle() -> None:
    """Generation 1's recovery ends after generation 2's rebalance has revoked the partitions
    (still joining). Faust clears its rebalancing flag then; the partitions of generation 2,
    listed by the assignor once the join is done, have no tables yet."""
    handover = Handover()
    handover.revoked()
    handover.assigned_partitions()
    handover.revoked()  # generation 2's rebalance, during generation 1's recovery
    handover.recovered()  # generation 1's recovery ends
    assert not handover.settled
    handover.assigned_partitions()  # generation 2
    assert not handover.settled
    handover.recovered()
    assert handover.settled


def test_every_hook_moves_the_changes_on() -> None:
    handover = Handover()
    handover.revoked()
    handover.assigned_partitions()
    handover.recovered()
    assert handover.changes == 3
