"""Fakes for the desk's unit tests: an Outbox that records every call, a store that counts reads.

The desk parts talk to Slack only through the Outbox protocol (routing/desk/types.py), so a fake
that records what it was asked and answers like Slack is enough to test them without a server.
At the end, recording fakes of what one part sees of another (routing/desk/roles.py).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from routing.desk.types import (
    BadRequestError,
    CustomerMessage,
    DirectPage,
    NotAllowedError,
    Note,
    PostRef,
    TicketCard,
)
from routing.desk.work_queue import ModelJob, Placing, Send
from routing.records import LeasedTicket, StoredDraft, StoredPost, StoredTicket
from routing.store import MemoryStore


class FakeSlackError(Exception):
    """What a fake Slack call raises when the test made it fail."""


@dataclass
class FakeOutbox:
    """An Outbox that records each call as (method, arguments) and answers with fresh ts."""

    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    # Methods that raise FakeSlackError (Slack refusing) until removed from the set.
    failing: set[str] = field(default_factory=set)
    members: dict[str, tuple[str, ...]] = field(default_factory=dict)
    _ts: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def _record(self, method: str, **arguments: Any) -> None:
        if method in self.failing:
            raise FakeSlackError(method)
        self.calls.append((method, arguments))

    def _new_ts(self) -> str:
        return f"1700000000.{next(self._ts):06d}"

    def called(self, method: str) -> list[dict[str, Any]]:
        """The arguments of every successful call of one method, in order."""
        return [arguments for name, arguments in self.calls if name == method]

    async def post_card(self, card: TicketCard) -> PostRef:
        """Post a ticket in its team channel."""
        self._record("post_card", card=card)
        return PostRef(card.channel, self._new_ts())

    async def update_card(self, post: PostRef, card: TicketCard) -> None:
        """Replace a ticket post's content."""
        self._record("update_card", post=post, card=card)

    async def find_card(self, channel: str, ticket_id: int) -> PostRef | None:
        """No post of the ticket is found (nothing was posted before a crash)."""
        self._record("find_card", channel=channel, ticket_id=ticket_id)
        return None

    async def recent_messages(self, channel: str, oldest: str) -> list[CustomerMessage]:
        """No history to read back."""
        self._record("recent_messages", channel=channel, oldest=oldest)
        return []

    async def message_at(self, channel: str, ts: str) -> CustomerMessage | None:
        """No customer's message is at (channel, ts)."""
        self._record("message_at", channel=channel, ts=ts)
        return None

    async def post_note(self, post: PostRef, note: Note) -> None:
        """Say something in a ticket post's thread."""
        self._record("post_note", post=post, note=note)

    async def post_page(
        self, post: PostRef, note: Note, *, ticket_id: int, page: str, resume: bool = False
    ) -> str:
        """Page in a ticket post's thread; the note's ts."""
        self._record("post_page", post=post, note=note, ticket_id=ticket_id, page=page)
        return self._new_ts()

    async def find_page(self, post: PostRef, *, ticket_id: int, page: str) -> str | None:
        """A page is in the thread only if a post_page of it succeeded."""
        self._record("find_page", post=post, ticket_id=ticket_id, page=page)
        return next(
            (
                "found"
                for sent in self.called("post_page")
                if (sent["ticket_id"], sent["page"]) == (ticket_id, page)
            ),
            None,
        )

    async def update_note(self, note: PostRef, text: Note) -> None:
        """Replace the words of a note the bot posted."""
        self._record("update_note", note=note, text=text)

    async def post_alert(self, channel: str, note: Note) -> None:
        """Tell the operator something in the ops channel."""
        self._record("post_alert", channel=channel, note=note)

    async def direct_message(self, user: str, note: Note) -> None:
        """Message one person directly."""
        self._record("direct_message", user=user, note=note)

    async def direct_page(self, user: str, page: DirectPage, *, key: str) -> None:
        """Page one on-call person directly about a ticket."""
        self._record("direct_page", user=user, page=page, key=key)

    async def find_direct_page(self, user: str, *, ticket_id: int, key: str) -> bool:
        """A DM is there only if a direct_page of it succeeded."""
        self._record("find_direct_page", user=user, ticket_id=ticket_id, key=key)
        return any(
            (sent["user"], sent["page"].ticket_id, sent["key"]) == (user, ticket_id, key)
            for sent in self.called("direct_page")
        )

    async def reply_to_customer(self, channel: str, thread_ts: str, text: str) -> str:
        """Post an approved reply in the customer's thread; its ts."""
        self._record("reply_to_customer", channel=channel, thread_ts=thread_ts, text=text)
        return self._new_ts()

    async def find_reply(self, channel: str, thread_ts: str, text: str) -> str | None:
        """No reply is found in the thread."""
        self._record("find_reply", channel=channel, thread_ts=thread_ts, text=text)
        return None

    async def permalink(self, channel: str, ts: str) -> str | None:
        """A link shaped like Slack's."""
        self._record("permalink", channel=channel, ts=ts)
        return f"https://example.slack.com/archives/{channel}/p{ts.replace('.', '')}"

    async def tell(self, channel: str, user: str, text: str) -> None:
        """Tell one person something only they see."""
        self._record("tell", channel=channel, user=user, text=text)

    async def group_members(self, group: str) -> tuple[str, ...]:
        """The members the test gave the group (none by default)."""
        self._record("group_members", group=group)
        return self.members.get(group, ())


class CountingStore(MemoryStore):
    """A MemoryStore that lists which ticket and post lookups were made, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.lookups: list[str] = []

    async def ticket(self, ticket_id: int) -> StoredTicket | None:
        """The ticket with this id (counted)."""
        self.lookups.append("ticket")
        return await super().ticket(ticket_id)

    async def posts(self, ticket_id: int, *, active_only: bool = True) -> list[StoredPost]:
        """A ticket's team posts (counted)."""
        self.lookups.append("posts")
        return await super().posts(ticket_id, active_only=active_only)

    async def post_at(self, channel: str, ts: str) -> StoredPost | None:
        """The team post at (channel, ts) (counted)."""
        self.lookups.append("post_at")
        return await super().post_at(channel, ts)

    async def ticket_by_public_id(self, public_id: str) -> int | None:
        """The ticket with this public id (counted)."""
        self.lookups.append("ticket_by_public_id")
        return await super().ticket_by_public_id(public_id)

    async def draft(self, ticket_id: int) -> StoredDraft | None:
        """The ticket's draft (counted)."""
        self.lookups.append("draft")
        return await super().draft(ticket_id)


# --- fakes of the desk's parts (routing/desk/roles.py), for a part tested on its own ----------


class FakeAgents:
    """AgentLookup and AgentGate over a fixed set of agents, who may act on every ticket."""

    def __init__(self, store: MemoryStore, agents: frozenset[str]) -> None:
        self._store = store
        self._agents = agents

    async def is_any_agent(self, user: str | None) -> bool:
        """True for one of the agents."""
        return user in self._agents

    async def require_any_agent(self, user: str, action: str) -> None:
        """Refused unless user is one of the agents."""
        if user not in self._agents:
            raise NotAllowedError(f"Only agents can {action}.")

    async def ticket_for_agent(self, ticket_id: int, user: str, action: str) -> StoredTicket:
        """The ticket, for one of the agents."""
        await self.require_any_agent(user, action)
        ticket = await self._store.ticket(ticket_id)
        if ticket is None:
            raise BadRequestError(f"There is no ticket #{ticket_id}.")
        return ticket


class FakePlacement:
    """CardPlacement that records each place and refresh it is asked for."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, Any]] = []

    async def place(self, ticket_id: int, teams: set[str], *, moved_by: str | None) -> None:
        """Recorded as ("place", ticket, sorted teams)."""
        self.calls.append(("place", ticket_id, sorted(teams)))

    async def refresh(self, ticket_id: int, *, include_inactive: bool = False) -> None:
        """Recorded as ("refresh", ticket, include_inactive)."""
        self.calls.append(("refresh", ticket_id, include_inactive))


@dataclass
class FakePager:
    """Paging that records what it is asked; page() answers `sent` or raises `refusal`."""

    sent: int = 1
    refusal: Exception | None = None
    needed: list[int] = field(default_factory=list)
    asked: list[tuple[int, tuple[str, ...], str | None]] = field(default_factory=list)

    async def page_if_needed(self, ticket_id: int, *, ticket: StoredTicket | None = None) -> None:
        """Recorded in needed (the ticket as the caller read it is not kept)."""
        self.needed.append(ticket_id)

    async def page(
        self, ticket_id: int, *, reasons: Sequence[str], asked_by: str | None = None
    ) -> int:
        """Recorded in asked; raises the refusal if one is set."""
        self.asked.append((ticket_id, tuple(reasons), asked_by))
        if self.refusal is not None:
            raise self.refusal
        return self.sent


@dataclass
class FakePostPlacement:
    """PostPlacement that records what it is asked; a post is stored as Placement stores it."""

    store: MemoryStore
    channels: dict[str, str]
    posted: list[tuple[int, str, bool, StoredTicket | None]] = field(default_factory=list)
    calls: list[tuple[str, int, Any]] = field(default_factory=list)
    _ts: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def place(self, ticket_id: int, teams: set[str], *, moved_by: str | None) -> None:
        """Recorded as ("place", ticket, sorted teams)."""
        self.calls.append(("place", ticket_id, sorted(teams)))

    def team_channel(self, team: str) -> str:
        """The channel the test gave the team."""
        return self.channels[team]

    async def post_once(
        self, ticket_id: int, team: str, *, recovering: bool, leased: LeasedTicket | None = None
    ) -> PostRef | None:
        """Recorded in posted (with the ticket it was handed); the post is stored."""
        self.posted.append((ticket_id, team, recovering, leased.ticket if leased else None))
        ref = PostRef(self.channels[team], f"1700000100.{next(self._ts):06d}")
        await self.store.add_post(ticket_id, team=team, channel=ref.channel, ts=ref.ts)
        return ref

    async def refresh(
        self,
        ticket_id: int,
        *,
        include_inactive: bool = False,
        ticket: StoredTicket | None = None,
        posts: Sequence[StoredPost] | None = None,
    ) -> None:
        """Recorded as ("refresh", ticket, include_inactive)."""
        self.calls.append(("refresh", ticket_id, include_inactive))

    async def link_related(
        self,
        ticket_id: int,
        *,
        ticket: StoredTicket | None = None,
        posts: Sequence[StoredPost] | None = None,
    ) -> None:
        """Recorded as ("link_related", ticket, its teams)."""
        self.calls.append(("link_related", ticket_id, sorted(p.team for p in posts or ())))


@dataclass
class FakeRoutingQueue:
    """RoutingQueue that keeps the router's state and records what it queues, runs nothing."""

    placing: dict[int, Placing] = field(default_factory=dict)
    held: set[int] = field(default_factory=set)
    retries: dict[int, int] = field(default_factory=dict)
    refining: dict[int, int] = field(default_factory=dict)
    sent: list[tuple[str, Send]] = field(default_factory=list)
    retried: list[int] = field(default_factory=list)
    asked: list[ModelJob] = field(default_factory=list)
    _seq: itertools.count[int] = field(default_factory=itertools.count)

    def next_seq(self) -> int:
        """0, 1, 2, ..."""
        return next(self._seq)

    def send(self, channel: str, job: Send) -> None:
        """Recorded in sent."""
        self.sent.append((channel, job))

    def retry_later(self, ticket_id: int) -> None:
        """Recorded in retried."""
        self.retried.append(ticket_id)

    def ask_model(self, job: ModelJob) -> None:
        """Recorded in asked."""
        self.asked.append(job)
