"""Posts spaced in each channel and shared by every replica; urgent posts never wait their turn.

Slack takes about one message a second in a channel, with short bursts, and answers 429 beyond.
Three replicas posting one burst into a channel took turns by 429 and retry (about 2,200 429s
in a run of 1,000 tickets), and a critical ticket's post had to win that race. Here every post
in a team channel takes the channel's next slot from the store. A post made by a channel's paced
poster waits for its slot, so the replicas' posts are spaced without 429s and never spend
Slack's burst allowance. Any other post (an urgent ticket's, an agent's) goes at once: it spends
the allowance, and the slot it took pushes the paced posts back one place, so the allowance
fills again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar

from routing.ports import Clock, TicketStore

logger = logging.getLogger(__name__)

# Set in a paced poster's task: its posts wait for their slots.
_PACED: ContextVar[bool] = ContextVar("paced_posting", default=False)
# A slot further away than this is a clock gone wrong, not a queue: post after this long.
LONGEST_WAIT_SECONDS = 60.0


def pace_posts_here() -> None:
    """From now on, posts made in this task (a paced poster) wait for their channel's slot."""
    _PACED.set(True)


class PostPacer:
    """Takes each post's slot in its channel from the store; a paced post waits for it."""

    def __init__(
        self,
        *,
        store: TicketStore,
        clock: Clock,
        spacing_seconds: float,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._store = store
        self._clock = clock
        self._spacing = spacing_seconds
        self._sleep = sleep

    async def take_turn(self, channel: str) -> None:
        """Before a post in channel: take its slot, and wait for it when posting paced."""
        if self._spacing <= 0:
            return
        try:
            slot = await self._store.take_post_slot(
                channel, now=self._clock.now(), spacing=self._spacing
            )
        except Exception:
            # The store away for a moment: post unpaced; a 429 is retried as Slack asks.
            logger.warning("could not take a post slot in %s: posting unpaced", channel)
            return
        if not _PACED.get():
            return
        wait = (slot - self._clock.now()).total_seconds()
        if wait > 0:
            await self._sleep(min(wait, LONGEST_WAIT_SECONDS))
