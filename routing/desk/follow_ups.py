"""Follow-ups from the customer: thread replies, edits and deletions of a ticket's message."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from functools import partial
from typing import Any, Protocol

from routing.cascade import Pipeline
from routing.config import SlackConfig, TriageConfig
from routing.desk.limits import CATCH_UP_OVERLAP_SECONDS, EDIT_WINDOW_SECONDS
from routing.desk.roles import AgentLookup, CardPlacement, PageTrigger
from routing.desk.tickets import TicketLocks, labels
from routing.desk.tickets import with_replies as ticket_with_replies
from routing.desk.types import CustomerMessage, Note, PostRef
from routing.escalation import escalate
from routing.models import Escalation, Triage
from routing.ports import TicketStore
from routing.records import PendingFollowUp, StoredTicket
from routing.redact import shown_to_agents

logger = logging.getLogger(__name__)

# What a follow-up does once Slack has its ack (notes, re-checks, redraws): its writes of what
# the customer said (a reply, an edit, a deletion) were made before the ack. None: nothing new.
AfterAck = Callable[[], Awaitable[None]]


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
        now: Callable[[], datetime],
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
        self._now = now
        self._receive = receive
        self._classify = classify
        # (ticket, team) -> when a customer's edit moved the ticket's post away from the team.
        self._moved_by_edit: dict[tuple[int, str], float] = {}

    def _is_intake(self, channel: str | None) -> bool:
        return channel in self._slack.intake_channels

    async def thread_reply(self, message: CustomerMessage, thread_ts: str) -> None:
        """A reply in a ticket's thread: the customer's joins the ticket, others' are shown."""
        after = await self.store_thread_reply(message, thread_ts, read_parent=True)
        if after is not None:
            await after()

    async def store_thread_reply(
        self, message: CustomerMessage, thread_ts: str, *, read_parent: bool = False
    ) -> AfterAck | None:
        """Store the customer's reply to a ticket (before the ack); what follows is returned.

        A reply to a message that is no ticket yet is all done after the ack (the parent is
        read from Slack then) unless read_parent.
        """
        ticket = await self._store.ticket_at(message.channel, thread_ts)
        if ticket is None:
            if not read_parent:
                return partial(self.thread_reply, message, thread_ts)
            ticket = await self._missed_message(message.channel, thread_ts)
            if ticket is None:
                return None
        if await self._agents.is_any_agent(message.user):
            # An agent answering in the customer's thread by hand: not the customer's words.
            return None
        if message.user != ticket.author:
            # Someone else in a shared channel: shown to the team, but it cannot change (or
            # page about) another person's ticket. Not stored, so its ts marks it as shown.
            return partial(self._show_others_reply, ticket.id, message)
        if not await self._store.add_reply(
            ticket.id, ts=message.ts, author=message.user, text=message.text
        ):
            return None
        work = partial(self._reply_stored, ticket.id, message.text)
        return partial(self._then_done, work, ticket.id, "reply", message.ts)

    async def _show_others_reply(self, ticket_id: int, message: CustomerMessage) -> None:
        if not await self._store.first_delivery(f"reply {message.channel} {message.ts}"):
            return
        await self._show_in_threads(
            ticket_id,
            Note(
                f"<@{message.user}> replied in the customer's thread:",
                quote=shown_to_agents(message.text),
            ),
        )

    async def _reply_stored(self, ticket_id: int, text: str) -> None:
        # Under the lock: a post being made now either shows this reply or is seen here.
        async with self._locks.lock(ticket_id):
            await self._show_in_threads(ticket_id, reply_note(text))
        await self._recheck(ticket_id)

    async def _missed_message(self, channel: str, ts: str) -> StoredTicket | None:
        """The ticket of a message the bot has not received, made from Slack's copy.

        A reply's parent or an edited message whose own event comes later (a retry) or never:
        either way nothing the customer wrote is lost.
        """
        seen = await self._store.ticket_ts_range(channel)
        # Older than the bot's first ticket, it predates the bot; with none stored yet (a fresh
        # install, whose first start reads no history), only a message of the last minutes counts.
        since = (
            float(seen[0])
            if seen is not None
            else self._now().timestamp() - CATCH_UP_OVERLAP_SECONDS
        )
        if float(ts) < since:
            return None
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
        after = await self.store_edit(channel, ts, text, previous_text, edited_ts=edited_ts)
        if after is not None:
            await after()

    async def store_edit(
        self,
        channel: str,
        ts: str,
        text: str,
        previous_text: str | None,
        *,
        edited_ts: str | None = None,
    ) -> AfterAck | None:
        """Store the edited text of a ticket's message (before the ack); what follows is returned.

        An edit of a message that is no ticket yet is done after the ack: Slack's copy becomes
        the ticket then.
        """
        if not self._is_intake(channel) or text == previous_text:
            return None
        found = await self._store.ticket_at(channel, ts)
        if found is None:
            return partial(self._missed_edit, channel, ts)
        if found.status == "withdrawn" or found.text == text:
            return None
        if not await self._store.set_text(found.id, text, edited_ts=edited_ts):
            logger.info("ticket %s: an edit older than its text's arrived late; kept", found.id)
            return None
        work = partial(self._edit_stored, found.id, text, before=found.text)
        return partial(self._then_done, work, found.id, "edit", edited_ts or "")

    async def _missed_edit(self, channel: str, ts: str) -> None:
        await self._missed_message(channel, ts)  # a ticket now, with the edited text

    async def _edit_stored(self, ticket_id: int, text: str, *, before: str | None) -> None:
        """An edit stored before the ack: audited, shown or re-classified, the ticket moved.

        before is None when the edit is resumed after a stop (the old text is not kept).
        """
        # Under the ticket's lock: a worker routing the old text finishes first, then the edit
        # re-classifies what it posted (an edit seconds after posting is common).
        async with self._locks.lock(ticket_id):
            ticket = await self._store.ticket(ticket_id)
            if ticket is None or ticket.status == "withdrawn" or ticket.text != text:
                return  # deleted since, or a later edit (whose own turn comes) replaced it
            draft = await self._store.draft(ticket.id)
            replied = draft is not None and draft.status in ("sending", "sent")
            await self._store.audit(
                ticket_id=ticket.id,
                actor=ticket.author or "customer",
                action="edited_after_reply" if replied else "edited",
                before=before,
                after=text,
            )
            if replied:
                # The reply went out for the old text: tell the agents, change nothing else.
                await self._show_in_threads(
                    ticket.id,
                    Note(
                        "The customer edited their message after the reply was sent:",
                        quote=shown_to_agents(text),
                    ),
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
            before_teams = {post.team for post in await self._store.posts(ticket.id)}
            # Edits in quick succession that go back and forth reuse each team's post.
            await self._reuse_recent_posts(ticket.id, teams - before_teams)
            try:
                await self._placement.place(ticket.id, teams, moved_by=None)
                for team in before_teams - teams:
                    self._moved_by_edit[(ticket.id, team)] = self._clock()
            except Exception:
                # The post stays where it is, showing the new decision; an agent can move it.
                logger.exception("could not move ticket %s after the customer's edit", ticket.id)
                await self._placement.refresh(ticket.id)
        await self._pager.page_if_needed(ticket_id)

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
        after = await self.store_reply_edit(channel, thread_ts, ts, text)
        if after is not None:
            await after()

    async def store_reply_edit(
        self, channel: str, thread_ts: str, ts: str, text: str
    ) -> AfterAck | None:
        """Store the new text of a customer's reply (before the ack); what follows is returned."""
        ticket = await self._store.ticket_at(channel, thread_ts)
        if ticket is None or ticket.status == "withdrawn":
            return None
        # Only the customer's stored replies count (others' are notes, not the ticket's words).
        if not await self._store.set_reply_text(ticket.id, ts=ts, text=text):
            return None
        work = partial(self._reply_edit_stored, ticket.id, text)
        return partial(self._then_done, work, ticket.id, "reply_edit", ts)

    async def _reply_edit_stored(self, ticket_id: int, text: str) -> None:
        async with self._locks.lock(ticket_id):
            await self._show_in_threads(
                ticket_id,
                Note("The customer edited their reply in the thread:", quote=shown_to_agents(text)),
            )
        await self._recheck(ticket_id)

    async def deleted(self, channel: str, ts: str) -> None:
        """The customer deleted their message: the ticket is withdrawn, its posts say so."""
        after = await self.store_deletion(channel, ts)
        if after is not None:
            await after()

    async def store_deletion(self, channel: str, ts: str) -> AfterAck | None:
        """Withdraw the ticket of a deleted message (before the ack); what follows is returned."""
        if not self._is_intake(channel):
            return None
        ticket = await self._store.ticket_at(channel, ts)
        if ticket is None or not await self._store.mark_withdrawn(ticket.id):
            return None
        work = partial(self._withdrawn, ticket.id, ticket.author)
        return partial(self._then_done, work, ticket.id, "withdrawn", "")

    async def _then_done(self, work: AfterAck, ticket_id: int, kind: str, ref: str) -> None:
        """The after-ack work of a follow-up, then its pending row gone (kept if it fails)."""
        await work()
        await self._store.finish_follow_up(ticket_id, kind=kind, ref=ref)

    async def resume(self, *, stored_before: datetime) -> int:
        """Do the after-ack work of follow-ups stored before a time and never done.

        The process that stored them stopped first (a crash between the ack and the notes):
        each is taken over by one caller (a compare-and-set), so every replica calls this at
        start and in its sweeps with a lease's cutoff. Done at least once: a note the dead
        process had posted may be posted again. Returns how many were done.
        """
        pending = await self._store.pending_follow_ups(stored_before=stored_before)
        # Of one ticket's edits, only the last one's text is left to act on.
        last_edit = {
            item.ticket_id: item for item in sorted(pending, key=_edit_order) if item.kind == "edit"
        }
        done = 0
        for item in pending:
            if not await self._store.retake_follow_up(item):
                continue  # another replica took it
            try:
                work = await self._resumed(item, last=last_edit.get(item.ticket_id) == item)
                if work is not None:
                    logger.warning(
                        "ticket %s's %s was stored but not acted on: doing it now",
                        item.ticket_id,
                        item.kind.replace("_", " "),
                    )
                    await work()
                await self._store.finish_follow_up(item.ticket_id, kind=item.kind, ref=item.ref)
                done += 1
            except Exception:
                logger.exception(
                    "could not finish ticket %s's %s; trying again later", item.ticket_id, item.kind
                )
        return done

    async def _resumed(self, item: PendingFollowUp, *, last: bool) -> AfterAck | None:
        """What is left to do for a pending follow-up, from what the store holds now."""
        ticket = await self._store.ticket(item.ticket_id)
        if ticket is None:
            return None
        if item.kind in ("reply", "reply_edit"):
            replies = await self._store.replies(ticket.id)
            reply = next((r for r in replies if r.ts == item.ref), None)
            if reply is None:
                return None
            if item.kind == "reply":
                return partial(self._reply_stored, ticket.id, reply.text)
            return partial(self._reply_edit_stored, ticket.id, reply.text)
        if item.kind == "edit":
            if not last or ticket.status == "withdrawn":
                return None
            return partial(self._edit_stored, ticket.id, ticket.text, before=None)
        return partial(self._withdrawn, ticket.id, ticket.author)

    async def _withdrawn(self, ticket_id: int, author: str | None) -> None:
        """A withdrawal stored before the ack: audited, its posts say so."""
        # Under the lock: a worker posting the ticket now finishes first; its posts are
        # withdrawn here too (routing never marks a withdrawn ticket routed).
        async with self._locks.lock(ticket_id):
            await self._store.audit(
                ticket_id=ticket_id, actor=author or "customer", action="withdrawn"
            )
            for post in await self._store.posts(ticket_id):
                await self._store.set_post_status(post.id, "withdrawn")
        await self._placement.refresh(ticket_id, include_inactive=True)


def _edit_order(item: PendingFollowUp) -> tuple[float, datetime]:
    """Edits in the order the customer made them (their ts; stored order without one)."""
    try:
        return (float(item.ref or 0), item.at)
    except ValueError:
        return (0.0, item.at)


def _teams(triage: Triage) -> tuple[str, ...]:
    """The teams a ticket is posted to: its own, and the runner-up's on a close call."""
    teams = triage.escalation.teams or (triage.decision.team,)
    return (triage.decision.team, *(team for team in teams if team != triage.decision.team))


def reply_note(text: str) -> Note:
    """The note under a team post that shows the customer's thread reply."""
    return Note("The customer replied in their thread:", quote=shown_to_agents(text))


def _merge_reasons(old: Escalation, new: Escalation) -> tuple[object, ...]:
    seen = {reason.code for reason in old.reasons}
    return (*old.reasons, *(reason for reason in new.reasons if reason.code not in seen))
