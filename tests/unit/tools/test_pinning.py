"""The bench's CPU split: the consumer measured alone on the last CPU, everything else
(the broker, the load, the bench's own threads) on the others."""

from __future__ import annotations

import os
import subprocess
import sys

from streams.tools import pinning
from streams.tools.bench import PINNING_NOTE, render
from tests.unit.tools.test_bench_ranges import a_run


def test_the_consumer_measured_gets_a_cpu_of_its_own_and_the_rest_the_others() -> None:
    before = os.sched_getaffinity(0)
    try:
        split = pinning.split_for_bench()
        if len(before) < 2:
            assert split is None  # nothing to split: nothing pinned
            return
        assert split is not None
        assert split.measured == {max(before)}
        assert split.rest == before - {max(before)}
        assert os.sched_getaffinity(0) == split.rest  # the bench, and what it starts
        child = subprocess.run(
            [sys.executable, "-c", "import os; print(sorted(os.sched_getaffinity(0)))"],
            preexec_fn=pinning.measured_preexec,
            capture_output=True,
            text=True,
            check=True,
        )
        assert child.stdout.strip() == str(sorted(split.measured))
        with pinning.measuring():  # a row measured in the bench's own thread
            assert os.sched_getaffinity(0) == split.measured
        assert os.sched_getaffinity(0) == split.rest
    finally:
        os.sched_setaffinity(0, before)
        pinning._split = None


def test_the_doc_says_how_the_cpus_were_split() -> None:
    split = pinning.CpuSplit(frozenset({1}), frozenset({0}))
    pinned = render(*a_run(5_000, 30.0), split=split)
    assert "the consumer measured pinned to CPU 1; the broker, the load" in pinned
    assert PINNING_NOTE in pinned
    unpinned = render(*a_run(5_000, 30.0))
    assert "nothing pinned, every process shares every CPU" in unpinned
    assert PINNING_NOTE not in unpinned


def test_a_machine_that_refuses_pinning_is_measured_unpinned(monkeypatch, capsys) -> None:
    def refuse(pid: int, cpus: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setattr(os, "sched_setaffinity", refuse)
    assert pinning.split_for_bench() is None
    assert pinning._split is None  # so the measured processes are not moved either
    assert "CPUs not pinned" in capsys.readouterr().err
