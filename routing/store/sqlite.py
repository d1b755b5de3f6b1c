"""The embedded backend, one SQLite file (aiosqlite): tickets, drafts, posts, audit, pages.

WAL mode so readers never wait for the writer; versioned migrations in `schema.MIGRATIONS` (the
file's `user_version` says which have run); every timestamp is UTC ISO 8601. One connection
serves the process: aiosqlite runs its statements in order on one thread, so a conditional
UPDATE is a compare-and-set that exactly one caller wins.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from time import monotonic
from types import TracebackType
from typing import Any, Literal, Self

import aiosqlite

from routing.models import Decision, Escalation, LabeledExample, LayerCall
from routing.records import (
    PAGE_LET_GO_AT,
    AuditEntry,
    ClaimedTicket,
    DayRow,
    DayStats,
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
from routing.store.retry import ACK_WRITE_SECONDS, WRITE_RETRY_DELAYS, with_retries
from routing.store.rows import (
    burst_from_row,
    draft_from_row,
    new_public_id,
    page_from_row,
    post_from_row,
    ticket_from_row,
)
from routing.store.schema import migrations

# This dialect's rendering of the one migration list (routing/store/schema.py).
MIGRATIONS = migrations("sqlite")


# A new pending draft, replacing one that was not sent (set_draft, record_triage).
_SET_DRAFT = (
    "INSERT INTO drafts (ticket_id, text, source, status, created_at)"
    " VALUES (?, ?, ?, 'pending', ?)"
    " ON CONFLICT (ticket_id) DO UPDATE SET text = excluded.text,"
    " source = excluded.source, status = 'pending', decided_by = NULL,"
    " decided_at = NULL, created_at = excluded.created_at"
    " WHERE drafts.status IN ('pending', 'rejected')"
)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _claimed(claims: int) -> TicketStatus:
    """What a claim reports: "routing" when an earlier claim may have posted the ticket."""
    return "new" if claims <= 1 else "routing"


class SqliteStore:
    """The bot's SQLite file; open with `await SqliteStore.open(path)` or `async with`."""

    def __init__(
        self,
        connection: aiosqlite.Connection,
        *,
        write_retry_delays: Sequence[float] = WRITE_RETRY_DELAYS,
        busy_timeout: float = 5.0,
        ack_write_seconds: float = ACK_WRITE_SECONDS,
        clock: Callable[[], float] = monotonic,
    ) -> None:
        self._db = connection
        self._write_retry_delays = tuple(write_retry_delays)
        self._busy_timeout = busy_timeout
        self._ack_write_seconds = ack_write_seconds
        self._clock = clock
        # Public ids this process has read (they never change once made).
        self._public_ids: dict[int, str] = {}

    @classmethod
    async def open(
        cls,
        path: Path | str,
        *,
        busy_timeout: float = 5.0,
        write_retry_delays: Sequence[float] = WRITE_RETRY_DELAYS,
        ack_write_seconds: float = ACK_WRITE_SECONDS,
        clock: Callable[[], float] = monotonic,
    ) -> SqliteStore:
        """Open (creating if needed) the database at path and bring its schema up to date.

        A write waits busy_timeout seconds for another process's lock. The writes made before
        Slack's ack (a new ticket, a thread reply, an edit, a deletion) are tried again after
        each of write_retry_delays, all within ack_write_seconds by clock, lock waits included.
        """
        connection = await aiosqlite.connect(str(path), timeout=busy_timeout)
        connection.row_factory = aiosqlite.Row
        store = cls(
            connection,
            write_retry_delays=write_retry_delays,
            busy_timeout=busy_timeout,
            ack_write_seconds=ack_write_seconds,
            clock=clock,
        )
        try:
            await connection.execute("PRAGMA journal_mode=WAL")
            await connection.execute("PRAGMA foreign_keys=ON")
            # WAL with synchronous=NORMAL is durable across a process crash: what we need.
            await connection.execute("PRAGMA synchronous=NORMAL")
            await store._migrate()
        except BaseException:
            # Closed, so aiosqlite's thread ends and the process can exit.
            await connection.close()
            raise
        return store

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection; pending writes are already committed."""
        await self._db.close()

    async def _migrate(self) -> None:
        async with self._db.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        version = int(row[0]) if row else 0
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            await self._db.executescript(
                f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;"
            )

    async def schema_version(self) -> int:
        """How many migrations have run on this file."""
        async with self._db.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def journal_mode(self) -> str:
        """SQLite's journal mode for this file ("wal")."""
        async with self._db.execute("PRAGMA journal_mode") as cursor:
            row = await cursor.fetchone()
        return str(row[0]) if row else ""

    # --- events ---------------------------------------------------------------------------

    async def first_delivery(self, event_id: str) -> bool:
        """Record an event id; False when it was seen before (a retry or redelivery)."""
        cursor = await self._db.execute(
            "INSERT OR IGNORE INTO processed_events (event_id, at) VALUES (?, ?)",
            (event_id, _iso(utc_now())),
        )
        await self._db.commit()
        return cursor.rowcount == 1

    async def forget_events(self, *, before: datetime) -> int:
        """Drop event ids recorded before a time (Slack's retries come within minutes)."""
        cursor = await self._db.execute(
            "DELETE FROM processed_events WHERE at < ?", (_iso(before),)
        )
        await self._db.commit()
        return cursor.rowcount

    # --- tickets --------------------------------------------------------------------------

    async def add_ticket(
        self, *, channel: str, ts: str, author: str | None, text: str, received_at: datetime
    ) -> int | None:
        """Store a new ticket; None when this (channel, ts) is already a ticket.

        A locked, full or read-only file is tried again (WRITE_RETRY_DELAYS), then, within
        ACK_WRITE_SECONDS, StoreUnavailableError: the message must not be acknowledged.
        """
        changed, row_id = await self._write_before_ack(
            f"storing message {channel}/{ts}",
            "INSERT OR IGNORE INTO tickets (channel, ts, author, text, received_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (channel, ts, author, text, _iso(received_at), _iso(utc_now())),
        )
        return row_id if changed == 1 else None

    async def _write_before_ack(
        self,
        what: str,
        statement: str,
        args: Sequence[object],
        *,
        then: Sequence[tuple[str, tuple[object, ...]]] = (),
    ) -> tuple[int, int | None]:
        """One statement committed, or StoreUnavailableError within ack_write_seconds.

        The bound counts from the call, the wait in the connection's queue included: one
        connection serves the process (a second one, writing beside it, made the first one's
        deferred transactions fail on stale snapshots), so a write may be queued behind another
        one waiting out a lock. If the time runs out before the statement starts, it is
        withdrawn (it never runs: refused means not stored); once it runs, it waits for
        another process's lock only as long as is left, by SQLite's own busy timeout set for
        that statement, so no attempt is cancelled halfway with its write uncommitted. The
        statements in then run in the same transaction when the first one changed a row.
        """
        deadline = self._clock() + self._ack_write_seconds
        db = self._db

        async def attempt() -> tuple[int, int | None]:
            gate = _Gate()
            # aiosqlite runs the function on its connection's thread, between statements and
            # never during one: the only way to give one statement its own busy timeout.
            queued: asyncio.Future[tuple[int, int | None]] = asyncio.ensure_future(
                db._execute(  # type: ignore[no-untyped-call]  # aiosqlite's internal queue is untyped
                    _write_within,
                    db._conn,
                    statement,
                    tuple(args),
                    deadline=deadline,
                    clock=self._clock,
                    usual=self._busy_timeout,
                    gate=gate,
                    then=tuple(then),
                )
            )
            while True:
                # Looked at every few milliseconds: the deadline is on the store's clock.
                left = max(0.0, deadline - self._clock())
                done, _ = await asyncio.wait({queued}, timeout=min(left, _QUEUE_POLL_SECONDS))
                if done:
                    return queued.result()
                if self._clock() >= deadline and gate.withdraw():
                    queued.add_done_callback(_ignore_outcome)
                    raise sqlite3.OperationalError(
                        f"still queued behind another write after {self._ack_write_seconds:g} s"
                    )

        return await with_retries(
            attempt,
            transient=(sqlite3.OperationalError,),
            what=what,
            delays=self._write_retry_delays,
            deadline=deadline,
            clock=self._clock,
        )

    async def ticket(self, ticket_id: int) -> StoredTicket | None:
        """The ticket with this id."""
        return await self._one_ticket("SELECT * FROM tickets WHERE id = ?", (ticket_id,))

    async def ticket_at(self, channel: str, ts: str) -> StoredTicket | None:
        """The ticket made from the message at (channel, ts)."""
        return await self._one_ticket(
            "SELECT * FROM tickets WHERE channel = ? AND ts = ?", (channel, ts)
        )

    async def _one_ticket(self, query: str, args: Sequence[object]) -> StoredTicket | None:
        async with self._db.execute(query, args) as cursor:
            row = await cursor.fetchone()
        return _ticket(row) if row else None

    async def ticket_ts_range(self, channel: str) -> tuple[str, str] | None:
        """The ts of the first and of the latest message in a channel that is a ticket."""
        # Slack's ts strings have a fixed width (10 digits, dot, 6), so text order is time order.
        async with self._db.execute(
            "SELECT MIN(ts), MAX(ts) FROM tickets WHERE channel = ?", (channel,)
        ) as cursor:
            row = await cursor.fetchone()
        return (str(row[0]), str(row[1])) if row and row[0] is not None else None

    async def unrouted_tickets(self) -> list[StoredTicket]:
        """Tickets stored but not posted yet (new, or interrupted while routing), oldest first."""
        async with self._db.execute(
            "SELECT * FROM tickets WHERE status IN ('new', 'routing') ORDER BY id"
        ) as cursor:
            rows = await cursor.fetchall()
        return [_ticket(row) for row in rows]

    async def unpaged_tickets(self, *, since: datetime) -> list[int]:
        """Routed tickets received since a time that need a human and were never paged."""
        async with self._db.execute(
            "SELECT id FROM tickets WHERE status = 'routed' AND received_at >= ?"
            " AND json_extract(escalation_json, '$.needs_human')"
            " AND NOT EXISTS (SELECT 1 FROM pages WHERE pages.ticket_id = tickets.id)"
            " ORDER BY id",
            (_iso(since),),
        ) as cursor:
            rows = await cursor.fetchall()
        return [int(row[0]) for row in rows]

    async def claim_for_routing(
        self, ticket_id: int, *, holder: str, now: datetime, until: datetime
    ) -> TicketStatus | None:
        """Claim a ticket for routing, leased to holder until a time (see TicketStore)."""
        # One UPDATE: SQLite runs it under the file's write lock, so one of any racers wins.
        # Fetched in the same call: a RETURNING statement stepped halfway blocks every commit.
        rows = await self._db.execute_fetchall(
            "UPDATE tickets SET status = 'routing', claimed_by = ?, lease_until = ?,"
            " claims = claims + 1, updated_at = ?"
            " WHERE id = ? AND (status = 'new' OR (status = 'routing' AND (claimed_by IS NULL"
            " OR claimed_by = ? OR lease_until IS NULL OR lease_until < ?)))"
            " RETURNING claims",
            (holder, _iso(until), _iso(now), ticket_id, holder, _iso(now)),
        )
        await self._db.commit()
        return next((_claimed(int(row[0])) for row in rows), None)

    async def claim_ticket(
        self, ticket_id: int, *, holder: str, now: datetime, until: datetime
    ) -> ClaimedTicket | None:
        """Claim a ticket and read it with its active posts and replies (see TicketStore)."""
        claimed = await self.claim_for_routing(ticket_id, holder=holder, now=now, until=until)
        if claimed is None:
            return None
        ticket = await self.ticket(ticket_id)
        assert ticket is not None  # noqa: S101  # claimed just now; tickets are never deleted
        return ClaimedTicket(
            claimed=claimed,
            ticket=ticket,
            posts=tuple(await self.posts(ticket_id)),
            replies=tuple(await self.replies(ticket_id)),
        )

    async def renew_leases(self, holder: str, ticket_ids: Sequence[int], *, until: datetime) -> int:
        """Extend holder's leases on these tickets to a time (one statement); how many it holds."""
        if not ticket_ids:
            return 0
        cursor = await self._db.execute(
            "UPDATE tickets SET lease_until = ? WHERE status = 'routing' AND claimed_by = ?"
            " AND id IN (SELECT value FROM json_each(?))",
            (_iso(until), holder, json.dumps(list(ticket_ids))),
        )
        await self._db.commit()
        return cursor.rowcount

    async def renew_lease(
        self, holder: str, ticket_id: int, *, until: datetime
    ) -> LeasedTicket | None:
        """Extend holder's lease on one ticket and read it; None when holder does not hold it."""
        rows = await self._db.execute_fetchall(
            "UPDATE tickets SET lease_until = ? WHERE id = ? AND status = 'routing'"
            " AND claimed_by = ? RETURNING *",
            (_iso(until), ticket_id, holder),
        )
        await self._db.commit()
        ticket = next((_ticket(row) for row in rows), None)
        if ticket is None:
            return None
        public_id = self._public_ids.get(ticket_id)
        if public_id is None:
            query = "SELECT public_id FROM ticket_keys WHERE ticket_id = ?"
            async with self._db.execute(query, (ticket_id,)) as cursor:
                key = await cursor.fetchone()
            public_id = None if key is None else str(key["public_id"])
        return LeasedTicket(
            ticket=ticket,
            posts=tuple(await self.posts(ticket_id)),
            replies=tuple(await self.replies(ticket_id)),
            draft=await self.draft(ticket_id),
            public_id=public_id,
        )

    async def take_stale_tickets(
        self, holder: str, *, now: datetime, until: datetime, new_before: datetime, limit: int
    ) -> list[tuple[int, TicketStatus]]:
        """Claim up to limit tickets nobody is routing (see TicketStore), oldest first."""
        rows = await self._db.execute_fetchall(
            "UPDATE tickets SET status = 'routing', claimed_by = ?, lease_until = ?,"
            " claims = claims + 1, updated_at = ?"
            " WHERE id IN (SELECT id FROM tickets WHERE (status = 'new' AND updated_at < ?)"
            " OR (status = 'routing' AND (lease_until IS NULL OR lease_until < ?))"
            " ORDER BY id LIMIT ?)"
            " RETURNING id, claims",
            (holder, _iso(until), _iso(now), _iso(new_before), _iso(now), limit),
        )
        await self._db.commit()
        return sorted((int(row[0]), _claimed(int(row[1]))) for row in rows)

    async def release_leases(self, holder: str) -> int:
        """End holder's leases, so any replica takes the tickets at once."""
        cursor = await self._db.execute(
            "UPDATE tickets SET lease_until = NULL WHERE status = 'routing' AND claimed_by = ?",
            (holder,),
        )
        await self._db.commit()
        return cursor.rowcount

    async def _set_status(self, ticket_id: int, status: TicketStatus) -> None:
        routed = ", routed_at = ?, lease_until = NULL" if status == "routed" else ""
        now = _iso(utc_now())
        args: tuple[object, ...] = (
            (status, now, now, ticket_id) if routed else (status, now, ticket_id)
        )
        await self._db.execute(
            f"UPDATE tickets SET status = ?, updated_at = ?{routed} WHERE id = ?",  # noqa: S608  # fixed fragments only
            args,
        )
        await self._db.commit()

    async def mark_routed(self, ticket_id: int) -> None:
        """The ticket is posted in every team channel it belongs to; its lease ends.

        A withdrawn ticket stays withdrawn: the deletion is stored before Slack's ack, without
        waiting for a worker that may be routing the ticket just then.
        """
        now = _iso(utc_now())
        await self._db.execute(
            "UPDATE tickets SET status = 'routed', updated_at = ?, routed_at = ?,"
            " lease_until = NULL WHERE id = ? AND status != 'withdrawn'",
            (now, now, ticket_id),
        )
        await self._db.commit()

    async def mark_withdrawn(self, ticket_id: int) -> bool:
        """The customer deleted the message; False if it was already withdrawn.

        Written before Slack's ack: StoreUnavailableError within ACK_WRITE_SECONDS if refused.
        """
        changed, _ = await self._write_before_ack(
            f"withdrawing ticket {ticket_id}",
            "UPDATE tickets SET status = 'withdrawn', updated_at = ?"
            " WHERE id = ? AND status != 'withdrawn'",
            (_iso(utc_now()), ticket_id),
            then=[_pending(ticket_id, "withdrawn", "")],
        )
        return changed == 1

    async def set_text(self, ticket_id: int, text: str, *, edited_ts: str | None = None) -> bool:
        """Replace a ticket's text after the customer edited the message (before the ack)."""
        if edited_ts is None:
            statement = "UPDATE tickets SET text = ?, updated_at = ? WHERE id = ?"
            args: tuple[object, ...] = (text, _iso(utc_now()), ticket_id)
        else:
            statement = (
                "UPDATE tickets SET text = ?, updated_at = ?, edited_ts = ? WHERE id = ?"
                " AND (edited_ts IS NULL OR CAST(edited_ts AS REAL) < CAST(? AS REAL))"
            )
            args = (text, _iso(utc_now()), edited_ts, ticket_id, edited_ts)
        changed, _ = await self._write_before_ack(
            f"storing ticket {ticket_id}'s edit",
            statement,
            args,
            then=[_pending(ticket_id, "edit", edited_ts or "")],
        )
        return changed > 0

    async def set_permalink(self, ticket_id: int, permalink: str) -> None:
        """Remember the link to the customer's message."""
        await self._db.execute(
            "UPDATE tickets SET permalink = ? WHERE id = ?", (permalink, ticket_id)
        )
        await self._db.commit()

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

        With draft and permalink, those too: one commit for all.
        """
        now = _iso(utc_now())
        await self._db.executemany(
            "INSERT INTO layer_decisions (ticket_id, layer, call_json, at) VALUES (?, ?, ?, ?)",
            [(ticket_id, call.layer, call.model_dump_json(), now) for call in layers],
        )
        await self._db.execute(
            "UPDATE tickets SET decision_json = ?, escalation_json = ?, language = ?,"
            " model_state = ?, updated_at = ? WHERE id = ?",
            (
                decision.model_dump_json(),
                escalation.model_dump_json(),
                decision.language,
                model_state,
                now,
                ticket_id,
            ),
        )
        if permalink is not None:
            await self._db.execute(
                "UPDATE tickets SET permalink = ? WHERE id = ?", (permalink, ticket_id)
            )
        if draft is not None:
            await self._db.execute(_SET_DRAFT, (ticket_id, draft[0], draft[1], now))
        await self._db.commit()

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
        now = _iso(utc_now())
        # The conditional UPDATE first: it takes the write lock, so the rest is all or nothing.
        cursor = await self._db.execute(
            "UPDATE tickets SET decision_json = ?, escalation_json = ?, language = ?,"
            " model_state = ?, updated_at = ? WHERE id = ? AND model_state = 'pending'",
            (
                decision.model_dump_json(),
                escalation.model_dump_json(),
                decision.language,
                state,
                now,
                ticket_id,
            ),
        )
        if cursor.rowcount != 1:
            await self._db.commit()
            return False
        await self._db.executemany(
            "INSERT INTO layer_decisions (ticket_id, layer, call_json, at) VALUES (?, ?, ?, ?)",
            [(ticket_id, call.layer, call.model_dump_json(), now) for call in layers],
        )
        if draft is not None:
            await self._db.execute(
                "UPDATE drafts SET text = ?, source = ?, created_at = ? WHERE ticket_id = ?"
                " AND status = 'pending' AND source != 'agent' AND text = ?",
                (draft[0], draft[1], now, ticket_id, replacing),
            )
        await self._db.commit()
        return True

    async def expire_model_waits(self, *, received_before: datetime) -> list[int]:
        """Mark "late" the tickets received before a time still waiting for the model; ids."""
        rows = await self._db.execute_fetchall(
            "UPDATE tickets SET model_state = 'late', updated_at = ?"
            " WHERE model_state = 'pending' AND received_at < ? RETURNING id",
            (_iso(utc_now()), _iso(received_before)),
        )
        await self._db.commit()
        return sorted(int(row[0]) for row in rows)

    async def set_decision(
        self, ticket_id: int, decision: Decision, escalation: Escalation
    ) -> None:
        """Replace the final decision (an agent's reclassification)."""
        await self._db.execute(
            "UPDATE tickets SET decision_json = ?, escalation_json = ?, updated_at = ?"
            " WHERE id = ?",
            (decision.model_dump_json(), escalation.model_dump_json(), _iso(utc_now()), ticket_id),
        )
        await self._db.commit()

    async def layer_calls(self, ticket_id: int) -> list[LayerCall]:
        """Every layer's output for a ticket, over all its classification runs, in order."""
        async with self._db.execute(
            "SELECT call_json FROM layer_decisions WHERE ticket_id = ? ORDER BY id", (ticket_id,)
        ) as cursor:
            rows = await cursor.fetchall()
        return [LayerCall.model_validate_json(row[0]) for row in rows]

    async def add_reply(self, ticket_id: int, *, ts: str, author: str | None, text: str) -> bool:
        """Add a thread reply to a ticket (before the ack); False if it was stored already."""
        changed, _ = await self._write_before_ack(
            f"storing a reply {ts} to ticket {ticket_id}",
            "INSERT OR IGNORE INTO ticket_replies (ticket_id, ts, author, text, at)"
            " VALUES (?, ?, ?, ?, ?)",
            (ticket_id, ts, author, text, _iso(utc_now())),
            then=[_pending(ticket_id, "reply", ts)],
        )
        return changed == 1

    async def set_reply_text(self, ticket_id: int, *, ts: str, text: str) -> bool:
        """Change a stored thread reply's text; False if it is not one of the ticket's replies."""
        changed, _ = await self._write_before_ack(
            f"storing an edit of reply {ts} to ticket {ticket_id}",
            "UPDATE ticket_replies SET text = ? WHERE ticket_id = ? AND ts = ? AND text != ?",
            (text, ticket_id, ts, text),
            then=[_pending(ticket_id, "reply_edit", ts)],
        )
        return changed == 1

    async def replies(self, ticket_id: int) -> list[StoredReply]:
        """The thread replies under a ticket, oldest first."""
        async with self._db.execute(
            "SELECT ts, author, text FROM ticket_replies WHERE ticket_id = ? ORDER BY ts",
            (ticket_id,),
        ) as cursor:
            rows = await cursor.fetchall()
        return [StoredReply(ts=row[0], author=row[1], text=row[2]) for row in rows]

    # --- drafts ---------------------------------------------------------------------------

    async def set_draft(self, ticket_id: int, *, text: str, source: str) -> None:
        """Store a new pending draft for a ticket, replacing one that was not sent."""
        now = _iso(utc_now())
        await self._db.execute(_SET_DRAFT, (ticket_id, text, source, now))
        await self._db.commit()

    async def draft(self, ticket_id: int) -> StoredDraft | None:
        """The ticket's draft."""
        async with self._db.execute(
            "SELECT * FROM drafts WHERE ticket_id = ?", (ticket_id,)
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return None
        return draft_from_row(row, datetime.fromisoformat)

    async def claim_draft(self, ticket_id: int, agent: str) -> bool:
        """Take a pending draft for sending; exactly one of several concurrent callers wins."""
        return await self._decide_draft(ticket_id, agent, "sending")

    async def reject_draft(self, ticket_id: int, agent: str) -> bool:
        """Drop a pending draft; False if it was not pending."""
        return await self._decide_draft(ticket_id, agent, "rejected")

    async def _decide_draft(
        self, ticket_id: int, agent: str, status: Literal["sending", "rejected"]
    ) -> bool:
        cursor = await self._db.execute(
            "UPDATE drafts SET status = ?, decided_by = ?, decided_at = ?"
            " WHERE ticket_id = ? AND status = 'pending'",
            (status, agent, _iso(utc_now()), ticket_id),
        )
        await self._db.commit()
        return cursor.rowcount == 1

    async def finish_draft(self, ticket_id: int, *, sent_ts: str | None) -> None:
        """Settle a claimed draft: sent (with the reply's ts), or pending again if it failed."""
        if sent_ts is None:
            # tried_at: Slack may have taken it after all; the next approval looks first.
            await self._db.execute(
                "UPDATE drafts SET status = 'pending', decided_by = NULL, decided_at = NULL,"
                " tried_at = ? WHERE ticket_id = ? AND status = 'sending'",
                (_iso(utc_now()), ticket_id),
            )
        else:
            await self._db.execute(
                "UPDATE drafts SET status = 'sent', reply_ts = ? WHERE ticket_id = ?",
                (sent_ts, ticket_id),
            )
        await self._db.commit()

    async def settle_draft(
        self, ticket_id: int, *, claimed_at: datetime, sent_ts: str | None
    ) -> bool:
        """Settle a send claim still the one read: sent, or pending; False if it moved on."""
        if sent_ts is None:
            cursor = await self._db.execute(
                "UPDATE drafts SET status = 'pending', decided_by = NULL, decided_at = NULL,"
                " tried_at = ? WHERE ticket_id = ? AND status = 'sending' AND decided_at = ?",
                (_iso(utc_now()), ticket_id, _iso(claimed_at)),
            )
        else:
            cursor = await self._db.execute(
                "UPDATE drafts SET status = 'sent', reply_ts = ?"
                " WHERE ticket_id = ? AND status = 'sending' AND decided_at = ?",
                (sent_ts, ticket_id, _iso(claimed_at)),
            )
        await self._db.commit()
        return cursor.rowcount == 1

    async def sending_drafts(self, *, claimed_before: datetime | None = None) -> list[int]:
        """Tickets whose draft is being sent, claimed before a time if given (fate unknown)."""
        query = "SELECT ticket_id FROM drafts WHERE status = 'sending'"
        args: tuple[str, ...] = ()
        if claimed_before is not None:
            query, args = query + " AND decided_at < ?", (_iso(claimed_before),)
        async with self._db.execute(query + " ORDER BY ticket_id", args) as cursor:
            rows = await cursor.fetchall()
        return [int(row[0]) for row in rows]

    async def edit_draft(self, ticket_id: int, text: str) -> bool:
        """Change a pending draft's text; False if it is no longer pending."""
        cursor = await self._db.execute(
            "UPDATE drafts SET text = ?, source = 'agent'"
            " WHERE ticket_id = ? AND status = 'pending'",
            (text, ticket_id),
        )
        await self._db.commit()
        return cursor.rowcount == 1

    # --- posts ----------------------------------------------------------------------------

    async def add_post(self, ticket_id: int, *, team: str, channel: str, ts: str) -> None:
        """Remember a ticket's post in a team channel."""
        await self._db.execute(
            "INSERT OR IGNORE INTO posts (ticket_id, team, channel, ts, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (ticket_id, team, channel, ts, _iso(utc_now())),
        )
        await self._db.commit()

    async def posts(self, ticket_id: int, *, active_only: bool = True) -> list[StoredPost]:
        """A ticket's team posts, first posted first."""
        where = " AND status = 'active'" if active_only else ""
        async with self._db.execute(
            f"SELECT * FROM posts WHERE ticket_id = ?{where} ORDER BY id",  # noqa: S608  # fixed fragment
            (ticket_id,),
        ) as cursor:
            rows = await cursor.fetchall()
        return [post_from_row(row) for row in rows]

    async def post_at(self, channel: str, ts: str) -> StoredPost | None:
        """The team post at (channel, ts), if it is one of ours."""
        async with self._db.execute(
            "SELECT * FROM posts WHERE channel = ? AND ts = ?", (channel, ts)
        ) as cursor:
            row = await cursor.fetchone()
        return post_from_row(row) if row else None

    async def hold_reaction(
        self, channel: str, ts: str, *, user: str, reaction: str, at: datetime
    ) -> None:
        """Keep an agent's emoji on (channel, ts), not yet a recorded post, until it is one."""
        await self._db.execute(
            "INSERT INTO held_reactions (channel, ts, user_id, reaction, at)"
            " VALUES (?, ?, ?, ?, ?)",
            (channel, ts, user, reaction, _iso(at)),
        )
        await self._db.commit()

    async def take_held_reactions(self, channel: str, ts: str) -> list[HeldReaction]:
        """Take (delete and return, oldest first) the emoji held on (channel, ts)."""
        # One DELETE under the file's write lock: of racing callers, each row goes to one.
        rows = await self._db.execute_fetchall(
            "DELETE FROM held_reactions WHERE channel = ? AND ts = ?"
            " RETURNING id, channel, ts, user_id, reaction, at",
            (channel, ts),
        )
        await self._db.commit()
        return sorted(
            (
                HeldReaction(
                    id=int(row[0]),
                    channel=str(row[1]),
                    ts=str(row[2]),
                    user=str(row[3]),
                    reaction=str(row[4]),
                    at=_time(row[5]),
                )
                for row in rows
            ),
            key=lambda held: held.id,
        )

    async def forget_held_reactions(self, *, before: datetime) -> int:
        """Drop emoji held since before a time (their message never became a post)."""
        cursor = await self._db.execute("DELETE FROM held_reactions WHERE at < ?", (_iso(before),))
        await self._db.commit()
        return cursor.rowcount

    async def public_id(self, ticket_id: int) -> str:
        """The ticket's public id: random, made the first time it is asked for, then kept.

        A public id never changes once made, so this process remembers the ones it has read.
        """
        known = self._public_ids.get(ticket_id)
        if known is not None:
            return known
        query = "SELECT public_id FROM ticket_keys WHERE ticket_id = ?"
        async with self._db.execute(query, (ticket_id,)) as cursor:
            row = await cursor.fetchone()
        if row is None:  # the first card of this ticket: one write, then reads only
            await self._db.execute(
                "INSERT OR IGNORE INTO ticket_keys (ticket_id, public_id) VALUES (?, ?)",
                (ticket_id, new_public_id()),
            )
            await self._db.commit()
            async with self._db.execute(query, (ticket_id,)) as cursor:
                row = await cursor.fetchone()
        assert row is not None  # noqa: S101  # inserted just now or before
        self._public_ids[ticket_id] = public_id = str(row["public_id"])
        return public_id

    async def ticket_by_public_id(self, public_id: str) -> int | None:
        """The ticket with this public id, if this database made it."""
        async with self._db.execute(
            "SELECT ticket_id FROM ticket_keys WHERE public_id = ?", (public_id,)
        ) as cursor:
            row = await cursor.fetchone()
        return int(row["ticket_id"]) if row else None

    async def set_post_status(
        self,
        post_id: int,
        status: PostStatus,
        *,
        moved_to: str | None = None,
        moved_by: str | None = None,
    ) -> None:
        """Mark a post moved (where to, by whom) or withdrawn."""
        await self._db.execute(
            "UPDATE posts SET status = ?, moved_to = ?, moved_by = ? WHERE id = ?",
            (status, moved_to, moved_by, post_id),
        )
        await self._db.commit()

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
        cursor = await self._db.execute(
            "INSERT OR IGNORE INTO pages"
            " (ticket_id, team, people_json, reasons_json, at, direct, asked_by)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                ticket_id,
                team,
                json.dumps(list(people)),
                json.dumps(list(reasons)),
                _iso(utc_now()),
                int(direct),
                asked_by,
            ),
        )
        await self._db.commit()
        return cursor.rowcount == 1

    async def release_page(self, ticket_id: int, *, team: str) -> None:
        """Forget a page claim whose message Slack did not take, so it is tried again."""
        await self._db.execute(
            "DELETE FROM pages WHERE ticket_id = ? AND team = ?", (ticket_id, team)
        )
        await self._db.commit()

    async def pages(self, ticket_id: int) -> list[str]:
        """The keys of the pages claimed for a ticket (sent or not)."""
        async with self._db.execute(
            "SELECT team FROM pages WHERE ticket_id = ? ORDER BY at", (ticket_id,)
        ) as cursor:
            rows = await cursor.fetchall()
        return [row[0] for row in rows]

    async def page(self, ticket_id: int, *, team: str) -> StoredPage | None:
        """One page claim by its key."""
        async with self._db.execute(
            "SELECT * FROM pages WHERE ticket_id = ? AND team = ?", (ticket_id, team)
        ) as cursor:
            row = await cursor.fetchone()
        return page_from_row(row, datetime.fromisoformat) if row else None

    async def mark_page_noted(self, ticket_id: int, *, team: str) -> None:
        """The page's thread note is in Slack."""
        await self._db.execute(
            "UPDATE pages SET noted_at = ? WHERE ticket_id = ? AND team = ? AND noted_at IS NULL",
            (_iso(utc_now()), ticket_id, team),
        )
        await self._db.commit()

    async def mark_page_sent(self, ticket_id: int, *, team: str) -> None:
        """The page's note and every DM are in Slack: the page is done."""
        now = _iso(utc_now())
        await self._db.execute(
            "UPDATE pages SET noted_at = COALESCE(noted_at, ?), sent_at = ?"
            " WHERE ticket_id = ? AND team = ? AND sent_at IS NULL",
            (now, now, ticket_id, team),
        )
        await self._db.commit()

    async def unsent_pages(self, *, claimed_before: datetime) -> list[StoredPage]:
        """Pages claimed before a time and not yet sent (a crash or a refusal), oldest first."""
        async with self._db.execute(
            "SELECT * FROM pages WHERE sent_at IS NULL AND at < ? ORDER BY at, ticket_id",
            (_iso(claimed_before),),
        ) as cursor:
            rows = await cursor.fetchall()
        return [page_from_row(row, datetime.fromisoformat) for row in rows]

    async def retake_page(self, ticket_id: int, *, team: str, claimed_at: datetime) -> bool:
        """Take over an unsent page whose claim is still the one read; exactly one caller wins."""
        # The claim's time is the compare-and-set's token: the winner moves it to now.
        cursor = await self._db.execute(
            "UPDATE pages SET at = ? WHERE ticket_id = ? AND team = ?"
            " AND sent_at IS NULL AND at = ?",
            (_iso(utc_now()), ticket_id, team, _iso(claimed_at)),
        )
        await self._db.commit()
        return cursor.rowcount == 1

    async def let_go_page(self, ticket_id: int, *, team: str, claimed_at: datetime) -> bool:
        """Give up an unsent page held by claimed_at: its claim time becomes PAGE_LET_GO_AT."""
        cursor = await self._db.execute(
            "UPDATE pages SET at = ? WHERE ticket_id = ? AND team = ?"
            " AND sent_at IS NULL AND at = ?",
            (_iso(PAGE_LET_GO_AT), ticket_id, team, _iso(claimed_at)),
        )
        await self._db.commit()
        return cursor.rowcount == 1

    async def claim_direct_page(self, ticket_id: int, *, person: str, page: str) -> bool:
        """Claim a critical ticket's DM to one person (once per ticket); False if claimed."""
        cursor = await self._db.execute(
            "INSERT OR IGNORE INTO direct_pages (ticket_id, person, page, claimed_at)"
            " VALUES (?, ?, ?, ?)",
            (ticket_id, person, page, _iso(utc_now())),
        )
        await self._db.commit()
        return cursor.rowcount == 1

    async def mark_direct_page_sent(self, ticket_id: int, *, person: str) -> None:
        """The DM to this person is in Slack."""
        await self._db.execute(
            "UPDATE direct_pages SET sent_at = ? WHERE ticket_id = ? AND person = ?",
            (_iso(utc_now()), ticket_id, person),
        )
        await self._db.commit()

    async def direct_pages(self, ticket_id: int) -> dict[str, tuple[str, bool]]:
        """Each person DMed (or being DMed) about a ticket: the page's key, and whether sent."""
        async with self._db.execute(
            "SELECT person, page, sent_at FROM direct_pages WHERE ticket_id = ?", (ticket_id,)
        ) as cursor:
            rows = await cursor.fetchall()
        return {row[0]: (row[1], row[2] is not None) for row in rows}

    async def take_post_slot(self, channel: str, *, now: datetime, spacing: float) -> datetime:
        """Take the channel's next post slot: the later of now and the one after the last."""
        async with self._db.execute(
            "INSERT INTO post_pacing (channel, next_at) VALUES (?, ? + ?)"
            " ON CONFLICT (channel) DO UPDATE"
            " SET next_at = max(post_pacing.next_at, excluded.next_at - ?) + ?"
            " RETURNING next_at",
            (channel, now.timestamp(), spacing, spacing, spacing),
        ) as cursor:
            row = await cursor.fetchone()
        await self._db.commit()
        assert row is not None  # noqa: S101  # an upsert returns its row
        return datetime.fromtimestamp(float(row[0]) - spacing, UTC)

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
        since = _iso(at - window)
        await self._db.execute(
            "INSERT INTO page_bursts"
            " (customer, oncall, ticket_id, channel, ts, page_key, critical, started_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (customer, oncall) DO UPDATE SET ticket_id = excluded.ticket_id,"
            " channel = excluded.channel, ts = excluded.ts, page_key = excluded.page_key,"
            " critical = excluded.critical, started_at = excluded.started_at"
            " WHERE page_bursts.started_at < ?"
            " OR (excluded.critical = 1"
            " AND (page_bursts.critical = 0 OR page_bursts.page_key <> excluded.page_key))",
            (customer, oncall, ticket_id, channel, ts, key, int(critical), _iso(at), since),
        )
        await self._db.commit()
        async with self._db.execute(
            "SELECT * FROM page_bursts WHERE customer = ? AND oncall = ?", (customer, oncall)
        ) as cursor:
            row = await cursor.fetchone()
        assert row is not None  # noqa: S101  # inserted or kept just now
        return burst_from_row(row, datetime.fromisoformat)

    async def end_burst(
        self, customer: str, oncall: str, *, ticket_id: int, started_at: datetime
    ) -> None:
        """Forget the burst this ticket started at started_at (its page was not sent now)."""
        await self._db.execute(
            "DELETE FROM page_bursts WHERE customer = ? AND oncall = ? AND ticket_id = ?"
            " AND started_at = ?",
            (customer, oncall, ticket_id, _iso(started_at)),
        )
        await self._db.commit()

    async def count_in_burst(
        self, customer: str, oncall: str, *, lead: int, ticket_id: int
    ) -> tuple[int, ...]:
        """Count a ticket under the burst led by lead (once); the tickets counted, in order."""
        await self._db.execute(
            "INSERT OR IGNORE INTO burst_tickets (customer, oncall, lead, ticket_id)"
            " VALUES (?, ?, ?, ?)",
            (customer, oncall, lead, ticket_id),
        )
        await self._db.commit()
        async with self._db.execute(
            "SELECT ticket_id FROM burst_tickets WHERE customer = ? AND oncall = ? AND lead = ?"
            " ORDER BY ticket_id",
            (customer, oncall, lead),
        ) as cursor:
            return tuple(int(row[0]) for row in await cursor.fetchall())

    async def claim_burst_followup(self, customer: str, oncall: str, *, lead: int) -> bool:
        """Claim the posting of the note counting a burst's tickets; False if claimed before."""
        cursor = await self._db.execute(
            "INSERT OR IGNORE INTO burst_followups (customer, oncall, lead) VALUES (?, ?, ?)",
            (customer, oncall, lead),
        )
        await self._db.commit()
        return cursor.rowcount == 1

    async def release_burst_followup(self, customer: str, oncall: str, *, lead: int) -> None:
        """Give up a claim on the counting note that was not posted (the next count posts it)."""
        await self._db.execute(
            "DELETE FROM burst_followups WHERE customer = ? AND oncall = ? AND lead = ?"
            " AND ts IS NULL",
            (customer, oncall, lead),
        )
        await self._db.commit()

    async def set_burst_followup(
        self, customer: str, oncall: str, *, lead: int, channel: str, ts: str
    ) -> None:
        """The note counting a burst's tickets is in Slack at (channel, ts)."""
        await self._db.execute(
            "UPDATE burst_followups SET channel = ?, ts = ?"
            " WHERE customer = ? AND oncall = ? AND lead = ?",
            (channel, ts, customer, oncall, lead),
        )
        await self._db.commit()

    async def burst_followup(
        self, customer: str, oncall: str, *, lead: int
    ) -> tuple[str, str] | bool | None:
        """The counting note's (channel, ts); True while claimed, not yet posted; None: none."""
        async with self._db.execute(
            "SELECT channel, ts FROM burst_followups WHERE customer = ? AND oncall = ?"
            " AND lead = ?",
            (customer, oncall, lead),
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return None
        if row[0] is None or row[1] is None:
            return True
        return (str(row[0]), str(row[1]))

    async def pending_follow_ups(self, *, stored_before: datetime) -> list[PendingFollowUp]:
        """Follow-ups stored (or taken over) before a time whose after-ack work is not done."""
        async with self._db.execute(
            "SELECT ticket_id, kind, ref, at FROM pending_follow_ups WHERE at < ?"
            " ORDER BY at, ticket_id",
            (_iso(stored_before),),
        ) as cursor:
            rows = await cursor.fetchall()
        return [
            PendingFollowUp(ticket_id=int(row[0]), kind=row[1], ref=str(row[2]), at=_time(row[3]))
            for row in rows
        ]

    async def retake_follow_up(self, pending: PendingFollowUp) -> bool:
        """Take over a pending follow-up still as read (its at); exactly one caller wins."""
        cursor = await self._db.execute(
            "UPDATE pending_follow_ups SET at = ?"
            " WHERE ticket_id = ? AND kind = ? AND ref = ? AND at = ?",
            (_iso(utc_now()), pending.ticket_id, pending.kind, pending.ref, _iso(pending.at)),
        )
        await self._db.commit()
        return cursor.rowcount == 1

    async def finish_follow_up(self, ticket_id: int, *, kind: str, ref: str) -> None:
        """A follow-up's after-ack work is done."""
        await self._db.execute(
            "DELETE FROM pending_follow_ups WHERE ticket_id = ? AND kind = ? AND ref = ?",
            (ticket_id, kind, ref),
        )
        await self._db.commit()

    async def set_oncall(self, team: str, people: Sequence[str], set_by: str) -> None:
        """Replace a team's on-call (overrides the config until changed again)."""
        await self._db.execute(
            "INSERT INTO oncall (team, people_json, set_by, at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (team) DO UPDATE SET people_json = excluded.people_json,"
            " set_by = excluded.set_by, at = excluded.at",
            (team, json.dumps(list(people)), set_by, _iso(utc_now())),
        )
        await self._db.commit()

    async def oncall(self, team: str) -> tuple[str, ...] | None:
        """The on-call set with `/triage oncall`, or None when the config's applies."""
        async with self._db.execute(
            "SELECT people_json FROM oncall WHERE team = ?", (team,)
        ) as cursor:
            row = await cursor.fetchone()
        return tuple(json.loads(row[0])) if row else None

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
        """Record an action: who, what, when, and the state before and after."""
        await self._db.execute(
            "INSERT INTO audit (ticket_id, actor, action, before_json, after_json, at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (ticket_id, actor, action, audit_json(before), audit_json(after), _iso(utc_now())),
        )
        await self._db.commit()

    async def audit_log(self, ticket_id: int | None = None) -> list[AuditEntry]:
        """Audit entries, oldest first; all of them, or one ticket's."""
        args: tuple[int, ...] = ()
        if ticket_id is None:
            query = "SELECT * FROM audit ORDER BY id"
        else:
            query, args = "SELECT * FROM audit WHERE ticket_id = ? ORDER BY id", (ticket_id,)
        async with self._db.execute(query, args) as cursor:
            rows = await cursor.fetchall()
        return [
            AuditEntry(
                ticket_id=row["ticket_id"],
                actor=row["actor"],
                action=row["action"],
                before=json.loads(row["before_json"]),
                after=json.loads(row["after_json"]),
                at=datetime.fromisoformat(row["at"]),
            )
            for row in rows
        ]

    async def add_correction(
        self, example: LabeledExample, *, ticket_id: int | None, by: str
    ) -> None:
        """Store an agent's correction as a labeled example."""
        await self._db.execute(
            "INSERT INTO corrections (ticket_id, example_json, by, at) VALUES (?, ?, ?, ?)",
            (ticket_id, correction_json(example), by, _iso(utc_now())),
        )
        await self._db.commit()

    async def corrections(self) -> list[LabeledExample]:
        """Every correction, oldest first: the classifier learns them again at start-up."""
        async with self._db.execute("SELECT example_json FROM corrections ORDER BY id") as cursor:
            rows = await cursor.fetchall()
        return [LabeledExample.model_validate_json(row[0]) for row in rows]

    # --- reports --------------------------------------------------------------------------

    async def day_stats(self, day: date) -> DayStats:
        """Counts for tickets received on one UTC day."""
        start = datetime.combine(day, time.min, tzinfo=UTC)
        end = datetime.combine(day, time.max, tzinfo=UTC)
        async with self._db.execute(
            "SELECT t.received_at, t.decision_json, t.escalation_json, d.status, d.decided_at"
            " FROM tickets t LEFT JOIN drafts d ON d.ticket_id = t.id"
            " WHERE t.received_at BETWEEN ? AND ?",
            (_iso(start), _iso(end)),
        ) as cursor:
            rows = list(await cursor.fetchall())
        return day_stats_of(
            [
                DayRow(
                    received_at=datetime.fromisoformat(received_at),
                    decision_json=decision_json,
                    escalation_json=escalation_json,
                    draft_status=status,
                    decided_at=_maybe_time(decided_at),
                )
                for received_at, decision_json, escalation_json, status, decided_at in rows
            ]
        )


def _maybe_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _ticket(row: Any) -> StoredTicket:
    return ticket_from_row(row, datetime.fromisoformat)


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _pending(ticket_id: int, kind: str, ref: str) -> tuple[str, tuple[object, ...]]:
    """The statement that records a follow-up's after-ack work as still to do."""
    return (
        "INSERT INTO pending_follow_ups (ticket_id, kind, ref, at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (ticket_id, kind, ref) DO UPDATE SET at = excluded.at",
        (ticket_id, kind, ref, _iso(utc_now())),
    )


# How often a write queued on the connection looks at the clock for its deadline.
_QUEUE_POLL_SECONDS = 0.02


class _Gate:
    """Whether a queued statement starts or is withdrawn first: exactly one of them wins."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started = False
        self._withdrawn = False

    def start(self) -> bool:
        """On aiosqlite's thread, before the statement runs: False if it was withdrawn."""
        with self._lock:
            self._started = not self._withdrawn
            return self._started

    def withdraw(self) -> bool:
        """On the event loop, at the deadline: False if the statement is already running."""
        with self._lock:
            self._withdrawn = not self._started
            return self._withdrawn


def _ignore_outcome(future: asyncio.Future[tuple[int, int | None]]) -> None:
    """A withdrawn statement's outcome (its refusal to run) is read, so nothing logs it."""
    if not future.cancelled():
        future.exception()


def _write_within(
    connection: sqlite3.Connection,
    statement: str,
    args: tuple[object, ...],
    *,
    deadline: float,
    clock: Callable[[], float],
    usual: float,
    gate: _Gate,
    then: tuple[tuple[str, tuple[object, ...]], ...] = (),
) -> tuple[int, int | None]:
    """Run and commit one statement, waiting for a lock until deadline; (rowcount, lastrowid).

    Runs on aiosqlite's thread, unless the caller withdrew it while it was queued. A failed
    statement's own transaction is rolled back (one some other caller began on a shared
    connection is theirs to end), and the usual busy timeout is back before anything else runs.
    """
    if not gate.start():
        raise sqlite3.OperationalError("withdrawn: the deadline passed while it was queued")
    wait = min(usual, deadline - clock())
    if wait <= 0:
        raise sqlite3.OperationalError("no time left to wait for the database")
    began = not connection.in_transaction
    connection.execute(f"PRAGMA busy_timeout = {max(1, round(wait * 1000))}")
    try:
        cursor = connection.execute(statement, args)
        changed, row_id = cursor.rowcount, cursor.lastrowid
        if changed > 0:
            for more, more_args in then:
                connection.execute(more, more_args)
        connection.commit()
        return changed, row_id
    except BaseException:
        if began and connection.in_transaction:
            connection.rollback()
        raise
    finally:
        connection.execute(f"PRAGMA busy_timeout = {round(usual * 1000)}")
