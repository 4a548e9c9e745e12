"""The SASL-failure spy sees the client's refusal even when the worker's repeat filter
holds the line back as a repeat of the same message template."""

from __future__ import annotations

import logging

from streams.runtime import quiet_logs
from streams.runtime.security import AuthFailures


def test_the_spy_sees_a_refusal_the_repeat_filter_holds_back() -> None:
    logger = logging.getLogger("kafka.net.transport")
    repeat = quiet_logs.RepeatFilter()
    logger.addFilter(repeat)
    try:
        logger.error("%s: Abort (%s)", "conn", "KafkaConnectionError: socket disconnected")
        with AuthFailures() as failures:
            logger.error("%s: Abort (%s)", "conn", "[Error 58] SaslAuthenticationFailedError")
        assert failures.seen
        assert failures not in logger.filters  # removed again
    finally:
        logger.removeFilter(repeat)
