"""The bench's CPU split: the consumer measured alone on the last CPU, everything else
(the broker, the load, the bench's own threads) on the others."""

from __future__ import annotations

import os
import subprocess
import sys

from streams.tools import pinning


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
