"""Time that a test controls: a clock it moves by hand, and waiting for a condition.

A test must pass however slow the machine is. So no test asserts that something happens within
a time: it waits for the condition itself, and the only bound is a hang guard far beyond any
machine's slowness, which turns a hang into a failure naming what never happened.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from routing.records import utc_now

# Only a hang guard: a condition that is not met after this long never will be.
HANG_GUARD_SECONDS = 300.0
_POLL_SECONDS = 0.02


class ManualClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        """The current reading."""
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += seconds


@dataclass(frozen=True)
class DeskClock:
    """A desk's Clock (routing.ports) with the readings a test picks; the machine's otherwise."""

    wall: Callable[[], datetime] = utc_now
    steady: Callable[[], float] = time.monotonic

    def now(self) -> datetime:
        """The wall time the test picked."""
        return self.wall()

    def monotonic(self) -> float:
        """The monotonic reading the test picked (a ManualClock, say)."""
        return self.steady()


async def until(
    check: Callable[[], bool] | Callable[[], Awaitable[bool]],
    *,
    what: str,
    hang_guard: float = HANG_GUARD_SECONDS,
) -> None:
    """Return as soon as check() is true; fail naming `what` only if it never becomes true.

    The poll sleeps 20 ms on the event loop, and the loop runs timers in the order they are
    due: a timer of more than 20 ms started after the condition became true (a client's
    Retry-After wait) fires after this returns, however late the loop runs on a loaded machine.
    """
    deadline = time.monotonic() + hang_guard
    while True:
        outcome = check()
        if inspect.isawaitable(outcome):
            outcome = await outcome
        if outcome:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"hang guard: after {hang_guard:.0f} s, still not {what}")
        await asyncio.sleep(_POLL_SECONDS)
