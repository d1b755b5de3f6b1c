"""A bounded retry for the writes that must not be lost (a new ticket): then StoreUnavailableError.

A write lock held by another process past the busy timeout, a full disk or a dropped database
connection usually passes; the retry waits out a short one, and beyond it the caller is told,
so the message is refused rather than acknowledged and dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from routing.errors import StoreUnavailableError

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Waits between the attempts of a ticket's insert (each attempt also waits out the busy timeout).
WRITE_RETRY_DELAYS = (0.2, 1.0)


async def with_retries(
    attempt: Callable[[], Awaitable[T]],
    *,
    transient: tuple[type[BaseException], ...],
    what: str,
    delays: Sequence[float] = WRITE_RETRY_DELAYS,
    after_failure: Callable[[], Awaitable[None]] | None = None,
) -> T:
    """attempt(), tried again after each delay on a transient error; then StoreUnavailableError."""
    for number, delay in enumerate((*delays, None), start=1):
        try:
            return await attempt()
        except transient as error:
            if after_failure is not None:
                await after_failure()
            if delay is None:
                raise StoreUnavailableError(what, error) from error
            logger.warning("%s failed (attempt %d): %s; trying again", what, number, error)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover  # the loop returns or raises
