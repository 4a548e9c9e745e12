"""What the processors need to know of the settings: plain values, no settings library.

``streams.config.Settings.kpi_settings()`` builds it from the user's settings.
"""

from __future__ import annotations

import math
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any

from streams.core.facts import DAY
from streams.core.policy import Policy
from streams.processing.bucket_store import BucketStore


@dataclass(frozen=True)
class KpiSettings:
    policy: Policy = field(default_factory=Policy)
    bucket_s: int = 60
    lateness_s: float = 600.0
    window_retention_s: float = DAY  # the longest window ("24h", "today")
    closed_keep_s: float = DAY  # how long a closed ticket waits for late events
    pack_closed_s: float = 600.0  # a closed ticket this quiet is shelved or packed (kpi.py)
    # never expire a bucket: an offline report over days (``report --interval``) keeps every
    # interval's; tickets and customers still expire as in the worker, so facts stay its
    keep_buckets: bool = False

    @property
    def bucket_retention_s(self) -> float:
        return self.window_retention_s + self.lateness_s + self.bucket_s

    @property
    def recontact_s(self) -> float:
        return max((*self.policy.recontact_days, self.policy.fcr_days)) * DAY

    @property
    def ticket_retention_s(self) -> float:
        """After its last event a closed ticket is dropped: an event for it later would start a
        ticket that was never opened, and count for nothing."""
        keep = max(self.recontact_s, self.window_retention_s, self.closed_keep_s)
        return keep + self.lateness_s

    def bucket_expiry(self, retention_s: float) -> float:
        """How far behind the watermark a bucket kept ``retention_s`` expires: never when
        ``keep_buckets`` (both sides, tickets' and customers', ask here)."""
        return math.inf if self.keep_buckets else retention_s

    def bucket_store(self, buckets: MutableMapping[str, Any]) -> BucketStore:
        expiry = self.bucket_expiry(self.bucket_retention_s)
        return BucketStore(buckets, self.bucket_s, self.policy.bounds(), expiry)
