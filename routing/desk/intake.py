"""Intake: customers' messages become tickets once, stored first; what was missed is read back."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from routing.config import SlackConfig
from routing.desk.limits import CATCH_UP_OVERLAP_SECONDS, CATCH_UP_WINDOW_SECONDS
from routing.desk.roles import AgentLookup
from routing.desk.types import CustomerMessage
from routing.errors import StoreUnavailableError
from routing.ports import TicketStore

logger = logging.getLogger(__name__)


class HistoryReader(Protocol):
    """The part of the Outbox that reads an intake channel's history."""

    async def recent_messages(self, channel: str, oldest: str) -> list[CustomerMessage]:
        """Customers' messages in a channel after oldest (a ts), oldest first."""
        ...


class ThreadReplies(Protocol):
    """Where a reply in a ticket's thread goes (routing.desk.follow_ups.FollowUps is one)."""

    async def thread_reply(self, message: CustomerMessage, thread_ts: str) -> None:
        """A reply in a ticket's thread."""
        ...


class TicketQueue(Protocol):
    """Where a new ticket is queued to be decided (routing.desk.work_queue.WorkQueue is one)."""

    def put(self, ticket_id: int, *, text: str | None = None) -> None:
        """Queue a ticket to decide, once; its text lets an urgent-sounding one go first."""
        ...


class OpsChannel(Protocol):
    """The operator's alerts and the desk's background work (routing.desk.ops.OpsAlerts)."""

    def alert(self, key: str, text: str) -> None:
        """Tell the operator, at most once per interval for one key."""
        ...

    def in_background(self, work: Coroutine[Any, Any, None]) -> None:
        """Run work as a task of its own, cancelled when the desk stops."""
        ...


class Intake:
    """Stores a top-level message as a ticket and queues it; a thread reply goes to follow-ups.

    A message the store refuses is not acknowledged (Slack redelivers it) and its channel is
    read back once the store takes a ticket again; catch_up reads back what came while away.
    """

    def __init__(
        self,
        *,
        slack: SlackConfig,
        store: TicketStore,
        history: HistoryReader,
        agents: AgentLookup,
        follow_ups: ThreadReplies,
        queue: TicketQueue,
        ops: OpsChannel,
        read_back_delays: Sequence[float],
        now: Callable[[], datetime],
    ) -> None:
        self._slack = slack
        self._store = store
        self._outbox = history
        self._agents = agents
        self._follow_ups = follow_ups
        self._queue = queue
        self._ops = ops
        self._read_back_delays = tuple(read_back_delays)
        self._now = now
        # Per intake channel, the oldest message the store refused: read back once it takes one.
        self._refused: dict[str, str] = {}
        # New tickets being stored now (each answered to Slack once stored); set when none.
        self._storing = 0
        self._stored = asyncio.Event()
        self._stored.set()

    async def acks_done(self) -> None:
        """Return once no new ticket is being stored (at once when none is)."""
        while not self._stored.is_set():
            await self._stored.wait()

    async def first_delivery(self, event_id: str | None) -> bool:
        """False for an event already handled (Slack retries and redeliveries)."""
        if not event_id:
            return True
        return await self._store.first_delivery(event_id)

    def is_intake(self, channel: str | None) -> bool:
        """True for an intake channel."""
        return channel in self._slack.intake_channels

    async def receive(self, message: CustomerMessage) -> int | None:
        """Store a top-level message as a ticket and queue it; a thread reply joins its ticket.

        Returns the new ticket's id, or None when the message made no new ticket.
        """
        if not self.is_intake(message.channel):
            return None
        if message.is_thread_reply:
            assert message.thread_ts is not None  # noqa: S101  # is_thread_reply checked it
            await self._follow_ups.thread_reply(message, message.thread_ts)
            return None
        if await self._agents.is_any_agent(message.user):
            # An agent's own post in the shared channel (an announcement, an answer): no ticket.
            logger.info("message %s/%s is an agent's, not a ticket", message.channel, message.ts)
            return None
        self._storing += 1
        self._stored.clear()
        try:
            ticket_id = await self._store.add_ticket(
                channel=message.channel,
                ts=message.ts,
                author=message.user,
                text=message.text,
                received_at=_ts_time(message.ts, self._now),
            )
        except StoreUnavailableError as error:
            refused = self._refused.get(message.channel)
            if refused is None or float(message.ts) < float(refused):
                self._refused[message.channel] = message.ts
            self.store_refused(error)
            raise
        finally:
            self._storing -= 1
            if not self._storing:
                self._stored.set()
        if self._refused:
            # The store takes tickets again: what it refused (and Slack may have stopped
            # redelivering) is in the channels' history.
            waiting, self._refused = self._refused, {}
            for channel, ts in waiting.items():
                since = f"{float(ts) - 1:.6f}"
                self._ops.in_background(self._read_back(channel, since))
        if ticket_id is None:
            logger.info("message %s/%s is already a ticket", message.channel, message.ts)
            return None
        self._queue.put(ticket_id, text=message.text)
        return ticket_id

    def store_refused(self, error: StoreUnavailableError) -> None:
        """Say in the ops alert (at most once per interval) that the store refuses writes."""
        self._ops.alert(
            "store",
            f"The store refuses new tickets ({error.cause}); customers' messages are not"
            " acknowledged, so Slack delivers them again, and they are read back once it"
            " takes one. Free the database: another process holding its lock, a full or"
            " read-only disk, or PostgreSQL down.",
        )

    async def catch_up(self) -> None:
        """Make tickets of what customers wrote while the bot was away.

        Down, disconnected, or refused by the store: Slack does not deliver those events again,
        but the channel's history has the messages. Read back from shortly before the newest
        ticket, and at least CATCH_UP_WINDOW_SECONDS (a refused message can be older than
        tickets stored after it); (channel, ts) absorbs the overlap. Called once events flow,
        so nothing falls between the two. A read Slack refuses is retried; one message that
        cannot be taken is logged and skipped, never the end of the start-up.
        """
        for channel in self._slack.intake_channels:
            try:
                seen = await self._store.ticket_ts_range(channel)
            except Exception:
                # The store failing here must not end the start: events still flow.
                logger.exception("could not read the store to read back %s", channel)
                continue
            if seen is None:
                continue  # a first start: the channel's past is not the bot's to triage
            window = self._now().timestamp() - CATCH_UP_WINDOW_SECONDS
            try:
                first, newest = (float(ts) for ts in seen)
            except ValueError:
                # A malformed ts stored by an older version: read the fixed window.
                first, newest = window, window
            # Never before the first ticket: what came earlier predates the bot.
            since = max(first, min(newest - CATCH_UP_OVERLAP_SECONDS, window))
            await self._read_back(channel, f"{since:.6f}")

    async def _read_back(self, channel: str, since: str) -> None:
        """Make tickets and replies of the messages in channel after since; a refusal retried."""
        for delay in (*self._read_back_delays, None):
            try:
                messages = await self._outbox.recent_messages(channel, since)
                break
            except Exception as error:
                if delay is None:
                    logger.exception(
                        "could not read back %s: messages sent while away are missed", channel
                    )
                    self._ops.alert(
                        f"read back {channel}",
                        f"Could not read back the history of intake channel {channel} ({error});"
                        " messages written while the bot was away or its store refused them are"
                        " not tickets. Check that the bot is in the channel and has"
                        " channels:history, then restart it.",
                    )
                    return
                logger.warning("reading back %s failed (%s); trying again", channel, error)
                await asyncio.sleep(delay)
        made = 0
        for message in messages:
            try:
                made += await self.receive(message) is not None
            except StoreUnavailableError:
                return  # said already; read back again once the store takes a ticket
            except Exception:
                # One message must not stop the read-back (or the start-up): said, skipped.
                logger.exception("skipped message %s in %s while reading back", message.ts, channel)
        if made:
            logger.warning("%d messages in %s arrived while the bot was away", made, channel)


def _ts_time(ts: str, now: Callable[[], datetime]) -> datetime:
    try:
        return datetime.fromtimestamp(float(ts), UTC)
    except (ValueError, OverflowError):
        return now()
