"""Topic creation: a topic created a moment ago is described again until it has partitions."""

from __future__ import annotations

from streams.runtime.topics import described_counts


class SpreadingMetadata:
    """An admin client whose new topic describes with no partitions at first."""

    def __init__(self, empty_answers: int) -> None:
        self.empty_answers, self.asked = empty_answers, 0

    def describe_topics(self, names: list[str]) -> list[dict]:
        self.asked += 1
        partitions = [] if self.asked <= self.empty_answers else [{"partition": 0}] * 4
        return [{"topic": name, "partitions": partitions} for name in names]


def test_a_new_topic_without_partitions_yet_is_described_again() -> None:
    admin = SpreadingMetadata(empty_answers=2)
    pauses: list[float] = []
    counts = described_counts(admin, ["events"], timeout_s=30, sleep=pauses.append)  # type: ignore[arg-type]
    assert counts == {"events": 4}
    assert admin.asked == 3 and len(pauses) == 2


def test_a_topic_still_empty_at_the_deadline_is_reported_as_it_is() -> None:
    admin = SpreadingMetadata(empty_answers=10**9)
    counts = described_counts(admin, ["events"], timeout_s=0, sleep=lambda s: None)  # type: ignore[arg-type]
    assert counts == {"events": 0}
