"""The desk facade: the one object the edge calls, delegating to the parts beside it.

The Slack edge turns events into calls on `Desk` and implements `Outbox` (how a card, a note, a
page or a reply reaches people). Every action is stored before it is shown, so a retried event, a
second agent or a restart finds the work already done.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import re
import socket
import statistics
import time
import uuid
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from routing.cascade import Pipeline
from routing.config import SlackConfig, TriageConfig
from routing.corrections import Correction, corrected_decision, correction_example
from routing.desk.limits import (
    BURST_WINDOW_SECONDS,
    CATCH_UP_OVERLAP_SECONDS,
    CATCH_UP_WINDOW_SECONDS,
    EDIT_WINDOW_SECONDS,
    EVENT_MEMORY,
    GROUP_CACHE_SECONDS,
    LEASE_RENEWALS,
    LEASE_SECONDS,
    OPS_ALERT_INTERVAL_SECONDS,
    READ_BACK_RETRY_DELAYS,
    ROUTING_RETRY_DELAYS,
    START_SWEEP_BATCH,
    SWEEP_BATCH,
    UNPAGED_LOOKBACK,
)
from routing.desk.types import (
    STALE_POST,
    ActionRefusedError,
    BadRequestError,
    CustomerMessage,
    DirectPage,
    NotAllowedError,
    Note,
    Outbox,
    PageNotSentError,
    PostRef,
    StalePostError,
    TicketCard,
)
from routing.drafter import english_draft_for
from routing.errors import DeliveryRefusedError, StoreUnavailableError
from routing.escalation import escalate
from routing.models import DECIDED_BY, Decision, Escalation, Ticket, Triage
from routing.ports import TicketStore
from routing.records import StoredPage, StoredPost, StoredTicket, TicketStatus, utc_now
from routing.redact import redact

logger = logging.getLogger(__name__)


@dataclass(order=True)
class _Send:
    """A message waiting in a team channel's queue: the most urgent first, then the oldest."""

    urgency: int  # minus the ticket's priority rank: the config's most urgent sorts first
    received: float  # the ticket's received time (seconds since the epoch)
    seq: int
    ticket_id: int = field(compare=False)
    team: str = field(compare=False)
    # "post": the ticket's card in this team's channel; "finish": its page notes, then routed.
    kind: Literal["post", "finish"] = field(compare=False)


@dataclass
class _Placing:
    """A decided ticket whose posts are queued, until each has been tried."""

    recovering: bool
    urgency: int
    received: float
    waiting: set[str] = field(default_factory=set)
    failed: bool = False
    lost: bool = False


@dataclass
class _Burst:
    """The first page to some on-call about one customer, and the tickets counted under it."""

    ticket_id: int
    post: PostRef
    key: str
    started: float
    critical: bool
    more: list[int] = field(default_factory=list)
    # The one follow-up note in the first page's thread that counts the rest.
    followup: PostRef | None = None
    # Held while the follow-up is posted or updated: concurrent tickets make one, in order.
    writing: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass
class _Worker:
    # Tickets to decide (claim, classify, queue the posts), each with the claim a sweep made.
    queue: asyncio.Queue[int] = field(default_factory=asyncio.Queue)
    queued: dict[int, TicketStatus | None] = field(default_factory=dict)
    # One priority queue and one poster per team channel: a busy channel delays only itself.
    channels: dict[str, asyncio.PriorityQueue[_Send]] = field(default_factory=dict)
    placing: dict[int, _Placing] = field(default_factory=dict)
    # Tickets this replica holds a routing lease on; renewed together while they are held.
    held: set[int] = field(default_factory=set)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    retries: dict[int, int] = field(default_factory=dict)
    timers: set[asyncio.Task[None]] = field(default_factory=set)
    seq: itertools.count[int] = field(default_factory=itertools.count)
    # Jobs put on any queue and not done yet; idle is set whenever it is 0.
    jobs: int = 0
    idle: asyncio.Event = field(default_factory=asyncio.Event)


class Desk:
    """Receives customer messages and agents' actions; routes, pages and replies."""

    def __init__(
        self,
        *,
        config: TriageConfig,
        slack: SlackConfig,
        pipeline: Pipeline,
        store: TicketStore,
        outbox: Outbox,
        clock: Callable[[], float] = time.monotonic,
        retry_delays: Sequence[float] = ROUTING_RETRY_DELAYS,
        now: Callable[[], datetime] = utc_now,
        replica: str | None = None,
        lease_seconds: float = LEASE_SECONDS,
        read_back_delays: Sequence[float] = READ_BACK_RETRY_DELAYS,
    ) -> None:
        self.config = config
        self.slack = slack
        self.pipeline = pipeline
        self.store = store
        self._outbox = outbox
        self._clock = clock
        self._retry_delays = tuple(retry_delays)
        # Leases are compared across processes: they read this wall clock, never the monotonic.
        self._now = now
        # Who holds this desk's leases (host, process, a nonce): fresh for each desk unless given.
        self.replica = replica or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._lease = timedelta(seconds=lease_seconds)
        self._work = _Worker()
        self._work.idle.set()
        self._groups: dict[str, tuple[float, tuple[str, ...]]] = {}
        # One lock per ticket: a customer's edit and an agent's reclassify never interleave.
        self._locks: dict[int, asyncio.Lock] = {}
        # Pages this process holds claimed but not (all) sent: tried again, Slack checked first.
        self._resume: set[tuple[int, str]] = set()
        # (customer, on-call) -> the burst being coalesced.
        self._bursts: dict[tuple[str, tuple[str, ...]], _Burst] = {}
        # (ticket, team) -> when a customer's edit moved the ticket's post away from the team.
        self._moved_by_edit: dict[tuple[int, str], float] = {}
        # Unsent page -> the claim time this replica holds it by (renewed like a lease).
        self._claims: dict[tuple[int, str], datetime] = {}
        # Held while a claim is renewed (moved, then read back) or checked before a resend.
        self._claiming = asyncio.Lock()
        self._read_back_delays = tuple(read_back_delays)
        # Per intake channel, the oldest message the store refused: read back once it takes one.
        self._refused: dict[str, str] = {}
        # When each ops alert was last said, and the tasks saying them or reading back.
        self._alerted: dict[str, float] = {}
        self._background: set[asyncio.Task[None]] = set()

    # --- life cycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Relearn stored corrections, start the workers, and route what a restart left."""
        # Pages claimed before this start are no claim of this process's (see recover_pages).
        started = utc_now()
        # The event ids only guard against Slack's retries; a week keeps the file small.
        await self.store.forget_events(before=utc_now() - EVENT_MEMORY)
        # One fit for all of them: relearning each in turn took 49 s for 993 corrections.
        self.pipeline.learn_many(await self.store.corrections())
        for _ in range(self.slack.workers):
            self._work.tasks.append(asyncio.create_task(self._worker()))
        for ticket_id in await self.store.sending_drafts():
            await self._settle_interrupted_reply(ticket_id)
        # Every ticket nobody routes: new ones of any age, and leases that ran out (a replica
        # that died, or this one's last run). Other replicas starting now take other rows.
        while await self._sweep(new_before=self._now(), limit=START_SWEEP_BATCH):
            pass
        # A routed ticket needs no routing, but its page may have failed: the worker pages it.
        for ticket_id in await self.store.unpaged_tickets(since=utc_now() - UNPAGED_LOOKBACK):
            logger.info("paging ticket %s, which the last run could not page", ticket_id)
            self._put(ticket_id)
        # Pages claimed before this start and never sent: its claimer stopped (see recover_pages).
        await self.recover_pages(claimed_before=started)
        self._work.tasks.append(asyncio.create_task(self._keep_leases()))

    async def recover_pages(self, *, claimed_before: datetime) -> int:
        """Take over the pages claimed before a time and never sent, and queue their tickets.

        The claimer stopped (or gave up) between claiming and sending: the worker sends what
        Slack does not have yet, looking in the post's thread first. Each page is taken over
        by one caller (a compare-and-set), so replicas call this in every sweep with a lease's
        cutoff: a live replica renews the claims it holds (see _renew_pages), a dead one's age.
        """
        taken = 0
        for page in await self.store.unsent_pages(claimed_before=claimed_before):
            if (page.ticket_id, page.key) in self._claims:
                continue  # this replica's own, late in renewing: it is still sending it
            if await self.store.retake_page(
                page.ticket_id, team=page.key, claimed_at=page.claimed_at
            ):
                logger.warning(
                    "ticket %s's page %s was never sent: sending it", page.ticket_id, page.key
                )
                await self._hold_claim(page.ticket_id, page.key)
                self._resume.add((page.ticket_id, page.key))
                self._put(page.ticket_id)
                taken += 1
        return taken

    async def _hold_claim(self, ticket_id: int, key: str) -> None:
        """Remember the claim this replica holds on an unsent page (its time is the token)."""
        page = await self.store.page(ticket_id, team=key)
        if page is not None and page.sent_at is None:
            self._claims[(ticket_id, key)] = page.claimed_at
        else:
            self._claims.pop((ticket_id, key), None)

    async def _renew_pages(self) -> None:
        """Move this replica's unsent page claims to now, as a lease is renewed.

        A claim another replica took over meanwhile (the compare-and-set fails) is no longer
        this replica's to send: it is forgotten here.
        """
        for (ticket_id, key), token in sorted(self._claims.items()):
            async with self._claiming:
                if await self.store.retake_page(ticket_id, team=key, claimed_at=token):
                    await self._hold_claim(ticket_id, key)
                elif self._claims.get((ticket_id, key)) == token:
                    # Sent meanwhile, or taken over by another replica.
                    logger.info("ticket %s's page %s is no longer held here", ticket_id, key)
                    self._claims.pop((ticket_id, key), None)
                    self._resume.discard((ticket_id, key))

    async def _sweep(self, *, new_before: datetime, limit: int) -> int:
        """Take tickets nobody is routing and queue them; how many were taken."""
        now = self._now()
        taken = await self.store.take_stale_tickets(
            self.replica, now=now, until=now + self._lease, new_before=new_before, limit=limit
        )
        for ticket_id, claimed in taken:
            if ticket_id in self._work.held:
                continue  # its own, late in renewing: still queued here
            logger.info("routing ticket %s, which no replica was routing", ticket_id)
            self._work.held.add(ticket_id)
            self._put(ticket_id, claimed)
        return len(taken)

    async def _keep_leases(self) -> None:
        """Renew this replica's leases and page claims, and take abandoned work, while it runs."""
        while True:
            await asyncio.sleep(self._lease.total_seconds() / LEASE_RENEWALS)
            try:
                if self._work.held:
                    await self.store.renew_leases(
                        self.replica, sorted(self._work.held), until=self._now() + self._lease
                    )
                await self._renew_pages()
                # New tickets are taken once they have waited a whole lease unclaimed.
                await self._sweep(new_before=self._now() - self._lease, limit=SWEEP_BATCH)
                # So are pages claimed a lease ago and never sent (their claimer is gone).
                await self.recover_pages(claimed_before=self._now() - self._lease)
            except Exception:
                # The database away for a moment: the next round tries again.
                logger.exception("could not renew leases or sweep for abandoned tickets")

    async def _settle_interrupted_reply(self, ticket_id: int) -> None:
        """A reply being sent when the bot stopped: sent if Slack has it, else a draft again."""
        ticket, draft = await self.store.ticket(ticket_id), await self.store.draft(ticket_id)
        if ticket is None or draft is None:
            return
        try:
            reply_ts = await self._outbox.find_reply(ticket.channel, ticket.ts, draft.text)
        except Exception:
            logger.exception("could not check whether ticket %s's reply was sent", ticket_id)
            return  # still "sending": checked again at the next start
        await self.store.finish_draft(ticket_id, sent_ts=reply_ts)
        if reply_ts is not None:
            await self.store.audit(
                ticket_id=ticket_id,
                actor=draft.decided_by or "unknown",
                action="reply_sent",
                after=draft.text,
            )
        logger.warning(
            "ticket %s's reply was %s when the bot stopped",
            ticket_id,
            "sent" if reply_ts else "not sent (a draft again)",
        )
        await self._refresh(ticket_id)

    async def catch_up(self) -> None:
        """Make tickets of what customers wrote while the bot was away.

        Down, disconnected, or refused by the store: Slack does not deliver those events again,
        but the channel's history has the messages. Read back from shortly before the newest
        ticket, and at least CATCH_UP_WINDOW_SECONDS (a refused message can be older than
        tickets stored after it); (channel, ts) absorbs the overlap. Called once events flow,
        so nothing falls between the two. A read Slack refuses is retried; one message that
        cannot be taken is logged and skipped, never the end of the start-up.
        """
        for channel in self.slack.intake_channels:
            try:
                seen = await self.store.ticket_ts_range(channel)
            except Exception:
                # The store failing here must not end the start: events still flow.
                logger.exception("could not read the store to read back %s", channel)
                continue
            if seen is None:
                continue  # a first start: the channel's past is not the bot's to triage
            window = utc_now().timestamp() - CATCH_UP_WINDOW_SECONDS
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
                    self.alert_ops(
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

    def alert_ops(self, key: str, text: str) -> None:
        """Tell the operator in the ops channel, at most once per OPS_ALERT_INTERVAL_SECONDS."""
        now = self._clock()
        last = self._alerted.get(key)
        if last is not None and now - last < OPS_ALERT_INTERVAL_SECONDS:
            return
        self._alerted[key] = now
        fallback = self.slack.teams.get(self.config.fallback_team)
        channel = self.slack.ops_channel or (fallback.channel if fallback else None)
        if channel is None:
            logger.error("ops alert (no ops channel to say it in): %s", text)
            return

        async def say() -> None:
            try:
                await self._outbox.post_alert(channel, Note(text))
            except Exception:
                logger.exception("could not post the ops alert in %s", channel)

        self._in_background(say())

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def drain(self) -> None:
        """Wait until every queued ticket is routed and paged, retries included, or gave up."""
        while self._work.jobs or self._work.timers:
            if self._work.jobs:
                await self._work.idle.wait()
            else:
                await asyncio.gather(*self._work.timers, return_exceptions=True)

    async def stop(self) -> None:
        """Stop the workers and end this replica's leases: any replica routes the rest."""
        tasks = [*self._work.tasks, *self._work.timers, *self._background]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        # Those given up on after their retries too: all of this replica's leases end.
        try:
            await self.store.release_leases(self.replica)
        except Exception:
            logger.exception("could not end the leases: they run out instead")
        # Nothing queued survives a stop: a start takes the tickets up again from the store,
        # and its unsent pages too (claims no longer renewed, so not skipped as this one's).
        self._work = _Worker()
        self._claims.clear()
        self._resume.clear()
        self._work.idle.set()

    def _put(self, ticket_id: int, claimed: TicketStatus | None = None) -> None:
        """Queue a ticket to decide, once: a ticket queued or being posted is not queued again."""
        if ticket_id in self._work.queued:
            # A sweep claimed it while it waited here: its claim says what the sweep found.
            self._work.queued[ticket_id] = claimed or self._work.queued[ticket_id]
            return
        if ticket_id in self._work.placing:
            return
        self._work.queued[ticket_id] = claimed
        self._job_added()
        self._work.queue.put_nowait(ticket_id)

    def _job_added(self) -> None:
        self._work.jobs += 1
        self._work.idle.clear()

    def _job_done(self) -> None:
        self._work.jobs -= 1
        if self._work.jobs == 0:
            self._work.idle.set()

    async def _worker(self) -> None:
        while True:
            ticket_id = await self._work.queue.get()
            claimed = self._work.queued.pop(ticket_id, None)
            try:
                await self._decide(ticket_id, claimed)
            except Exception:
                # The database or Slack (a permalink) failed: the ticket stays stored.
                logger.exception("routing ticket %s failed", ticket_id)
                self._retry_later(ticket_id)
            finally:
                self._job_done()

    def _send(self, channel: str, job: _Send) -> None:
        """Queue a message for a team channel, starting the channel's poster on first use."""
        queue = self._work.channels.get(channel)
        if queue is None:
            queue = self._work.channels[channel] = asyncio.PriorityQueue()
            self._work.tasks.append(asyncio.create_task(self._poster(queue)))
        self._job_added()
        queue.put_nowait(job)

    async def _poster(self, queue: asyncio.PriorityQueue[_Send]) -> None:
        """Post one channel's messages one at a time (Slack allows about one a second)."""
        while True:
            job = await queue.get()
            try:
                if job.kind == "post":
                    await self._post_job(job)
                else:
                    await self._finish(job.ticket_id)
            except Exception:
                logger.exception("routing ticket %s failed", job.ticket_id)
                self._work.placing.pop(job.ticket_id, None)
                self._retry_later(job.ticket_id)
            finally:
                self._job_done()

    def _retry_later(self, ticket_id: int) -> None:
        attempt = self._work.retries.get(ticket_id, 0)
        if attempt >= len(self._retry_delays):
            # Stored as it is, its lease left to run out: a sweep (of any replica) takes it up.
            logger.error(
                "ticket %s: giving up until the next start (unrouted: until a sweep takes it"
                " once its lease runs out)",
                ticket_id,
            )
            self._work.retries.pop(ticket_id, None)
            self._work.held.discard(ticket_id)
            # Its unsent pages too: no longer renewed, a sweep takes them over a lease from now.
            for held in [claim for claim in self._claims if claim[0] == ticket_id]:
                self._claims.pop(held, None)
                self._resume.discard(held)
            return
        self._work.retries[ticket_id] = attempt + 1
        delay = self._retry_delays[attempt]

        async def requeue() -> None:
            await asyncio.sleep(delay)
            self._put(ticket_id)

        timer = asyncio.create_task(requeue())
        self._work.timers.add(timer)
        timer.add_done_callback(self._work.timers.discard)

    def _lock(self, ticket_id: int) -> asyncio.Lock:
        return self._locks.setdefault(ticket_id, asyncio.Lock())

    # --- intake -------------------------------------------------------------------------

    async def first_delivery(self, event_id: str | None) -> bool:
        """False for an event already handled (Slack retries and redeliveries)."""
        if not event_id:
            return True
        return await self.store.first_delivery(event_id)

    def is_intake(self, channel: str | None) -> bool:
        """True for an intake channel."""
        return channel in self.slack.intake_channels

    async def receive(self, message: CustomerMessage) -> int | None:
        """Store a top-level message as a ticket and queue it; a thread reply joins its ticket.

        Returns the new ticket's id, or None when the message made no new ticket.
        """
        if not self.is_intake(message.channel):
            return None
        if message.is_thread_reply:
            assert message.thread_ts is not None  # noqa: S101  # is_thread_reply checked it
            await self._thread_reply(message, message.thread_ts)
            return None
        if await self._is_any_agent(message.user):
            # An agent's own post in the shared channel (an announcement, an answer): no ticket.
            logger.info("message %s/%s is an agent's, not a ticket", message.channel, message.ts)
            return None
        try:
            ticket_id = await self.store.add_ticket(
                channel=message.channel,
                ts=message.ts,
                author=message.user,
                text=message.text,
                received_at=_ts_time(message.ts),
            )
        except StoreUnavailableError as error:
            refused = self._refused.get(message.channel)
            if refused is None or float(message.ts) < float(refused):
                self._refused[message.channel] = message.ts
            self.alert_ops(
                "store",
                f"The store refuses new tickets ({error.cause}); customers' messages are not"
                " acknowledged, so Slack delivers them again, and they are read back once it"
                " takes one. Free the database: another process holding its lock, a full or"
                " read-only disk, or PostgreSQL down.",
            )
            raise
        if self._refused:
            # The store takes tickets again: what it refused (and Slack may have stopped
            # redelivering) is in the channels' history.
            waiting, self._refused = self._refused, {}
            for channel, ts in waiting.items():
                since = f"{float(ts) - 1:.6f}"
                self._in_background(self._read_back(channel, since))
        if ticket_id is None:
            logger.info("message %s/%s is already a ticket", message.channel, message.ts)
            return None
        self._put(ticket_id)
        return ticket_id

    async def _decide(self, ticket_id: int, claimed: TicketStatus | None) -> None:
        """Claim a ticket, classify it (or keep an agent's decision), and queue its posts."""
        async with self._lock(ticket_id):
            if ticket_id in self._work.placing:
                return  # decided already; its posts are queued
            now = self._now()
            previous = claimed or await self.store.claim_for_routing(
                ticket_id, holder=self.replica, now=now, until=now + self._lease
            )
            if previous is None:
                self._work.held.discard(ticket_id)
                ticket = await self.store.ticket(ticket_id)
                if ticket is not None and ticket.status == "routed":
                    # Routed already: a requeue after a page Slack refused pages again (once).
                    await self._paged(ticket_id)
                return  # else another replica holds it, or the customer withdrew it
            self._work.held.add(ticket_id)
            stored = await self.store.ticket(ticket_id)
            assert stored is not None  # noqa: S101  # claimed just now
            if stored.decision is None or stored.decision.source != "agent":
                # An agent's correction made while it waited for a retry stands; else classify.
                stored, _ = await self._classify(ticket_id)
            if stored.permalink is None:
                link = await self._outbox.permalink(stored.channel, stored.ts)
                if link:
                    await self.store.set_permalink(ticket_id, link)
            decided = await self.store.ticket(ticket_id)
            assert decided is not None  # noqa: S101  # tickets are never deleted
            assert decided.decision is not None  # noqa: S101  # classified just now
            placing = _Placing(
                recovering=previous == "routing",
                urgency=-self.config.priority_rank(decided.decision.priority),
                received=decided.received_at.timestamp(),
            )
            self._work.placing[ticket_id] = placing
            try:
                queued = await self._queue_posts(ticket_id, decided, placing)
            finally:
                if not placing.waiting:
                    self._work.placing.pop(ticket_id, None)
            if not queued:
                await self._mark_routed(ticket_id)
        if ticket_id not in self._work.placing:
            await self._paged(ticket_id)

    def _wanted_teams(self, ticket: StoredTicket) -> tuple[str, ...]:
        """The teams whose channels a ticket belongs in, by its stored decision."""
        decision, escalation = ticket.decision, ticket.escalation
        if decision is None or escalation is None:
            return ()
        if decision.source == "agent":
            return (decision.team,)
        if decision.no_action is not None and self.config.noise.post == "none":
            # Needs no action and the config wants no post: stored, drafted, posted nowhere.
            return ()
        teams = escalation.teams or (decision.team,)
        return (decision.team, *(team for team in teams if team != decision.team))

    async def _queue_posts(self, ticket_id: int, ticket: StoredTicket, placing: _Placing) -> bool:
        """Queue a post in each wanted team's channel that lacks one; False if none lacks one."""
        posted = {post.team for post in await self.store.posts(ticket_id)}
        missing = [team for team in self._wanted_teams(ticket) if team not in posted]
        if not missing and not self._wanted_teams(ticket):
            logger.info("ticket %s needs no action: not posted", ticket_id)
        for team in missing:
            placing.waiting.add(team)
            self._send(
                self._team_channel(team),
                _Send(
                    placing.urgency,
                    placing.received,
                    next(self._work.seq),
                    ticket_id=ticket_id,
                    team=team,
                    kind="post",
                ),
            )
        return bool(missing)

    async def _post_job(self, job: _Send) -> None:
        """Post a ticket's card in one team's channel, if it still belongs there."""
        ticket_id, team = job.ticket_id, job.team
        placing = self._work.placing.get(ticket_id)
        if placing is None:
            return
        try:
            async with self._lock(ticket_id):
                now = self._now()
                held = await self.store.renew_leases(
                    self.replica, [ticket_id], until=now + self._lease
                )
                ticket = await self.store.ticket(ticket_id)
                if ticket is None or ticket.status == "withdrawn":
                    pass  # the customer deleted it: nothing to post
                elif not held:
                    # Stalled past the lease, and another replica took the ticket over.
                    logger.warning("ticket %s: lease lost to another replica", ticket_id)
                    placing.lost = True
                elif team in self._wanted_teams(ticket):
                    # (An agent's correction or the customer's edit may have moved it meanwhile.)
                    posted = await self._post_once(ticket_id, team, recovering=placing.recovering)
                    if posted is not None:
                        # What the customer added in the thread before the post existed.
                        for reply in await self.store.replies(ticket_id):
                            await self._outbox.post_note(posted, _reply_note(reply.text))
        except Exception:
            logger.exception("posting ticket %s in %s failed", ticket_id, team)
            placing.failed = True
        placing.waiting.discard(team)
        if placing.waiting:
            return
        if placing.lost:
            self._work.placing.pop(ticket_id, None)
            self._work.held.discard(ticket_id)
        elif placing.failed:
            # Slack down or rate limited past every retry: the whole ticket is tried again.
            self._work.placing.pop(ticket_id, None)
            self._retry_later(ticket_id)
        else:
            # Its page notes go in this channel's queue at the ticket's priority.
            self._send(
                self._team_channel(team),
                _Send(
                    placing.urgency,
                    placing.received,
                    next(self._work.seq),
                    ticket_id=ticket_id,
                    team=team,
                    kind="finish",
                ),
            )

    async def _finish(self, ticket_id: int) -> None:
        """Every post of a ticket made: link them, mark it routed, and page if it needs it."""
        placing = self._work.placing.get(ticket_id)
        if placing is None:
            return
        async with self._lock(ticket_id):
            ticket = await self.store.ticket(ticket_id)
            assert ticket is not None  # noqa: S101  # tickets are never deleted
            # A team that became wanted while the posts waited (an edit) is posted now.
            if ticket.status != "withdrawn" and await self._queue_posts(ticket_id, ticket, placing):
                return
            self._work.placing.pop(ticket_id, None)
            await self._link_related(ticket_id)
            await self._mark_routed(ticket_id)
        await self._paged(ticket_id)

    async def _mark_routed(self, ticket_id: int) -> None:
        ticket = await self.store.ticket(ticket_id)
        if ticket is not None and ticket.status != "withdrawn":
            await self.store.mark_routed(ticket_id)
        self._work.held.discard(ticket_id)

    async def _paged(self, ticket_id: int) -> None:
        """Page if needed; the ticket's retries are done unless the page asked for one."""
        attempt = self._work.retries.get(ticket_id)
        await self._page_if_needed(ticket_id)
        if self._work.retries.get(ticket_id) == attempt:
            self._work.retries.pop(ticket_id, None)

    async def _classify(self, ticket_id: int) -> tuple[StoredTicket, Triage]:
        """Run the pipeline on the stored text; keep every layer's output and a fresh draft."""
        ticket = await self.store.ticket(ticket_id)
        assert ticket is not None  # noqa: S101  # callers hold a stored ticket's id
        triage = await self.pipeline.triage(await self._with_replies(ticket))
        await self.store.record_triage(
            ticket_id,
            layers=triage.layers,
            decision=triage.decision,
            escalation=triage.escalation,
        )
        # Replaces a pending or rejected draft only: a sent reply stays what was sent.
        await self.store.set_draft(ticket_id, text=triage.draft.text, source=triage.draft.source)
        return ticket, triage

    async def _post_once(self, ticket_id: int, team: str, *, recovering: bool) -> PostRef | None:
        """Post the ticket in a team's channel unless it is there; the new post, if one was made."""
        if any(post.team == team for post in await self.store.posts(ticket_id)):
            return None
        channel = self._team_channel(team)
        found = await self._outbox.find_card(channel, ticket_id) if recovering else None
        if found is not None:
            await self.store.add_post(ticket_id, team=team, channel=found.channel, ts=found.ts)
            return None
        card = await self._card(ticket_id, team)
        try:
            ref = await self._outbox.post_card(card)
        except DeliveryRefusedError as refused:
            ref = await self._post_in_fallback(card, refused)
        await self.store.add_post(ticket_id, team=team, channel=ref.channel, ts=ref.ts)
        return ref

    async def _post_in_fallback(self, card: TicketCard, refused: DeliveryRefusedError) -> PostRef:
        """Slack refuses the team's channel for good: post in the fallback team's, and say why.

        Retrying cannot help (the channel is gone, or the bot was never invited), so the ticket
        is not left unrouted: the fallback team sees it, and the ops alert names the channel.
        """
        fix = (
            f"Slack refuses posts in {refused.channel} ({refused.code}), the channel of team"
            f" {card.team}: invite the bot there (/invite @Triage) or correct"
            f" [slack.teams.{card.team}] channel in the config."
        )
        self.alert_ops(f"refused {refused.channel}", fix)
        fallback = self._team_channel(self.config.fallback_team)
        if fallback == refused.channel:
            raise refused
        logger.error("ticket %s: %s Posted in %s instead", card.ticket_id, fix, fallback)
        ref = await self._outbox.post_card(card.model_copy(update={"channel": fallback}))
        try:
            await self._outbox.post_note(ref, Note(f"Posted here, not for {card.team}: {fix}"))
        except Exception:
            logger.exception("could not explain ticket %s's fallback post", card.ticket_id)
        return ref

    async def _link_related(self, ticket_id: int) -> None:
        posts = await self.store.posts(ticket_id)
        if len(posts) > 1:
            await self._refresh(ticket_id)

    # --- thread replies, edits, deletions -------------------------------------------------

    async def _thread_reply(self, message: CustomerMessage, thread_ts: str) -> None:
        ticket = await self.store.ticket_at(message.channel, thread_ts) or (
            await self._missed_message(message.channel, thread_ts)
        )
        if ticket is None:
            return
        if await self._is_any_agent(message.user):
            # An agent answering in the customer's thread by hand: not the customer's words.
            return
        if message.user != ticket.author:
            # Someone else in a shared channel: shown to the team, but it cannot change (or
            # page about) another person's ticket. Not stored, so its ts marks it as shown.
            if not await self.store.first_delivery(f"reply {message.channel} {message.ts}"):
                return
            await self._show_in_threads(
                ticket.id,
                Note(f"<@{message.user}> replied in the customer's thread:", quote=message.text),
            )
            return
        if not await self.store.add_reply(
            ticket.id, ts=message.ts, author=message.user, text=message.text
        ):
            return
        # Under the lock: a post being made now either shows this reply or is seen here.
        async with self._lock(ticket.id):
            await self._show_in_threads(ticket.id, _reply_note(message.text))
        await self._recheck(ticket.id)

    async def _missed_message(self, channel: str, ts: str) -> StoredTicket | None:
        """The ticket of a message the bot has not received, made from Slack's copy.

        A reply's parent or an edited message whose own event comes later (a retry) or never:
        either way nothing the customer wrote is lost.
        """
        seen = await self.store.ticket_ts_range(channel)
        if seen is None or float(ts) < float(seen[0]):
            return None  # a message from before the bot's first ticket
        try:
            message = await self._outbox.message_at(channel, ts)
        except Exception:
            logger.exception("could not read message %s in %s from Slack", ts, channel)
            return None
        if message is None or message.is_thread_reply:
            return None
        ticket_id = await self.receive(message)
        return await self.store.ticket(ticket_id) if ticket_id is not None else None

    async def _show_in_threads(self, ticket_id: int, note: Note) -> None:
        """Say something under each live post; Slack refusing one is logged, not fatal."""
        for post in await self.store.posts(ticket_id):
            try:
                await self._outbox.post_note(PostRef(post.channel, post.ts), note)
            except Exception:
                logger.exception("could not post a note on ticket %s in %s", ticket_id, post.team)

    async def _with_replies(self, ticket: StoredTicket) -> Ticket:
        """The ticket as the pipeline reads it: the message, then the customer's thread replies."""
        replies = await self.store.replies(ticket.id)
        combined = "\n".join([ticket.text, *(reply.text for reply in replies)])
        return _as_ticket(ticket).model_copy(update={"text": combined})

    async def _recheck(self, ticket_id: int) -> None:
        """Re-read a ticket with its replies; raise its stakes and page if it now needs a human."""
        async with self._lock(ticket_id):
            ticket = await self.store.ticket(ticket_id)
            if ticket is None or ticket.decision is None or ticket.escalation is None:
                return
            with_replies = await self._with_replies(ticket)
            fresh = await self.pipeline.triage(with_replies)
            old = ticket.decision
            config = self.config
            higher = config.priority_rank(fresh.decision.priority) > config.priority_rank(
                old.priority
            )
            decision = old.model_copy(
                update={
                    "priority": fresh.decision.priority if higher else old.priority,
                    "sentiment": fresh.decision.sentiment,
                }
            )
            recheck = escalate(
                with_replies,
                decision,
                fresh.rules,
                config,
            )
            reasons = _merge_reasons(ticket.escalation, recheck)
            escalation = ticket.escalation.model_copy(
                update={"needs_human": bool(reasons), "reasons": reasons}
            )
            if decision == old and escalation == ticket.escalation:
                return
            await self.store.set_decision(ticket_id, decision, escalation)
            await self.store.audit(
                ticket_id=ticket_id,
                actor="customer",
                action="recheck",
                before=_labels(old),
                after=_labels(decision),
            )
        await self._refresh(ticket_id)
        await self._page_if_needed(ticket_id)

    async def edited(self, channel: str, ts: str, text: str, previous_text: str | None) -> None:
        """The customer edited a message; unfurls (same text) change nothing."""
        if not self.is_intake(channel) or text == previous_text:
            return
        found = await self.store.ticket_at(channel, ts)
        if found is None:
            await self._missed_message(channel, ts)  # a ticket now, with the edited text
            return
        # Under the ticket's lock: a worker routing the old text finishes first, then the edit
        # re-classifies what it posted (an edit seconds after posting is common).
        async with self._lock(found.id):
            ticket = await self.store.ticket(found.id)
            if ticket is None or ticket.status == "withdrawn" or ticket.text == text:
                return
            draft = await self.store.draft(ticket.id)
            replied = draft is not None and draft.status in ("sending", "sent")
            await self.store.set_text(ticket.id, text)
            await self.store.audit(
                ticket_id=ticket.id,
                actor=ticket.author or "customer",
                action="edited_after_reply" if replied else "edited",
                before=ticket.text,
                after=text,
            )
            if replied:
                # The reply went out for the old text: tell the agents, change nothing else.
                await self._show_in_threads(
                    ticket.id,
                    Note("The customer edited their message after the reply was sent:", quote=text),
                )
                return
            if ticket.status == "new" or ticket.decision is None:
                return  # not decided yet: the worker (or its retry) classifies the new text
            if ticket.status == "routing":
                # Decided, its posts queued: they go where the new text's decision says (an
                # agent's correction made meanwhile stands).
                if ticket.decision.source != "agent":
                    await self._classify(ticket.id)
                return
            _, triage = await self._classify(ticket.id)
            teams = set(_teams(triage))
            before = {post.team for post in await self.store.posts(ticket.id)}
            # Edits in quick succession that go back and forth reuse each team's post.
            await self._reuse_recent_posts(ticket.id, teams - before)
            try:
                await self._place(ticket.id, teams, moved_by=None)
                for team in before - teams:
                    self._moved_by_edit[(ticket.id, team)] = self._clock()
            except Exception:
                # The post stays where it is, showing the new decision; an agent can move it.
                logger.exception("could not move ticket %s after the customer's edit", ticket.id)
                await self._refresh(ticket.id)
        await self._page_if_needed(ticket.id)

    async def _reuse_recent_posts(self, ticket_id: int, teams: set[str]) -> None:
        """Make live again the teams' posts an edit moved away within EDIT_WINDOW_SECONDS."""
        for post in reversed(await self.store.posts(ticket_id, active_only=False)):
            moved_at = self._moved_by_edit.get((ticket_id, post.team))
            recent = moved_at is not None and self._clock() - moved_at <= EDIT_WINDOW_SECONDS
            if post.team in teams and post.status == "moved" and recent:
                await self.store.set_post_status(post.id, "active")
                teams = teams - {post.team}

    async def reply_edited(self, channel: str, thread_ts: str, ts: str, text: str) -> None:
        """The customer edited a thread reply: shown to the team, and the ticket re-checked."""
        ticket = await self.store.ticket_at(channel, thread_ts)
        if ticket is None or ticket.status == "withdrawn":
            return
        # Only the customer's stored replies count (others' are notes, not the ticket's words).
        if not await self.store.set_reply_text(ticket.id, ts=ts, text=text):
            return
        async with self._lock(ticket.id):
            await self._show_in_threads(
                ticket.id, Note("The customer edited their reply in the thread:", quote=text)
            )
        await self._recheck(ticket.id)

    async def deleted(self, channel: str, ts: str) -> None:
        """The customer deleted their message: the ticket is withdrawn, its posts say so."""
        if not self.is_intake(channel):
            return
        ticket = await self.store.ticket_at(channel, ts)
        if ticket is None:
            return
        async with self._lock(ticket.id):
            if not await self.store.mark_withdrawn(ticket.id):
                return
            await self.store.audit(
                ticket_id=ticket.id, actor=ticket.author or "customer", action="withdrawn"
            )
            for post in await self.store.posts(ticket.id):
                await self.store.set_post_status(post.id, "withdrawn")
        await self._refresh(ticket.id, include_inactive=True)

    # --- agents' actions ----------------------------------------------------------------

    async def ticket_for_post(self, channel: str, ts: str) -> StoredPost | None:
        """Our team post at (channel, ts), if it is one."""
        return await self.store.post_at(channel, ts)

    async def ticket_for_button(
        self, value: str, *, channel: str | None, ts: str | None, user: str, action: str
    ) -> tuple[int, str]:
        """The ticket a button on the post at (channel, ts) acts on, and its public id.

        The button carries the ticket's public id (before public ids: its number), and the post
        it sits on must be one of that ticket's posts in this database. A post left from a
        database that was recreated names a ticket number that now means another ticket; it is
        refused, said once in the log, and nothing is done.
        """
        # Someone who is no agent learns nothing, not even whether the post is current.
        await self._require_any_agent(user, action)
        post = await self.store.post_at(channel, ts) if channel and ts else None
        legacy = re.fullmatch(r"[0-9]{1,12}", value)
        ticket_id = int(value) if legacy else await self.store.ticket_by_public_id(value)
        if post is None or ticket_id is None or post.ticket_id != ticket_id:
            logger.warning(
                "refused: user %s pressed a button (%s) on a post that is no ticket's here"
                " (channel %s, ts %s): left from another database, or not ours",
                user,
                action,
                channel,
                ts,
            )
            raise StalePostError(STALE_POST)
        return ticket_id, await self.store.public_id(ticket_id)

    async def ticket_for_modal(
        self, ticket_id: int, public_id: str | None, *, user: str, action: str
    ) -> None:
        """Refuse a modal opened for a ticket that this database does not know by that id."""
        await self._require_any_agent(user, action)
        if public_id is None or await self.store.ticket_by_public_id(public_id) != ticket_id:
            logger.warning(
                "refused: user %s submitted a window for ticket %s that this database does not"
                " know by that id",
                user,
                ticket_id,
            )
            raise StalePostError(STALE_POST)

    async def react(self, *, user: str, reaction: str, channel: str, ts: str) -> None:
        """An emoji on a team post: approve or reject the draft; other emoji mean nothing."""
        if reaction not in (self.slack.approve_reaction, self.slack.reject_reaction):
            return
        post = await self.store.post_at(channel, ts)
        if post is None:
            return
        try:
            if reaction == self.slack.approve_reaction:
                await self.approve(post.ticket_id, user=user)
            else:
                await self.reject(post.ticket_id, user=user)
        except ActionRefusedError as refused:
            await self._outbox.tell(channel, user, refused.message)

    async def approve(self, ticket_id: int, *, user: str, text: str | None = None) -> None:
        """Send the draft (or an agent's edit of it) to the customer's thread, exactly once."""
        ticket = await self._ticket_for_agent(ticket_id, user, "approve the reply")
        if ticket.status == "withdrawn":
            raise BadRequestError(
                f"Ticket #{ticket_id} was withdrawn by the customer; nothing is sent."
            )
        draft = await self.store.draft(ticket_id)
        if draft is None:
            raise BadRequestError(f"Ticket #{ticket_id} has no draft yet; try again in a moment.")
        if text is not None and text.strip() and text != draft.text:
            if not await self.store.edit_draft(ticket_id, text):
                raise BadRequestError(_draft_gone(ticket_id, draft.status, draft.decided_by))
            await self.store.audit(
                ticket_id=ticket_id,
                actor=user,
                action="draft_edited",
                before=draft.text,
                after=text,
            )
        if not await self.store.claim_draft(ticket_id, user):
            current = await self.store.draft(ticket_id)
            assert current is not None  # noqa: S101  # drafts are never deleted
            raise BadRequestError(_draft_gone(ticket_id, current.status, current.decided_by))
        claimed = await self.store.draft(ticket_id)
        assert claimed is not None  # noqa: S101  # claimed just now
        reply_ts: str | None = None
        if claimed.tried_at is not None:
            # An earlier send failed, maybe only its answer: Slack's thread says if it arrived.
            reply_ts = await self._sent_reply(ticket, claimed.text)
        if reply_ts is None:
            try:
                reply_ts = await self._outbox.reply_to_customer(
                    ticket.channel, ticket.ts, claimed.text
                )
            except Exception:
                logger.exception("sending the reply to ticket %s failed", ticket_id)
                # Slack may have posted it and answered after the client gave up.
                reply_ts = await self._sent_reply(ticket, claimed.text)
                if reply_ts is None:
                    await self.store.finish_draft(ticket_id, sent_ts=None)
                    raise BadRequestError(
                        f"Slack did not take the reply to ticket #{ticket_id}; it is still a"
                        " draft. Try again."
                    ) from None
        await self.store.finish_draft(ticket_id, sent_ts=reply_ts)
        await self.store.audit(
            ticket_id=ticket_id, actor=user, action="reply_sent", after=claimed.text
        )
        await self._refresh(ticket_id)

    async def _sent_reply(self, ticket: StoredTicket, text: str) -> str | None:
        """The ts of the reply already in the customer's thread, None if absent or unknown."""
        try:
            return await self._outbox.find_reply(ticket.channel, ticket.ts, text)
        except Exception:
            logger.exception("could not check whether ticket %s's reply was sent", ticket.id)
            return None

    async def reject(self, ticket_id: int, *, user: str) -> None:
        """Drop the draft: nothing will be sent unless the ticket is drafted again."""
        await self._ticket_for_agent(ticket_id, user, "reject the reply")
        draft = await self.store.draft(ticket_id)
        if draft is None or not await self.store.reject_draft(ticket_id, user):
            status = draft.status if draft else None
            raise BadRequestError(
                _draft_gone(ticket_id, status, draft.decided_by if draft else None)
            )
        await self.store.audit(
            ticket_id=ticket_id, actor=user, action="draft_rejected", before=draft.text
        )
        await self._refresh(ticket_id)

    async def decision_for_agent(self, ticket_id: int, *, user: str) -> Decision:
        """The ticket's decision, for an agent about to reclassify it."""
        ticket = await self._ticket_for_agent(ticket_id, user, "reclassify")
        if ticket.decision is None:
            raise BadRequestError(f"Ticket #{ticket_id} is not classified yet; try again soon.")
        return ticket.decision

    async def notify(self, user: str, text: str) -> None:
        """Tell a person the outcome of something they did where no reply channel exists."""
        await self._outbox.direct_message(user, Note(text))

    async def draft_for_edit(self, ticket_id: int, *, user: str) -> str:
        """The pending draft, for an agent about to edit it."""
        await self._ticket_for_agent(ticket_id, user, "edit the reply")
        draft = await self.store.draft(ticket_id)
        if draft is None or draft.status != "pending":
            raise BadRequestError(
                _draft_gone(
                    ticket_id, draft.status if draft else None, draft.decided_by if draft else None
                )
            )
        return draft.text

    async def escalate(self, ticket_id: int, *, user: str) -> None:
        """An agent asks for the on-call: page now, with who asked; once per agent and ticket."""
        ticket = await self._ticket_for_agent(ticket_id, user, "escalate")
        reasons = tuple(r.detail for r in ticket.escalation.reasons) if ticket.escalation else ()
        try:
            sent = await self._page(ticket_id, reasons=reasons, asked_by=user)
        except PageNotSentError:
            # Slack's refusal; the store's own failures are the listener's to report.
            logger.exception("escalating ticket %s failed", ticket_id)
            raise BadRequestError(
                f"Slack did not take the page for ticket #{ticket_id}; try Escalate again."
            ) from None
        if sent == 0 and await self.store.posts(ticket_id):
            # A second press, or a replayed request: the on-call has this agent's page.
            raise BadRequestError(
                f"You escalated ticket #{ticket_id} already; its on-call has your page."
            )
        await self.store.audit(ticket_id=ticket_id, actor=user, action="escalated")

    async def reclassify(
        self,
        ticket_id: int,
        *,
        user: str,
        category: str | None = None,
        priority: str | None = None,
        team: str | None = None,
        sentiment: str | None = None,
    ) -> str:
        """An agent's correction: move or update the post, and learn it as a labeled example.

        Only the fields the agent named are learnt (routing.corrections).
        """
        config = self.config
        await self._require_any_agent(user, "reclassify tickets")
        correction = Correction(
            category=category, priority=priority, team=team, sentiment=sentiment
        )
        problem = correction.problem(config)
        if problem is not None:
            raise BadRequestError(problem)
        if correction.empty:
            raise BadRequestError(
                "Say what to change: category=.., priority=.., team=.. or sentiment=.."
            )
        ticket = await self._ticket_for_agent(ticket_id, user, "reclassify")
        if ticket.status == "withdrawn":
            # The customer deleted the message: a new post would bring the ticket back.
            raise BadRequestError(
                f"Ticket #{ticket_id} was withdrawn (the customer deleted the message):"
                " there is nothing to reclassify."
            )
        if ticket.decision is None or ticket.escalation is None:
            raise BadRequestError(
                f"Ticket #{ticket_id} is not classified yet; try again in a moment."
            )
        async with self._lock(ticket_id):
            # Read again under the lock: an edit or a worker may have changed it meanwhile.
            current = await self.store.ticket(ticket_id)
            assert current is not None  # noqa: S101  # tickets are never deleted
            ticket = current
            old, old_escalation = ticket.decision, ticket.escalation
            assert old is not None  # noqa: S101  # checked above; never unset
            assert old_escalation is not None  # noqa: S101
            decision = corrected_decision(old, correction, config)
            new_team = decision.team
            # The customer's thread replies count too: a reclassify cannot drop their "urgent".
            whole = await self._with_replies(ticket)
            escalation = escalate(whole, decision, self.pipeline.rules(whole.text), config)
            await self.store.set_decision(ticket_id, decision, escalation)
            draft = await self.store.draft(ticket_id)
            redraft = draft is not None and draft.status == "pending" and draft.source != "agent"
            if redraft:
                fresh = await self.pipeline.draft(redact(ticket.text).text, decision)
                await self.store.set_draft(ticket_id, text=fresh.text, source=fresh.source)
            # Where it goes: the new team when the agent moved it (a category or team named);
            # a priority or sentiment fix keeps every post it has (a multi-issue ticket's too).
            moves = correction.category is not None or correction.team is not None
            teams = (
                {new_team}
                if moves
                else {p.team for p in await self.store.posts(ticket_id)} or {new_team}
            )
            try:
                await self._place(ticket_id, teams, moved_by=user)
            except Exception:
                logger.exception("reclassifying ticket %s: the new post failed", ticket_id)
                # Undone: the ticket stays what and where it was, and nothing is learnt.
                await self.store.set_decision(ticket_id, old, old_escalation)
                if redraft and draft is not None:
                    await self.store.set_draft(ticket_id, text=draft.text, source=draft.source)
                raise BadRequestError(
                    f"Slack did not take the post in {new_team}'s channel; ticket #{ticket_id}"
                    " is unchanged. Try again."
                ) from None
            example = correction_example(ticket.text, correction)
            await self.store.add_correction(example, ticket_id=ticket_id, by=user)
            self.pipeline.learn(example)
            await self.store.audit(
                ticket_id=ticket_id,
                actor=user,
                action="reclassified",
                before=_labels(old),
                after=_labels(decision),
            )
        await self._page_if_needed(ticket_id)
        return (
            f"Ticket #{ticket_id} is now {decision.category} / {decision.priority} / "
            f"{decision.sentiment} for {decision.team}; the next tickets learn from it."
        )

    async def set_oncall(self, team: str, people: Sequence[str], *, user: str) -> str:
        """Change a team's on-call (or show it when people is empty)."""
        # Who is on call is for agents only, as are the team names.
        await self._require_any_agent(user, "see or change who is on call")
        if team not in self.config.team_names:
            raise BadRequestError(
                f"Unknown team `{team}`: use one of {', '.join(self.config.team_names)}."
            )
        current = await self.oncall(team)
        if not people:
            shown = _people(current) or "nobody (the fallback on-call is paged)"
            return f"On-call for {team}: {shown}."
        await self._require_agent(user, team, f"change the on-call of {team}")
        await self.store.set_oncall(team, people, set_by=user)
        await self.store.audit(
            ticket_id=None,
            actor=user,
            action="oncall_changed",
            before={"team": team, "people": list(current)},
            after={"team": team, "people": list(people)},
        )
        return f"On-call for {team} is now {_people(people)}."

    async def oncall(self, team: str) -> tuple[str, ...]:
        """Who is paged for a team: `/triage oncall`'s choice, else the config's."""
        chosen = await self.store.oncall(team)
        if chosen is not None:
            return chosen
        settings = self.slack.teams.get(team)
        return settings.oncall if settings is not None else ()

    async def status(self, ticket_id: int, *, user: str) -> str:
        """A ticket's state in a few lines, for an agent."""
        await self._require_any_agent(user, "see ticket status")
        ticket = await self.store.ticket(ticket_id)
        if ticket is None:
            raise BadRequestError(f"There is no ticket #{ticket_id}.")
        lines = [f"Ticket #{ticket.id}: {ticket.status}"]
        if ticket.decision is not None:
            d = ticket.decision
            lines.append(
                f"{d.category} / {d.priority} / {d.team}, {d.sentiment}, "
                f"confidence {d.confidence:.2f}, decided by {DECIDED_BY[d.source]}"
            )
        if ticket.escalation is not None and ticket.escalation.needs_human:
            lines.append("Needs a human: " + "; ".join(r.detail for r in ticket.escalation.reasons))
        draft = await self.store.draft(ticket.id)
        # A withdrawn ticket's unsent draft is dropped with it: nothing is pending.
        dropped = ticket.status == "withdrawn" and draft is not None and draft.status == "pending"
        if draft is not None and not dropped:
            by = f" by <@{draft.decided_by}>" if draft.decided_by else ""
            lines.append(f"Draft: {draft.status}{by}")
        # Page keys are "team", "team:critical" or "team:escalated:<n>": show the teams.
        paged = dict.fromkeys(key.split(":")[0] for key in await self.store.pages(ticket.id))
        if paged:
            lines.append(f"Paged: {', '.join(paged)}")
        for post in await self.store.posts(ticket.id, active_only=False):
            lines.append(f"Post in <#{post.channel}>: {post.status}")
        return "\n".join(lines)

    async def stats(self, *, user: str) -> str:
        """Today's figures (UTC): tickets by category and priority, rates, time to approval."""
        await self._require_any_agent(user, "see stats")
        today = datetime.now(UTC).date()
        day = await self.store.day_stats(today)
        if day.tickets == 0:
            return f"No tickets today ({today.isoformat()}, UTC)."

        def counts(by: dict[str, int], order: Sequence[str]) -> str:
            return ", ".join(f"{name} {by[name]}" for name in order if name in by) or "none"

        approval = (
            f"{day.drafts_sent}/{day.drafts_decided} ({day.drafts_sent / day.drafts_decided:.0%})"
            if day.drafts_decided
            else "no drafts decided yet"
        )
        median = (
            f"{statistics.median(day.minutes_to_approval):.1f} min"
            if day.minutes_to_approval
            else "n/a"
        )
        return "\n".join(
            [
                f"Today ({today.isoformat()}, UTC): {day.tickets}"
                f" ticket{'' if day.tickets == 1 else 's'}",
                f"By category: {counts(day.by_category, self.config.category_names)}",
                f"By priority: {counts(day.by_priority, self.config.priority_names)}",
                f"Needs a human: {day.needs_human}/{day.tickets}"
                f" ({day.needs_human / day.tickets:.0%})",
                f"Drafts approved: {approval}",
                f"Median time to approval: {median}",
            ]
        )

    async def find_ticket(self, reference: str, *, user: str, action: str) -> int:
        """A ticket id from `#12`, `12`, or a link to the customer's message or a team post.

        Only for agents: anyone else is refused before the reference is read, so they learn
        nothing, not even whether the ticket or the linked message exists.
        """
        await self._require_any_agent(user, action)
        text = reference.strip().strip("<>").split("|")[0]
        number = re.fullmatch(r"#?([0-9]{1,12})", text)  # ASCII digits only: '#٣' is no ticket
        if number:
            return int(number.group(1))
        link = re.search(r"/archives/([A-Z0-9]+)/p(\d{10})(\d{6})", text)
        if link:
            channel, ts = link.group(1), f"{link.group(2)}.{link.group(3)}"
            thread = re.search(r"thread_ts=(\d+\.\d+)", text)
            ticket = await self.store.ticket_at(channel, thread.group(1) if thread else ts)
            if ticket is not None:
                return ticket.id
            post = await self.store.post_at(channel, ts)
            if post is not None:
                return post.ticket_id
            raise BadRequestError("That link is not a ticket or a ticket's post.")
        raise BadRequestError(
            f"`{reference}` is not a ticket: give its number (#12) or a message link."
        )

    # --- authorization ------------------------------------------------------------------

    async def _ticket_for_agent(self, ticket_id: int, user: str, action: str) -> StoredTicket:
        # Someone who is no agent at all learns nothing: not whether the ticket exists, nor
        # which team has it.
        await self._require_any_agent(user, action)
        ticket = await self.store.ticket(ticket_id)
        if ticket is None:
            raise BadRequestError(f"There is no ticket #{ticket_id}.")
        teams = {post.team for post in await self.store.posts(ticket_id)}
        if ticket.decision is not None:
            teams.add(ticket.decision.team)
        for team in teams:
            if await self.is_agent(user, team):
                return ticket
        self._log_refusal(user, action, ticket_id)
        raise NotAllowedError(
            f"Only agents of {' or '.join(sorted(teams)) or 'the ticket team'} can {action}."
        )

    async def _require_agent(self, user: str, team: str, action: str) -> None:
        if not await self.is_agent(user, team):
            self._log_refusal(user, action, None)
            raise NotAllowedError(f"Only agents of {team} can {action}.")

    async def _require_any_agent(self, user: str, action: str) -> None:
        if not await self._is_any_agent(user):
            self._log_refusal(user, action, None)
            raise NotAllowedError(f"Only agents can {action}.")

    def _log_refusal(self, user: str, action: str, ticket_id: int | None) -> None:
        logger.warning("refused: user %s may not %s (ticket %s)", user, action, ticket_id)

    async def _is_any_agent(self, user: str | None) -> bool:
        if user is None:
            return False
        return any([await self.is_agent(user, team) for team in self.slack.teams])

    async def is_agent(self, user: str, team: str) -> bool:
        """True if user is one of the team's agents, directly or through a user group."""
        settings = self.slack.teams.get(team)
        if settings is None:
            return False
        return user in await self._expand(settings.agents)

    async def _expand(self, people: Sequence[str]) -> set[str]:
        users = {person for person in people if not person.startswith("S")}
        for group in (person for person in people if person.startswith("S")):
            users.update(await self._group(group))
        return users

    async def _group(self, group: str) -> tuple[str, ...]:
        cached = self._groups.get(group)
        if cached is not None and self._clock() - cached[0] < GROUP_CACHE_SECONDS:
            return cached[1]
        try:
            members = await self._outbox.group_members(group)
        except Exception:
            logger.exception("could not read the members of user group %s", group)
            return cached[1] if cached else ()
        self._groups[group] = (self._clock(), members)
        return members

    # --- posting, refreshing, paging ----------------------------------------------------

    def _team_channel(self, team: str) -> str:
        return self.slack.teams[team].channel

    async def _card(self, ticket_id: int, team: str, post: StoredPost | None = None) -> TicketCard:
        ticket = await self.store.ticket(ticket_id)
        assert ticket is not None  # noqa: S101  # callers hold a stored ticket's id
        assert ticket.decision is not None  # noqa: S101  # cards are drawn after triage
        assert ticket.escalation is not None  # noqa: S101
        draft = await self.store.draft(ticket_id)
        related: list[tuple[str, str]] = []
        for other in await self.store.posts(ticket_id):
            if other.team != team:
                link = await self._outbox.permalink(other.channel, other.ts)
                if link:
                    related.append((other.team, link))
        moved = post is not None and post.status == "moved"
        part = ticket.decision.part_for(team)
        # A team's post of a multi-issue message shows its own part's category, not the whole's.
        shown = (
            ticket.decision.model_copy(update={"category": part.category, "team": part.team})
            if part is not None
            else ticket.decision
        )
        return TicketCard(
            ticket_id=ticket_id,
            team=team,
            channel=self._team_channel(team),
            emoji=self.config.priority(ticket.decision.priority).emoji,
            text=ticket.text,
            author=ticket.author,
            permalink=ticket.permalink,
            decision=shown,
            escalation=ticket.escalation,
            draft=draft.text if draft else None,
            draft_status=draft.status if draft else None,
            decided_by=draft.decided_by if draft else None,
            moved_to=post.moved_to if post is not None and moved else None,
            moved_by=post.moved_by if post is not None and moved else None,
            withdrawn=ticket.status == "withdrawn",
            related=tuple(related),
            part=part.text if part is not None else None,
            language=ticket.decision.language,
            english_draft=english_draft_for(
                self.config, ticket.decision.language, draft.source if draft else None
            ),
            public_id=await self.store.public_id(ticket_id),
        )

    async def _refresh(self, ticket_id: int, *, include_inactive: bool = False) -> None:
        """Redraw every post of a ticket from what is stored."""
        for post in await self.store.posts(ticket_id, active_only=not include_inactive):
            await self._redraw(ticket_id, post)

    async def _redraw(self, ticket_id: int, post: StoredPost) -> None:
        """Redraw one post; best effort: the store holds the state, the next redraw shows it."""
        try:
            card = await self._card(ticket_id, post.team, post)
            await self._outbox.update_card(PostRef(post.channel, post.ts), card)
        except Exception:
            logger.exception("could not redraw ticket %s's post in %s", ticket_id, post.team)

    async def _place(self, ticket_id: int, teams: set[str], *, moved_by: str | None) -> None:
        """Make the ticket's live posts be in exactly these teams' channels.

        New posts come first: if Slack refuses one, this raises with the old posts still live.
        """
        before = await self.store.posts(ticket_id)
        for team in sorted(teams - {post.team for post in before}):
            ref = await self._outbox.post_card(await self._card(ticket_id, team))
            await self.store.add_post(ticket_id, team=team, channel=ref.channel, ts=ref.ts)
        target = sorted(teams)[0]
        for post in before:
            if post.team in teams:
                continue
            await self.store.set_post_status(
                post.id, "moved", moved_to=self._team_channel(target), moved_by=moved_by
            )
            await self.store.audit(
                ticket_id=ticket_id,
                actor=moved_by or "customer",
                action="moved",
                before={"team": post.team},
                after={"team": target},
            )
            moved = await self.store.post_at(post.channel, post.ts)
            assert moved is not None  # noqa: S101  # just updated
            await self._redraw(ticket_id, moved)
        # The live posts show the new decision and link only to each other.
        await self._refresh(ticket_id)

    async def _page_if_needed(self, ticket_id: int) -> None:
        """Page the on-call if the ticket needs a human; a page Slack refuses is retried."""
        ticket = await self.store.ticket(ticket_id)
        if ticket is None:
            return
        try:
            # A page claimed earlier and not all sent (a crash, a refusal, a late answer).
            for held_ticket, key in sorted(self._resume):
                if held_ticket == ticket_id:
                    await self._resume_page(ticket_id, key)
            if ticket.escalation is None or ticket.status == "withdrawn":
                return
            if not ticket.escalation.needs_human:
                return
            reasons = tuple(reason.detail for reason in ticket.escalation.reasons)
            await self._page(ticket_id, reasons=reasons)
        except Exception:
            logger.exception("paging for ticket %s failed; trying again later", ticket_id)
            self._retry_later(ticket_id)

    async def _page(
        self, ticket_id: int, *, reasons: Sequence[str], asked_by: str | None = None
    ) -> int:
        """Page each posted team's on-call in the post's thread, and by DM when critical.

        Once per ticket and team, and once more if the ticket becomes critical later; an
        agent's Escalate (asked_by) pages once per agent. A page is claimed, sent, then marked
        sent; one this process could not finish is finished here (Slack's thread checked first).
        Pages to the same on-call about the same customer within BURST_WINDOW_SECONDS of a
        first one mention nobody: the first page's thread counts them. Returns the pages sent.
        """
        ticket = await self.store.ticket(ticket_id)
        assert ticket is not None  # noqa: S101  # only routed tickets are paged
        assert ticket.decision is not None  # noqa: S101
        critical = self.config.priority(ticket.decision.priority).always_human
        sent = 0
        for post in await self.store.posts(ticket_id):
            people = tuple(await self.oncall(post.team) or self.slack.fallback_oncall)
            if not people:
                logger.error("ticket %s needs a human but %s has no on-call", ticket_id, post.team)
            if asked_by is not None:
                key = f"{post.team}:escalated:{asked_by}"  # once per agent: a replay pages no one
            else:
                key = post.team + (":critical" if critical else "")
            ref = PostRef(post.channel, post.ts)
            burst = None if asked_by is not None else self._burst_for(ticket, people, critical)
            started = None
            if burst is None and asked_by is None and people and ticket.author is not None:
                # Set before anything awaits: the same customer's next ticket sees it.
                started = _Burst(ticket_id, ref, key, 0, critical)
                self._start_burst(ticket.author, people, started)
            claimed = await self.store.claim_page(
                ticket_id,
                team=key,
                people=() if burst is not None else people,
                reasons=reasons,
                direct=critical and burst is None,
                asked_by=asked_by,
            )
            if not claimed:
                # Paged long ago, not now: this page starts no burst.
                whose = (ticket.author or "", people)
                if started is not None and self._bursts.get(whose) is started:
                    del self._bursts[whose]
                sent += await self._resume_page(ticket_id, key)
                continue
            page = await self.store.page(ticket_id, team=key)
            assert page is not None  # noqa: S101  # claimed just now
            self._claims[(ticket_id, key)] = page.claimed_at
            note = None
            if burst is not None:
                note = Note(
                    f"Ticket #{ticket_id} needs a human: another ticket from this customer"
                    f" within {BURST_WINDOW_SECONDS / 60:.0f} minutes of ticket"
                    f" #{burst.ticket_id}, whose on-call was paged: not paged again.",
                    details=tuple(reasons),
                )
            await self._deliver_page(ticket_id, ref, page, resume=False, note=note)
            sent += 1
            if burst is not None:
                await self._count_in_burst(burst, ticket_id)
        return sent

    def _burst_for(
        self, ticket: StoredTicket, people: tuple[str, ...], critical: bool
    ) -> _Burst | None:
        """The burst this page joins: the same customer and on-call, another ticket, in time."""
        if ticket.author is None or not people:
            return None
        burst = self._bursts.get((ticket.author, people))
        if burst is None or self._clock() - burst.started > BURST_WINDOW_SECONDS:
            return None
        if burst.ticket_id == ticket.id or (critical and not burst.critical):
            return None  # the ticket's own other post, or more urgent than what was paged
        return burst

    def _start_burst(self, author: str, people: tuple[str, ...], burst: _Burst) -> None:
        current = self._bursts.get((author, people))
        expired = current is None or self._clock() - current.started > BURST_WINDOW_SECONDS
        if expired or (burst.critical and current is not None and not current.critical):
            burst.started = self._clock()
            self._bursts[(author, people)] = burst

    async def _count_in_burst(self, burst: _Burst, ticket_id: int) -> None:
        """One follow-up in the first page's thread counts the burst's other tickets."""
        burst.more.append(ticket_id)
        try:
            async with burst.writing:
                count = len(burst.more)  # read under the lock: the last writer shows them all
                listed = ", ".join(f"#{number}" for number in sorted(burst.more)[-20:])
                note = Note(
                    f"…and {count} more ticket{'' if count == 1 else 's'} from this customer"
                    f" since this page, not paged again: {listed}."
                )
                if burst.followup is None:
                    ts = await self._outbox.post_page(
                        burst.post, note, ticket_id=burst.ticket_id, page=f"{burst.key}:more"
                    )
                    burst.followup = PostRef(burst.post.channel, ts)
                else:
                    await self._outbox.update_note(burst.followup, note)
        except Exception:
            logger.exception(
                "could not count ticket %s under ticket %s", ticket_id, burst.ticket_id
            )

    async def _resume_page(self, ticket_id: int, key: str) -> int:
        """Finish a page this process holds (1), or nothing (0) if it holds none by that key."""
        if (ticket_id, key) not in self._resume:
            return 0
        self._resume.discard((ticket_id, key))  # this task's while it sends (no await before)
        async with self._claiming:
            page = await self.store.page(ticket_id, team=key)
            taken_over = page is not None and page.claimed_at != self._claims.get(
                (ticket_id, key), page.claimed_at
            )
        ticket = await self.store.ticket(ticket_id)
        if page is None or page.sent_at is not None or ticket is None:
            self._claims.pop((ticket_id, key), None)
            return 0
        if taken_over:
            # Another replica's sweep took it over (this one stalled past a lease): theirs.
            logger.warning("ticket %s's page %s was taken over by another replica", ticket_id, key)
            self._claims.pop((ticket_id, key), None)
            return 0
        if ticket.status == "withdrawn":
            await self.store.release_page(ticket_id, team=key)
            self._claims.pop((ticket_id, key), None)
            return 0
        posts = await self.store.posts(ticket_id, active_only=False)
        post = next((p for p in posts if p.team == page.team and p.status == "active"), None)
        post = post or next((p for p in reversed(posts) if p.team == page.team), None)
        if post is None:
            logger.error("ticket %s's page %s has no post to go under", ticket_id, key)
            return 0
        await self._deliver_page(ticket_id, PostRef(post.channel, post.ts), page, resume=True)
        return 1

    async def _deliver_page(
        self,
        ticket_id: int,
        post: PostRef,
        page: StoredPage,
        *,
        resume: bool,
        note: Note | None = None,
    ) -> None:
        """Send a claimed page's note and DMs, then mark it sent; kept for a retry if it fails."""
        if note is None:
            headline = f"Ticket #{ticket_id} needs a human:"
            if page.asked_by is not None:
                headline += f" escalated by <@{page.asked_by}>" + (";" if page.reasons else "")
            note = Note(headline, mentions=page.people, details=page.reasons)
        try:
            if page.noted_at is None:
                try:
                    await self._outbox.post_page(
                        post, note, ticket_id=ticket_id, page=page.key, resume=resume
                    )
                except Exception:
                    # Slack may have posted it and answered too late: look before retrying.
                    found = await self._outbox.find_page(post, ticket_id=ticket_id, page=page.key)
                    if found is None:
                        raise
                    logger.warning("ticket %s's page %s was sent after all", ticket_id, page.key)
                await self.store.mark_page_noted(ticket_id, team=page.key)
            if page.direct:
                await self._direct_page(ticket_id, post, page, resume=resume)
            await self.store.mark_page_sent(ticket_id, team=page.key)
            self._claims.pop((ticket_id, page.key), None)
        except Exception as error:
            self._resume.add((ticket_id, page.key))
            raise PageNotSentError(f"ticket {ticket_id}'s page {page.key} is not sent") from error

    async def _direct_page(
        self, ticket_id: int, post: PostRef, page: StoredPage, *, resume: bool
    ) -> None:
        """A critical ticket's DM to each on-call person, once per ticket, claimed then sent.

        A DM claimed and not marked sent (a crash or a failure while sending) is sent again on
        resume: the bot cannot read DMs, so a DM is sent at least once, rarely twice.
        """
        ticket = await self.store.ticket(ticket_id)
        assert ticket is not None  # noqa: S101  # only routed tickets are paged
        assert ticket.decision is not None  # noqa: S101
        dm = DirectPage(
            ticket_id=ticket_id,
            team=page.team,
            priority=ticket.decision.priority,
            emoji=self.config.priority(ticket.decision.priority).emoji,
            customer=ticket.author,
            text=ticket.text,
            reasons=page.reasons,
            link=await self._outbox.permalink(post.channel, post.ts),
        )
        known = await self.store.direct_pages(ticket_id)
        failed = 0
        for user in sorted(await self._expand(page.people)):
            if user in known:
                key, sent = known[user]
                if sent or not resume or key != page.key:
                    continue  # sent, or another page of the ticket has it
            elif not await self.store.claim_direct_page(ticket_id, person=user, page=page.key):
                continue
            try:
                await self._outbox.direct_page(user, dm)
            except Exception:
                logger.exception("could not DM %s about critical ticket %s", user, ticket_id)
                failed += 1
                continue
            await self.store.mark_direct_page_sent(ticket_id, person=user)
        if failed:
            raise PageNotSentError(f"{failed} DMs of ticket {ticket_id}'s page were not sent")


def _teams(triage: Triage) -> tuple[str, ...]:
    """The teams a ticket is posted to: its own, and the runner-up's on a close call."""
    teams = triage.escalation.teams or (triage.decision.team,)
    return (triage.decision.team, *(team for team in teams if team != triage.decision.team))


def _reply_note(text: str) -> Note:
    return Note("The customer replied in their thread:", quote=text)


def _as_ticket(ticket: StoredTicket) -> Ticket:
    return Ticket(
        text=ticket.text,
        author=ticket.author,
        channel=ticket.channel,
        ts=ticket.ts,
        received_at=ticket.received_at,
    )


def _ts_time(ts: str) -> datetime:
    try:
        return datetime.fromtimestamp(float(ts), UTC)
    except (ValueError, OverflowError):
        return utc_now()


def _labels(decision: Decision) -> dict[str, str]:
    return {
        "category": decision.category,
        "priority": decision.priority,
        "team": decision.team,
        "sentiment": decision.sentiment,
    }


def _merge_reasons(old: Escalation, new: Escalation) -> tuple[object, ...]:
    seen = {reason.code for reason in old.reasons}
    return (*old.reasons, *(reason for reason in new.reasons if reason.code not in seen))


def _people(people: Sequence[str]) -> str:
    return ", ".join(f"<!subteam^{p}>" if p.startswith("S") else f"<@{p}>" for p in people)


def _draft_gone(ticket_id: int, status: str | None, by: str | None) -> str:
    who = f" by <@{by}>" if by else ""
    if status in ("sending", "sent"):
        return f"The reply to ticket #{ticket_id} was already sent{who}."
    if status == "rejected":
        return f"The draft for ticket #{ticket_id} was rejected{who}."
    return f"Ticket #{ticket_id} has no draft to act on."
