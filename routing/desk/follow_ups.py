"""Follow-ups from the customer: thread replies, edits and deletions of a ticket's message."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from routing.cascade import Pipeline
from routing.config import SlackConfig, TriageConfig
from routing.desk.limits import EDIT_WINDOW_SECONDS
from routing.desk.roles import AgentLookup, CardPlacement, PageTrigger
from routing.desk.tickets import TicketLocks, labels
from routing.desk.tickets import with_replies as ticket_with_replies
from routing.desk.types import CustomerMessage, Note, PostRef
from routing.escalation import escalate
from routing.models import Escalation, Triage
from routing.ports import TicketStore
from routing.records import StoredTicket

logger = logging.getLogger(__name__)


class NoteOutbox(Protocol):
    """The part of the Outbox a follow-up goes through."""

    async def post_note(self, post: PostRef, note: Note) -> None:
        """Say something in a ticket post's thread."""
        ...

    async def message_at(self, channel: str, ts: str) -> CustomerMessage | None:
        """The customer's message at (channel, ts); None if it is none (a bot's, a join...)."""
        ...


class FollowUps:
    """What the customer does after writing: each shown to the team, the ticket re-checked.

    receive(message) makes a ticket of a message the bot missed; classify(ticket_id) runs the
    pipeline on a ticket's stored text again (the desk's router does both).
    """

    def __init__(
        self,
        *,
        config: TriageConfig,
        slack: SlackConfig,
        store: TicketStore,
        outbox: NoteOutbox,
        pipeline: Pipeline,
        agents: AgentLookup,
        placement: CardPlacement,
        pager: PageTrigger,
        locks: TicketLocks,
        clock: Callable[[], float],
        receive: Callable[[CustomerMessage], Coroutine[Any, Any, int | None]],
        classify: Callable[[int], Coroutine[Any, Any, tuple[StoredTicket, Triage]]],
    ) -> None:
        self._config = config
        self._slack = slack
        self._store = store
        self._outbox = outbox
        self._pipeline = pipeline
        self._agents = agents
        self._placement = placement
        self._pager = pager
        self._locks = locks
        self._clock = clock
        self._receive = receive
        self._classify = classify
        # (ticket, team) -> when a customer's edit moved the ticket's post away from the team.
        self._moved_by_edit: dict[tuple[int, str], float] = {}

    def _is_intake(self, channel: str | None) -> bool:
        return channel in self._slack.intake_channels

    async def thread_reply(self, message: CustomerMessage, thread_ts: str) -> None:
        """A reply in a ticket's thread: the customer's joins the ticket, others' are shown."""
        ticket = await self._store.ticket_at(message.channel, thread_ts) or (
            await self._missed_message(message.channel, thread_ts)
        )
        if ticket is None:
            return
        if await self._agents.is_any_agent(message.user):
            # An agent answering in the customer's thread by hand: not the customer's words.
            return
        if message.user != ticket.author:
            # Someone else in a shared channel: shown to the team, but it cannot change (or
            # page about) another person's ticket. Not stored, so its ts marks it as shown.
            if not await self._store.first_delivery(f"reply {message.channel} {message.ts}"):
                return
            await self._show_in_threads(
                ticket.id,
                Note(f"<@{message.user}> replied in the customer's thread:", quote=message.text),
            )
            return
        if not await self._store.add_reply(
            ticket.id, ts=message.ts, author=message.user, text=message.text
        ):
            return
        # Under the lock: a post being made now either shows this reply or is seen here.
        async with self._locks.lock(ticket.id):
            await self._show_in_threads(ticket.id, reply_note(message.text))
        await self._recheck(ticket.id)

    async def _missed_message(self, channel: str, ts: str) -> StoredTicket | None:
        """The ticket of a message the bot has not received, made from Slack's copy.

        A reply's parent or an edited message whose own event comes later (a retry) or never:
        either way nothing the customer wrote is lost.
        """
        seen = await self._store.ticket_ts_range(channel)
        if seen is None or float(ts) < float(seen[0]):
            return None  # a message from before the bot's first ticket
        try:
            message = await self._outbox.message_at(channel, ts)
        except Exception:
            logger.exception("could not read message %s in %s from Slack", ts, channel)
            return None
        if message is None or message.is_thread_reply:
            return None
        ticket_id = await self._receive(message)
        return await self._store.ticket(ticket_id) if ticket_id is not None else None

    async def _show_in_threads(self, ticket_id: int, note: Note) -> None:
        """Say something under each live post; Slack refusing one is logged, not fatal."""
        for post in await self._store.posts(ticket_id):
            try:
                await self._outbox.post_note(PostRef(post.channel, post.ts), note)
            except Exception:
                logger.exception("could not post a note on ticket %s in %s", ticket_id, post.team)

    async def _recheck(self, ticket_id: int) -> None:
        """Re-read a ticket with its replies; raise its stakes and page if it now needs a human."""
        async with self._locks.lock(ticket_id):
            ticket = await self._store.ticket(ticket_id)
            if ticket is None or ticket.decision is None or ticket.escalation is None:
                return
            with_replies = await ticket_with_replies(self._store, ticket)
            fresh = await self._pipeline.triage(with_replies)
            old = ticket.decision
            config = self._config
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
            await self._store.set_decision(ticket_id, decision, escalation)
            await self._store.audit(
                ticket_id=ticket_id,
                actor="customer",
                action="recheck",
                before=labels(old),
                after=labels(decision),
            )
        await self._placement.refresh(ticket_id)
        await self._pager.page_if_needed(ticket_id)

    async def edited(self, channel: str, ts: str, text: str, previous_text: str | None) -> None:
        """The customer edited a message; unfurls (same text) change nothing."""
        if not self._is_intake(channel) or text == previous_text:
            return
        found = await self._store.ticket_at(channel, ts)
        if found is None:
            await self._missed_message(channel, ts)  # a ticket now, with the edited text
            return
        # Under the ticket's lock: a worker routing the old text finishes first, then the edit
        # re-classifies what it posted (an edit seconds after posting is common).
        async with self._locks.lock(found.id):
            ticket = await self._store.ticket(found.id)
            if ticket is None or ticket.status == "withdrawn" or ticket.text == text:
                return
            draft = await self._store.draft(ticket.id)
            replied = draft is not None and draft.status in ("sending", "sent")
            await self._store.set_text(ticket.id, text)
            await self._store.audit(
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
            before = {post.team for post in await self._store.posts(ticket.id)}
            # Edits in quick succession that go back and forth reuse each team's post.
            await self._reuse_recent_posts(ticket.id, teams - before)
            try:
                await self._placement.place(ticket.id, teams, moved_by=None)
                for team in before - teams:
                    self._moved_by_edit[(ticket.id, team)] = self._clock()
            except Exception:
                # The post stays where it is, showing the new decision; an agent can move it.
                logger.exception("could not move ticket %s after the customer's edit", ticket.id)
                await self._placement.refresh(ticket.id)
        await self._pager.page_if_needed(ticket.id)

    async def _reuse_recent_posts(self, ticket_id: int, teams: set[str]) -> None:
        """Make live again the teams' posts an edit moved away within EDIT_WINDOW_SECONDS."""
        for post in reversed(await self._store.posts(ticket_id, active_only=False)):
            moved_at = self._moved_by_edit.get((ticket_id, post.team))
            recent = moved_at is not None and self._clock() - moved_at <= EDIT_WINDOW_SECONDS
            if post.team in teams and post.status == "moved" and recent:
                await self._store.set_post_status(post.id, "active")
                teams = teams - {post.team}

    async def reply_edited(self, channel: str, thread_ts: str, ts: str, text: str) -> None:
        """The customer edited a thread reply: shown to the team, and the ticket re-checked."""
        ticket = await self._store.ticket_at(channel, thread_ts)
        if ticket is None or ticket.status == "withdrawn":
            return
        # Only the customer's stored replies count (others' are notes, not the ticket's words).
        if not await self._store.set_reply_text(ticket.id, ts=ts, text=text):
            return
        async with self._locks.lock(ticket.id):
            await self._show_in_threads(
                ticket.id, Note("The customer edited their reply in the thread:", quote=text)
            )
        await self._recheck(ticket.id)

    async def deleted(self, channel: str, ts: str) -> None:
        """The customer deleted their message: the ticket is withdrawn, its posts say so."""
        if not self._is_intake(channel):
            return
        ticket = await self._store.ticket_at(channel, ts)
        if ticket is None:
            return
        async with self._locks.lock(ticket.id):
            if not await self._store.mark_withdrawn(ticket.id):
                return
            await self._store.audit(
                ticket_id=ticket.id, actor=ticket.author or "customer", action="withdrawn"
            )
            for post in await self._store.posts(ticket.id):
                await self._store.set_post_status(post.id, "withdrawn")
        await self._placement.refresh(ticket.id, include_inactive=True)


def _teams(triage: Triage) -> tuple[str, ...]:
    """The teams a ticket is posted to: its own, and the runner-up's on a close call."""
    teams = triage.escalation.teams or (triage.decision.team,)
    return (triage.decision.team, *(team for team in teams if team != triage.decision.team))


def reply_note(text: str) -> Note:
    """The note under a team post that shows the customer's thread reply."""
    return Note("The customer replied in their thread:", quote=text)


def _merge_reasons(old: Escalation, new: Escalation) -> tuple[object, ...]:
    seen = {reason.code for reason in old.reasons}
    return (*old.reasons, *(reason for reason in new.reasons if reason.code not in seen))
