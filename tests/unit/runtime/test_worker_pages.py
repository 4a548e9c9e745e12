"""The worker's /selfcheck and /ready answers, as the worker wires them: a worker whose
batch failed (it is stopping, its table copies dropped) or whose partitions are changing
hands answers 503, never a check of partial tables."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from faust.types import TP

from streams.config import Settings
from streams.metrics.kpi_exporter import SelfChecks
from streams.runtime.commit import ApplyFailedError, ProcessedOffsets
from streams.runtime.handover import Handover
from streams.runtime.state import PipelineState
from streams.runtime.worker import Worker
from tests.unit.loaded import kpi_collector, loaded_pipeline


class _View:
    def json(self, body: dict[str, Any], status: int = 200) -> tuple[int, dict[str, Any]]:
        return status, body


def _worker() -> Worker:
    """A worker with the attributes its pages read, over a loaded pipeline, and no Faust."""
    worker = Worker.__new__(Worker)
    worker.state = PipelineState()
    worker.handover = Handover()
    worker.handover.revoked(), worker.handover.assigned_partitions(), worker.handover.recovered()
    worker.app = SimpleNamespace(  # type: ignore[assignment]
        rebalancing=False,
        in_recovery=False,
        should_stop=False,
        consumer=SimpleNamespace(assignment=lambda: {0}),
    )
    worker.ingest_commit = SimpleNamespace(failed=None)  # type: ignore[assignment]
    worker.customer_commit = SimpleNamespace(failed=None)  # type: ignore[assignment]
    worker.self_checks = SelfChecks(spacing_s=0.0)
    worker.kpis = kpi_collector(loaded_pipeline(600, seed=3))
    return worker


async def test_selfcheck_answers_503_once_a_batch_failed() -> None:
    worker = _worker()
    status, body = await worker.selfcheck_page(_View(), None)  # type: ignore[arg-type]
    assert status == 200 and body["equal"] is True and body["window_samples"] > 100
    worker.customer_commit.failed = ApplyFailedError("a processor raised")
    status, body = await worker.selfcheck_page(_View(), None)  # type: ignore[arg-type]
    assert (status, body) == (503, {"equal": None, "busy": True})


async def test_selfcheck_and_ready_answer_503_while_the_partitions_change_hands() -> None:
    worker = _worker()
    worker.state.broker_up = True
    assert (await worker.ready_page(_View(), None))[0] == 200  # type: ignore[arg-type,index]
    worker.handover.revoked()
    status, body = await worker.selfcheck_page(_View(), None)  # type: ignore[arg-type]
    assert (status, body) == (503, {"equal": None, "busy": True})
    assert await worker.ready_page(_View(), None) == (503, {"ready": False})  # type: ignore[arg-type]


async def test_a_stopping_worker_exports_no_figure_and_is_not_ready() -> None:
    """Faust closes a stopping worker's tables before its web server: scrapes in between
    found no figure, yet the partitions still counted as active, and the wallboard took
    that for a complete reading (the page test's blank board, caught with the workers'
    logs). From the moment the app's stop begins, none is served."""
    worker = _worker()
    worker.state.broker_up = True
    worker.settings = Settings()
    worker._assigned = {}
    worker.app.assignor = SimpleNamespace(
        assigned_actives=lambda: {TP(worker.settings.topic, 0)}, assigned_standbys=set
    )
    assert worker.served() == {0}
    worker.app.should_stop = True  # mode sets it as the app's stop begins
    assert worker.served() == set()
    assert worker.ownership() == (True, worker.handover.changes)
    assert await worker.ready_page(_View(), None) == (503, {"ready": False})  # type: ignore[arg-type]
    status, _ = await worker.selfcheck_page(_View(), None)  # type: ignore[arg-type]
    assert status == 503


def test_the_worker_serves_its_documented_pages_only(tmp_path) -> None:
    """Faust's own /table/{name}/{key}/ pages served any stored row (a ticket with its
    customer_id) to anyone who could reach the port, /router/ pages beside them."""
    worker = Worker(Settings(store="memory", data_dir=str(tmp_path)))
    worker.app.web.init_server()
    routes = {r.resource.canonical for r in worker.app.web.web_app.router.routes() if r.resource}
    assert routes == {"/", "/healthz", "/metrics", "/offsets", "/ready", "/selfcheck", "/stats"}


async def test_offsets_answers_the_input_topics_two_marks_alone() -> None:
    """``/offsets`` is ``/stats``' two maps of input offsets and nothing else (the bench's
    freshness polls it every 20 ms): the contacts topic's batches are not in it."""
    worker = _worker()
    worker.settings = Settings()
    worker.processed = ProcessedOffsets()
    topic, contacts = worker.settings.topic, worker.settings.contacts_topic_name

    def records(name: str, partition: int, *offsets: int) -> list[SimpleNamespace]:
        return [SimpleNamespace(topic=name, partition=partition, offset=o) for o in offsets]

    worker.processed.applied(records(topic, 0, 5, 6, 7))  # step 1 over, step 6 not yet
    worker.processed.done(records(topic, 1, 40, 41))
    worker.processed.applied(records(topic, 1, 40, 41))
    worker.processed.done(records(contacts, 2, 9))
    status, body = await worker.offsets_page(_View(), None)  # type: ignore[arg-type]
    assert status == 200
    assert body == {"next_offsets": {1: 42}, "applied_offsets": {0: 8, 1: 42}}


def test_the_worker_labels_agents_by_the_salt_file_it_is_given(tmp_path) -> None:
    from streams.config import load_settings
    from streams.metrics.kpi_exporter import pseudonyms
    from streams.runtime.worker import _agent_labels

    assert _agent_labels(load_settings()) is None
    salt = tmp_path / "salt"
    salt.write_bytes(b"s3cret\n")  # the trailing line break is not part of the key
    shown = _agent_labels(load_settings(agent_label_salt_file=str(salt)))
    assert shown is not None and shown("A-1") == pseudonyms(b"s3cret")("A-1") != "A-1"
