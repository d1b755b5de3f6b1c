"""A bounded retry for the writes that must not be lost (a new ticket): then StoreUnavailableError.

A write lock held by another process past the busy timeout, a full disk or a dropped database
connection usually passes; the retry waits out a short one, and beyond it the caller is told,
so the message is refused rather than acknowledged and dropped. The writes made before Slack's
ack (a new ticket, a thread reply, an edit, a deletion) end, all attempts and waits included,
within ACK_WRITE_SECONDS: Slack gives up on an ack after 3 s and delivers again by itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from routing.errors import StoreUnavailableError

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Waits between the attempts of a ticket's insert (each attempt also waits out the busy timeout).
WRITE_RETRY_DELAYS = (0.2, 1.0)
# A write made before Slack's ack is stored or refused within this many seconds, every attempt,
# lock wait and pause included; the answer (an ack, or HTTP 503 / no ack) still fits in the 3 s
# Slack waits, with room for the request's other work.
ACK_WRITE_SECONDS = 2.0


async def with_retries(
    attempt: Callable[[], Awaitable[T]],
    *,
    transient: tuple[type[BaseException], ...],
    what: str,
    delays: Sequence[float] = WRITE_RETRY_DELAYS,
    after_failure: Callable[[], Awaitable[None]] | None = None,
    deadline: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """attempt(), tried again after each delay on a transient error; then StoreUnavailableError.

    With a deadline (a time on clock), no pause runs past it: the last attempt is the one
    after which the next pause would.
    """
    for number, delay in enumerate((*delays, None), start=1):
        try:
            return await attempt()
        except transient as error:
            if after_failure is not None:
                await after_failure()
            if delay is not None and deadline is not None and clock() + delay >= deadline:
                delay = None  # no time left for another attempt within the deadline
            if delay is None:
                raise StoreUnavailableError(what, error) from error
            logger.warning("%s failed (attempt %d): %s; trying again", what, number, error)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover  # the loop returns or raises
