"""The garbage collector's pauses are timed, a slow one is logged, and the freeze takes
long-lived rows out of its walks without keeping dropped ones alive."""

from __future__ import annotations

import gc
import logging
import re
import weakref

from streams.runtime.stalls import GcPauses, freeze_long_lived


def test_a_collection_is_timed_and_a_slow_one_logged(caplog) -> None:
    pauses = GcPauses(slow_s=0.0).install()  # every collection counts as slow here
    automatic = gc.isenabled()
    gc.disable()  # the collection below is the only one: an automatic one could free part
    try:  # of the garbage first, or log its own line before it
        garbage = [[] for _ in range(50_000)]
        for item in garbage:
            item.append(item)  # cycles: only the collector frees them
        del garbage, item
        with caplog.at_level(logging.WARNING, logger="streams.runtime.stalls"):
            gc.collect()
    finally:
        if automatic:
            gc.enable()
        gc.callbacks.remove(pauses)
    assert pauses.longest_s > 0 and pauses.total_s >= pauses.longest_s
    assert "garbage collector held the worker" in caplog.text
    freed = re.search(r"generation 2, (\d+) objects freed", caplog.text)
    assert freed is not None and int(freed.group(1)) >= 50_000
    assert pauses.stats()["gc_longest_pause_s"] == round(pauses.longest_s, 3)


class Row:
    """A stand-in for a table row: tracked by the collector, weakly referable."""


def test_frozen_rows_are_skipped_by_collections_and_freed_when_dropped() -> None:
    rows = {f"t{i}": Row() for i in range(1_000)}
    try:
        frozen = freeze_long_lived()
        assert frozen >= len(rows)
        tracked = {id(o) for o in gc.get_objects()}  # every generation a collection walks
        assert id(rows["t1"]) not in tracked and id(rows) not in tracked
        later = Row()  # made after the freeze: collections still walk it
        assert id(later) in {id(o) for o in gc.get_objects()}
        gone = weakref.ref(rows.pop("t1"))
        assert gone() is None  # a dropped frozen row is freed by reference counting at once
    finally:
        gc.unfreeze()
