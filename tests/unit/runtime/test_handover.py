"""When a worker's partitions count as settled (assigned and recovered): the order in which
Faust's rebalance hooks come, stale recoveries included."""

from __future__ import annotations

from streams.runtime.handover import Handover


def test_settled_once_the_assignment_is_recovered_and_no_sooner() -> None:
    handover = Handover()
    assert not handover.settled  # a worker starting has nothing recovered
    handover.revoked(0)  # Faust revokes the empty set before the first join
    handover.assigned_partitions()
    assert not handover.settled
    handover.recovered(1)
    assert handover.settled
    handover.revoked(1)  # the next rebalance begins
    assert not handover.settled


def test_the_end_of_a_recovery_the_next_rebalance_overtook_does_not_settle() -> None:
    """Generation 1's recovery ends after generation 2's rebalance has revoked the partitions
    (still joining: the consumer's generation is 1 still). Faust clears its rebalancing
    flag then; the partitions of generation 2, listed by the assignor once the join is
    done, have no tables yet."""
    handover = Handover()
    handover.revoked(0)
    handover.assigned_partitions()
    handover.revoked(1)  # generation 2's rebalance, during generation 1's recovery
    handover.recovered(1)  # generation 1's recovery ends
    assert not handover.settled
    handover.assigned_partitions()  # generation 2
    assert not handover.settled
    handover.recovered(2)
    assert handover.settled


def test_a_recovery_ending_before_its_assignment_hook_settles() -> None:
    """The assignment hook comes after Faust began the recovery: one that ends first (nothing
    to read) must not leave the worker unsettled, which would withhold its figures until the
    next rebalance."""
    handover = Handover()
    handover.revoked(3)
    handover.recovered(4)  # generation 4's, as the consumer says
    assert handover.settled
    handover.assigned_partitions()
    assert handover.settled


def test_every_hook_moves_the_changes_on() -> None:
    handover = Handover()
    handover.revoked(0)
    handover.assigned_partitions()
    handover.recovered(1)
    assert handover.changes == 3
