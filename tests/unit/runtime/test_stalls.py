"""The garbage collector's pauses are timed, and a slow one is logged."""

from __future__ import annotations

import gc
import logging
import re

from streams.runtime.stalls import GcPauses


def test_a_collection_is_timed_and_a_slow_one_logged(caplog) -> None:
    pauses = GcPauses(slow_s=0.0).install()  # every collection counts as slow here
    try:
        garbage = [[] for _ in range(50_000)]
        for item in garbage:
            item.append(item)  # cycles: only the collector frees them
        del garbage, item
        with caplog.at_level(logging.WARNING, logger="streams.runtime.stalls"):
            gc.collect()
    finally:
        gc.callbacks.remove(pauses)
    assert pauses.longest_s > 0 and pauses.total_s >= pauses.longest_s
    assert "garbage collector held the worker" in caplog.text
    freed = re.search(r"generation 2, (\d+) objects freed", caplog.text)
    assert freed is not None and int(freed.group(1)) >= 50_000
    assert pauses.stats()["gc_longest_pause_s"] == round(pauses.longest_s, 3)
