"""Ops alerts: what failed and what to fix, said in the ops channel at most once per interval."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from routing.config import SlackConfig, TriageConfig
from routing.desk.limits import OPS_ALERT_INTERVAL_SECONDS
from routing.desk.types import Note

logger = logging.getLogger(__name__)


class AlertOutbox(Protocol):
    """The part of the Outbox an ops alert goes through."""

    async def post_alert(self, channel: str, note: Note) -> None:
        """Tell the operator, in the ops channel, what failed and what to fix."""
        ...


class OpsAlerts:
    """Tells the operator (ops channel, else the fallback team's), never twice in an interval.

    Alerts and other background work (read-backs) run as tasks of their own: `tasks` are
    cancelled when the desk stops.
    """

    def __init__(
        self,
        *,
        config: TriageConfig,
        slack: SlackConfig,
        outbox: AlertOutbox,
        clock: Callable[[], float],
    ) -> None:
        self._config = config
        self._slack = slack
        self._outbox = outbox
        self._clock = clock
        # When each ops alert was last said, and the tasks saying them or reading back.
        self._alerted: dict[str, float] = {}
        self._background: set[asyncio.Task[None]] = set()

    @property
    def tasks(self) -> list[asyncio.Task[None]]:
        """The background tasks running now."""
        return list(self._background)

    def alert(self, key: str, text: str) -> None:
        """Tell the operator in the ops channel, at most once per OPS_ALERT_INTERVAL_SECONDS."""
        now = self._clock()
        last = self._alerted.get(key)
        if last is not None and now - last < OPS_ALERT_INTERVAL_SECONDS:
            return
        self._alerted[key] = now
        fallback = self._slack.teams.get(self._config.fallback_team)
        channel = self._slack.ops_channel or (fallback.channel if fallback else None)
        if channel is None:
            logger.error("ops alert (no ops channel to say it in): %s", text)
            return

        async def say() -> None:
            try:
                await self._outbox.post_alert(channel, Note(text))
            except Exception:
                logger.exception("could not post the ops alert in %s", channel)

        self.in_background(say())

    def in_background(self, work: Coroutine[Any, Any, None]) -> None:
        """Run work as a task of its own, cancelled when the desk stops."""
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
