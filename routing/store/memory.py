"""An in-memory `TicketStore` for fast unit tests of the desk parts; never a production backend.

The same contract as routing/store/sqlite.py, kept in dicts: a (channel, ts) is one ticket, an
event id is delivered once, claims of drafts, pages and routing leases are compare-and-sets,
audit and corrections are redacted (routing/store/privacy.py). No method awaits anything before
it has made its change, so on one event loop every method is atomic: of any number of concurrent
callers of a claim exactly one wins, as with the SQL backends. Several `MemoryStore`s made with
`sibling()` share one set of tables, like replicas on one database.

Nothing selects this store from the environment or a URL: tests build it themselves.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from routing.models import Decision, Escalation, LabeledExample, LayerCall
from routing.records import (
    PAGE_LET_GO_AT,
    AuditEntry,
    ClaimedTicket,
    DayRow,
    DayStats,
    DraftStatus,
    FollowUpKind,
    HeldReaction,
    LeasedTicket,
    ModelState,
    PendingFollowUp,
    PostStatus,
    StoredBurst,
    StoredDraft,
    StoredPage,
    StoredPost,
    StoredReply,
    StoredTicket,
    TicketStatus,
    day_stats_of,
    utc_now,
)
from routing.store.privacy import audit_json, correction_json
from routing.store.rows import new_public_id
from routing.store.schema import migrations

# A retaken page's new claim time is later than the one read even when the clock has not moved.
_TICK = timedelta(microseconds=1)


@dataclass
class _Ticket:
    record: StoredTicket
    updated_at: datetime
    claimed_by: str | None = None
    lease_until: datetime | None = None
    claims: int = 0
    edited_ts: str | None = None


@dataclass
class _Direct:
    page: str
    claimed_at: datetime
    sent_at: datetime | None = None


@dataclass
class Tables:
    """Everything one in-memory database holds; shared by the stores made with `sibling()`."""

    events: dict[str, datetime] = field(default_factory=dict)
    tickets: dict[int, _Ticket] = field(default_factory=dict)
    ticket_ids: dict[tuple[str, str], int] = field(default_factory=dict)
    layer_calls: dict[int, list[LayerCall]] = field(default_factory=dict)
    replies: dict[int, dict[str, StoredReply]] = field(default_factory=dict)
    drafts: dict[int, StoredDraft] = field(default_factory=dict)
    posts: dict[int, StoredPost] = field(default_factory=dict)
    post_ids: dict[tuple[str, str], int] = field(default_factory=dict)
    public_ids: dict[int, str] = field(default_factory=dict)
    # Pages by (ticket, key), in the order they were claimed.
    pages: dict[tuple[int, str], StoredPage] = field(default_factory=dict)
    direct_pages: dict[tuple[int, str], _Direct] = field(default_factory=dict)
    oncall: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # The burst going on per (customer, on-call); tickets counted and counting note per lead.
    bursts: dict[tuple[str, str], StoredBurst] = field(default_factory=dict)
    post_slots: dict[str, float] = field(default_factory=dict)  # channel -> next slot
    # Follow-ups whose after-ack work is not done: (ticket, kind, ref) -> when stored or taken.
    pending_follow_ups: dict[tuple[int, FollowUpKind, str], datetime] = field(default_factory=dict)
    burst_tickets: dict[tuple[str, str, int], set[int]] = field(default_factory=dict)
    burst_followups: dict[tuple[str, str, int], tuple[str, str] | None] = field(
        default_factory=dict
    )
    # Audit before/after states and corrections as stored: redacted JSON.
    audit: list[tuple[int | None, str, str, str, str, datetime]] = field(default_factory=list)
    corrections: list[str] = field(default_factory=list)
    # Emoji on messages not yet recorded as posts: id -> the held emoji.
    held_reactions: dict[int, HeldReaction] = field(default_factory=dict)
    last_ticket_id: int = 0
    last_post_id: int = 0
    last_held_id: int = 0


def _out(ticket: StoredTicket) -> StoredTicket:
    """A ticket as read: its models copied, as a database hands out new objects on each read."""
    return replace(
        ticket,
        decision=ticket.decision.model_copy(deep=True) if ticket.decision else None,
        escalation=ticket.escalation.model_copy(deep=True) if ticket.escalation else None,
    )


def _claimed(claims: int) -> TicketStatus:
    """What a claim reports: "routing" when an earlier claim may have posted the ticket."""
    return "new" if claims <= 1 else "routing"


class MemoryStore:
    """A TicketStore kept in memory: `MemoryStore()` is an empty database."""

    def __init__(self, tables: Tables | None = None) -> None:
        self.tables = tables if tables is not None else Tables()

    def sibling(self) -> MemoryStore:
        """Another store over the same tables (a second replica's connection)."""
        return MemoryStore(self.tables)

    async def close(self) -> None:
        """Nothing to close: the tables stay for the sibling stores and the next open."""

    async def schema_version(self) -> int:
        """The latest schema's version: these tables hold everything it has."""
        return len(migrations("sqlite"))

    def _require_ticket(self, ticket_id: int) -> None:
        # The SQL backends' foreign keys refuse rows about a ticket that does not exist.
        if ticket_id not in self.tables.tickets:
            msg = f"no ticket {ticket_id}"
            raise LookupError(msg)

    # --- events ---------------------------------------------------------------------------

    async def first_delivery(self, event_id: str) -> bool:
        """Record an event id; False when it was seen before (a retry or redelivery)."""
        if event_id in self.tables.events:
            return False
        self.tables.events[event_id] = utc_now()
        return True

    async def forget_events(self, *, before: datetime) -> int:
        """Drop event ids recorded before a time; returns how many."""
        old = [event for event, at in self.tables.events.items() if at < before]
        for event in old:
            del self.tables.events[event]
        return len(old)

    # --- tickets --------------------------------------------------------------------------

    async def add_ticket(
        self, *, channel: str, ts: str, author: str | None, text: str, received_at: datetime
    ) -> int | None:
        """Store a new ticket; None when this (channel, ts) is already a ticket."""
        if (channel, ts) in self.tables.ticket_ids:
            return None
        self.tables.last_ticket_id += 1
        ticket_id = self.tables.last_ticket_id
        self.tables.ticket_ids[channel, ts] = ticket_id
        self.tables.tickets[ticket_id] = _Ticket(
            record=StoredTicket(
                id=ticket_id,
                channel=channel,
                ts=ts,
                author=author,
                text=text,
                status="new",
                decision=None,
                escalation=None,
                permalink=None,
                received_at=received_at.astimezone(UTC),
                routed_at=None,
            ),
            updated_at=utc_now(),
        )
        return ticket_id

    async def ticket(self, ticket_id: int) -> StoredTicket | None:
        """The ticket with this id."""
        row = self.tables.tickets.get(ticket_id)
        return _out(row.record) if row else None

    async def ticket_at(self, channel: str, ts: str) -> StoredTicket | None:
        """The ticket made from the message at (channel, ts)."""
        ticket_id = self.tables.ticket_ids.get((channel, ts))
        return None if ticket_id is None else await self.ticket(ticket_id)

    async def ticket_ts_range(self, channel: str) -> tuple[str, str] | None:
        """The ts of the first and of the latest message in a channel that is a ticket."""
        # Slack's ts strings have a fixed width, so text order is time order (as in SQL).
        stamps = [ts for (where, ts) in self.tables.ticket_ids if where == channel]
        return (min(stamps), max(stamps)) if stamps else None

    async def unrouted_tickets(self) -> list[StoredTicket]:
        """Tickets stored but not posted yet (new, or interrupted while routing), oldest first."""
        return [
            _out(row.record)
            for _, row in sorted(self.tables.tickets.items())
            if row.record.status in ("new", "routing")
        ]

    async def unpaged_tickets(self, *, since: datetime) -> list[int]:
        """Routed tickets received since a time that need a human and were never paged."""
        paged = {ticket_id for ticket_id, _ in self.tables.pages}
        return [
            ticket_id
            for ticket_id, row in sorted(self.tables.tickets.items())
            if row.record.status == "routed"
            and row.record.received_at >= since
            and row.record.escalation is not None
            and row.record.escalation.needs_human
            and ticket_id not in paged
        ]

    def _claim(self, row: _Ticket, holder: str, now: datetime, until: datetime) -> TicketStatus:
        row.record = replace(row.record, status="routing")
        row.claimed_by, row.lease_until, row.updated_at = holder, until, now
        row.claims += 1
        return _claimed(row.claims)

    async def claim_for_routing(
        self, ticket_id: int, *, holder: str, now: datetime, until: datetime
    ) -> TicketStatus | None:
        """Claim a ticket for routing, leased to holder until a time (see TicketStore)."""
        row = self.tables.tickets.get(ticket_id)
        if row is None:
            return None
        status = row.record.status
        free = status == "new" or (
            status == "routing"
            and (
                row.claimed_by is None
                or row.claimed_by == holder
                or row.lease_until is None
                or row.lease_until < now
            )
        )
        return self._claim(row, holder, now, until) if free else None

    async def claim_ticket(
        self, ticket_id: int, *, holder: str, now: datetime, until: datetime
    ) -> ClaimedTicket | None:
        """Claim a ticket and read it with its active posts and replies (see TicketStore)."""
        claimed = await self.claim_for_routing(ticket_id, holder=holder, now=now, until=until)
        if claimed is None:
            return None
        # Read as one statement would (not through ticket() and posts(), which tests count).
        replies = self.tables.replies.get(ticket_id, {})
        return ClaimedTicket(
            claimed=claimed,
            ticket=_out(self.tables.tickets[ticket_id].record),
            posts=tuple(
                post
                for _, post in sorted(self.tables.posts.items())
                if post.ticket_id == ticket_id and post.status == "active"
            ),
            replies=tuple(replies[ts] for ts in sorted(replies)),
        )

    async def renew_leases(self, holder: str, ticket_ids: Sequence[int], *, until: datetime) -> int:
        """Extend holder's leases on these tickets to a time; how many it holds."""
        renewed = 0
        for ticket_id in set(ticket_ids):
            row = self.tables.tickets.get(ticket_id)
            if row and row.record.status == "routing" and row.claimed_by == holder:
                row.lease_until = until
                renewed += 1
        return renewed

    async def renew_lease(
        self, holder: str, ticket_id: int, *, until: datetime
    ) -> LeasedTicket | None:
        """Extend holder's lease on one ticket and read it; None when holder does not hold it."""
        row = self.tables.tickets.get(ticket_id)
        if row is None or row.record.status != "routing" or row.claimed_by != holder:
            return None
        row.lease_until = until
        # Read as one statement would (not through ticket() and posts(), which tests count).
        replies = self.tables.replies.get(ticket_id, {})
        return LeasedTicket(
            ticket=_out(row.record),
            posts=tuple(
                post
                for _, post in sorted(self.tables.posts.items())
                if post.ticket_id == ticket_id and post.status == "active"
            ),
            replies=tuple(replies[ts] for ts in sorted(replies)),
            draft=self.tables.drafts.get(ticket_id),
            public_id=self.tables.public_ids.get(ticket_id),
        )

    async def take_stale_tickets(
        self, holder: str, *, now: datetime, until: datetime, new_before: datetime, limit: int
    ) -> list[tuple[int, TicketStatus]]:
        """Claim up to limit tickets nobody is routing (see TicketStore), oldest first."""
        stale = [
            (ticket_id, row)
            for ticket_id, row in sorted(self.tables.tickets.items())
            if (row.record.status == "new" and row.updated_at < new_before)
            or (
                row.record.status == "routing"
                and (row.lease_until is None or row.lease_until < now)
            )
        ][: max(limit, 0)]
        return [(ticket_id, self._claim(row, holder, now, until)) for ticket_id, row in stale]

    async def release_leases(self, holder: str) -> int:
        """End holder's leases, so any replica takes the tickets at once."""
        released = 0
        for row in self.tables.tickets.values():
            if row.record.status == "routing" and row.claimed_by == holder:
                row.lease_until = None
                released += 1
        return released

    def _set_status(self, ticket_id: int, status: TicketStatus) -> None:
        row = self.tables.tickets.get(ticket_id)
        if row is None:
            return
        now = utc_now()
        row.updated_at = now
        if status == "routed":
            row.record = replace(row.record, status=status, routed_at=now)
            row.lease_until = None
        else:
            row.record = replace(row.record, status=status)

    async def mark_routed(self, ticket_id: int) -> None:
        """The ticket is posted in every team channel it belongs to; its lease ends.

        A withdrawn ticket stays withdrawn (its deletion is stored before Slack's ack).
        """
        row = self.tables.tickets.get(ticket_id)
        if row is not None and row.record.status != "withdrawn":
            self._set_status(ticket_id, "routed")

    async def mark_withdrawn(self, ticket_id: int) -> bool:
        """The customer deleted the message; False if it was already withdrawn."""
        row = self.tables.tickets.get(ticket_id)
        if row is None or row.record.status == "withdrawn":
            return False
        self._set_status(ticket_id, "withdrawn")
        self._pending(ticket_id, "withdrawn", "")
        return True

    def _update(self, ticket_id: int, *, touch: bool = True, **changes: Any) -> None:
        row = self.tables.tickets.get(ticket_id)
        if row is None:  # an UPDATE of no row
            return
        row.record = replace(row.record, **changes)
        if touch:
            row.updated_at = utc_now()

    async def set_text(self, ticket_id: int, text: str, *, edited_ts: str | None = None) -> bool:
        """Replace a ticket's text after the customer edited the message."""
        row = self.tables.tickets.get(ticket_id)
        if row is None:
            return False
        if edited_ts is not None:
            if row.edited_ts is not None and float(row.edited_ts) >= float(edited_ts):
                return False
            row.edited_ts = edited_ts
        self._update(ticket_id, text=text)
        self._pending(ticket_id, "edit", edited_ts or "")
        return True

    async def set_permalink(self, ticket_id: int, permalink: str) -> None:
        """Remember the link to the customer's message."""
        self._update(ticket_id, touch=False, permalink=permalink)

    async def record_triage(
        self,
        ticket_id: int,
        *,
        layers: Sequence[LayerCall],
        decision: Decision,
        escalation: Escalation,
        model_state: ModelState | None = None,
        draft: tuple[str, str] | None = None,
        permalink: str | None = None,
    ) -> None:
        """Keep every layer's output and the final decision of one classification run.

        With draft and permalink, those too (nothing awaits between the writes: atomic).
        """
        if layers or draft is not None:
            self._require_ticket(ticket_id)
        # Copies, as a database keeps what was written whatever the caller changes later.
        calls = [call.model_copy(deep=True) for call in layers]
        self.tables.layer_calls.setdefault(ticket_id, []).extend(calls)
        self._update(
            ticket_id,
            decision=decision.model_copy(deep=True),
            escalation=escalation.model_copy(deep=True),
            language=decision.language,
            model_state=model_state,
        )
        if permalink is not None:
            self._update(ticket_id, touch=False, permalink=permalink)
        if draft is not None:
            self._store_draft(ticket_id, text=draft[0], source=draft[1])

    async def record_refinement(
        self,
        ticket_id: int,
        *,
        layers: Sequence[LayerCall],
        decision: Decision,
        escalation: Escalation,
        state: ModelState,
        draft: tuple[str, str] | None = None,
        replacing: str | None = None,
    ) -> bool:
        """Keep the model stage's answer if the ticket still waits for it (see TicketStore)."""
        row = self.tables.tickets.get(ticket_id)
        if row is None or row.record.model_state != "pending":
            return False
        calls = [call.model_copy(deep=True) for call in layers]
        self.tables.layer_calls.setdefault(ticket_id, []).extend(calls)
        self._update(
            ticket_id,
            decision=decision.model_copy(deep=True),
            escalation=escalation.model_copy(deep=True),
            language=decision.language,
            model_state=state,
        )
        old = self.tables.drafts.get(ticket_id)
        if (
            draft is not None
            and old is not None
            and old.status == "pending"
            and old.source != "agent"
            and old.text == replacing
        ):
            self.tables.drafts[ticket_id] = replace(
                old, text=draft[0], source=draft[1], created_at=utc_now()
            )
        return True

    async def expire_model_waits(self, *, received_before: datetime) -> list[int]:
        """Mark "late" the tickets received before a time still waiting for the model; ids."""
        late = [
            ticket_id
            for ticket_id, row in sorted(self.tables.tickets.items())
            if row.record.model_state == "pending" and row.record.received_at < received_before
        ]
        for ticket_id in late:
            self._update(ticket_id, model_state="late")
        return late

    async def set_decision(
        self, ticket_id: int, decision: Decision, escalation: Escalation
    ) -> None:
        """Replace the final decision (an agent's reclassification)."""
        self._update(
            ticket_id,
            decision=decision.model_copy(deep=True),
            escalation=escalation.model_copy(deep=True),
        )

    async def layer_calls(self, ticket_id: int) -> list[LayerCall]:
        """Every layer's output for a ticket, over all its classification runs, in order."""
        return [call.model_copy(deep=True) for call in self.tables.layer_calls.get(ticket_id, [])]

    async def add_reply(self, ticket_id: int, *, ts: str, author: str | None, text: str) -> bool:
        """Add a thread reply to a ticket; False if this reply was stored already."""
        self._require_ticket(ticket_id)
        replies = self.tables.replies.setdefault(ticket_id, {})
        if ts in replies:
            return False
        replies[ts] = StoredReply(ts=ts, author=author, text=text)
        self._pending(ticket_id, "reply", ts)
        return True

    async def set_reply_text(self, ticket_id: int, *, ts: str, text: str) -> bool:
        """Change a stored thread reply's text; False if it is not one of the ticket's replies."""
        replies = self.tables.replies.get(ticket_id, {})
        reply = replies.get(ts)
        if reply is None or reply.text == text:
            return False
        replies[ts] = replace(reply, text=text)
        self._pending(ticket_id, "reply_edit", ts)
        return True

    def _pending(self, ticket_id: int, kind: FollowUpKind, ref: str) -> None:
        """A follow-up's after-ack work, recorded as still to do (with the write, as in SQL)."""
        self.tables.pending_follow_ups[ticket_id, kind, ref] = utc_now()

    async def pending_follow_ups(self, *, stored_before: datetime) -> list[PendingFollowUp]:
        """Follow-ups stored (or taken over) before a time whose after-ack work is not done."""
        pending = [
            PendingFollowUp(ticket_id=ticket_id, kind=kind, ref=ref, at=at)
            for (ticket_id, kind, ref), at in self.tables.pending_follow_ups.items()
            if at < stored_before
        ]
        return sorted(pending, key=lambda item: (item.at, item.ticket_id))

    async def retake_follow_up(self, pending: PendingFollowUp) -> bool:
        """Take over a pending follow-up still as read (its at); exactly one caller wins."""
        key = (pending.ticket_id, pending.kind, pending.ref)
        if self.tables.pending_follow_ups.get(key) != pending.at:
            return False
        self.tables.pending_follow_ups[key] = max(utc_now(), pending.at + _TICK)
        return True

    async def finish_follow_up(self, ticket_id: int, *, kind: str, ref: str) -> None:
        """A follow-up's after-ack work is done."""
        for key in [k for k in self.tables.pending_follow_ups if k[0] == ticket_id]:
            if (key[1], key[2]) == (kind, ref):
                del self.tables.pending_follow_ups[key]

    async def replies(self, ticket_id: int) -> list[StoredReply]:
        """The thread replies under a ticket, oldest first."""
        replies = self.tables.replies.get(ticket_id, {})
        return [replies[ts] for ts in sorted(replies)]

    # --- drafts ---------------------------------------------------------------------------

    async def set_draft(self, ticket_id: int, *, text: str, source: str) -> None:
        """Store a new pending draft for a ticket, replacing one that was not sent."""
        self._require_ticket(ticket_id)
        self._store_draft(ticket_id, text=text, source=source)

    def _store_draft(self, ticket_id: int, *, text: str, source: str) -> None:
        now = utc_now()
        old = self.tables.drafts.get(ticket_id)
        if old is None:
            self.tables.drafts[ticket_id] = StoredDraft(
                ticket_id=ticket_id,
                text=text,
                source=source,
                status="pending",
                decided_by=None,
                reply_ts=None,
                created_at=now,
                decided_at=None,
            )
        elif old.status in ("pending", "rejected"):
            # As the SQL upsert: a new text, pending again; reply_ts and tried_at stay.
            self.tables.drafts[ticket_id] = replace(
                old,
                text=text,
                source=source,
                status="pending",
                decided_by=None,
                decided_at=None,
                created_at=now,
            )

    async def draft(self, ticket_id: int) -> StoredDraft | None:
        """The ticket's draft."""
        return self.tables.drafts.get(ticket_id)

    async def claim_draft(self, ticket_id: int, agent: str) -> bool:
        """Take a pending draft for sending; exactly one of several concurrent callers wins."""
        return self._decide_draft(ticket_id, agent, "sending")

    async def reject_draft(self, ticket_id: int, agent: str) -> bool:
        """Drop a pending draft; False if it was not pending."""
        return self._decide_draft(ticket_id, agent, "rejected")

    def _decide_draft(
        self, ticket_id: int, agent: str, status: Literal["sending", "rejected"]
    ) -> bool:
        draft = self.tables.drafts.get(ticket_id)
        if draft is None or draft.status != "pending":
            return False
        self.tables.drafts[ticket_id] = replace(
            draft, status=status, decided_by=agent, decided_at=utc_now()
        )
        return True

    async def finish_draft(self, ticket_id: int, *, sent_ts: str | None) -> None:
        """Settle a claimed draft: sent (with the reply's ts), or pending again if it failed."""
        draft = self.tables.drafts.get(ticket_id)
        if draft is None:
            return
        if sent_ts is None:
            if draft.status == "sending":
                # tried_at: Slack may have taken it after all; the next approval looks first.
                self.tables.drafts[ticket_id] = replace(
                    draft, status="pending", decided_by=None, decided_at=None, tried_at=utc_now()
                )
        else:
            sent: DraftStatus = "sent"
            self.tables.drafts[ticket_id] = replace(draft, status=sent, reply_ts=sent_ts)

    async def settle_draft(
        self, ticket_id: int, *, claimed_at: datetime, sent_ts: str | None
    ) -> bool:
        """Settle a send claim still the one read: sent, or pending; False if it moved on."""
        draft = self.tables.drafts.get(ticket_id)
        if draft is None or draft.status != "sending" or draft.decided_at != claimed_at:
            return False
        if sent_ts is None:
            self.tables.drafts[ticket_id] = replace(
                draft, status="pending", decided_by=None, decided_at=None, tried_at=utc_now()
            )
        else:
            sent: DraftStatus = "sent"
            self.tables.drafts[ticket_id] = replace(draft, status=sent, reply_ts=sent_ts)
        return True

    async def sending_drafts(self, *, claimed_before: datetime | None = None) -> list[int]:
        """Tickets whose draft is being sent, claimed before a time if given (fate unknown)."""
        return sorted(
            ticket_id
            for ticket_id, draft in self.tables.drafts.items()
            if draft.status == "sending"
            and (
                claimed_before is None
                or (draft.decided_at is not None and draft.decided_at < claimed_before)
            )
        )

    async def edit_draft(self, ticket_id: int, text: str) -> bool:
        """Change a pending draft's text; False if it is no longer pending."""
        draft = self.tables.drafts.get(ticket_id)
        if draft is None or draft.status != "pending":
            return False
        self.tables.drafts[ticket_id] = replace(draft, text=text, source="agent")
        return True

    # --- posts ----------------------------------------------------------------------------

    async def add_post(self, ticket_id: int, *, team: str, channel: str, ts: str) -> None:
        """Remember a ticket's post in a team channel."""
        self._require_ticket(ticket_id)
        if (channel, ts) in self.tables.post_ids:
            return
        self.tables.last_post_id += 1
        post_id = self.tables.last_post_id
        self.tables.post_ids[channel, ts] = post_id
        self.tables.posts[post_id] = StoredPost(
            id=post_id,
            ticket_id=ticket_id,
            team=team,
            channel=channel,
            ts=ts,
            status="active",
            moved_to=None,
            moved_by=None,
        )

    async def posts(self, ticket_id: int, *, active_only: bool = True) -> list[StoredPost]:
        """A ticket's team posts, first posted first."""
        return [
            post
            for _, post in sorted(self.tables.posts.items())
            if post.ticket_id == ticket_id and (not active_only or post.status == "active")
        ]

    async def post_at(self, channel: str, ts: str) -> StoredPost | None:
        """The team post at (channel, ts), if it is one of ours."""
        post_id = self.tables.post_ids.get((channel, ts))
        return None if post_id is None else self.tables.posts[post_id]

    async def hold_reaction(
        self, channel: str, ts: str, *, user: str, reaction: str, at: datetime
    ) -> None:
        """Keep an agent's emoji on (channel, ts), not yet a recorded post, until it is one."""
        self.tables.last_held_id += 1
        held_id = self.tables.last_held_id
        self.tables.held_reactions[held_id] = HeldReaction(
            id=held_id, channel=channel, ts=ts, user=user, reaction=reaction, at=at
        )

    async def take_held_reactions(self, channel: str, ts: str) -> list[HeldReaction]:
        """Take (delete and return, oldest first) the emoji held on (channel, ts)."""
        held = self.tables.held_reactions
        mine = [i for i in sorted(held) if (held[i].channel, held[i].ts) == (channel, ts)]
        return [held.pop(i) for i in mine]

    async def forget_held_reactions(self, *, before: datetime) -> int:
        """Drop emoji held since before a time (their message never became a post)."""
        held = self.tables.held_reactions
        old = [i for i, reaction in held.items() if reaction.at < before]
        for i in old:
            del held[i]
        return len(old)

    async def public_id(self, ticket_id: int) -> str:
        """The ticket's public id: random, made the first time it is asked for, then kept."""
        known = self.tables.public_ids.get(ticket_id)
        if known is not None:
            return known
        self._require_ticket(ticket_id)
        made = new_public_id()
        self.tables.public_ids[ticket_id] = made
        return made

    async def ticket_by_public_id(self, public_id: str) -> int | None:
        """The ticket with this public id, if this database made it."""
        return next(
            (ticket for ticket, made in self.tables.public_ids.items() if made == public_id), None
        )

    async def set_post_status(
        self,
        post_id: int,
        status: PostStatus,
        *,
        moved_to: str | None = None,
        moved_by: str | None = None,
    ) -> None:
        """Mark a post moved (where to, by whom) or withdrawn."""
        post = self.tables.posts.get(post_id)
        if post is not None:
            self.tables.posts[post_id] = replace(
                post, status=status, moved_to=moved_to, moved_by=moved_by
            )

    # --- pages and on-call ----------------------------------------------------------------

    async def claim_page(
        self,
        ticket_id: int,
        *,
        team: str,
        people: Sequence[str],
        reasons: Sequence[str],
        direct: bool = False,
        asked_by: str | None = None,
    ) -> bool:
        """Claim a page (team is its key) for sending; False if it was claimed already."""
        self._require_ticket(ticket_id)
        if (ticket_id, team) in self.tables.pages:
            return False
        self.tables.pages[ticket_id, team] = StoredPage(
            ticket_id=ticket_id,
            key=team,
            people=tuple(people),
            reasons=tuple(reasons),
            direct=direct,
            asked_by=asked_by,
            claimed_at=utc_now(),
            noted_at=None,
            sent_at=None,
        )
        return True

    async def release_page(self, ticket_id: int, *, team: str) -> None:
        """Forget a page claim whose message Slack did not take, so it is tried again."""
        self.tables.pages.pop((ticket_id, team), None)

    async def pages(self, ticket_id: int) -> list[str]:
        """The keys of the pages claimed for a ticket (sent or not), in the order claimed."""
        mine = [page for (ticket, _), page in self.tables.pages.items() if ticket == ticket_id]
        return [page.key for page in sorted(mine, key=lambda page: page.claimed_at)]

    async def page(self, ticket_id: int, *, team: str) -> StoredPage | None:
        """One page claim by its key."""
        return self.tables.pages.get((ticket_id, team))

    async def mark_page_noted(self, ticket_id: int, *, team: str) -> None:
        """The page's thread note is in Slack."""
        page = self.tables.pages.get((ticket_id, team))
        if page is not None and page.noted_at is None:
            self.tables.pages[ticket_id, team] = replace(page, noted_at=utc_now())

    async def mark_page_sent(self, ticket_id: int, *, team: str) -> None:
        """The page's note and every DM are in Slack: the page is done."""
        page = self.tables.pages.get((ticket_id, team))
        if page is not None and page.sent_at is None:
            now = utc_now()
            self.tables.pages[ticket_id, team] = replace(
                page, noted_at=page.noted_at or now, sent_at=now
            )

    async def unsent_pages(self, *, claimed_before: datetime) -> list[StoredPage]:
        """Pages claimed before a time and not yet sent (a crash or a refusal), oldest first."""
        unsent = [
            page
            for page in self.tables.pages.values()
            if page.sent_at is None and page.claimed_at < claimed_before
        ]
        return sorted(unsent, key=lambda page: (page.claimed_at, page.ticket_id))

    async def retake_page(self, ticket_id: int, *, team: str, claimed_at: datetime) -> bool:
        """Take over an unsent page whose claim is still the one read; exactly one caller wins."""
        page = self.tables.pages.get((ticket_id, team))
        if page is None or page.sent_at is not None or page.claimed_at != claimed_at:
            return False
        # The claim's time is the compare-and-set's token: the winner moves it on.
        now = max(utc_now(), claimed_at + _TICK)
        self.tables.pages[ticket_id, team] = replace(page, claimed_at=now)
        return True

    async def let_go_page(self, ticket_id: int, *, team: str, claimed_at: datetime) -> bool:
        """Give up an unsent page held by claimed_at: its claim time becomes PAGE_LET_GO_AT."""
        page = self.tables.pages.get((ticket_id, team))
        if page is None or page.sent_at is not None or page.claimed_at != claimed_at:
            return False
        self.tables.pages[ticket_id, team] = replace(page, claimed_at=PAGE_LET_GO_AT)
        return True

    async def claim_direct_page(self, ticket_id: int, *, person: str, page: str) -> bool:
        """Claim a critical ticket's DM to one person (once per ticket); False if claimed."""
        self._require_ticket(ticket_id)
        if (ticket_id, person) in self.tables.direct_pages:
            return False
        self.tables.direct_pages[ticket_id, person] = _Direct(page=page, claimed_at=utc_now())
        return True

    async def mark_direct_page_sent(self, ticket_id: int, *, person: str) -> None:
        """The DM to this person is in Slack."""
        direct = self.tables.direct_pages.get((ticket_id, person))
        if direct is not None:
            direct.sent_at = utc_now()

    async def direct_pages(self, ticket_id: int) -> dict[str, tuple[str, bool]]:
        """Each person DMed (or being DMed) about a ticket: the page's key, and whether sent."""
        return {
            person: (direct.page, direct.sent_at is not None)
            for (ticket, person), direct in self.tables.direct_pages.items()
            if ticket == ticket_id
        }

    async def take_post_slot(self, channel: str, *, now: datetime, spacing: float) -> datetime:
        """Take the channel's next post slot: the later of now and the one after the last."""
        slot = max(now.timestamp(), self.tables.post_slots.get(channel, 0.0))
        self.tables.post_slots[channel] = slot + spacing
        return datetime.fromtimestamp(slot, UTC)

    async def join_burst(
        self,
        customer: str,
        oncall: str,
        *,
        ticket_id: int,
        channel: str,
        ts: str,
        key: str,
        critical: bool,
        at: datetime,
        window: timedelta,
    ) -> StoredBurst:
        """The burst a page at `at` is in: a new one led by this ticket, or the one going on."""
        self._require_ticket(ticket_id)
        current = self.tables.bursts.get((customer, oncall))
        if (
            current is None
            or current.started_at < at - window
            or (critical and (not current.critical or current.key != key))
        ):
            current = StoredBurst(
                customer=customer,
                oncall=oncall,
                ticket_id=ticket_id,
                channel=channel,
                ts=ts,
                key=key,
                critical=critical,
                started_at=at,
            )
            self.tables.bursts[customer, oncall] = current
        return current

    async def end_burst(
        self, customer: str, oncall: str, *, ticket_id: int, started_at: datetime
    ) -> None:
        """Forget the burst this ticket started at started_at (its page was not sent now)."""
        current = self.tables.bursts.get((customer, oncall))
        if current is not None and (current.ticket_id, current.started_at) == (
            ticket_id,
            started_at,
        ):
            del self.tables.bursts[customer, oncall]

    async def count_in_burst(
        self, customer: str, oncall: str, *, lead: int, ticket_id: int
    ) -> tuple[int, ...]:
        """Count a ticket under the burst led by lead (once); the tickets counted, in order."""
        self._require_ticket(ticket_id)
        counted = self.tables.burst_tickets.setdefault((customer, oncall, lead), set())
        counted.add(ticket_id)
        return tuple(sorted(counted))

    async def claim_burst_followup(self, customer: str, oncall: str, *, lead: int) -> bool:
        """Claim the posting of the note counting a burst's tickets; False if claimed before."""
        if (customer, oncall, lead) in self.tables.burst_followups:
            return False
        self.tables.burst_followups[customer, oncall, lead] = None
        return True

    async def release_burst_followup(self, customer: str, oncall: str, *, lead: int) -> None:
        """Give up a claim on the counting note that was not posted (the next count posts it)."""
        if self.tables.burst_followups.get((customer, oncall, lead), ()) is None:
            del self.tables.burst_followups[customer, oncall, lead]

    async def set_burst_followup(
        self, customer: str, oncall: str, *, lead: int, channel: str, ts: str
    ) -> None:
        """The note counting a burst's tickets is in Slack at (channel, ts)."""
        if (customer, oncall, lead) in self.tables.burst_followups:
            self.tables.burst_followups[customer, oncall, lead] = (channel, ts)

    async def burst_followup(
        self, customer: str, oncall: str, *, lead: int
    ) -> tuple[str, str] | bool | None:
        """The counting note's (channel, ts); True while claimed, not yet posted; None: none."""
        if (customer, oncall, lead) not in self.tables.burst_followups:
            return None
        return self.tables.burst_followups[customer, oncall, lead] or True

    async def set_oncall(self, team: str, people: Sequence[str], set_by: str) -> None:
        """Replace a team's on-call (overrides the config until changed again)."""
        self.tables.oncall[team] = tuple(people)

    async def oncall(self, team: str) -> tuple[str, ...] | None:
        """The on-call set with `/triage oncall`, or None when the config's applies."""
        return self.tables.oncall.get(team)

    # --- audit and corrections ------------------------------------------------------------

    async def audit(
        self,
        *,
        ticket_id: int | None,
        actor: str,
        action: str,
        before: Any = None,
        after: Any = None,
    ) -> None:
        """Record an action: who, what, when, and the state before and after (redacted)."""
        if ticket_id is not None:
            self._require_ticket(ticket_id)
        self.tables.audit.append(
            (ticket_id, actor, action, audit_json(before), audit_json(after), utc_now())
        )

    async def audit_log(self, ticket_id: int | None = None) -> list[AuditEntry]:
        """Audit entries, oldest first; all of them, or one ticket's."""
        return [
            AuditEntry(
                ticket_id=ticket,
                actor=actor,
                action=action,
                before=json.loads(before),
                after=json.loads(after),
                at=at,
            )
            for ticket, actor, action, before, after, at in self.tables.audit
            if ticket_id is None or ticket == ticket_id
        ]

    async def add_correction(
        self, example: LabeledExample, *, ticket_id: int | None, by: str
    ) -> None:
        """Store an agent's correction as a labeled example, the customer's words redacted."""
        if ticket_id is not None:
            self._require_ticket(ticket_id)
        self.tables.corrections.append(correction_json(example))

    async def corrections(self) -> list[LabeledExample]:
        """Every correction, oldest first: the classifier learns them again at start-up."""
        return [LabeledExample.model_validate_json(kept) for kept in self.tables.corrections]

    # --- reports --------------------------------------------------------------------------

    async def day_stats(self, day: date) -> DayStats:
        """Counts for tickets received on one UTC day."""
        start = datetime.combine(day, time.min, tzinfo=UTC)
        end = datetime.combine(day, time.max, tzinfo=UTC)
        rows = []
        for ticket_id, row in self.tables.tickets.items():
            ticket = row.record
            if not start <= ticket.received_at <= end:
                continue
            draft = self.tables.drafts.get(ticket_id)
            rows.append(
                DayRow(
                    received_at=ticket.received_at,
                    decision_json=ticket.decision.model_dump_json() if ticket.decision else None,
                    escalation_json=(
                        ticket.escalation.model_dump_json() if ticket.escalation else None
                    ),
                    draft_status=draft.status if draft else None,
                    decided_at=draft.decided_at if draft else None,
                )
            )
        return day_stats_of(rows)
