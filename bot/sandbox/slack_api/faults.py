"""Why a call fails or comes late: Slack's per-channel post rate limit, and what a test injects.

Injected faults: the next call of a method rate limited or failed, a channel that refuses every
post, and answers held back (the call carried out or not) until the client has given up.
"""

from __future__ import annotations

import copy
import math
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.sandbox.slack_api.wire import SlackError


class PostRateLimit:
    """Slack's ~1 message/s per channel with short bursts, as a token bucket per channel."""

    def __init__(self, *, rate_per_second: float, burst: int, clock: Callable[[], float]) -> None:
        if rate_per_second <= 0 or burst < 1:
            raise ValueError("post_rate_per_second must be > 0 and post_burst >= 1")
        # A test may change either between calls (math.inf: no limit at all).
        self.rate_per_second = rate_per_second
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, channel: str) -> None:
        """Spend one post's token of channel, or raise Slack's 429 with its Retry-After."""
        if math.isinf(self.rate_per_second):
            return
        now = self._clock()
        tokens, last = self._buckets.get(channel, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate_per_second)
        if tokens < 1.0:
            self._buckets[channel] = (tokens, now)
            wait = (1.0 - tokens) / self.rate_per_second
            retry_after = max(1, math.ceil(wait))
            raise SlackError("ratelimited", status=429, headers={"Retry-After": str(retry_after)})
        self._buckets[channel] = (tokens - 1.0, now)


@dataclass
class Late:
    """Calls of a method whose answer is held back until the client has given up."""

    times: int
    # False: the call is not carried out either (lost on the way); True: Slack did it.
    carried_out: bool
    when: Callable[[dict[str, Any]], bool] | None


class Faults:
    """The failures a test asked for, taken by the calls they apply to, in order."""

    def __init__(self) -> None:
        self._forced: defaultdict[str, deque[SlackError]] = defaultdict(deque)
        # Channels that refuse every post, with the error they answer (fail_posts_in).
        self._refusing: dict[str, str] = {}
        self._late: defaultdict[str, list[Late]] = defaultdict(list)
        # (method, args) of every call whose answer was held back, in order.
        self.held: list[tuple[str, dict[str, Any]]] = []

    def rate_limit_next(self, method: str, retry_after: int = 1) -> None:
        """Answer the next call of method with HTTP 429 and this Retry-After."""
        self._forced[method].append(
            SlackError("ratelimited", status=429, headers={"Retry-After": str(retry_after)})
        )

    def fail_next(self, method: str, error: str = "internal_error", status: int = 200) -> None:
        """Answer the next call of method with ok: false and this error (HTTP 200 or 5xx)."""
        self._forced[method].append(SlackError(error, status=status))

    def answer_late(
        self,
        method: str,
        *,
        times: int = 1,
        when: Callable[[dict[str, Any]], bool] | None = None,
    ) -> None:
        """Carry out the next calls of method (those when(args) accepts) but answer none of them.

        Slack took the message; its answer comes after the client's timeout (it is held until
        the stand-in closes), so the client raises a timeout for a call that succeeded.
        """
        self._late[method].append(Late(times=times, carried_out=True, when=when))

    def never_answer(
        self,
        method: str,
        *,
        times: int = 1,
        when: Callable[[dict[str, Any]], bool] | None = None,
    ) -> None:
        """Hold the next calls of method (those when(args) accepts) without carrying them out."""
        self._late[method].append(Late(times=times, carried_out=False, when=when))

    def fail_posts_in(self, channel: str, error: str = "channel_not_found") -> None:
        """Refuse every chat.postMessage in channel with this error until told otherwise.

        As Slack does for a channel that was deleted ("channel_not_found") or that the bot was
        never invited to ("not_in_channel"): no retry helps.
        """
        self._refusing[channel] = error

    def take_held(self, method: str, args: dict[str, Any]) -> Late | None:
        """The held answer this call is, if one applies to it (it is then used up and listed)."""
        for late in self._late.get(method, []):
            if late.times > 0 and (late.when is None or late.when(args)):
                late.times -= 1
                self.held.append((method, copy.deepcopy(args)))
                return late
        return None

    def take_forced(self, method: str) -> SlackError | None:
        """The failure the next call of method must answer with, if one was asked for."""
        forced = self._forced.get(method)
        return forced.popleft() if forced else None

    def refusal(self, channel: str) -> str | None:
        """The error every post in channel is refused with, if fail_posts_in set one."""
        return self._refusing.get(channel)
