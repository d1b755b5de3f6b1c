"""What the store keeps, as the rest of the bot reads it: tickets, drafts, posts, audit, stats.

Every backend (routing/store/) returns these records; every time in them is aware and in UTC.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from routing.models import Decision, Escalation

TicketStatus = Literal["new", "routing", "routed", "withdrawn"]
DraftStatus = Literal["pending", "sending", "sent", "rejected"]
PostStatus = Literal["active", "moved", "withdrawn"]
# Where the model stage is with a ticket: asked ("pending"), answered in time, or not ("late").
ModelState = Literal["pending", "answered", "late"]


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
    # The model stage's state (None: no model was asked, as offline).
    model_state: ModelState | None = None


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
    # When a send of it last failed (Slack may still have taken it): look before sending again.
    tried_at: datetime | None = None


# The claim time of a page nobody holds (its claimer stopped in good order): earlier than any
# cutoff, so the next start or sweep of any replica takes it over at once.
PAGE_LET_GO_AT = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class StoredPage:
    """A page claimed for a ticket: who, why, and how far its sending got."""

    ticket_id: int
    # The page's key: the team, "team:critical", or "team:escalated:<agent>".
    key: str
    people: tuple[str, ...]
    reasons: tuple[str, ...]
    # A critical page: each on-call person is also sent a DM.
    direct: bool
    # The agent whose Escalate asked for it.
    asked_by: str | None
    # When it was claimed (or taken over after a crash).
    claimed_at: datetime
    # When its thread note was in Slack, and when the note and every DM were (None: not yet).
    noted_at: datetime | None
    sent_at: datetime | None

    @property
    def team(self) -> str:
        """The team whose post's thread the page is in."""
        return self.key.split(":")[0]


FollowUpKind = Literal["reply", "reply_edit", "edit", "withdrawn"]


@dataclass(frozen=True)
class HeldReaction:
    """An agent's approve or reject emoji on a message not yet recorded as a team post.

    The bot's post can reach Slack (and an agent's emoji on it reach the bot) before the
    post's ts is stored, by this replica or another: the emoji is held, and applied once
    whoever stores the post, or the reacting replica on its second look, takes it.
    """

    id: int
    channel: str
    ts: str
    user: str
    reaction: str
    at: datetime


@dataclass(frozen=True)
class PendingFollowUp:
    """A follow-up stored before the ack whose after-ack work is not done yet."""

    ticket_id: int
    kind: FollowUpKind
    # The reply's ts (reply, reply_edit), the edit's ts or "" (edit), "" (withdrawn).
    ref: str
    # When it was stored, or last taken over: the compare-and-set's token.
    at: datetime


@dataclass(frozen=True)
class StoredBurst:
    """Pages to one on-call about one customer coalesced under a first page (its lead ticket)."""

    customer: str
    # The on-call paged, as a key ("U1,U2": the people, in the order paged).
    oncall: str
    # The ticket whose page was sent, its post (channel, ts) and the page's key.
    ticket_id: int
    channel: str
    ts: str
    key: str
    critical: bool
    started_at: datetime


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
class ClaimedTicket:
    """A ticket just claimed for routing, read with its active posts and its thread replies."""

    claimed: TicketStatus  # what claim_for_routing returns: "new", or "routing" (look first)
    ticket: StoredTicket
    posts: tuple[StoredPost, ...]  # active ones, first posted first
    replies: tuple[StoredReply, ...]  # oldest first


@dataclass(frozen=True)
class LeasedTicket:
    """A ticket whose lease was just renewed, read with what its post step shows and says."""

    ticket: StoredTicket
    posts: tuple[StoredPost, ...]  # active ones, first posted first
    replies: tuple[StoredReply, ...]  # oldest first
    draft: StoredDraft | None
    public_id: str | None  # None until its first card made one


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


@dataclass(frozen=True)
class DayRow:
    """What one ticket of the day adds to DayStats, read by either backend."""

    received_at: datetime
    decision_json: str | None
    escalation_json: str | None
    draft_status: str | None
    decided_at: datetime | None


def day_stats_of(rows: Sequence[DayRow]) -> DayStats:
    """One day's counts from its tickets' rows; the same for every backend."""
    by_category: dict[str, int] = {}
    by_priority: dict[str, int] = {}
    needs_human = decided = sent = 0
    minutes: list[float] = []
    for row in rows:
        if row.decision_json:
            decision = Decision.model_validate_json(row.decision_json)
            by_category[decision.category] = by_category.get(decision.category, 0) + 1
            by_priority[decision.priority] = by_priority.get(decision.priority, 0) + 1
        if row.escalation_json and Escalation.model_validate_json(row.escalation_json).needs_human:
            needs_human += 1
        if row.draft_status in ("sent", "rejected"):
            decided += 1
        if row.draft_status == "sent" and row.decided_at is not None:
            sent += 1
            minutes.append((row.decided_at - row.received_at).total_seconds() / 60)
    return DayStats(
        tickets=len(rows),
        by_category=by_category,
        by_priority=by_priority,
        needs_human=needs_human,
        drafts_decided=decided,
        drafts_sent=sent,
        minutes_to_approval=tuple(sorted(minutes)),
    )
