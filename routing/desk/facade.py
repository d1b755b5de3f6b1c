"""The desk facade: the one object the edge calls, delegating to the parts beside it.

The Slack edge turns events into calls on `Desk` and implements `Outbox` (how a card, a note, a
page or a reply reaches people). Every action is stored before it is shown, so a retried event, a
second agent or a restart finds the work already done.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from routing.cascade import Pipeline
from routing.config import SlackConfig, TriageConfig
from routing.desk.actions import AgentActions
from routing.desk.agents import Agents
from routing.desk.follow_ups import FollowUps, reply_note
from routing.desk.limits import (
    CATCH_UP_OVERLAP_SECONDS,
    CATCH_UP_WINDOW_SECONDS,
    EVENT_MEMORY,
    LEASE_SECONDS,
    OPS_ALERT_INTERVAL_SECONDS,
    READ_BACK_RETRY_DELAYS,
    ROUTING_RETRY_DELAYS,
    START_SWEEP_BATCH,
    UNPAGED_LOOKBACK,
)
from routing.desk.paging import Pager
from routing.desk.placement import Placement
from routing.desk.reports import Reports
from routing.desk.tickets import TicketLocks
from routing.desk.tickets import with_replies as ticket_with_replies
from routing.desk.types import (
    CustomerMessage,
    Note,
    Outbox,
)
from routing.desk.work_queue import Placing, Send, WorkQueue
from routing.errors import StoreUnavailableError
from routing.models import Decision, Triage
from routing.ports import TicketStore
from routing.records import StoredPost, StoredTicket, TicketStatus, utc_now

logger = logging.getLogger(__name__)


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
        # Leases are compared across processes: they read this wall clock, never the monotonic.
        self._now = now
        # Who holds this desk's leases (host, process, a nonce): fresh for each desk unless given.
        self.replica = replica or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._lease = timedelta(seconds=lease_seconds)
        self._agents = Agents(config=config, slack=slack, store=store, groups=outbox, clock=clock)
        self._locks = TicketLocks()
        self._placement = Placement(
            config=config, slack=slack, store=store, outbox=outbox, alert_ops=self.alert_ops
        )
        self._reports = Reports(config=config, store=store, agents=self._agents)
        self._pager = Pager(
            config=config,
            slack=slack,
            store=store,
            outbox=outbox,
            oncall=self._agents,
            clock=clock,
            requeue=self._put,
            retry_later=self._retry_later,
        )
        self._queue = WorkQueue(
            store=store,
            replica=self.replica,
            lease=self._lease,
            now=now,
            retry_delays=retry_delays,
            pages=self._pager,
            decide=self._decide,
            post=self._post_job,
            finish=self._finish,
        )
        self._follow_ups = FollowUps(
            config=config,
            slack=slack,
            store=store,
            outbox=outbox,
            pipeline=pipeline,
            agents=self._agents,
            placement=self._placement,
            pager=self._pager,
            locks=self._locks,
            clock=clock,
            receive=self.receive,
            classify=self._classify,
        )
        self._actions = AgentActions(
            config=config,
            slack=slack,
            store=store,
            outbox=outbox,
            pipeline=pipeline,
            agents=self._agents,
            placement=self._placement,
            pager=self._pager,
            locks=self._locks,
        )
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
        self._queue.start_workers(self.slack.workers)
        for ticket_id in await self.store.sending_drafts():
            await self._actions.settle_interrupted_reply(ticket_id)
        # Every ticket nobody routes: new ones of any age, and leases that ran out (a replica
        # that died, or this one's last run). Other replicas starting now take other rows.
        while await self._queue.sweep(new_before=self._now(), limit=START_SWEEP_BATCH):
            pass
        # A routed ticket needs no routing, but its page may have failed: the worker pages it.
        for ticket_id in await self.store.unpaged_tickets(since=utc_now() - UNPAGED_LOOKBACK):
            logger.info("paging ticket %s, which the last run could not page", ticket_id)
            self._put(ticket_id)
        # Pages claimed before this start and never sent: its claimer stopped (see recover_pages).
        await self.recover_pages(claimed_before=started)
        self._queue.keep_leases()

    async def recover_pages(self, *, claimed_before: datetime) -> int:
        """Take over the pages claimed before a time and never sent, and queue their tickets."""
        return await self._pager.recover_pages(claimed_before=claimed_before)

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
        await self._queue.drain()

    async def stop(self) -> None:
        """Stop the workers and end this replica's leases: any replica routes the rest."""
        tasks = [*self._queue.tasks, *self._background]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        # Those given up on after their retries too: all of this replica's leases end, and
        # nothing queued survives: a start takes the tickets up again from the store, and its
        # unsent pages too (claims no longer renewed, so not skipped as this one's).
        await self._queue.release()
        self._pager.clear()

    def _put(self, ticket_id: int, claimed: TicketStatus | None = None) -> None:
        """Queue a ticket to decide, once."""
        self._queue.put(ticket_id, claimed)

    def _retry_later(self, ticket_id: int) -> None:
        self._queue.retry_later(ticket_id)

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
            await self._follow_ups.thread_reply(message, message.thread_ts)
            return None
        if await self._agents.is_any_agent(message.user):
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
        async with self._locks.lock(ticket_id):
            if ticket_id in self._queue.placing:
                return  # decided already; its posts are queued
            now = self._now()
            previous = claimed or await self.store.claim_for_routing(
                ticket_id, holder=self.replica, now=now, until=now + self._lease
            )
            if previous is None:
                self._queue.held.discard(ticket_id)
                ticket = await self.store.ticket(ticket_id)
                if ticket is not None and ticket.status == "routed":
                    # Routed already: a requeue after a page Slack refused pages again (once).
                    await self._paged(ticket_id)
                return  # else another replica holds it, or the customer withdrew it
            self._queue.held.add(ticket_id)
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
            placing = Placing(
                recovering=previous == "routing",
                urgency=-self.config.priority_rank(decided.decision.priority),
                received=decided.received_at.timestamp(),
            )
            self._queue.placing[ticket_id] = placing
            try:
                queued = await self._queue_posts(ticket_id, decided, placing)
            finally:
                if not placing.waiting:
                    self._queue.placing.pop(ticket_id, None)
            if not queued:
                await self._mark_routed(ticket_id)
        if ticket_id not in self._queue.placing:
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

    async def _queue_posts(self, ticket_id: int, ticket: StoredTicket, placing: Placing) -> bool:
        """Queue a post in each wanted team's channel that lacks one; False if none lacks one."""
        posted = {post.team for post in await self.store.posts(ticket_id)}
        missing = [team for team in self._wanted_teams(ticket) if team not in posted]
        if not missing and not self._wanted_teams(ticket):
            logger.info("ticket %s needs no action: not posted", ticket_id)
        for team in missing:
            placing.waiting.add(team)
            self._queue.send(
                self._placement.team_channel(team),
                Send(
                    placing.urgency,
                    placing.received,
                    self._queue.next_seq(),
                    ticket_id=ticket_id,
                    team=team,
                    kind="post",
                ),
            )
        return bool(missing)

    async def _post_job(self, job: Send) -> None:
        """Post a ticket's card in one team's channel, if it still belongs there."""
        ticket_id, team = job.ticket_id, job.team
        placing = self._queue.placing.get(ticket_id)
        if placing is None:
            return
        try:
            async with self._locks.lock(ticket_id):
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
                    posted = await self._placement.post_once(
                        ticket_id, team, recovering=placing.recovering
                    )
                    if posted is not None:
                        # What the customer added in the thread before the post existed.
                        for reply in await self.store.replies(ticket_id):
                            await self._outbox.post_note(posted, reply_note(reply.text))
        except Exception:
            logger.exception("posting ticket %s in %s failed", ticket_id, team)
            placing.failed = True
        placing.waiting.discard(team)
        if placing.waiting:
            return
        if placing.lost:
            self._queue.placing.pop(ticket_id, None)
            self._queue.held.discard(ticket_id)
        elif placing.failed:
            # Slack down or rate limited past every retry: the whole ticket is tried again.
            self._queue.placing.pop(ticket_id, None)
            self._retry_later(ticket_id)
        else:
            # Its page notes go in this channel's queue at the ticket's priority.
            self._queue.send(
                self._placement.team_channel(team),
                Send(
                    placing.urgency,
                    placing.received,
                    self._queue.next_seq(),
                    ticket_id=ticket_id,
                    team=team,
                    kind="finish",
                ),
            )

    async def _finish(self, ticket_id: int) -> None:
        """Every post of a ticket made: link them, mark it routed, and page if it needs it."""
        placing = self._queue.placing.get(ticket_id)
        if placing is None:
            return
        async with self._locks.lock(ticket_id):
            ticket = await self.store.ticket(ticket_id)
            assert ticket is not None  # noqa: S101  # tickets are never deleted
            # A team that became wanted while the posts waited (an edit) is posted now.
            if ticket.status != "withdrawn" and await self._queue_posts(ticket_id, ticket, placing):
                return
            self._queue.placing.pop(ticket_id, None)
            await self._placement.link_related(ticket_id)
            await self._mark_routed(ticket_id)
        await self._paged(ticket_id)

    async def _mark_routed(self, ticket_id: int) -> None:
        ticket = await self.store.ticket(ticket_id)
        if ticket is not None and ticket.status != "withdrawn":
            await self.store.mark_routed(ticket_id)
        self._queue.held.discard(ticket_id)

    async def _paged(self, ticket_id: int) -> None:
        """Page if needed; the ticket's retries are done unless the page asked for one."""
        attempt = self._queue.retries.get(ticket_id)
        await self._pager.page_if_needed(ticket_id)
        if self._queue.retries.get(ticket_id) == attempt:
            self._queue.retries.pop(ticket_id, None)

    async def _classify(self, ticket_id: int) -> tuple[StoredTicket, Triage]:
        """Run the pipeline on the stored text; keep every layer's output and a fresh draft."""
        ticket = await self.store.ticket(ticket_id)
        assert ticket is not None  # noqa: S101  # callers hold a stored ticket's id
        triage = await self.pipeline.triage(await ticket_with_replies(self.store, ticket))
        await self.store.record_triage(
            ticket_id,
            layers=triage.layers,
            decision=triage.decision,
            escalation=triage.escalation,
        )
        # Replaces a pending or rejected draft only: a sent reply stays what was sent.
        await self.store.set_draft(ticket_id, text=triage.draft.text, source=triage.draft.source)
        return ticket, triage

    # --- follow-ups (routing.desk.follow_ups) ------------------------------------------

    async def edited(self, channel: str, ts: str, text: str, previous_text: str | None) -> None:
        """The customer edited a message; unfurls (same text) change nothing."""
        await self._follow_ups.edited(channel, ts, text, previous_text)

    async def reply_edited(self, channel: str, thread_ts: str, ts: str, text: str) -> None:
        """The customer edited a thread reply: shown to the team, and the ticket re-checked."""
        await self._follow_ups.reply_edited(channel, thread_ts, ts, text)

    async def deleted(self, channel: str, ts: str) -> None:
        """The customer deleted their message: the ticket is withdrawn, its posts say so."""
        await self._follow_ups.deleted(channel, ts)

    # --- agents' actions (routing.desk.actions) ---------------------------------------

    async def ticket_for_post(self, channel: str, ts: str) -> StoredPost | None:
        """Our team post at (channel, ts), if it is one."""
        return await self._actions.ticket_for_post(channel, ts)

    async def ticket_for_button(
        self, value: str, *, channel: str | None, ts: str | None, user: str, action: str
    ) -> tuple[int, str]:
        """The ticket a button on the post at (channel, ts) acts on, and its public id."""
        return await self._actions.ticket_for_button(
            value, channel=channel, ts=ts, user=user, action=action
        )

    async def ticket_for_modal(
        self, ticket_id: int, public_id: str | None, *, user: str, action: str
    ) -> None:
        """Refuse a modal opened for a ticket that this database does not know by that id."""
        await self._actions.ticket_for_modal(ticket_id, public_id, user=user, action=action)

    async def react(self, *, user: str, reaction: str, channel: str, ts: str) -> None:
        """An emoji on a team post: approve or reject the draft; other emoji mean nothing."""
        await self._actions.react(user=user, reaction=reaction, channel=channel, ts=ts)

    async def approve(self, ticket_id: int, *, user: str, text: str | None = None) -> None:
        """Send the draft (or an agent's edit of it) to the customer's thread, exactly once."""
        await self._actions.approve(ticket_id, user=user, text=text)

    async def reject(self, ticket_id: int, *, user: str) -> None:
        """Drop the draft: nothing will be sent unless the ticket is drafted again."""
        await self._actions.reject(ticket_id, user=user)

    async def decision_for_agent(self, ticket_id: int, *, user: str) -> Decision:
        """The ticket's decision, for an agent about to reclassify it."""
        return await self._actions.decision_for_agent(ticket_id, user=user)

    async def notify(self, user: str, text: str) -> None:
        """Tell a person the outcome of something they did where no reply channel exists."""
        await self._actions.notify(user, text)

    async def draft_for_edit(self, ticket_id: int, *, user: str) -> str:
        """The pending draft, for an agent about to edit it."""
        return await self._actions.draft_for_edit(ticket_id, user=user)

    async def escalate(self, ticket_id: int, *, user: str) -> None:
        """An agent asks for the on-call: page now, with who asked; once per agent and ticket."""
        await self._actions.escalate(ticket_id, user=user)

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
        """An agent's correction: move or update the post, and learn it as a labeled example."""
        return await self._actions.reclassify(
            ticket_id,
            user=user,
            category=category,
            priority=priority,
            team=team,
            sentiment=sentiment,
        )

    async def set_oncall(self, team: str, people: Sequence[str], *, user: str) -> str:
        """Change a team's on-call (or show it when people is empty)."""
        return await self._agents.set_oncall(team, people, user=user)

    async def oncall(self, team: str) -> tuple[str, ...]:
        """Who is paged for a team: `/triage oncall`'s choice, else the config's."""
        return await self._agents.oncall(team)

    async def is_agent(self, user: str, team: str) -> bool:
        """True if user is one of the team's agents, directly or through a user group."""
        return await self._agents.is_agent(user, team)

    async def status(self, ticket_id: int, *, user: str) -> str:
        """A ticket's state in a few lines, for an agent."""
        return await self._reports.status(ticket_id, user=user)

    async def stats(self, *, user: str) -> str:
        """Today's figures (UTC): tickets by category and priority, rates, time to approval."""
        return await self._reports.stats(user=user)

    async def find_ticket(self, reference: str, *, user: str, action: str) -> int:
        """A ticket id from `#12`, `12`, or a link to the customer's message or a team post."""
        return await self._reports.find_ticket(reference, user=user, action=action)


def _ts_time(ts: str) -> datetime:
    try:
        return datetime.fromtimestamp(float(ts), UTC)
    except (ValueError, OverflowError):
        return utc_now()
