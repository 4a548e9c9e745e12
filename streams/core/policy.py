"""Targets and definitions that turn events into figures: per queue, per channel.

Kept in the core (plain data) so facts stay a pure function of events + policy.
``streams.config`` builds a Policy from the settings file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

from streams.core.calendar import Calendar

ServiceLevelPreset = Literal["answered", "answered_abandoned", "answered_abandoned_minus_short"]
SERVICE_LEVEL_PRESETS: tuple[str, ...] = (
    "answered", "answered_abandoned", "answered_abandoned_minus_short",
)  # fmt: skip

# First-response targets when nothing is configured: phone 20 s, chat 60 s, email 1 h.
DEFAULT_FIRST_RESPONSE_TARGETS: Mapping[str, float] = {
    "phone": 20.0, "chat": 60.0, "messaging": 300.0, "web": 3600.0,
    "email": 3600.0, "social": 3600.0, "other": 3600.0,
}  # fmt: skip
# Distribution bounds in seconds; every configured target is added, so le=<target> exists.
BASE_BOUNDS: tuple[float, ...] = (
    5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 28800, 86400, 172800,
)  # fmt: skip


def service_level_denominator(
    preset: ServiceLevelPreset, answered: int, abandoned: int, short_abandoned: int
) -> int:
    """Outcomes counted against the target: the usual definitions, named by preset."""
    if preset == "answered":
        return answered
    if preset == "answered_abandoned":
        return answered + abandoned
    return answered + abandoned - short_abandoned


@dataclass(frozen=True)
class QueuePolicy:
    """The figures' definitions for one queue and channel."""

    first_response_target_s: float
    resolution_target_s: float = 48 * 3600.0
    short_abandon_s: float = 5.0
    service_level: ServiceLevelPreset = "answered_abandoned"
    service_level_objective: float = 0.8  # the share within target the queue aims for
    calendar: Calendar | None = None  # business hours: the target clocks stop outside them

    def elapsed(self, start: float, end: float) -> float:
        """Seconds from ``start`` to ``end`` as the targets count them: business seconds
        with a calendar, real seconds without one."""
        if self.calendar is None:
            return end - start
        return self.calendar.business_seconds(start, end)


@dataclass(frozen=True)
class QueueOverride:
    """What a settings file may set for one queue; unset fields fall back to defaults."""

    first_response_target_s: Mapping[str, float] = field(default_factory=dict)  # by channel
    resolution_target_s: float | None = None
    short_abandon_s: float | None = None
    service_level: ServiceLevelPreset | None = None
    service_level_objective: float | None = None
    calendar: str | None = None  # a calendar's name, for every channel of the queue
    channel_calendars: Mapping[str, str] = field(default_factory=dict)  # by channel


@dataclass(frozen=True)
class Policy:
    first_response_targets: Mapping[str, float] = field(
        default_factory=lambda: dict(DEFAULT_FIRST_RESPONSE_TARGETS)
    )
    resolution_target_s: float = 48 * 3600.0
    short_abandon_s: float = 5.0
    service_level: ServiceLevelPreset = "answered_abandoned"
    service_level_objective: float = 0.8
    queues: Mapping[str, QueueOverride] = field(default_factory=dict)
    recontact_days: tuple[float, ...] = (1, 2, 3)
    fcr_days: float = 3
    complaint_tag: str = "complaint"
    per_agent: bool = False  # also count FRT, AHT and ACR per agent (opt-in: cardinality)
    calendars: Mapping[str, Calendar] = field(default_factory=dict)
    _resolved: dict[tuple[str | None, str], QueuePolicy] = field(
        default_factory=dict, compare=False, repr=False
    )

    def for_queue(self, queue: str, channel: str) -> QueuePolicy:
        """The rules of one queue and channel (memoised: called for every event).

        Queues without an override share their channel's rules under one key, so the memo
        holds the configured queues and the channels (a schema enum) however many queue
        names a producer sends: a flood of names costs no memory here.
        """
        key = (queue if queue in self.queues else None, channel)
        rules = self._resolved.get(key)
        if rules is None:
            rules = self._resolved[key] = self._rules(queue, channel)
        return rules

    def _rules(self, queue: str, channel: str) -> QueuePolicy:
        o = self.queues.get(queue, QueueOverride())
        frt = o.first_response_target_s.get(
            channel, self.first_response_targets.get(channel, 3600.0)
        )
        return QueuePolicy(
            first_response_target_s=frt,
            resolution_target_s=o.resolution_target_s or self.resolution_target_s,
            short_abandon_s=(
                o.short_abandon_s if o.short_abandon_s is not None else self.short_abandon_s
            ),
            service_level=o.service_level or self.service_level,
            service_level_objective=o.service_level_objective or self.service_level_objective,
            calendar=self.calendar_of(queue, channel),
        )

    def calendar_of(self, queue: str, channel: str) -> Calendar | None:
        """The queue x channel's calendar, else the queue's, else none (calendar time)."""
        o = self.queues.get(queue)
        if o is None:
            return None
        name = o.channel_calendars.get(channel, o.calendar)
        return self.calendars[name] if name else None

    def bounds(self) -> tuple[float, ...]:
        """Histogram bounds: the base set plus every configured target (computed once)."""
        return self._bounds

    @cached_property
    def _bounds(self) -> tuple[float, ...]:
        extra = {*self.first_response_targets.values(), self.resolution_target_s}
        for o in self.queues.values():
            extra.update(o.first_response_target_s.values())
            if o.resolution_target_s:
                extra.add(o.resolution_target_s)
        return tuple(sorted({*BASE_BOUNDS, *extra}))
