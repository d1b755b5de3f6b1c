"""Placement: a ticket's cards, built from the store, posted, redrawn and moved between teams."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from routing.config import SlackConfig, TriageConfig
from routing.desk.types import Note, PostRef, TicketCard
from routing.drafter import english_draft_for
from routing.errors import DeliveryRefusedError
from routing.ports import TicketStore
from routing.records import LeasedTicket, StoredDraft, StoredPost, StoredTicket
from routing.redact import credentials_posted, shown_to_agents

logger = logging.getLogger(__name__)


class CardOutbox(Protocol):
    """The part of the Outbox a ticket's cards go through."""

    async def post_card(self, card: TicketCard) -> PostRef:
        """Post a ticket in its team channel."""
        ...

    async def update_card(self, post: PostRef, card: TicketCard) -> None:
        """Replace a ticket post's content."""
        ...

    async def find_card(self, channel: str, ticket_id: int) -> PostRef | None:
        """A post of this ticket already in the channel (after a crash between post and store)."""
        ...

    async def post_note(self, post: PostRef, note: Note) -> None:
        """Say something in a ticket post's thread."""
        ...

    async def permalink(self, channel: str, ts: str) -> str | None:
        """A link to a message, or None if Slack will not give one."""
        ...


class Placement:
    """Where a ticket's posts are and what they show; a refused channel falls back, said once.

    alert_ops(key, text) tells the operator (at most once per key and interval);
    post_recorded(channel, ts) is called once a post's ts is stored (agents' held emoji).
    """

    def __init__(
        self,
        *,
        config: TriageConfig,
        slack: SlackConfig,
        store: TicketStore,
        outbox: CardOutbox,
        alert_ops: Callable[[str, str], None],
        post_recorded: Callable[[str, str], Awaitable[None]] | None = None,
    ) -> None:
        self._post_recorded = post_recorded
        self._config = config
        self._slack = slack
        self._store = store
        self._outbox = outbox
        self._alert_ops = alert_ops

    def team_channel(self, team: str) -> str:
        """The channel a team's posts go in."""
        return self._slack.teams[team].channel

    async def card(
        self,
        ticket_id: int,
        team: str,
        post: StoredPost | None = None,
        *,
        ticket: StoredTicket | None = None,
        posts: Sequence[StoredPost] | None = None,
    ) -> TicketCard:
        """The card a team's post of the ticket shows, from what is stored.

        ticket and posts (its active ones) are read here unless the caller has just read them.
        """
        view = await self._view(ticket_id, ticket=ticket, posts=posts)
        return await self._card(view, team, post)

    async def _view(
        self,
        ticket_id: int,
        *,
        ticket: StoredTicket | None = None,
        posts: Sequence[StoredPost] | None = None,
    ) -> _View:
        """What every card of a ticket is drawn from, read once for all of its posts."""
        if ticket is None:
            ticket = await self._store.ticket(ticket_id)
        assert ticket is not None  # noqa: S101  # callers hold a stored ticket's id
        if posts is None:
            posts = await self._store.posts(ticket_id)
        return _View(
            ticket=ticket,
            draft=await self._store.draft(ticket_id),
            posts=tuple(posts),
            public_id=await self._store.public_id(ticket_id),
        )

    async def _card(self, view: _View, team: str, post: StoredPost | None) -> TicketCard:
        ticket, draft, ticket_id = view.ticket, view.draft, view.ticket.id
        assert ticket.decision is not None  # noqa: S101  # cards are drawn after triage
        assert ticket.escalation is not None  # noqa: S101
        related: list[tuple[str, str]] = []
        for other in view.posts:
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
            channel=self.team_channel(team),
            emoji=self._config.priority(ticket.decision.priority).emoji,
            text=shown_to_agents(ticket.text),
            credentials=credentials_posted(ticket.text),
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
                self._config, ticket.decision.language, draft.source if draft else None
            ),
            public_id=view.public_id,
            model=ticket.model_state,
        )

    async def refresh(
        self,
        ticket_id: int,
        *,
        include_inactive: bool = False,
        ticket: StoredTicket | None = None,
        posts: Sequence[StoredPost] | None = None,
    ) -> None:
        """Redraw every post of a ticket from what is stored (read once for all of them).

        ticket and posts (its active ones) are read here unless the caller has just read them.
        """
        if posts is None or include_inactive:
            shown = await self._store.posts(ticket_id, active_only=not include_inactive)
        else:
            shown = list(posts)
        if not shown:
            return
        try:
            active = posts if posts is not None or include_inactive else shown
            view = await self._view(ticket_id, ticket=ticket, posts=active)
        except Exception:
            logger.exception("could not redraw ticket %s's posts", ticket_id)
            return
        for post in shown:
            await self._redraw(view, post)

    async def redraw(self, ticket_id: int, post: StoredPost) -> None:
        """Redraw one post; best effort: the store holds the state, the next redraw shows it."""
        try:
            view = await self._view(ticket_id)
        except Exception:
            logger.exception("could not redraw ticket %s's post in %s", ticket_id, post.team)
            return
        await self._redraw(view, post)

    async def _redraw(self, view: _View, post: StoredPost) -> None:
        try:
            card = await self._card(view, post.team, post)
            await self._outbox.update_card(PostRef(post.channel, post.ts), card)
        except Exception:
            logger.exception("could not redraw ticket %s's post in %s", view.ticket.id, post.team)

    async def place(self, ticket_id: int, teams: set[str], *, moved_by: str | None) -> None:
        """Make the ticket's live posts be in exactly these teams' channels.

        New posts come first: if Slack refuses one, this raises with the old posts still live.
        """
        before = await self._store.posts(ticket_id)
        for team in sorted(teams - {post.team for post in before}):
            ref = await self._outbox.post_card(await self.card(ticket_id, team))
            await self._record(ticket_id, team, ref)
        target = sorted(teams)[0]
        for post in before:
            if post.team in teams:
                continue
            await self._store.set_post_status(
                post.id, "moved", moved_to=self.team_channel(target), moved_by=moved_by
            )
            await self._store.audit(
                ticket_id=ticket_id,
                actor=moved_by or "customer",
                action="moved",
                before={"team": post.team},
                after={"team": target},
            )
            moved = await self._store.post_at(post.channel, post.ts)
            assert moved is not None  # noqa: S101  # just updated
            await self.redraw(ticket_id, moved)
        # The live posts show the new decision and link only to each other.
        await self.refresh(ticket_id)

    async def post_once(
        self, ticket_id: int, team: str, *, recovering: bool, leased: LeasedTicket | None = None
    ) -> PostRef | None:
        """Post the ticket in a team's channel unless it is there; the new post, if one was made.

        leased is the ticket with its posts, draft and public id as the caller has just read
        them with its lease (else read here).
        """
        posts = leased.posts if leased is not None else await self._store.posts(ticket_id)
        if any(post.team == team for post in posts):
            return None
        channel = self.team_channel(team)
        found = await self._outbox.find_card(channel, ticket_id) if recovering else None
        if found is not None:
            await self._record(ticket_id, team, found)
            return None
        if leased is not None:
            public_id = leased.public_id or await self._store.public_id(ticket_id)
            view = _View(
                ticket=leased.ticket, draft=leased.draft, posts=tuple(posts), public_id=public_id
            )
            card = await self._card(view, team, None)
        else:
            card = await self.card(ticket_id, team, posts=posts)
        try:
            ref = await self._outbox.post_card(card)
        except DeliveryRefusedError as refused:
            ref = await self._post_in_fallback(card, refused)
        await self._record(ticket_id, team, ref)
        return ref

    async def _record(self, ticket_id: int, team: str, ref: PostRef) -> None:
        """Store a post's ts, then catch up with what agents did on it before it was stored."""
        await self._store.add_post(ticket_id, team=team, channel=ref.channel, ts=ref.ts)
        if self._post_recorded is None:
            return
        try:
            await self._post_recorded(ref.channel, ref.ts)
        except Exception:
            # The post is stored and routing goes on; the agent can act on the post again.
            logger.exception("catching up with agents' actions on ticket %s's post", ticket_id)

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
        self._alert_ops(f"refused {refused.channel}", fix)
        fallback = self.team_channel(self._config.fallback_team)
        if fallback == refused.channel:
            raise refused
        logger.error("ticket %s: %s Posted in %s instead", card.ticket_id, fix, fallback)
        ref = await self._outbox.post_card(card.model_copy(update={"channel": fallback}))
        try:
            await self._outbox.post_note(ref, Note(f"Posted here, not for {card.team}: {fix}"))
        except Exception:
            logger.exception("could not explain ticket %s's fallback post", card.ticket_id)
        return ref

    async def link_related(
        self,
        ticket_id: int,
        *,
        ticket: StoredTicket | None = None,
        posts: Sequence[StoredPost] | None = None,
    ) -> None:
        """Redraw a ticket posted in several teams so each post links to the others.

        ticket and posts (its active ones) are read here unless the caller has just read them.
        """
        if posts is None:
            posts = await self._store.posts(ticket_id)
        if len(posts) > 1:
            await self.refresh(ticket_id, ticket=ticket, posts=posts)


@dataclass(frozen=True)
class _View:
    """A ticket as its cards show it: the ticket, its draft, its active posts, its public id."""

    ticket: StoredTicket
    draft: StoredDraft | None
    posts: tuple[StoredPost, ...]
    public_id: str
