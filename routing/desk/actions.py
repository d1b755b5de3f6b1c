"""Agents' actions on a ticket: approve, reject, edit, escalate, reclassify; replies sent once."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Final, Protocol

from routing.cascade import Pipeline
from routing.config import SlackConfig, TriageConfig
from routing.corrections import Correction, corrected_decision, correction_example
from routing.desk.roles import AgentGate, CardPlacement, Paging
from routing.desk.tickets import TicketLocks, labels, with_replies
from routing.desk.types import (
    STALE_POST,
    ActionRefusedError,
    BadRequestError,
    Note,
    PageNotSentError,
    StalePostError,
)
from routing.escalation import escalate
from routing.models import Decision
from routing.ports import TicketStore
from routing.records import HeldReaction, StoredPost, StoredTicket
from routing.redact import redact

logger = logging.getLogger(__name__)

# An emoji on a message that is not (yet) a recorded post is held this long: the bot's own
# post is recorded within moments (or, after a crash, by another replica's sweep within a
# lease or two); an emoji older than this was on some other message and is let go.
HELD_REACTION_WINDOW: Final = timedelta(minutes=15)

# The buttons a post still being recorded answers (by the ticket's public id on the button):
# sending or editing the draft changes no post. Reclassify and Escalate act on the ticket's
# posts, so they wait until the post is recorded.
_BEFORE_RECORDED: Final = frozenset({"approve the reply", "edit the reply"})
# Held with the emoji by a button answered before its post was recorded: the post's recorder
# redraws it (the approver found no post to redraw). No emoji name has a colon.
_REDRAW: Final = ":redraw"
POST_BEING_RECORDED: Final = "This ticket's post is still being recorded; try again in a moment."


class ReplyOutbox(Protocol):
    """The part of the Outbox an agent's action answers through."""

    async def reply_to_customer(self, channel: str, thread_ts: str, text: str) -> str:
        """Post an approved reply in the customer's thread; returns its ts."""
        ...

    async def find_reply(self, channel: str, thread_ts: str, text: str) -> str | None:
        """The ts of the bot's reply with this text in the customer's thread, if it is there."""
        ...

    async def tell(self, channel: str, user: str, text: str) -> None:
        """Tell one person something only they see (ephemeral)."""
        ...

    async def direct_message(self, user: str, note: Note) -> None:
        """Message one person directly."""
        ...


class AgentActions:
    """Does what an agent asks, once: authorized, claimed, sent, audited, the posts redrawn."""

    def __init__(
        self,
        *,
        config: TriageConfig,
        slack: SlackConfig,
        store: TicketStore,
        outbox: ReplyOutbox,
        pipeline: Pipeline,
        agents: AgentGate,
        placement: CardPlacement,
        pager: Paging,
        locks: TicketLocks,
        now: Callable[[], datetime],
    ) -> None:
        self._now = now
        self._config = config
        self._slack = slack
        self._store = store
        self._outbox = outbox
        self._pipeline = pipeline
        self._agents = agents
        self._placement = placement
        self._pager = pager
        self._locks = locks

    async def ticket_for_post(self, channel: str, ts: str) -> StoredPost | None:
        """Our team post at (channel, ts), if it is one."""
        return await self._store.post_at(channel, ts)

    async def ticket_for_button(
        self, value: str, *, channel: str | None, ts: str | None, user: str, action: str
    ) -> tuple[int, str]:
        """The ticket a button on the post at (channel, ts) acts on, and its public id.

        The button carries the ticket's public id (before public ids: its number), and the post
        it sits on must be one of that ticket's posts in this database. A post left from a
        database that was recreated names a ticket number that now means another ticket; it is
        refused, said once in the log, and nothing is done.

        A post not recorded yet (the agent pressed before the store write of the post's ts,
        here or on another replica, was done) is the ticket's when its button carries the
        ticket's public id and it is in a team channel: public ids are random and made by this
        database, and only the bot's own messages carry its buttons. Approve and Edit are
        answered at once; the poster redraws the post once it is recorded.
        """
        # Someone who is no agent learns nothing, not even whether the post is current.
        await self._agents.require_any_agent(user, action)
        post = await self._store.post_at(channel, ts) if channel and ts else None
        legacy = re.fullmatch(r"[0-9]{1,12}", value)
        ticket_id = int(value) if legacy else await self._store.ticket_by_public_id(value)
        fresh = post is None and ticket_id is not None and not legacy
        if fresh and channel and ts and self._team_channel(channel):
            assert ticket_id is not None  # noqa: S101  # fresh says so
            if action not in _BEFORE_RECORDED:
                raise BadRequestError(POST_BEING_RECORDED)
            logger.info(
                "user %s pressed a button (%s) of ticket %s on its post not yet recorded"
                " (channel %s, ts %s)",
                user,
                action,
                ticket_id,
                channel,
                ts,
            )
            # Whoever records the post redraws it, or the action's own redraw finds it stored.
            await self._store.hold_reaction(
                channel, ts, user=user, reaction=_REDRAW, at=self._now()
            )
            return ticket_id, await self._store.public_id(ticket_id)
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
        return ticket_id, await self._store.public_id(ticket_id)

    async def ticket_for_modal(
        self, ticket_id: int, public_id: str | None, *, user: str, action: str
    ) -> None:
        """Refuse a modal opened for a ticket that this database does not know by that id."""
        await self._agents.require_any_agent(user, action)
        if public_id is None or await self._store.ticket_by_public_id(public_id) != ticket_id:
            logger.warning(
                "refused: user %s submitted a window for ticket %s that this database does not"
                " know by that id",
                user,
                ticket_id,
            )
            raise StalePostError(STALE_POST)

    def _team_channel(self, channel: str | None) -> bool:
        return channel is not None and any(
            team.channel == channel for team in self._slack.teams.values()
        )

    async def react(self, *, user: str, reaction: str, channel: str, ts: str) -> None:
        """An emoji on a team post: approve or reject the draft; other emoji mean nothing.

        An emoji on a message of a team channel that is no recorded post may be on the bot's
        post whose ts is not stored yet (here or on another replica): it is held, and applied
        by whoever stores the post (post_recorded). Both sides write, then look for the
        other's write, and taking a held emoji deletes it: it is applied once, never lost.
        """
        if reaction not in (self._slack.approve_reaction, self._slack.reject_reaction):
            return
        post = await self._store.post_at(channel, ts)
        if post is not None:
            await self._apply_reaction(post, user=user, reaction=reaction)
            return
        if not self._team_channel(channel):
            return
        now = self._now()
        await self._store.forget_held_reactions(before=now - HELD_REACTION_WINDOW)
        await self._store.hold_reaction(channel, ts, user=user, reaction=reaction, at=now)
        # The second look: the post may have been recorded since the first, its recorder
        # having looked for held emoji before this one was held.
        post = await self._store.post_at(channel, ts)
        if post is not None:
            await self._apply_held(post, await self._store.take_held_reactions(channel, ts))

    async def post_recorded(self, channel: str, ts: str) -> None:
        """A team post was just stored: apply the emoji agents put on it before that."""
        held = await self._store.take_held_reactions(channel, ts)
        if not held:
            return
        post = await self._store.post_at(channel, ts)
        assert post is not None  # noqa: S101  # recorded just now
        await self._apply_held(post, held)

    async def _apply_held(self, post: StoredPost, held: list[HeldReaction]) -> None:
        emoji = [reaction for reaction in held if reaction.reaction != _REDRAW]
        if len(emoji) < len(held):
            # A button was answered on this post before it was stored: show what it did.
            await self._placement.refresh(post.ticket_id)
        for reaction in emoji:
            if reaction.at < self._now() - HELD_REACTION_WINDOW:
                logger.info("an emoji held too long on %s %s was let go", post.channel, post.ts)
                continue
            logger.info(
                "applying %s's emoji %s on ticket %s's post, held until it was recorded",
                reaction.user,
                reaction.reaction,
                post.ticket_id,
            )
            await self._apply_reaction(post, user=reaction.user, reaction=reaction.reaction)

    async def _apply_reaction(self, post: StoredPost, *, user: str, reaction: str) -> None:
        try:
            if reaction == self._slack.approve_reaction:
                await self.approve(post.ticket_id, user=user)
            else:
                await self.reject(post.ticket_id, user=user)
        except ActionRefusedError as refused:
            await self._outbox.tell(post.channel, user, refused.message)

    async def approve(self, ticket_id: int, *, user: str, text: str | None = None) -> None:
        """Send the draft (or an agent's edit of it) to the customer's thread, exactly once."""
        ticket = await self._agents.ticket_for_agent(ticket_id, user, "approve the reply")
        if ticket.status == "withdrawn":
            raise BadRequestError(
                f"Ticket #{ticket_id} was withdrawn by the customer; nothing is sent."
            )
        draft = await self._store.draft(ticket_id)
        if draft is None:
            raise BadRequestError(f"Ticket #{ticket_id} has no draft yet; try again in a moment.")
        if text is not None and text.strip() and text != draft.text:
            if not await self._store.edit_draft(ticket_id, text):
                raise BadRequestError(_draft_gone(ticket_id, draft.status, draft.decided_by))
            await self._store.audit(
                ticket_id=ticket_id,
                actor=user,
                action="draft_edited",
                before=draft.text,
                after=text,
            )
        if not await self._store.claim_draft(ticket_id, user):
            current = await self._store.draft(ticket_id)
            assert current is not None  # noqa: S101  # drafts are never deleted
            raise BadRequestError(_draft_gone(ticket_id, current.status, current.decided_by))
        claimed = await self._store.draft(ticket_id)
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
                    await self._store.finish_draft(ticket_id, sent_ts=None)
                    raise BadRequestError(
                        f"Slack did not take the reply to ticket #{ticket_id}; it is still a"
                        " draft. Try again."
                    ) from None
        await self._store.finish_draft(ticket_id, sent_ts=reply_ts)
        await self._store.audit(
            ticket_id=ticket_id, actor=user, action="reply_sent", after=claimed.text
        )
        await self._placement.refresh(ticket_id)

    async def _sent_reply(self, ticket: StoredTicket, text: str) -> str | None:
        """The ts of the reply already in the customer's thread, None if absent or unknown."""
        try:
            return await self._outbox.find_reply(ticket.channel, ticket.ts, text)
        except Exception:
            logger.exception("could not check whether ticket %s's reply was sent", ticket.id)
            return None

    async def reject(self, ticket_id: int, *, user: str) -> None:
        """Drop the draft: nothing will be sent unless the ticket is drafted again."""
        await self._agents.ticket_for_agent(ticket_id, user, "reject the reply")
        draft = await self._store.draft(ticket_id)
        if draft is None or not await self._store.reject_draft(ticket_id, user):
            status = draft.status if draft else None
            raise BadRequestError(
                _draft_gone(ticket_id, status, draft.decided_by if draft else None)
            )
        await self._store.audit(
            ticket_id=ticket_id, actor=user, action="draft_rejected", before=draft.text
        )
        await self._placement.refresh(ticket_id)

    async def decision_for_agent(self, ticket_id: int, *, user: str) -> Decision:
        """The ticket's decision, for an agent about to reclassify it."""
        ticket = await self._agents.ticket_for_agent(ticket_id, user, "reclassify")
        if ticket.decision is None:
            raise BadRequestError(f"Ticket #{ticket_id} is not classified yet; try again soon.")
        return ticket.decision

    async def notify(self, user: str, text: str) -> None:
        """Tell a person the outcome of something they did where no reply channel exists."""
        await self._outbox.direct_message(user, Note(text))

    async def draft_for_edit(self, ticket_id: int, *, user: str) -> str:
        """The pending draft, for an agent about to edit it."""
        await self._agents.ticket_for_agent(ticket_id, user, "edit the reply")
        draft = await self._store.draft(ticket_id)
        if draft is None or draft.status != "pending":
            raise BadRequestError(
                _draft_gone(
                    ticket_id, draft.status if draft else None, draft.decided_by if draft else None
                )
            )
        return draft.text

    async def escalate(self, ticket_id: int, *, user: str) -> None:
        """An agent asks for the on-call: page now, with who asked; once per agent and ticket."""
        ticket = await self._agents.ticket_for_agent(ticket_id, user, "escalate")
        reasons = tuple(r.detail for r in ticket.escalation.reasons) if ticket.escalation else ()
        try:
            sent = await self._pager.page(ticket_id, reasons=reasons, asked_by=user)
        except PageNotSentError:
            # Slack's refusal; the store's own failures are the listener's to report.
            logger.exception("escalating ticket %s failed", ticket_id)
            raise BadRequestError(
                f"Slack did not take the page for ticket #{ticket_id}; try Escalate again."
            ) from None
        if sent == 0 and await self._store.posts(ticket_id):
            # A second press, or a replayed request: the on-call has this agent's page.
            raise BadRequestError(
                f"You escalated ticket #{ticket_id} already; its on-call has your page."
            )
        await self._store.audit(ticket_id=ticket_id, actor=user, action="escalated")

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
        config = self._config
        await self._agents.require_any_agent(user, "reclassify tickets")
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
        ticket = await self._agents.ticket_for_agent(ticket_id, user, "reclassify")
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
        async with self._locks.lock(ticket_id):
            # Read again under the lock: an edit or a worker may have changed it meanwhile.
            current = await self._store.ticket(ticket_id)
            assert current is not None  # noqa: S101  # tickets are never deleted
            ticket = current
            old, old_escalation = ticket.decision, ticket.escalation
            assert old is not None  # noqa: S101  # checked above; never unset
            assert old_escalation is not None  # noqa: S101
            decision = corrected_decision(old, correction, config)
            new_team = decision.team
            # The customer's thread replies count too: a reclassify cannot drop their "urgent".
            whole = await with_replies(self._store, ticket)
            escalation = escalate(
                whole,
                decision,
                self._pipeline.rules(whole.text),
                config,
                priority_by_agent=correction.priority is not None,
            )
            await self._store.set_decision(ticket_id, decision, escalation)
            draft = await self._store.draft(ticket_id)
            redraft = draft is not None and draft.status == "pending" and draft.source != "agent"
            if redraft:
                fresh = await self._pipeline.draft(redact(ticket.text).text, decision)
                await self._store.set_draft(ticket_id, text=fresh.text, source=fresh.source)
            # Where it goes: the new team when the agent moved it (a category or team named);
            # a priority or sentiment fix keeps every post it has (a multi-issue ticket's too).
            moves = correction.category is not None or correction.team is not None
            teams = (
                {new_team}
                if moves
                else {p.team for p in await self._store.posts(ticket_id)} or {new_team}
            )
            try:
                await self._placement.place(ticket_id, teams, moved_by=user)
            except Exception:
                logger.exception("reclassifying ticket %s: the new post failed", ticket_id)
                # Undone: the ticket stays what and where it was, and nothing is learnt.
                await self._store.set_decision(ticket_id, old, old_escalation)
                if redraft and draft is not None:
                    await self._store.set_draft(ticket_id, text=draft.text, source=draft.source)
                raise BadRequestError(
                    f"Slack did not take the post in {new_team}'s channel; ticket #{ticket_id}"
                    " is unchanged. Try again."
                ) from None
            example = correction_example(ticket.text, correction)
            await self._store.add_correction(example, ticket_id=ticket_id, by=user)
            self._pipeline.learn(example)
            await self._store.audit(
                ticket_id=ticket_id,
                actor=user,
                action="reclassified",
                before=labels(old),
                after=labels(decision),
            )
        await self._pager.page_if_needed(ticket_id)
        return (
            f"Ticket #{ticket_id} is now {decision.category} / {decision.priority} / "
            f"{decision.sentiment} for {decision.team}; the next tickets learn from it."
        )

    async def settle_interrupted_reply(self, ticket_id: int) -> None:
        """A reply being sent when the bot stopped: sent if Slack has it, else a draft again."""
        ticket, draft = await self._store.ticket(ticket_id), await self._store.draft(ticket_id)
        if ticket is None or draft is None or draft.status != "sending":
            return
        if draft.decided_at is None:
            return  # no claim to settle (a row from before claims were timed)
        try:
            reply_ts = await self._outbox.find_reply(ticket.channel, ticket.ts, draft.text)
        except Exception:
            logger.exception("could not check whether ticket %s's reply was sent", ticket_id)
            return  # still "sending": checked again at the next start
        # Only the claim read: a replica starting beside this one may be settling it too.
        if not await self._store.settle_draft(
            ticket_id, claimed_at=draft.decided_at, sent_ts=reply_ts
        ):
            logger.info("ticket %s's interrupted reply was settled elsewhere", ticket_id)
            return
        if reply_ts is not None:
            await self._store.audit(
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
        await self._placement.refresh(ticket_id)
        if reply_ts is None and draft.decided_by:
            # The agent who approved it was told nothing went wrong: say so, or it stays unsent.
            note = Note(
                f"Your approval of ticket #{ticket_id} did not reach the customer: the bot"
                " stopped while sending it. The draft is back on the ticket's post; approve it"
                " again to send it."
            )
            try:
                await self._outbox.direct_message(draft.decided_by, note)
            except Exception:
                logger.exception(
                    "could not tell the agent that ticket %s's reply was not sent", ticket_id
                )


def _draft_gone(ticket_id: int, status: str | None, by: str | None) -> str:
    who = f" by <@{by}>" if by else ""
    if status in ("sending", "sent"):
        return f"The reply to ticket #{ticket_id} was already sent{who}."
    if status == "rejected":
        return f"The draft for ticket #{ticket_id} was rejected{who}."
    return f"Ticket #{ticket_id} has no draft to act on."
