"""Failover: a worker killed for good has its partitions taken over by the survivor within
the session timeout plus a rebalance, and a worker killed and restarted on its data dir
rejoins as the member the broker still counts (the id its data dir remembers), so it waits
for no session to expire; the figures equal the oracle afterwards. The bound is functional
(a dead member leaves when its session expires, not after Faust's default minute); the
times seen are in docs/reliability.md."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from streams.runtime.datadir import RememberedMember
from tests.conftest import wait_for
from tests.integration.test_kpis import replay_into_new_topics, simulated, wait_equal

pytestmark = pytest.mark.integration
SESSION_S = 10.0  # the default session_timeout_seconds
BOUND_S = SESSION_S + 15  # the session expires, then one rebalance and the tables' recovery


def active(worker) -> float:
    try:
        return worker.metrics().get(("ticketpulse_partitions_assigned", (("role", "active"),)), 0)
    except OSError:
        return 0.0


def test_a_survivor_takes_over_and_a_restarted_worker_rejoins(
    kafka, names, start_worker, tmp_path: Path
) -> None:
    log = tmp_path / "failover.jsonl"
    _, oracle = simulated(log, seed=31, rate=3, events=8000)
    replay_into_new_topics(kafka, names, log)
    a_data = tmp_path / "a-store"
    a = start_worker("--clock", "event", data_dir=a_data)
    b = start_worker("--clock", "event", wait=False)
    wait_for(lambda: active(a) and active(b) and active(a) + active(b) == 4, 120, "a balance")
    wait_equal(oracle, a, b)

    b.stop(signal.SIGKILL)
    killed = time.monotonic()
    wait_for(lambda: active(a) == 4, BOUND_S, "the survivor to own every partition", a)
    takeover = time.monotonic() - killed
    wait_equal(oracle, a)

    member_before = RememberedMember.of(a_data, names["app_id"]).recall()
    a.stop(signal.SIGKILL)  # and restarted at once on its data dir, as systemd or k8s would
    restarted = time.monotonic()
    again = start_worker("--clock", "event", data_dir=a_data, wait=False)
    wait_for(lambda: active(again) == 4, BOUND_S, "the restarted worker to own partitions", again)
    rejoin = time.monotonic() - restarted
    assert member_before and RememberedMember.of(a_data, names["app_id"]).recall() == member_before
    wait_equal(oracle, again)
    assert takeover <= BOUND_S and rejoin <= BOUND_S, (takeover, rejoin)
    print(f"failover: survivor took over in {takeover:.1f} s, restart ready in {rejoin:.1f} s")
