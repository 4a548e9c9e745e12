"""The bench's CPU split: the consumer being measured on a core of its own, the broker and
the load (the replay's and the freshness producer, the pollers, the scrapers, the bench
itself) on the others, as the team's benchmark design asks.

Unpinned, each row's consumer shared both cores of the bench's machine with the broker and
the load, by more or less from run to run (the product's rate swung by a quarter between
the runs of one ``make bench``). Pinned, each row is one core's worth, helper threads
included: RocksDB's flushes and compactions for the worker and the peer, librdkafka's
fetch threads for the Quix Streams peer.

Linux only (``os.sched_setaffinity``, which sets the calling thread's CPUs; threads and
processes started later inherit them). With one CPU, or off Linux, nothing is pinned and
the doc says so. ``split_for_bench`` pins the bench's main thread to the other CPUs before
it starts the broker or any thread; a consumer measured moves itself in its
``preexec_fn`` (``measured_preexec``), and a row measured in the bench's own process runs
``measuring()``.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass

from streams.runtime.processes import die_with_parent


@dataclass(frozen=True)
class CpuSplit:
    measured: frozenset[int]  # the consumer being measured
    rest: frozenset[int]  # broker, load, the bench

    def describe(self) -> str:
        return (
            f"the consumer measured pinned to CPU {_cpus(self.measured)}; the broker, the load"
            f" and the bench itself to CPU {_cpus(self.rest)}"
        )


_split: CpuSplit | None = None


def split_for_bench() -> CpuSplit | None:
    """Pin this process (and so the broker and load it starts) to every CPU but the last,
    kept for the consumer measured: the split, or None when there is no second CPU."""
    global _split
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return None
    if len(cpus) < 2:
        return None
    split = CpuSplit(frozenset(cpus[-1:]), frozenset(cpus[:-1]))
    try:
        os.sched_setaffinity(0, split.rest)
    except OSError as exc:  # a sandbox that refuses it: measured unpinned, and said so
        print(f"bench: CPUs not pinned ({exc}): every process shares every CPU", file=sys.stderr)
        return None
    _split = split
    return split


def measured_preexec() -> None:
    """``preexec_fn`` of a consumer measured: on the measured CPU (when split), and stopped
    with the bench (``die_with_parent``)."""
    die_with_parent()
    if _split is not None:
        os.sched_setaffinity(0, _split.measured)


@contextlib.contextmanager
def measuring() -> Iterator[None]:
    """Run a row measured in the bench's main thread (the core alone, the raw client) on
    the measured CPU, then move back."""
    if _split is None:
        yield
        return
    os.sched_setaffinity(0, _split.measured)
    try:
        yield
    finally:
        os.sched_setaffinity(0, _split.rest)


def _cpus(cpus: frozenset[int]) -> str:
    return ", ".join(str(c) for c in sorted(cpus))
