"""Starting a worker process: topics checked, the Faust worker run until SIGTERM/SIGINT.

The worker itself (agents, commit sequence, pages) is ``streams.runtime.worker.Worker``.
"""

from __future__ import annotations

from streams.config import Settings
from streams.runtime import datadir
from streams.runtime.faust_internals import BoundedStopWorker
from streams.runtime.processes import fix_mmap_threshold, tune_gc
from streams.runtime.topics import ensure_topics
from streams.runtime.worker import TABLES, Worker


class TopicMismatchError(RuntimeError):
    """The input topic exists with another partition count than configured."""


def prepare_topics(settings: Settings) -> None:
    """Create missing topics before joining the group (a consumer subscribed to a missing
    topic gets no partitions until its next metadata refresh, minutes later)."""
    counts = ensure_topics(settings, TABLES)
    for topic in (settings.topic, settings.contacts_topic_name):
        if counts.get(topic) != settings.partitions:
            msg = (
                f"topic {topic} has {counts.get(topic)} partitions but "
                f"partitions={settings.partitions} is configured; set --partitions to match"
            )
            raise TopicMismatchError(msg)


def run_worker(settings: Settings) -> None:
    """Run until SIGTERM/SIGINT; faust's Worker stops agents and commits on the way out."""
    lock = datadir.claim(settings.data_dir)  # held until the process exits
    datadir.check_port_free(settings.metrics_host, settings.metrics_port, "metrics")
    prepare_topics(settings)
    worker = Worker(settings)
    worker.data_dir_lock = lock
    runner = BoundedStopWorker(
        worker.app,
        loglevel=settings.log_level.upper(),
        quiet=True,
        redirect_stdouts=False,
    )
    # faust's terminal spinner sets the root logger to DEBUG at levels >= warning, so every
    # debug call of faust and aiokafka (several per record sent) would build a log record
    runner.spinner = None
    tune_gc()
    fix_mmap_threshold(settings.malloc_mmap_threshold_kib)
    runner.execute_from_commandline()
