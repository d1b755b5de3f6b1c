"""The shared backend, one PostgreSQL database (psycopg 3, async, with a connection pool).

Several processes may share it: every claim is one statement that PostgreSQL makes atomic (an
INSERT ... ON CONFLICT DO NOTHING on a unique key, or an UPDATE whose WHERE re-checks the state
after waiting for the row's lock), so exactly one caller wins whichever connection it uses.
Migrations run under an advisory lock, so replicas that start at once migrate once. Times are
TIMESTAMPTZ and read back in UTC.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from time import monotonic
from types import TracebackType
from typing import Any, Literal, Self

import psycopg
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

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
MIGRATIONS = migrations("postgresql")

# pg_advisory_lock key held while migrating ("triage" in ASCII), so one replica migrates.
_MIGRATION_LOCK = 0x747269616765


def _claimed(claims: int) -> TicketStatus:
    """What a claim reports: "routing" when an earlier claim may have posted the ticket."""
    return "new" if claims <= 1 else "routing"


# A new pending draft, replacing one that was not sent (set_draft, record_triage).
_SET_DRAFT = (
    "INSERT INTO drafts (ticket_id, text, source, status, created_at)"
    " VALUES (%s, %s, %s, 'pending', %s)"
    " ON CONFLICT (ticket_id) DO UPDATE SET text = excluded.text,"
    " source = excluded.source, status = 'pending', decided_by = NULL,"
    " decided_at = NULL, created_at = excluded.created_at"
    " WHERE drafts.status IN ('pending', 'rejected')"
)


# The same, with named parameters (draft_text, draft_source, now, id), inside a WITH clause.
_SET_DRAFT_NAMED = (
    "INSERT INTO drafts (ticket_id, text, source, status, created_at)"
    " VALUES (%(id)s, %(draft_text)s, %(draft_source)s, 'pending', %(now)s)"
    " ON CONFLICT (ticket_id) DO UPDATE SET text = excluded.text,"
    " source = excluded.source, status = 'pending', decided_by = NULL,"
    " decided_at = NULL, created_at = excluded.created_at"
    " WHERE drafts.status IN ('pending', 'rejected')"
)
# A classification run's layer calls (layers, calls: parallel arrays) for ticket id, in order.
_ADD_LAYERS = (
    "INSERT INTO layer_decisions (ticket_id, layer, call_json, at)"
    " SELECT %(id)s, call.layer, call.json, %(now)s"
    " FROM unnest(%(layers)s::text[], %(calls)s::text[]) WITH ORDINALITY"
    " AS call (layer, json, n) ORDER BY call.n"
)

# A statement's parameters: positional (%s) or named (%(name)s).
Params = Sequence[object] | Mapping[str, object]

# Slack's ts strings sort as time only byte by byte (a locale's collation may skip the dot):
# ts is compared COLLATE "C" wherever it is ordered.
Connection = psycopg.AsyncConnection[DictRow]


class PostgresStore:
    """The bot's PostgreSQL database; open with `await PostgresStore.open(url)`."""

    def __init__(
        self,
        pool: AsyncConnectionPool[Connection],
        *,
        ack_write_seconds: float = ACK_WRITE_SECONDS,
        clock: Callable[[], float] = monotonic,
        url: str | None = None,
    ) -> None:
        self._pool = pool
        self._ack_write_seconds = ack_write_seconds
        self._clock = clock
        # Public ids this process has read (they never change once made).
        self._public_ids: dict[int, str] = {}
        # New tickets' inserts waiting for the one in flight: made together (add_ticket).
        # With the database's url they have a connection of their own: an ack never waits for
        # a pooled connection the routing workers hold (else they share the pool).
        self._new_tickets = _GroupInsert(pool, timeout=ack_write_seconds, url=url)

    @classmethod
    async def open(
        cls, url: str, *, max_connections: int = 10, ack_write_seconds: float = ACK_WRITE_SECONDS
    ) -> PostgresStore:
        """Connect to the database at url (postgresql://...) and bring its schema up to date.

        A refused connection raises psycopg.OperationalError at once, not after the pool's wait.
        The writes made before Slack's ack end within ack_write_seconds (see _write_before_ack).
        """
        connection = await psycopg.AsyncConnection.connect(url, autocommit=True)
        try:
            await _migrate(connection)
        finally:
            await connection.close()
        pool: AsyncConnectionPool[Connection] = AsyncConnectionPool(
            url,
            connection_class=psycopg.AsyncConnection[DictRow],
            kwargs={"autocommit": True, "row_factory": dict_row},
            min_size=1,
            max_size=max_connections,
            open=False,
        )
        await pool.open(wait=True)
        return cls(pool, ack_write_seconds=ack_write_seconds, url=url)

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
        """Close the pool's connections; every write is committed already (autocommit)."""
        await self._new_tickets.close()
        await self._pool.close()

    async def schema_version(self) -> int:
        """How many migrations have run on this database."""
        row = await self._one("SELECT version FROM schema_version")
        return int(row["version"]) if row else 0

    # --- plumbing -------------------------------------------------------------------------

    async def _run(self, query: str, args: Params = ()) -> int:
        """Run one statement in its own transaction; how many rows it changed."""
        async with self._pool.connection() as connection:
            cursor = await connection.execute(query, args)
            return cursor.rowcount

    async def _one(self, query: str, args: Params = ()) -> DictRow | None:
        async with self._pool.connection() as connection:
            cursor = await connection.execute(query, args)
            return await cursor.fetchone()

    async def _all(self, query: str, args: Params = ()) -> list[DictRow]:
        async with self._pool.connection() as connection:
            cursor = await connection.execute(query, args)
            return await cursor.fetchall()

    # --- events ---------------------------------------------------------------------------

    async def first_delivery(self, event_id: str) -> bool:
        """Record an event id; False when it was seen before (a retry or redelivery)."""
        changed = await self._run(
            "INSERT INTO processed_events (event_id, at) VALUES (%s, %s)"
            " ON CONFLICT (event_id) DO NOTHING",
            (event_id, utc_now()),
        )
        return changed == 1

    async def forget_events(self, *, before: datetime) -> int:
        """Drop event ids recorded before a time (Slack's retries come within minutes)."""
        return await self._run("DELETE FROM processed_events WHERE at < %s", (before,))

    # --- tickets --------------------------------------------------------------------------

    async def add_ticket(
        self, *, channel: str, ts: str, author: str | None, text: str, received_at: datetime
    ) -> int | None:
        """Store a new ticket; None when this (channel, ts) is already a ticket.

        A dropped connection or a refusing server is tried again (WRITE_RETRY_DELAYS), then,
        within ACK_WRITE_SECONDS, StoreUnavailableError: the message must not be acknowledged.
        """
        # Group commit: the inserts of tickets arriving while one is in flight wait for it,
        # then go together (one statement, one commit), each answered only once committed.
        row = (channel, ts, author, text, received_at, utc_now())
        deadline = self._clock() + self._ack_write_seconds

        async def attempt() -> int | None:
            try:
                async with asyncio.timeout(max(0.0, deadline - self._clock())):
                    return await self._new_tickets.insert(row)
            except TimeoutError:
                raise TimeoutError(
                    f"no answer from PostgreSQL within {self._ack_write_seconds:g} s"
                ) from None

        return await with_retries(
            attempt,
            transient=(psycopg.OperationalError, TimeoutError),
            what=f"storing message {channel}/{ts}",
            delays=WRITE_RETRY_DELAYS,
            deadline=deadline,
            clock=self._clock,
        )

    async def _write_before_ack(
        self,
        what: str,
        statement: str,
        args: Sequence[object],
        *,
        then: Sequence[tuple[str, tuple[object, ...]]] = (),
    ) -> tuple[int, DictRow | None]:
        """One statement, or StoreUnavailableError within ack_write_seconds; (rowcount, row).

        Each attempt, the wait for a pooled connection included, is cut off when the time is
        up. A ticket whose insert was cut off after the server committed it is not lost: the
        sweep (any replica's) routes a ticket left new for a lease. The statements in then run
        in the same transaction when the first one changed a row.
        """
        deadline = self._clock() + self._ack_write_seconds

        async def attempt() -> tuple[int, DictRow | None]:
            try:
                async with (
                    asyncio.timeout(max(0.0, deadline - self._clock())),
                    self._pool.connection() as connection,
                    connection.transaction(),
                ):
                    cursor = await connection.execute(statement, args)
                    row = await cursor.fetchone() if cursor.description else None
                    changed = cursor.rowcount
                    if changed > 0:
                        for more, more_args in then:
                            await connection.execute(more, more_args)
                    return changed, row
            except TimeoutError:
                raise TimeoutError(
                    f"no answer from PostgreSQL within {self._ack_write_seconds:g} s"
                ) from None

        return await with_retries(
            attempt,
            # Connection lost, server shutting down, disk full, lock or statement timeouts, no
            # connection free in the pool: psycopg raises an OperationalError for each; the
            # time running out is a TimeoutError.
            transient=(psycopg.OperationalError, TimeoutError),
            what=what,
            delays=WRITE_RETRY_DELAYS,
            deadline=deadline,
            clock=self._clock,
        )

    async def ticket(self, ticket_id: int) -> StoredTicket | None:
        """The ticket with this id."""
        row = await self._one("SELECT * FROM tickets WHERE id = %s", (ticket_id,))
        return _ticket(row) if row else None

    async def ticket_at(self, channel: str, ts: str) -> StoredTicket | None:
        """The ticket made from the message at (channel, ts)."""
        row = await self._one("SELECT * FROM tickets WHERE channel = %s AND ts = %s", (channel, ts))
        return _ticket(row) if row else None

    async def ticket_ts_range(self, channel: str) -> tuple[str, str] | None:
        """The ts of the first and of the latest message in a channel that is a ticket."""
        row = await self._one(
            'SELECT MIN(ts COLLATE "C") AS first, MAX(ts COLLATE "C") AS last'
            " FROM tickets WHERE channel = %s",
            (channel,),
        )
        if row is None or row["first"] is None:
            return None
        return str(row["first"]), str(row["last"])

    async def unrouted_tickets(self) -> list[StoredTicket]:
        """Tickets stored but not posted yet (new, or interrupted while routing), oldest first."""
        rows = await self._all(
            "SELECT * FROM tickets WHERE status IN ('new', 'routing') ORDER BY id"
        )
        return [_ticket(row) for row in rows]

    async def unpaged_tickets(self, *, since: datetime) -> list[int]:
        """Routed tickets received since a time that need a human and were never paged."""
        rows = await self._all(
            "SELECT id FROM tickets WHERE status = 'routed' AND received_at >= %s"
            " AND (escalation_json::json ->> 'needs_human')::boolean"
            " AND NOT EXISTS (SELECT 1 FROM pages WHERE pages.ticket_id = tickets.id)"
            " ORDER BY id",
            (since,),
        )
        return [int(row["id"]) for row in rows]

    async def claim_for_routing(
        self, ticket_id: int, *, holder: str, now: datetime, until: datetime
    ) -> TicketStatus | None:
        """Claim a ticket for routing, leased to holder until a time (see TicketStore)."""
        # A racer waits for the row's lock, then PostgreSQL re-checks the WHERE on the row the
        # winner wrote: it finds the winner's running lease and changes nothing.
        row = await self._one(
            "UPDATE tickets SET status = 'routing', claimed_by = %s, lease_until = %s,"
            " claims = claims + 1, updated_at = %s"
            " WHERE id = %s AND (status = 'new' OR (status = 'routing' AND (claimed_by IS NULL"
            " OR claimed_by = %s OR lease_until IS NULL OR lease_until < %s)))"
            " RETURNING claims",
            (holder, until, now, ticket_id, holder, now),
        )
        return None if row is None else _claimed(int(row["claims"]))

    async def claim_ticket(
        self, ticket_id: int, *, holder: str, now: datetime, until: datetime
    ) -> ClaimedTicket | None:
        """Claim a ticket and read it with its active posts and replies: one statement."""
        row = await self._one(
            "UPDATE tickets SET status = 'routing', claimed_by = %(holder)s,"  # noqa: S608
            " lease_until = %(until)s, claims = claims + 1, updated_at = %(now)s"
            " WHERE id = %(id)s AND (status = 'new' OR (status = 'routing' AND (claimed_by IS NULL"
            " OR claimed_by = %(holder)s OR lease_until IS NULL OR lease_until < %(now)s)))"
            f" RETURNING *, {_POSTS_AND_REPLIES}",
            {"holder": holder, "until": until, "now": now, "id": ticket_id},
        )
        if row is None:
            return None
        return ClaimedTicket(
            claimed=_claimed(int(row["claims"])),
            ticket=_ticket(row),
            posts=_posts_of(row),
            replies=_replies_of(row),
        )

    async def renew_leases(self, holder: str, ticket_ids: Sequence[int], *, until: datetime) -> int:
        """Extend holder's leases on these tickets to a time (one statement); how many it holds."""
        if not ticket_ids:
            return 0
        return await self._run(
            "UPDATE tickets SET lease_until = %s"
            " WHERE status = 'routing' AND claimed_by = %s AND id = ANY(%s)",
            (until, holder, list(ticket_ids)),
        )

    async def renew_lease(
        self, holder: str, ticket_id: int, *, until: datetime
    ) -> LeasedTicket | None:
        """Extend holder's lease on one ticket and read it; None when holder does not hold it.

        Read with its active posts, replies, draft and public id: one statement.
        """
        row = await self._one(
            "UPDATE tickets SET lease_until = %s"  # noqa: S608  # fixed fragments
            " WHERE id = %s AND status = 'routing' AND claimed_by = %s"
            f" RETURNING *, {_POSTS_AND_REPLIES},"
            " (SELECT row_to_json(drafts) FROM drafts WHERE drafts.ticket_id = tickets.id)"
            " AS ticket_draft, (SELECT public_id FROM ticket_keys"
            " WHERE ticket_keys.ticket_id = tickets.id) AS ticket_public_id",
            (until, ticket_id, holder),
        )
        if row is None:
            return None
        public_id = row["ticket_public_id"]
        if public_id is not None:
            self._public_ids[ticket_id] = public_id = str(public_id)
        draft = row["ticket_draft"]
        return LeasedTicket(
            ticket=_ticket(row),
            posts=_posts_of(row),
            replies=_replies_of(row),
            draft=None if draft is None else draft_from_row(draft, _json_time),
            public_id=public_id,
        )

    async def take_stale_tickets(
        self, holder: str, *, now: datetime, until: datetime, new_before: datetime, limit: int
    ) -> list[tuple[int, TicketStatus]]:
        """Claim up to limit tickets nobody is routing (see TicketStore), oldest first."""
        # SKIP LOCKED: replicas sweeping at once each take other rows, none waits for another.
        rows = await self._all(
            "UPDATE tickets SET status = 'routing', claimed_by = %s, lease_until = %s,"
            " claims = tickets.claims + 1, updated_at = %s"
            " FROM (SELECT id FROM tickets WHERE (status = 'new' AND updated_at < %s)"
            " OR (status = 'routing' AND (lease_until IS NULL OR lease_until < %s))"
            " ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED) AS stale"
            " WHERE tickets.id = stale.id RETURNING tickets.id, tickets.claims",
            (holder, until, now, new_before, now, limit),
        )
        return sorted((int(row["id"]), _claimed(int(row["claims"]))) for row in rows)

    async def release_leases(self, holder: str) -> int:
        """End holder's leases, so any replica takes the tickets at once."""
        return await self._run(
            "UPDATE tickets SET lease_until = NULL WHERE status = 'routing' AND claimed_by = %s",
            (holder,),
        )

    async def mark_routed(self, ticket_id: int) -> None:
        """The ticket is posted in every team channel it belongs to; its lease ends.

        A withdrawn ticket stays withdrawn (its deletion is stored before Slack's ack).
        """
        now = utc_now()
        await self._run(
            "UPDATE tickets SET status = 'routed', updated_at = %s, routed_at = %s,"
            " lease_until = NULL WHERE id = %s AND status != 'withdrawn'",
            (now, now, ticket_id),
        )

    async def mark_withdrawn(self, ticket_id: int) -> bool:
        """The customer deleted the message (before the ack); False if it was already withdrawn."""
        changed, _ = await self._write_before_ack(
            f"withdrawing ticket {ticket_id}",
            "UPDATE tickets SET status = 'withdrawn', updated_at = %s"
            " WHERE id = %s AND status != 'withdrawn'",
            (utc_now(), ticket_id),
            then=[_pending(ticket_id, "withdrawn", "")],
        )
        return changed == 1

    async def set_text(self, ticket_id: int, text: str, *, edited_ts: str | None = None) -> bool:
        """Replace a ticket's text after the customer edited the message (before the ack)."""
        if edited_ts is None:
            statement = "UPDATE tickets SET text = %s, updated_at = %s WHERE id = %s"
            args: tuple[object, ...] = (text, utc_now(), ticket_id)
        else:
            statement = (
                "UPDATE tickets SET text = %s, updated_at = %s, edited_ts = %s WHERE id = %s"
                " AND (edited_ts IS NULL OR edited_ts::numeric < %s::numeric)"
            )
            args = (text, utc_now(), edited_ts, ticket_id, edited_ts)
        changed, _ = await self._write_before_ack(
            f"storing ticket {ticket_id}'s edit",
            statement,
            args,
            then=[_pending(ticket_id, "edit", edited_ts or "")],
        )
        return changed > 0

    async def set_permalink(self, ticket_id: int, permalink: str) -> None:
        """Remember the link to the customer's message."""
        await self._run("UPDATE tickets SET permalink = %s WHERE id = %s", (permalink, ticket_id))

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

        With draft and permalink, those too: one statement (its data-modifying WITH clauses
        are one transaction, and cost one round trip and no BEGIN and COMMIT of their own).
        """
        now = utc_now()
        args: dict[str, object] = {
            "id": ticket_id,
            "now": now,
            "layers": [call.layer for call in layers],
            "calls": [call.model_dump_json() for call in layers],
            "decision": decision.model_dump_json(),
            "escalation": escalation.model_dump_json(),
            "language": decision.language,
            "model_state": model_state,
            "permalink": permalink,
        }
        with_draft = ""
        if draft is not None:
            with_draft = f", draft AS ({_SET_DRAFT_NAMED})"
            args["draft_text"], args["draft_source"] = draft
        await self._run(
            f"WITH layers AS ({_ADD_LAYERS}){with_draft}"  # noqa: S608  # fixed fragments
            " UPDATE tickets SET decision_json = %(decision)s,"
            " escalation_json = %(escalation)s, language = %(language)s,"
            " model_state = %(model_state)s, updated_at = %(now)s,"
            " permalink = COALESCE(%(permalink)s::text, permalink) WHERE id = %(id)s",
            args,
        )

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
        # One statement: the ticket's row is updated only while it waits for the model (a
        # sweep marking it late waits for the row's lock, then finds it answered, or the other
        # way round), and the layers and the draft are written only when it was.
        args: dict[str, object] = {
            "id": ticket_id,
            "now": utc_now(),
            "layers": [call.layer for call in layers],
            "calls": [call.model_dump_json() for call in layers],
            "decision": decision.model_dump_json(),
            "escalation": escalation.model_dump_json(),
            "language": decision.language,
            "state": state,
        }
        with_draft = ""
        if draft is not None:
            with_draft = (
                ", draft AS (UPDATE drafts SET text = %(draft_text)s, source = %(draft_source)s,"
                " created_at = %(now)s WHERE ticket_id IN (SELECT id FROM refined)"
                " AND status = 'pending' AND source != 'agent' AND text = %(replacing)s)"
            )
            args["draft_text"], args["draft_source"] = draft
            args["replacing"] = replacing
        row = await self._one(
            "WITH refined AS (UPDATE tickets SET decision_json = %(decision)s,"  # noqa: S608
            " escalation_json = %(escalation)s, language = %(language)s,"
            " model_state = %(state)s, updated_at = %(now)s"
            " WHERE id = %(id)s AND model_state = 'pending' RETURNING id),"
            " layers AS (INSERT INTO layer_decisions (ticket_id, layer, call_json, at)"
            " SELECT refined.id, call.layer, call.json, %(now)s FROM refined,"
            " unnest(%(layers)s::text[], %(calls)s::text[]) WITH ORDINALITY"
            " AS call (layer, json, n) ORDER BY call.n)"
            f"{with_draft} SELECT count(*) AS refined FROM refined",
            args,
        )
        return row is not None and int(row["refined"]) == 1

    async def expire_model_waits(self, *, received_before: datetime) -> list[int]:
        """Mark "late" the tickets received before a time still waiting for the model; ids."""
        rows = await self._all(
            "UPDATE tickets SET model_state = 'late', updated_at = %s"
            " WHERE model_state = 'pending' AND received_at < %s RETURNING id",
            (utc_now(), received_before),
        )
        return sorted(int(row["id"]) for row in rows)

    async def set_decision(
        self, ticket_id: int, decision: Decision, escalation: Escalation
    ) -> None:
        """Replace the final decision (an agent's reclassification)."""
        await self._run(
            "UPDATE tickets SET decision_json = %s, escalation_json = %s, updated_at = %s"
            " WHERE id = %s",
            (decision.model_dump_json(), escalation.model_dump_json(), utc_now(), ticket_id),
        )

    async def layer_calls(self, ticket_id: int) -> list[LayerCall]:
        """Every layer's output for a ticket, over all its classification runs, in order."""
        rows = await self._all(
            "SELECT call_json FROM layer_decisions WHERE ticket_id = %s ORDER BY id", (ticket_id,)
        )
        return [LayerCall.model_validate_json(row["call_json"]) for row in rows]

    async def add_reply(self, ticket_id: int, *, ts: str, author: str | None, text: str) -> bool:
        """Add a thread reply to a ticket (before the ack); False if it was stored already."""
        changed, _ = await self._write_before_ack(
            f"storing a reply {ts} to ticket {ticket_id}",
            "INSERT INTO ticket_replies (ticket_id, ts, author, text, at)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (ticket_id, ts) DO NOTHING",
            (ticket_id, ts, author, text, utc_now()),
            then=[_pending(ticket_id, "reply", ts)],
        )
        return changed == 1

    async def set_reply_text(self, ticket_id: int, *, ts: str, text: str) -> bool:
        """Change a stored thread reply's text; False if it is not one of the ticket's replies."""
        changed, _ = await self._write_before_ack(
            f"storing an edit of reply {ts} to ticket {ticket_id}",
            "UPDATE ticket_replies SET text = %s WHERE ticket_id = %s AND ts = %s AND text != %s",
            (text, ticket_id, ts, text),
            then=[_pending(ticket_id, "reply_edit", ts)],
        )
        return changed == 1

    async def replies(self, ticket_id: int) -> list[StoredReply]:
        """The thread replies under a ticket, oldest first."""
        rows = await self._all(
            "SELECT ts, author, text FROM ticket_replies WHERE ticket_id = %s"
            ' ORDER BY ts COLLATE "C"',
            (ticket_id,),
        )
        return [StoredReply(ts=row["ts"], author=row["author"], text=row["text"]) for row in rows]

    # --- drafts ---------------------------------------------------------------------------

    async def set_draft(self, ticket_id: int, *, text: str, source: str) -> None:
        """Store a new pending draft for a ticket, replacing one that was not sent."""
        await self._run(_SET_DRAFT, (ticket_id, text, source, utc_now()))

    async def draft(self, ticket_id: int) -> StoredDraft | None:
        """The ticket's draft."""
        row = await self._one("SELECT * FROM drafts WHERE ticket_id = %s", (ticket_id,))
        if row is None:
            return None
        return draft_from_row(row, _utc)

    async def claim_draft(self, ticket_id: int, agent: str) -> bool:
        """Take a pending draft for sending; exactly one of several concurrent callers wins."""
        return await self._decide_draft(ticket_id, agent, "sending")

    async def reject_draft(self, ticket_id: int, agent: str) -> bool:
        """Drop a pending draft; False if it was not pending."""
        return await self._decide_draft(ticket_id, agent, "rejected")

    async def _decide_draft(
        self, ticket_id: int, agent: str, status: Literal["sending", "rejected"]
    ) -> bool:
        # A second caller waits for the first one's row lock, then finds the status changed.
        changed = await self._run(
            "UPDATE drafts SET status = %s, decided_by = %s, decided_at = %s"
            " WHERE ticket_id = %s AND status = 'pending'",
            (status, agent, utc_now(), ticket_id),
        )
        return changed == 1

    async def finish_draft(self, ticket_id: int, *, sent_ts: str | None) -> None:
        """Settle a claimed draft: sent (with the reply's ts), or pending again if it failed."""
        if sent_ts is None:
            # tried_at: Slack may have taken it after all; the next approval looks first.
            await self._run(
                "UPDATE drafts SET status = 'pending', decided_by = NULL, decided_at = NULL,"
                " tried_at = %s WHERE ticket_id = %s AND status = 'sending'",
                (utc_now(), ticket_id),
            )
        else:
            await self._run(
                "UPDATE drafts SET status = 'sent', reply_ts = %s WHERE ticket_id = %s",
                (sent_ts, ticket_id),
            )

    async def settle_draft(
        self, ticket_id: int, *, claimed_at: datetime, sent_ts: str | None
    ) -> bool:
        """Settle a send claim still the one read: sent, or pending; False if it moved on."""
        if sent_ts is None:
            changed = await self._run(
                "UPDATE drafts SET status = 'pending', decided_by = NULL, decided_at = NULL,"
                " tried_at = %s WHERE ticket_id = %s AND status = 'sending' AND decided_at = %s",
                (utc_now(), ticket_id, claimed_at),
            )
        else:
            changed = await self._run(
                "UPDATE drafts SET status = 'sent', reply_ts = %s"
                " WHERE ticket_id = %s AND status = 'sending' AND decided_at = %s",
                (sent_ts, ticket_id, claimed_at),
            )
        return changed == 1

    async def sending_drafts(self, *, claimed_before: datetime | None = None) -> list[int]:
        """Tickets whose draft is being sent, claimed before a time if given (fate unknown)."""
        if claimed_before is None:
            rows = await self._all(
                "SELECT ticket_id FROM drafts WHERE status = 'sending' ORDER BY ticket_id"
            )
        else:
            rows = await self._all(
                "SELECT ticket_id FROM drafts WHERE status = 'sending' AND decided_at < %s"
                " ORDER BY ticket_id",
                (claimed_before,),
            )
        return [int(row["ticket_id"]) for row in rows]

    async def edit_draft(self, ticket_id: int, text: str) -> bool:
        """Change a pending draft's text; False if it is no longer pending."""
        changed = await self._run(
            "UPDATE drafts SET text = %s, source = 'agent'"
            " WHERE ticket_id = %s AND status = 'pending'",
            (text, ticket_id),
        )
        return changed == 1

    # --- posts ----------------------------------------------------------------------------

    async def add_post(self, ticket_id: int, *, team: str, channel: str, ts: str) -> None:
        """Remember a ticket's post in a team channel."""
        await self._run(
            "INSERT INTO posts (ticket_id, team, channel, ts, created_at)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (channel, ts) DO NOTHING",
            (ticket_id, team, channel, ts, utc_now()),
        )

    async def posts(self, ticket_id: int, *, active_only: bool = True) -> list[StoredPost]:
        """A ticket's team posts, first posted first."""
        where = " AND status = 'active'" if active_only else ""
        rows = await self._all(
            f"SELECT * FROM posts WHERE ticket_id = %s{where} ORDER BY id",  # noqa: S608  # fixed fragment
            (ticket_id,),
        )
        return [post_from_row(row) for row in rows]

    async def post_at(self, channel: str, ts: str) -> StoredPost | None:
        """The team post at (channel, ts), if it is one of ours."""
        row = await self._one("SELECT * FROM posts WHERE channel = %s AND ts = %s", (channel, ts))
        return post_from_row(row) if row else None

    async def hold_reaction(
        self, channel: str, ts: str, *, user: str, reaction: str, at: datetime
    ) -> None:
        """Keep an agent's emoji on (channel, ts), not yet a recorded post, until it is one."""
        await self._run(
            "INSERT INTO held_reactions (channel, ts, user_id, reaction, at)"
            " VALUES (%s, %s, %s, %s, %s)",
            (channel, ts, user, reaction, at),
        )

    async def take_held_reactions(self, channel: str, ts: str) -> list[HeldReaction]:
        """Take (delete and return, oldest first) the emoji held on (channel, ts)."""
        # A row deleted by one transaction is returned to no other: each goes to one caller.
        rows = await self._all(
            "DELETE FROM held_reactions WHERE channel = %s AND ts = %s"
            " RETURNING id, channel, ts, user_id, reaction, at",
            (channel, ts),
        )
        return sorted(
            (
                HeldReaction(
                    id=int(row["id"]),
                    channel=str(row["channel"]),
                    ts=str(row["ts"]),
                    user=str(row["user_id"]),
                    reaction=str(row["reaction"]),
                    at=_utc(row["at"]),
                )
                for row in rows
            ),
            key=lambda held: held.id,
        )

    async def forget_held_reactions(self, *, before: datetime) -> int:
        """Drop emoji held since before a time (their message never became a post)."""
        return await self._run("DELETE FROM held_reactions WHERE at < %s", (before,))

    async def public_id(self, ticket_id: int) -> str:
        """The ticket's public id: random, made the first time it is asked for, then kept.

        A public id never changes once made, so this process remembers the ones it has read.
        """
        known = self._public_ids.get(ticket_id)
        if known is not None:
            return known
        # The first card of a ticket: one insert. Two replicas asking at once: one insert
        # wins, and the other reads the winner's.
        row = await self._one(
            "INSERT INTO ticket_keys (ticket_id, public_id) VALUES (%s, %s)"
            " ON CONFLICT (ticket_id) DO NOTHING RETURNING public_id",
            (ticket_id, new_public_id()),
        )
        if row is None:
            row = await self._one(
                "SELECT public_id FROM ticket_keys WHERE ticket_id = %s", (ticket_id,)
            )
        assert row is not None  # noqa: S101  # inserted just now or before
        self._public_ids[ticket_id] = public_id = str(row["public_id"])
        return public_id

    async def ticket_by_public_id(self, public_id: str) -> int | None:
        """The ticket with this public id, if this database made it."""
        row = await self._one(
            "SELECT ticket_id FROM ticket_keys WHERE public_id = %s", (public_id,)
        )
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
        await self._run(
            "UPDATE posts SET status = %s, moved_to = %s, moved_by = %s WHERE id = %s",
            (status, moved_to, moved_by, post_id),
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
        changed = await self._run(
            "INSERT INTO pages (ticket_id, team, people_json, reasons_json, at, direct, asked_by)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (ticket_id, team) DO NOTHING",
            (
                ticket_id,
                team,
                json.dumps(list(people)),
                json.dumps(list(reasons)),
                utc_now(),
                int(direct),
                asked_by,
            ),
        )
        return changed == 1

    async def release_page(self, ticket_id: int, *, team: str) -> None:
        """Forget a page claim whose message Slack did not take, so it is tried again."""
        await self._run("DELETE FROM pages WHERE ticket_id = %s AND team = %s", (ticket_id, team))

    async def pages(self, ticket_id: int) -> list[str]:
        """The keys of the pages claimed for a ticket (sent or not)."""
        rows = await self._all(
            "SELECT team FROM pages WHERE ticket_id = %s ORDER BY at", (ticket_id,)
        )
        return [row["team"] for row in rows]

    async def page(self, ticket_id: int, *, team: str) -> StoredPage | None:
        """One page claim by its key."""
        row = await self._one(
            "SELECT * FROM pages WHERE ticket_id = %s AND team = %s", (ticket_id, team)
        )
        return page_from_row(row, _utc) if row else None

    async def mark_page_noted(self, ticket_id: int, *, team: str) -> None:
        """The page's thread note is in Slack."""
        await self._run(
            "UPDATE pages SET noted_at = %s"
            " WHERE ticket_id = %s AND team = %s AND noted_at IS NULL",
            (utc_now(), ticket_id, team),
        )

    async def mark_page_sent(self, ticket_id: int, *, team: str) -> None:
        """The page's note and every DM are in Slack: the page is done."""
        now = utc_now()
        await self._run(
            "UPDATE pages SET noted_at = COALESCE(noted_at, %s), sent_at = %s"
            " WHERE ticket_id = %s AND team = %s AND sent_at IS NULL",
            (now, now, ticket_id, team),
        )

    async def unsent_pages(self, *, claimed_before: datetime) -> list[StoredPage]:
        """Pages claimed before a time and not yet sent (a crash or a refusal), oldest first."""
        rows = await self._all(
            "SELECT * FROM pages WHERE sent_at IS NULL AND at < %s ORDER BY at, ticket_id",
            (claimed_before,),
        )
        return [page_from_row(row, _utc) for row in rows]

    async def retake_page(self, ticket_id: int, *, team: str, claimed_at: datetime) -> bool:
        """Take over an unsent page whose claim is still the one read; exactly one caller wins."""
        # The claim's time is the compare-and-set's token: the winner moves it to now.
        changed = await self._run(
            "UPDATE pages SET at = %s WHERE ticket_id = %s AND team = %s"
            " AND sent_at IS NULL AND at = %s",
            (utc_now(), ticket_id, team, claimed_at),
        )
        return changed == 1

    async def let_go_page(self, ticket_id: int, *, team: str, claimed_at: datetime) -> bool:
        """Give up an unsent page held by claimed_at: its claim time becomes PAGE_LET_GO_AT."""
        changed = await self._run(
            "UPDATE pages SET at = %s WHERE ticket_id = %s AND team = %s"
            " AND sent_at IS NULL AND at = %s",
            (PAGE_LET_GO_AT, ticket_id, team, claimed_at),
        )
        return changed == 1

    async def claim_direct_page(self, ticket_id: int, *, person: str, page: str) -> bool:
        """Claim a critical ticket's DM to one person (once per ticket); False if claimed."""
        changed = await self._run(
            "INSERT INTO direct_pages (ticket_id, person, page, claimed_at)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT (ticket_id, person) DO NOTHING",
            (ticket_id, person, page, utc_now()),
        )
        return changed == 1

    async def mark_direct_page_sent(self, ticket_id: int, *, person: str) -> None:
        """The DM to this person is in Slack."""
        await self._run(
            "UPDATE direct_pages SET sent_at = %s WHERE ticket_id = %s AND person = %s",
            (utc_now(), ticket_id, person),
        )

    async def direct_pages(self, ticket_id: int) -> dict[str, tuple[str, bool]]:
        """Each person DMed (or being DMed) about a ticket: the page's key, and whether sent."""
        rows = await self._all(
            "SELECT person, page, sent_at FROM direct_pages WHERE ticket_id = %s", (ticket_id,)
        )
        return {row["person"]: (row["page"], row["sent_at"] is not None) for row in rows}

    async def take_post_slot(self, channel: str, *, now: datetime, spacing: float) -> datetime:
        """Take the channel's next post slot: the later of now and the one after the last.

        One upsert: PostgreSQL locks the row, so two replicas asking at once get two slots.
        """
        row = await self._one(
            "INSERT INTO post_pacing (channel, next_at) VALUES (%s, %s + %s)"
            " ON CONFLICT (channel) DO UPDATE"
            " SET next_at = GREATEST(post_pacing.next_at, excluded.next_at - %s) + %s"
            " RETURNING next_at",
            (channel, now.timestamp(), spacing, spacing, spacing),
        )
        assert row is not None  # noqa: S101  # an upsert returns its row
        return datetime.fromtimestamp(float(row["next_at"]) - spacing, UTC)

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
        """The burst a page at `at` is in: a new one led by this ticket, or the one going on.

        One upsert: PostgreSQL locks the row it conflicts on, so of two replicas asking at
        once one starts the burst and the other sees it.
        """
        await self._run(
            "INSERT INTO page_bursts"
            " (customer, oncall, ticket_id, channel, ts, page_key, critical, started_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (customer, oncall) DO UPDATE SET ticket_id = excluded.ticket_id,"
            " channel = excluded.channel, ts = excluded.ts, page_key = excluded.page_key,"
            " critical = excluded.critical, started_at = excluded.started_at"
            " WHERE page_bursts.started_at < %s"
            " OR (excluded.critical = 1"
            " AND (page_bursts.critical = 0 OR page_bursts.page_key <> excluded.page_key))",
            (customer, oncall, ticket_id, channel, ts, key, int(critical), at, at - window),
        )
        row = await self._one(
            "SELECT * FROM page_bursts WHERE customer = %s AND oncall = %s", (customer, oncall)
        )
        assert row is not None  # noqa: S101  # inserted or kept just now
        return burst_from_row(row, _utc)

    async def end_burst(
        self, customer: str, oncall: str, *, ticket_id: int, started_at: datetime
    ) -> None:
        """Forget the burst this ticket started at started_at (its page was not sent now)."""
        await self._run(
            "DELETE FROM page_bursts WHERE customer = %s AND oncall = %s AND ticket_id = %s"
            " AND started_at = %s",
            (customer, oncall, ticket_id, started_at),
        )

    async def count_in_burst(
        self, customer: str, oncall: str, *, lead: int, ticket_id: int
    ) -> tuple[int, ...]:
        """Count a ticket under the burst led by lead (once); the tickets counted, in order."""
        await self._run(
            "INSERT INTO burst_tickets (customer, oncall, lead, ticket_id)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (customer, oncall, lead, ticket_id),
        )
        rows = await self._all(
            "SELECT ticket_id FROM burst_tickets WHERE customer = %s AND oncall = %s"
            " AND lead = %s ORDER BY ticket_id",
            (customer, oncall, lead),
        )
        return tuple(int(row["ticket_id"]) for row in rows)

    async def claim_burst_followup(self, customer: str, oncall: str, *, lead: int) -> bool:
        """Claim the posting of the note counting a burst's tickets; False if claimed before."""
        changed = await self._run(
            "INSERT INTO burst_followups (customer, oncall, lead) VALUES (%s, %s, %s)"
            " ON CONFLICT DO NOTHING",
            (customer, oncall, lead),
        )
        return changed == 1

    async def release_burst_followup(self, customer: str, oncall: str, *, lead: int) -> None:
        """Give up a claim on the counting note that was not posted (the next count posts it)."""
        await self._run(
            "DELETE FROM burst_followups WHERE customer = %s AND oncall = %s AND lead = %s"
            " AND ts IS NULL",
            (customer, oncall, lead),
        )

    async def set_burst_followup(
        self, customer: str, oncall: str, *, lead: int, channel: str, ts: str
    ) -> None:
        """The note counting a burst's tickets is in Slack at (channel, ts)."""
        await self._run(
            "UPDATE burst_followups SET channel = %s, ts = %s"
            " WHERE customer = %s AND oncall = %s AND lead = %s",
            (channel, ts, customer, oncall, lead),
        )

    async def burst_followup(
        self, customer: str, oncall: str, *, lead: int
    ) -> tuple[str, str] | bool | None:
        """The counting note's (channel, ts); True while claimed, not yet posted; None: none."""
        row = await self._one(
            "SELECT channel, ts FROM burst_followups WHERE customer = %s AND oncall = %s"
            " AND lead = %s",
            (customer, oncall, lead),
        )
        if row is None:
            return None
        if row["channel"] is None or row["ts"] is None:
            return True
        return (str(row["channel"]), str(row["ts"]))

    async def pending_follow_ups(self, *, stored_before: datetime) -> list[PendingFollowUp]:
        """Follow-ups stored (or taken over) before a time whose after-ack work is not done."""
        rows = await self._all(
            "SELECT ticket_id, kind, ref, at FROM pending_follow_ups WHERE at < %s"
            " ORDER BY at, ticket_id",
            (stored_before,),
        )
        return [
            PendingFollowUp(
                ticket_id=int(row["ticket_id"]),
                kind=row["kind"],
                ref=str(row["ref"]),
                at=_utc(row["at"]),
            )
            for row in rows
        ]

    async def retake_follow_up(self, pending: PendingFollowUp) -> bool:
        """Take over a pending follow-up still as read (its at); exactly one caller wins."""
        changed = await self._run(
            "UPDATE pending_follow_ups SET at = %s"
            " WHERE ticket_id = %s AND kind = %s AND ref = %s AND at = %s",
            (utc_now(), pending.ticket_id, pending.kind, pending.ref, pending.at),
        )
        return changed == 1

    async def finish_follow_up(self, ticket_id: int, *, kind: str, ref: str) -> None:
        """A follow-up's after-ack work is done."""
        await self._run(
            "DELETE FROM pending_follow_ups WHERE ticket_id = %s AND kind = %s AND ref = %s",
            (ticket_id, kind, ref),
        )

    async def set_oncall(self, team: str, people: Sequence[str], set_by: str) -> None:
        """Replace a team's on-call (overrides the config until changed again)."""
        await self._run(
            "INSERT INTO oncall (team, people_json, set_by, at) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (team) DO UPDATE SET people_json = excluded.people_json,"
            " set_by = excluded.set_by, at = excluded.at",
            (team, json.dumps(list(people)), set_by, utc_now()),
        )

    async def oncall(self, team: str) -> tuple[str, ...] | None:
        """The on-call set with `/triage oncall`, or None when the config's applies."""
        row = await self._one("SELECT people_json FROM oncall WHERE team = %s", (team,))
        return tuple(json.loads(row["people_json"])) if row else None

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
        await self._run(
            "INSERT INTO audit (ticket_id, actor, action, before_json, after_json, at)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            (ticket_id, actor, action, audit_json(before), audit_json(after), utc_now()),
        )

    async def audit_log(self, ticket_id: int | None = None) -> list[AuditEntry]:
        """Audit entries, oldest first; all of them, or one ticket's."""
        if ticket_id is None:
            rows = await self._all("SELECT * FROM audit ORDER BY id")
        else:
            rows = await self._all(
                "SELECT * FROM audit WHERE ticket_id = %s ORDER BY id", (ticket_id,)
            )
        return [
            AuditEntry(
                ticket_id=row["ticket_id"],
                actor=row["actor"],
                action=row["action"],
                before=json.loads(row["before_json"]),
                after=json.loads(row["after_json"]),
                at=_utc(row["at"]),
            )
            for row in rows
        ]

    async def add_correction(
        self, example: LabeledExample, *, ticket_id: int | None, by: str
    ) -> None:
        """Store an agent's correction as a labeled example."""
        await self._run(
            "INSERT INTO corrections (ticket_id, example_json, by, at) VALUES (%s, %s, %s, %s)",
            (ticket_id, correction_json(example), by, utc_now()),
        )

    async def corrections(self) -> list[LabeledExample]:
        """Every correction, oldest first: the classifier learns them again at start-up."""
        rows = await self._all("SELECT example_json FROM corrections ORDER BY id")
        return [LabeledExample.model_validate_json(row["example_json"]) for row in rows]

    # --- reports --------------------------------------------------------------------------

    async def day_stats(self, day: date) -> DayStats:
        """Counts for tickets received on one UTC day."""
        start = datetime.combine(day, time.min, tzinfo=UTC)
        end = datetime.combine(day, time.max, tzinfo=UTC)
        rows = await self._all(
            "SELECT t.received_at, t.decision_json, t.escalation_json, d.status, d.decided_at"
            " FROM tickets t LEFT JOIN drafts d ON d.ticket_id = t.id"
            " WHERE t.received_at BETWEEN %s AND %s",
            (start, end),
        )
        return day_stats_of(
            [
                DayRow(
                    received_at=_utc(row["received_at"]),
                    decision_json=row["decision_json"],
                    escalation_json=row["escalation_json"],
                    draft_status=row["status"],
                    decided_at=_maybe_utc(row["decided_at"]),
                )
                for row in rows
            ]
        )


# A new ticket's row: channel, ts, author, text, received_at, updated_at.
TicketRow = tuple[str, str, str | None, str, datetime, datetime]
# The grouped inserts' own connection, as pg_stat_activity names it.
INSERTS_NAME = "triage new tickets"
# At most this many tickets' rows in one statement.
GROUP_INSERT_MAX = 500


class _GroupInsert:
    """New tickets' inserts made together: those that arrive while one is in flight wait for it.

    A burst of messages (each acknowledged only once its ticket is committed) then costs one
    statement and one commit per round, not one per message, and holds one pooled connection
    instead of all of them. Nothing waits on purpose: a lone message goes at once. Each caller
    hears its own ticket's id (None when its (channel, ts) is a ticket already, or came twice in
    the round) or the round's error; a round failing on something other than the connection is
    made again row by row, so one row the server refuses fails only its own message.
    """

    def __init__(
        self, pool: AsyncConnectionPool[Connection], *, timeout: float, url: str | None = None
    ) -> None:
        self._pool = pool
        self._timeout = timeout
        self._waiting: list[tuple[TicketRow, asyncio.Future[int | None]]] = []
        self._rounds: asyncio.Task[None] | None = None
        # The rounds' own connection (url given): opened on first use, again after a failure.
        self._url = url
        self._connection: Connection | None = None

    async def close(self) -> None:
        """Close the rounds' own connection, if one is open."""
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()

    @contextlib.asynccontextmanager
    async def _connected(self) -> AsyncIterator[Connection]:
        """The rounds' own connection (one round at a time), or a pooled one without a url."""
        if self._url is None:
            async with self._pool.connection() as pooled:
                yield pooled
            return
        if self._connection is None or self._connection.closed:
            self._connection = await psycopg.AsyncConnection.connect(
                self._url, autocommit=True, row_factory=dict_row, application_name=INSERTS_NAME
            )
        try:
            yield self._connection
        except (psycopg.OperationalError, TimeoutError, asyncio.CancelledError):
            # Broken, or cut off mid-statement: the next round connects afresh.
            await self.close()
            raise

    async def insert(self, row: TicketRow) -> int | None:
        """Store one ticket's row with the others waiting; its id, or None if not new."""
        future: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._waiting.append((row, future))
        if self._rounds is None or self._rounds.done():
            self._rounds = asyncio.create_task(self._run_rounds())
        # A caller that stops waiting (its ack's time ran out) cancels only its own future: a
        # round already in flight may still commit its row, which a sweep then routes.
        return await future

    async def _run_rounds(self) -> None:
        while self._waiting:
            taken = self._waiting[:GROUP_INSERT_MAX]
            del self._waiting[:GROUP_INSERT_MAX]
            batch = [(row, future) for row, future in taken if not future.done()]
            if not batch:
                continue
            try:
                async with asyncio.timeout(self._timeout):
                    ids = await self._insert_rows([row for row, _ in batch])
            except (psycopg.OperationalError, TimeoutError) as error:
                _settle(batch, error=error)  # the connection or server: each caller retries
                continue
            except psycopg.Error:
                # A row the server refuses (bad data): each alone, so only its own fails.
                for row, future in batch:
                    try:
                        async with asyncio.timeout(self._timeout):
                            one = await self._insert_rows([row])
                    except (psycopg.Error, TimeoutError) as error:
                        _settle([(row, future)], error=error)
                    else:
                        _settle([(row, future)], ids=one)
                continue
            _settle(batch, ids=ids)

    async def _insert_rows(self, rows: Sequence[TicketRow]) -> dict[tuple[str, str], int]:
        """Insert rows (a (channel, ts) once) in one statement; the new ones' ids by key."""
        unique: dict[tuple[str, str], TicketRow] = {}
        for row in rows:
            unique.setdefault((row[0], row[1]), row)
        columns = list(zip(*unique.values(), strict=True))
        async with self._connected() as connection:
            cursor = await connection.execute(
                "INSERT INTO tickets (channel, ts, author, text, received_at, updated_at)"
                " SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[],"
                " %s::timestamptz[], %s::timestamptz[])"
                " ON CONFLICT (channel, ts) DO NOTHING RETURNING id, channel, ts",
                [list(column) for column in columns],
            )
            return {(row["channel"], row["ts"]): int(row["id"]) for row in await cursor.fetchall()}


def _settle(
    batch: Sequence[tuple[TicketRow, asyncio.Future[int | None]]],
    *,
    ids: dict[tuple[str, str], int] | None = None,
    error: BaseException | None = None,
) -> None:
    """Answer each caller of a round: its id (the first caller of a key only), or the error."""
    answered: set[tuple[str, str]] = set()
    for row, future in batch:
        if future.done():
            continue  # its caller stopped waiting
        if error is not None:
            future.set_exception(error)
            continue
        assert ids is not None  # noqa: S101  # either ids or an error
        key = (row[0], row[1])
        future.set_result(None if key in answered else ids.get(key))
        answered.add(key)


async def _migrate(connection: psycopg.AsyncConnection[Any]) -> None:
    """Run the migrations this database has not had, each in its own transaction."""
    # A session lock: a second replica starting at once waits here, then finds nothing to do.
    await connection.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK,))
    try:
        async with connection.transaction():
            await connection.execute(
                "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"
            )
            cursor = await connection.execute("SELECT version FROM schema_version")
            row = await cursor.fetchone()
            if row is None:
                await connection.execute("INSERT INTO schema_version (version) VALUES (0)")
        version = int(row[0]) if row else 0
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            async with connection.transaction():
                await connection.execute(script.encode())  # several statements, no parameters
                await connection.execute("UPDATE schema_version SET version = %s", (number,))
    finally:
        await connection.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK,))


# In a RETURNING clause on tickets: the ticket's active posts and its thread replies, as JSON.
_POSTS_AND_REPLIES = (
    "(SELECT COALESCE(json_agg(row_to_json(posts) ORDER BY posts.id), '[]') FROM posts"
    " WHERE posts.ticket_id = tickets.id AND posts.status = 'active') AS ticket_posts,"
    " (SELECT COALESCE(json_agg(json_build_object('ts', replies.ts, 'author', replies.author,"
    " 'text', replies.text) ORDER BY replies.ts COLLATE \"C\"), '[]') FROM ticket_replies"
    " AS replies WHERE replies.ticket_id = tickets.id) AS ticket_replies"
)


def _posts_of(row: DictRow) -> tuple[StoredPost, ...]:
    return tuple(post_from_row(post) for post in row["ticket_posts"])


def _replies_of(row: DictRow) -> tuple[StoredReply, ...]:
    return tuple(
        StoredReply(ts=reply["ts"], author=reply["author"], text=reply["text"])
        for reply in row["ticket_replies"]
    )


def _json_time(moment: str) -> datetime:
    """A timestamptz as row_to_json writes it (ISO 8601 with its offset), in UTC."""
    return datetime.fromisoformat(moment).astimezone(UTC)


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def _maybe_utc(moment: datetime | None) -> datetime | None:
    return moment.astimezone(UTC) if moment is not None else None


def _ticket(row: Any) -> StoredTicket:
    return ticket_from_row(row, _utc)


def _pending(ticket_id: int, kind: str, ref: str) -> tuple[str, tuple[object, ...]]:
    """The statement that records a follow-up's after-ack work as still to do."""
    return (
        "INSERT INTO pending_follow_ups (ticket_id, kind, ref, at) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (ticket_id, kind, ref) DO UPDATE SET at = excluded.at",
        (ticket_id, kind, ref, utc_now()),
    )
