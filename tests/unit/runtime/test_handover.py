"""When a worker's partitions count as settled (assigned and recovered): the order in which
Faust's rebalance hooks come, stale recoveries included."""

from __future__ import annotations

from types import SimpleNamespace

from faust.types import TP

from streams.config import Settings
from streams.runtime.handover import Handover
from streams.runtime.worker import Worker


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


class _Assignor:
    """Faust's assignor as ``Worker.owned`` reads it: every topic's partitions, counted."""

    def __init__(self, actives: set[TP], standbys: set[TP]) -> None:
        self.actives, self.standbys, self.reads = actives, standbys, 0

    def assigned_actives(self) -> set[TP]:
        self.reads += 1
        return set(self.actives)

    def assigned_standbys(self) -> set[TP]:
        return set(self.standbys)


def _worker(assignor: _Assignor) -> Worker:
    worker = Worker.__new__(Worker)  # the attributes ``owned`` reads, and no Faust app
    worker.settings = Settings()
    worker.handover = Handover()
    worker.app = SimpleNamespace(assignor=assignor, rebalancing=False)  # type: ignore[assignment]
    worker._assigned = {}
    return worker


def test_the_assignment_is_read_once_while_settled_and_afresh_from_a_revoke_on() -> None:
    """A scrape asks for the owned partitions dozens of times: read once per settled
    assignment. From a revoke to the new assignment's recovery it is read at every call:
    the assignor lists the new partitions before the assignment hook comes."""
    topic = Settings().topic
    assignor = _Assignor({TP(topic, 0), TP(topic, 1), TP("other", 2)}, {TP(topic, 3)})
    worker = _worker(assignor)
    handover = worker.handover
    handover.revoked(), handover.assigned_partitions(), handover.recovered()
    for _ in range(5):
        assert worker.owned() == ({0, 1}, {3})
    assert assignor.reads == 1
    worker.owned()[0].add(7)  # a caller's copy
    assert worker.owned() == ({0, 1}, {3})

    handover.revoked()
    assignor.actives = {TP(topic, 1)}  # the join is done: the new assignment is listed
    assert worker.owned() == ({1}, {3})
    assert worker.owned() == ({1}, {3})
    assert assignor.reads == 3  # unsettled: never kept
    handover.assigned_partitions(), handover.recovered()
    worker.app.rebalancing = True  # Faust clears it after the hook
    assert worker.owned() == ({1}, {3})
    worker.app.rebalancing = False
    assert worker.owned() == ({1}, {3})
    assert worker.owned() == ({1}, {3})
    assert assignor.reads == 5
