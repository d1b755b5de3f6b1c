"""What the store keeps, as the rest of the bot reads it: tickets, drafts, posts, audit, stats.

Every backend (routing/store/) returns these records; every time in them is aware and in UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from routing.models import Decision, Escalation

TicketStatus = Literal["new", "routing", "routed", "withdrawn"]
DraftStatus = Literal["pending", "sending", "sent", "rejected"]
PostStatus = Literal["active", "moved", "withdrawn"]


def utc_now() -> datetime:
    """The current time in UTC (the only clock the store uses)."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class StoredTicket:
    """A ticket as stored: the customer's message and where the pipeline has got with it."""

    id: int
    channel: str
    ts: str
    author: str | None
    text: str
    status: TicketStatus
    decision: Decision | None
    escalation: Escalation | None
    permalink: str | None
    received_at: datetime
    routed_at: datetime | None
    # ISO 639-1, from the latest triage; None when unknown.
    language: str | None = None


@dataclass(frozen=True)
class StoredDraft:
    """The reply waiting for an agent, and what became of it."""

    ticket_id: int
    text: str
    source: str
    status: DraftStatus
    decided_by: str | None
    reply_ts: str | None
    created_at: datetime
    decided_at: datetime | None


@dataclass(frozen=True)
class StoredPost:
    """A ticket's post in a team channel."""

    id: int
    ticket_id: int
    team: str
    channel: str
    ts: str
    status: PostStatus
    # Where a moved post's ticket went (a channel id) and who moved it (None: the customer's edit).
    moved_to: str | None
    moved_by: str | None


@dataclass(frozen=True)
class StoredReply:
    """A message in the customer's thread under their ticket."""

    ts: str
    author: str | None
    text: str


@dataclass(frozen=True)
class AuditEntry:
    """Who did what to a ticket, when, and the state before and after."""

    ticket_id: int | None
    actor: str
    action: str
    before: Any
    after: Any
    at: datetime


@dataclass(frozen=True)
class DayStats:
    """One UTC day's tickets, for `/triage stats`."""

    tickets: int
    by_category: dict[str, int]
    by_priority: dict[str, int]
    needs_human: int
    drafts_decided: int
    drafts_sent: int
    minutes_to_approval: tuple[float, ...]
