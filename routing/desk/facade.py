"""The desk facade: the one object the edge calls, delegating to the parts beside it.

The Slack edge turns events into calls on `Desk` and implements `Outbox` (how a card, a note, a
page or a reply reaches people). Every action is stored before it is shown, so a retried event, a
second agent or a restart finds the work already done. `Desk` builds the parts (intake, router,
work queue, placement, paging, follow-ups, agents' actions, agents, reports, ops alerts), hands
each the store, outbox and config it needs and its reading of the desk's one Clock, and starts
and stops them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Sequence
from datetime import datetime, timedelta

from routing.cascade import Pipeline
from routing.config import SlackConfig, TriageConfig
from routing.desk.actions import AgentActions
from routing.desk.agents import Agents
from routing.desk.follow_ups import AfterAck, FollowUps
from routing.desk.intake import Intake
from routing.desk.limits import (
    EVENT_MEMORY,
    LEASE_SECONDS,
    READ_BACK_RETRY_DELAYS,
    ROUTING_RETRY_DELAYS,
    START_SWEEP_BATCH,
    UNPAGED_LOOKBACK,
)
from routing.desk.ops import OpsAlerts
from routing.desk.paging import Pager
from routing.desk.placement import Placement
from routing.desk.reports import Reports
from routing.desk.router import Router
from routing.desk.tickets import TicketLocks
from routing.desk.types import (
    CustomerMessage,
    Outbox,
    StatusReport,
)
from routing.desk.work_queue import ModelJob, Send, WorkQueue
from routing.errors import StoreUnavailableError
from routing.models import Decision, Triage
from routing.ports import Clock, SystemClock, TicketStore
from routing.records import StoredPost, StoredTicket, TicketStatus

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
        clock: Clock | None = None,
        retry_delays: Sequence[float] = ROUTING_RETRY_DELAYS,
        replica: str | None = None,
        lease_seconds: float = LEASE_SECONDS,
        read_back_delays: Sequence[float] = READ_BACK_RETRY_DELAYS,
    ) -> None:
        self.config = config
        self.slack = slack
        self.pipeline = pipeline
        self.store = store
        self._outbox = outbox
        # Each part gets the reading it needs: leases and claims are compared across processes,
        # so they read the wall clock (clock.now); intervals in this process the monotonic one.
        self._clock = clock = clock or SystemClock()
        now, steady = clock.now, clock.monotonic
        # Who holds this desk's leases (host, process, a nonce): fresh for each desk unless given.
        self.replica = replica or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._lease = timedelta(seconds=lease_seconds)
        self._ops = OpsAlerts(config=config, slack=slack, outbox=outbox, clock=steady)
        self._agents = Agents(config=config, slack=slack, store=store, groups=outbox, clock=steady)
        self._locks = TicketLocks()
        self._placement = Placement(
            config=config,
            slack=slack,
            store=store,
            outbox=outbox,
            alert_ops=self.alert_ops,
            post_recorded=self._post_recorded,
        )
        self._reports = Reports(config=config, store=store, agents=self._agents, now=now)
        self._pager = Pager(
            config=config,
            slack=slack,
            store=store,
            outbox=outbox,
            oncall=self._agents,
            clock=steady,
            now=now,
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
            settle_sends=self._settle_stale_replies,
            refine=self._refine,
            refined=self._refined,
            expire_models=self._expire_model_waits,
            urgency=pipeline.urgency,
            acks_first=self._acks_first,
        )
        self._router = Router(
            config=config,
            store=store,
            outbox=outbox,
            pipeline=pipeline,
            placement=self._placement,
            pager=self._pager,
            locks=self._locks,
            queue=self._queue,
            replica=self.replica,
            lease=self._lease,
            now=now,
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
            clock=steady,
            now=now,
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
            now=now,
        )
        self._intake = Intake(
            slack=slack,
            store=store,
            history=outbox,
            agents=self._agents,
            follow_ups=self._follow_ups,
            queue=self._queue,
            ops=self._ops,
            read_back_delays=read_back_delays,
            now=now,
        )

    # --- life cycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Relearn stored corrections, start the workers, and route what a restart left."""
        # Pages claimed before this start are no claim of this process's (see recover_pages).
        started = self._clock.now()
        # The event ids only guard against Slack's retries; a week keeps the file small.
        await self.store.forget_events(before=self._clock.now() - EVENT_MEMORY)
        # One fit for all of them: relearning each in turn took 49 s for 993 corrections.
        self.pipeline.learn_many(await self.store.corrections())
        self._queue.start_workers(self.slack.workers)
        if self.pipeline.refines:
            # The model stage: its own few workers, so posts never wait for the model.
            self._queue.start_model_workers(self.config.llm.concurrent_calls)
        # Replies left "sending" by a run that stopped mid-send, once their claim is older than
        # a live send can take (SEND_STALE_SECONDS): a claim younger than that may be another
        # live replica's send in flight right now. Younger ones are settled by the sweep.
        await self._settle_stale_replies(started - self._queue.send_stale_after)
        # Every ticket nobody routes: new ones of any age, and leases that ran out (a replica
        # that died, or this one's last run). Other replicas starting now take other rows.
        while await self._queue.sweep(new_before=self._clock.now(), limit=START_SWEEP_BATCH):
            pass
        # A routed ticket needs no routing, but its page may have failed: the worker pages it.
        lookback = self._clock.now() - UNPAGED_LOOKBACK
        for ticket_id in await self.store.unpaged_tickets(since=lookback):
            logger.info("paging ticket %s, which the last run could not page", ticket_id)
            self._put(ticket_id)
        # Pages claimed a lease before this start and never sent: their claimer stopped (a live
        # replica renews its claims, and may be sending one right now; see recover_pages).
        await self.recover_pages(claimed_before=started - self._lease)
        self._queue.keep_leases()

    async def _settle_stale_replies(self, claimed_before: datetime) -> None:
        for ticket_id in await self.store.sending_drafts(claimed_before=claimed_before):
            await self._actions.settle_interrupted_reply(ticket_id)
        # Follow-ups stored before an ack whose process stopped before acting on them, a
        # lease old (the sweep that settles sends runs a few times a lease).
        await self.resume_follow_ups(stored_before=self._clock.now() - self._lease)

    async def resume_follow_ups(self, *, stored_before: datetime) -> int:
        """Do the notes and re-checks of follow-ups stored before a time and never done."""
        return await self._follow_ups.resume(stored_before=stored_before)

    async def recover_pages(self, *, claimed_before: datetime) -> int:
        """Take over the pages claimed before a time and never sent, and queue their tickets."""
        return await self._pager.recover_pages(claimed_before=claimed_before)

    async def catch_up(self) -> None:
        """Make tickets of what customers wrote while the bot was away (see Intake.catch_up)."""
        await self._intake.catch_up()

    async def _post_recorded(self, channel: str, ts: str) -> None:
        """A team post's ts was stored: what agents did on it before then is applied now."""
        await self._actions.post_recorded(channel, ts)

    def alert_ops(self, key: str, text: str) -> None:
        """Tell the operator in the ops channel, at most once per OPS_ALERT_INTERVAL_SECONDS."""
        self._ops.alert(key, text)

    async def drain(self, *, model: bool = True) -> None:
        """Wait until every queued ticket is routed and paged, retries included, or gave up.

        With model=False the model stage is not waited for: the local decisions are posted.
        """
        await self._queue.drain(model=model)

    async def stop(self) -> None:
        """Stop the workers and end this replica's leases: any replica routes the rest."""
        tasks = [*self._queue.tasks, *self._ops.tasks]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        # Those given up on after their retries too: all of this replica's leases end, and
        # nothing queued survives: a start takes the tickets up again from the store, and its
        # unsent pages too (claims no longer renewed, so not skipped as this one's).
        await self._queue.release()
        await self._pager.let_go()

    async def _acks_first(self) -> None:
        await self._intake.acks_done()

    def _put(self, ticket_id: int, claimed: TicketStatus | None = None) -> None:
        """Queue a ticket to decide, once."""
        self._queue.put(ticket_id, claimed)

    def _retry_later(self, ticket_id: int) -> None:
        self._queue.retry_later(ticket_id)

    # --- intake (routing.desk.intake) --------------------------------------------------

    async def first_delivery(self, event_id: str | None) -> bool:
        """False for an event already handled (Slack retries and redeliveries)."""
        return await self._intake.first_delivery(event_id)

    def is_intake(self, channel: str | None) -> bool:
        """True for an intake channel."""
        return self._intake.is_intake(channel)

    async def receive(self, message: CustomerMessage) -> int | None:
        """Store a top-level message as a ticket and queue it; a thread reply joins its ticket.

        Returns the new ticket's id, or None when the message made no new ticket.
        """
        return await self._intake.receive(message)

    # --- routing (routing.desk.router), handed to the work queue ------------------------

    async def _decide(self, ticket_id: int, claimed: TicketStatus | None) -> None:
        await self._router.decide(ticket_id, claimed)

    async def _post_job(self, job: Send) -> None:
        await self._router.post(job)

    async def _finish(self, ticket_id: int) -> None:
        await self._router.finish(ticket_id)

    async def _classify(self, ticket_id: int) -> tuple[StoredTicket, Triage]:
        return await self._router.classify(ticket_id)

    async def _refine(self, job: ModelJob) -> None:
        await self._router.refine(job)

    async def _refined(self, ticket_id: int) -> None:
        await self._router.refined(ticket_id)

    async def _expire_model_waits(self, now: datetime) -> None:
        await self._router.expire_model_waits(now)

    # --- follow-ups (routing.desk.follow_ups) ------------------------------------------
    # Each store_* call writes what the customer said before Slack's ack (StoreUnavailableError
    # within ACK_WRITE_SECONDS if the store refuses) and returns what to do after the ack.

    async def store_reply(self, message: CustomerMessage) -> AfterAck | None:
        """Store a customer's thread reply to a ticket; the notes and re-check come after."""
        if not self.is_intake(message.channel) or message.thread_ts is None:
            return None
        return await self._first(self._follow_ups.store_thread_reply(message, message.thread_ts))

    async def store_edit(
        self,
        channel: str,
        ts: str,
        text: str,
        previous_text: str | None,
        *,
        edited_ts: str | None = None,
    ) -> AfterAck | None:
        """Store an edited message's text (unless a newer edit's is stored); then re-check."""
        return await self._first(
            self._follow_ups.store_edit(channel, ts, text, previous_text, edited_ts=edited_ts)
        )

    async def store_reply_edit(
        self, channel: str, thread_ts: str, ts: str, text: str
    ) -> AfterAck | None:
        """Store an edited thread reply's text; the note and re-check come after."""
        return await self._first(self._follow_ups.store_reply_edit(channel, thread_ts, ts, text))

    async def store_deletion(self, channel: str, ts: str) -> AfterAck | None:
        """Withdraw a deleted message's ticket; its posts are redrawn after."""
        return await self._first(self._follow_ups.store_deletion(channel, ts))

    async def _first(self, write: Awaitable[AfterAck | None]) -> AfterAck | None:
        """A write before the ack; refused, the operator is told (the caller refuses the ack)."""
        try:
            return await write
        except StoreUnavailableError as error:
            self._intake.store_refused(error)
            raise

    async def edited(
        self,
        channel: str,
        ts: str,
        text: str,
        previous_text: str | None,
        *,
        edited_ts: str | None = None,
    ) -> None:
        """The customer edited a message; unfurls (same text) change nothing."""
        await self._follow_ups.edited(channel, ts, text, previous_text, edited_ts=edited_ts)

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

    async def status(self, ticket_id: int, *, user: str) -> StatusReport:
        """A ticket's state in a few lines, for an agent."""
        return await self._reports.status(ticket_id, user=user)

    async def stats(self, *, user: str) -> str:
        """Today's figures (UTC): tickets by category and priority, rates, time to approval."""
        return await self._reports.stats(user=user)

    async def find_ticket(self, reference: str, *, user: str, action: str) -> int:
        """A ticket id from `#12`, `12`, or a link to the customer's message or a team post."""
        return await self._reports.find_ticket(reference, user=user, action=action)
