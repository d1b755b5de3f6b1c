"""The store contract, run against both backends (SQLite and a real PostgreSQL server).

The in-memory store the desk's unit tests use runs the same contract; tests about SQL itself
(migrations, files, connections) skip it.

Schema, dedupe, the compare-and-set claims and the audit log; then what only one backend has:
SQLite's WAL file, PostgreSQL's TIMESTAMPTZ and claims raced over separate connections.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiosqlite
import psycopg
import pytest
from psycopg.rows import TupleRow

from routing.models import Decision, Escalation, LabeledExample, LayerCall
from routing.ports import TicketStore
from routing.records import PAGE_LET_GO_AT, StoredBurst, utc_now
from routing.store import MIGRATIONS, MemoryStore, SqliteStore
from routing.store import postgres as postgres_backend
from routing.store import sqlite as sqlite_backend
from routing.store.postgres import MIGRATIONS as POSTGRES_MIGRATIONS
from routing.store.postgres import PostgresStore
from routing.store.schema import Dialect, PerDialect, render

NOW = datetime(2026, 11, 22, 9, 30, tzinfo=UTC)


class Backend:
    """One empty database of one backend, which a test may open several times."""

    def __init__(
        self, *, sqlite: Path | None = None, postgres: str | None = None, memory: bool = False
    ) -> None:
        self.sqlite = sqlite
        self.postgres = postgres
        # One in-memory database: every open is a sibling store over its tables.
        self.memory = MemoryStore() if memory else None
        self.dialect: Dialect = "postgresql" if postgres is not None else "sqlite"
        # The backend's module, whose MIGRATIONS (this dialect's rendering) it runs.
        self.module = postgres_backend if postgres is not None else sqlite_backend

    @asynccontextmanager
    async def open(self) -> AsyncIterator[TicketStore]:
        """The store over this database, closed at the end of the block."""
        store: TicketStore
        if self.memory is not None:
            store = self.memory.sibling()
        elif self.postgres is not None:
            store = await PostgresStore.open(self.postgres)
        else:
            assert self.sqlite is not None
            store = await SqliteStore.open(self.sqlite)
        try:
            yield store
        finally:
            await store.close()

    async def set_event_time(self, event_id: str, at: datetime) -> None:
        """Backdate a recorded event id, as if it had come at another time."""
        if self.memory is not None:
            self.memory.tables.events[event_id] = at
            return
        if self.postgres is not None:
            async with await psycopg.AsyncConnection.connect(self.postgres) as connection:
                await connection.execute(
                    "UPDATE processed_events SET at = %s WHERE event_id = %s", (at, event_id)
                )
            return
        assert self.sqlite is not None
        async with aiosqlite.connect(self.sqlite) as db:
            await db.execute(
                "UPDATE processed_events SET at = ? WHERE event_id = ?", (at.isoformat(), event_id)
            )
            await db.commit()


@pytest.fixture(params=["sqlite", "postgresql", "memory"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """An empty database of each backend in turn."""
    if request.param == "postgresql":
        return Backend(postgres=request.getfixturevalue("postgres_url"))
    if request.param == "memory":
        return Backend(memory=True)
    return Backend(sqlite=tmp_path / "db")


@pytest.fixture
def sql_backend(backend: Backend) -> Backend:
    """A backend with SQL underneath: the in-memory store has no migrations or tables to edit."""
    if backend.memory is not None:
        pytest.skip("about SQL migrations and raw rows, which the in-memory store does not have")
    return backend


def _decision(category: str = "billing", priority: str = "high") -> Decision:
    return Decision(
        category=category,
        priority=priority,
        team="billing",
        sentiment="neutral",
        confidence=0.8,
        source="local",
    )


async def test_a_new_database_is_migrated_to_the_latest_version_once(backend: Backend) -> None:
    """Opening a new database runs every migration once; opening it again runs none."""
    async with backend.open() as store:
        assert await store.schema_version() == len(MIGRATIONS)
    # Opening again runs nothing twice (a second CREATE TABLE would fail).
    async with backend.open() as store:
        assert await store.schema_version() == len(MIGRATIONS)


async def test_a_migration_appended_later_upgrades_an_existing_database_once(
    sql_backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new entry at the end of the list runs once on a database made before it; rows stay."""
    async with sql_backend.open() as store:
        ticket = await store.add_ticket(
            channel="C1", ts="1.1", author="U1", text="hi", received_at=NOW
        )
    added = render("ALTER TABLE tickets ADD COLUMN checked_at $timestamp", sql_backend.dialect)
    monkeypatch.setattr(sql_backend.module, "MIGRATIONS", (*sql_backend.module.MIGRATIONS, added))
    for _ in range(2):  # the second open runs nothing (a second ADD COLUMN would fail)
        async with sql_backend.open() as store:
            assert await store.schema_version() == len(MIGRATIONS) + 1
            stored = await store.ticket_at("C1", "1.1")
            assert stored is not None
            assert stored.id == ticket


def test_a_migration_renders_its_types_and_per_dialect_text_for_each_database() -> None:
    """Placeholders become each database's types; a PerDialect entry gives each its own SQL."""
    shared = "CREATE TABLE t (id $serial_pk, at $timestamp)"
    assert render(shared, "sqlite") == "CREATE TABLE t (id INTEGER PRIMARY KEY, at TEXT)"
    assert render(shared, "postgresql") == (
        "CREATE TABLE t (id INTEGER GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, at TIMESTAMPTZ)"
    )
    split = PerDialect(sqlite="SELECT 1", postgresql="SELECT 2")
    assert (render(split, "sqlite"), render(split, "postgresql")) == ("SELECT 1", "SELECT 2")
    assert len(MIGRATIONS) == len(POSTGRES_MIGRATIONS)


async def test_a_new_sqlite_file_is_in_wal_mode(tmp_path: Path) -> None:
    """SQLite switches a new file to WAL, so readers never wait for the writer."""
    async with await SqliteStore.open(tmp_path / "triage.sqlite3") as store:
        assert await store.journal_mode() == "wal"


async def test_the_same_message_is_one_ticket(backend: Backend) -> None:
    """A second add of the same (channel, ts) makes no second ticket."""
    async with backend.open() as store:
        first = await store.add_ticket(
            channel="C1", ts="1.000001", author="U1", text="hi", received_at=NOW
        )
        again = await store.add_ticket(
            channel="C1", ts="1.000001", author="U1", text="hi", received_at=NOW
        )
        assert first is not None
        assert again is None
        assert [t.id for t in await store.unrouted_tickets()] == [first]


async def test_an_event_id_is_first_delivered_once(backend: Backend) -> None:
    """Slack's retries of an event id are recognised as already handled."""
    async with backend.open() as store:
        assert await store.first_delivery("Ev1") is True
        assert await store.first_delivery("Ev1") is False
        assert await store.first_delivery("Ev2") is True


async def test_event_ids_older_than_the_cutoff_are_forgotten(backend: Backend) -> None:
    """forget_events drops old event ids only; a recent retry is still recognised."""
    async with backend.open() as store:
        assert await store.first_delivery("EvOLD") is True
        assert await store.first_delivery("EvNEW") is True
    await backend.set_event_time("EvOLD", datetime(2026, 1, 1, tzinfo=UTC))
    async with backend.open() as store:
        assert await store.forget_events(before=datetime(2026, 6, 1, tzinfo=UTC)) == 1
        assert await store.first_delivery("EvOLD") is True
        assert await store.first_delivery("EvNEW") is False


async def test_only_one_of_many_concurrent_claims_of_a_draft_wins(backend: Backend) -> None:
    """Twenty agents approving at once: exactly one claims the draft."""
    async with backend.open() as store:
        ticket = await store.add_ticket(
            channel="C1", ts="1.1", author="U1", text="hi", received_at=NOW
        )
        assert ticket is not None
        await store.set_draft(ticket, text="Hello", source="template")
        results = await asyncio.gather(*(store.claim_draft(ticket, f"U{i}") for i in range(20)))
        assert sum(results) == 1
        draft = await store.draft(ticket)
        assert draft is not None
        assert draft.status == "sending"
        assert draft.decided_by == f"U{results.index(True)}"


async def test_drafts_being_sent_are_listed_by_when_they_were_claimed(backend: Backend) -> None:
    """A sweep asks only for sends claimed before a time: a fresh claim is a live sender's."""
    async with backend.open() as store:
        ticket = await store.add_ticket(
            channel="C1", ts="1.1", author="U1", text="hi", received_at=NOW
        )
        assert ticket is not None
        await store.set_draft(ticket, text="Hello", source="template")
        assert await store.claim_draft(ticket, "U1")
        assert await store.sending_drafts() == [ticket]
        assert await store.sending_drafts(claimed_before=utc_now() + timedelta(seconds=5)) == [
            ticket
        ]
        assert await store.sending_drafts(claimed_before=utc_now() - timedelta(minutes=2)) == []


async def test_a_sent_draft_is_never_replaced_by_a_new_one(backend: Backend) -> None:
    """Re-drafting after the reply went out keeps the sent text."""
    async with backend.open() as store:
        ticket = await store.add_ticket(
            channel="C1", ts="1.1", author="U1", text="hi", received_at=NOW
        )
        assert ticket is not None
        await store.set_draft(ticket, text="first", source="template")
        assert await store.claim_draft(ticket, "U9")
        await store.finish_draft(ticket, sent_ts="2.2")
        await store.set_draft(ticket, text="second", source="template")
        draft = await store.draft(ticket)
        assert draft is not None
        assert (draft.text, draft.status, draft.reply_ts) == ("first", "sent", "2.2")


async def test_a_failed_send_puts_the_draft_back_to_pending(backend: Backend) -> None:
    """When Slack does not take the reply, the draft can be approved again."""
    async with backend.open() as store:
        ticket = await store.add_ticket(
            channel="C1", ts="1.1", author="U1", text="hi", received_at=NOW
        )
        assert ticket is not None
        await store.set_draft(ticket, text="first", source="template")
        assert await store.claim_draft(ticket, "U9")
        await store.finish_draft(ticket, sent_ts=None)
        assert await store.claim_draft(ticket, "U8")


async def test_a_team_is_paged_once_per_ticket(backend: Backend) -> None:
    """The second page claim for the same ticket and team is refused."""
    async with backend.open() as store:
        ticket = await store.add_ticket(
            channel="C1", ts="1.1", author="U1", text="hi", received_at=NOW
        )
        assert ticket is not None
        assert await store.claim_page(ticket, team="billing", people=["U2"], reasons=["x"])
        assert not await store.claim_page(ticket, team="billing", people=["U2"], reasons=["x"])
        assert await store.pages(ticket) == ["billing"]


async def test_decisions_audit_and_corrections_round_trip(backend: Backend) -> None:
    """Every layer's call, the audit entry and a correction read back as written, in UTC."""
    async with backend.open() as store:
        ticket = await store.add_ticket(
            channel="C1", ts="1.1", author="U1", text="charged twice", received_at=NOW
        )
        assert ticket is not None
        layers = [
            LayerCall(layer="local", decision=_decision()),
            LayerCall(layer="llm_cheap", error="timeout"),
        ]
        await store.record_triage(
            ticket, layers=layers, decision=_decision(), escalation=Escalation(needs_human=False)
        )
        await store.audit(
            ticket_id=ticket, actor="U7", action="reclassified", before={"a": 1}, after={"a": 2}
        )
        example = LabeledExample(text="charged twice", category="billing", priority="high")
        await store.add_correction(example, ticket_id=ticket, by="U7")
        assert await store.layer_calls(ticket) == layers
        (entry,) = await store.audit_log(ticket)
        assert (entry.actor, entry.action, entry.before, entry.after) == (
            "U7",
            "reclassified",
            {"a": 1},
            {"a": 2},
        )
        assert entry.at.tzinfo is not None
        assert entry.at.utcoffset() == UTC.utcoffset(None)
        assert await store.corrections() == [example]
        stored = await store.ticket(ticket)
        assert stored is not None
        assert stored.decision == _decision()
        assert stored.received_at == NOW


async def test_day_stats_count_only_that_day(backend: Backend) -> None:
    """Stats count the day's tickets by label, the needs-human ones and the approvals."""
    async with backend.open() as store:
        ids = []
        for n, (category, human) in enumerate(
            [("billing", True), ("billing", False), ("technical", False)]
        ):
            ticket = await store.add_ticket(
                channel="C1", ts=f"1.{n}", author="U1", text="x", received_at=NOW
            )
            assert ticket is not None
            ids.append(ticket)
            await store.record_triage(
                ticket,
                layers=[],
                decision=_decision(category),
                escalation=Escalation(needs_human=human),
            )
            await store.set_draft(ticket, text="d", source="template")
        yesterday = await store.add_ticket(
            channel="C1", ts="0.9", author="U1", text="x", received_at=NOW.replace(day=21)
        )
        assert yesterday is not None
        assert await store.claim_draft(ids[0], "U5")
        await store.finish_draft(ids[0], sent_ts="3.3")
        assert await store.reject_draft(ids[1], "U5")
        day = await store.day_stats(NOW.date())
        assert day.tickets == 3
        assert day.by_category == {"billing": 2, "technical": 1}
        assert day.needs_human == 1
        assert (day.drafts_decided, day.drafts_sent) == (2, 1)
        assert len(day.minutes_to_approval) == 1


async def test_sqlite_stores_timestamps_as_utc_text(tmp_path: Path) -> None:
    """Every time SQLite stores carries the +00:00 offset."""
    path = tmp_path / "db"
    async with await SqliteStore.open(path) as store:
        await store.add_ticket(channel="C1", ts="1.1", author="U1", text="x", received_at=NOW)
    async with (
        aiosqlite.connect(path) as db,
        db.execute("SELECT received_at, updated_at FROM tickets") as cursor,
    ):
        row = await cursor.fetchone()
    assert row is not None
    assert all(str(value).endswith("+00:00") for value in row)


# --- PostgreSQL: several connections (replicas) on one database ------------------------------


async def _until_waiting_on_locks(observer: psycopg.AsyncConnection[TupleRow], count: int) -> None:
    """Return once `count` other sessions are blocked on a lock (the race is set up)."""
    for _ in range(3000):
        cursor = await observer.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE wait_event_type = 'Lock' AND datname = current_database()"
        )
        row = await cursor.fetchone()
        if row is not None and row[0] == count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{count} sessions never waited on the lock")


async def test_two_connections_racing_for_one_draft_exactly_one_wins(postgres_url: str) -> None:
    """Two replicas approve the same draft at the same instant: exactly one claims it."""
    backend = Backend(postgres=postgres_url)
    async with backend.open() as first, backend.open() as second:
        ticket = await first.add_ticket(
            channel="C1", ts="1.1", author="U1", text="hi", received_at=NOW
        )
        assert ticket is not None
        await first.set_draft(ticket, text="Hello", source="template")
        async with await psycopg.AsyncConnection.connect(postgres_url) as holder:
            # Holding the row makes both claims read it while pending, then wait at its lock.
            await holder.execute("SELECT 1 FROM drafts WHERE ticket_id = %s FOR UPDATE", (ticket,))
            claims = [
                asyncio.create_task(first.claim_draft(ticket, "UFIRST")),
                asyncio.create_task(second.claim_draft(ticket, "USECOND")),
            ]
            async with await psycopg.AsyncConnection.connect(
                postgres_url, autocommit=True
            ) as observer:
                await _until_waiting_on_locks(observer, 2)
            await holder.rollback()
            results = await asyncio.gather(*claims)
        assert sorted(results) == [False, True]
        draft = await second.draft(ticket)
        assert draft is not None
        assert draft.status == "sending"
        assert draft.decided_by == ("UFIRST" if results[0] else "USECOND")


async def test_two_connections_racing_to_page_one_ticket_page_once(postgres_url: str) -> None:
    """Two replicas page the same ticket and team at the same instant: one page is claimed."""
    backend = Backend(postgres=postgres_url)
    async with backend.open() as first, backend.open() as second:
        ticket = await first.add_ticket(
            channel="C1", ts="1.1", author="U1", text="hi", received_at=NOW
        )
        assert ticket is not None
        async with await psycopg.AsyncConnection.connect(postgres_url) as holder:
            # An uncommitted page row: both claims wait on it, and race once it is gone.
            await holder.execute(
                "INSERT INTO pages (ticket_id, team, people_json, reasons_json, at)"
                " VALUES (%s, 'billing', '[]', '[]', now())",
                (ticket,),
            )
            claims = [
                asyncio.create_task(
                    store.claim_page(ticket, team="billing", people=[who], reasons=["critical"])
                )
                for store, who in ((first, "UFIRST"), (second, "USECOND"))
            ]
            async with await psycopg.AsyncConnection.connect(
                postgres_url, autocommit=True
            ) as observer:
                await _until_waiting_on_locks(observer, 2)
            await holder.rollback()
            results = await asyncio.gather(*claims)
        assert sorted(results) == [False, True]
        assert await first.pages(ticket) == ["billing"]


async def test_many_stores_adding_the_same_message_make_one_ticket(postgres_url: str) -> None:
    """Five replicas storing one message and its event id at once: one ticket, one delivery."""
    backend = Backend(postgres=postgres_url)
    async with (
        backend.open() as a,
        backend.open() as b,
        backend.open() as c,
        backend.open() as d,
        backend.open() as e,
    ):
        stores = [a, b, c, d, e]
        deliveries = await asyncio.gather(*(s.first_delivery("Ev1") for s in stores))
        tickets = await asyncio.gather(
            *(
                s.add_ticket(channel="C1", ts="1.1", author="U1", text="hi", received_at=NOW)
                for s in stores
            )
        )
        stored = await a.ticket_at("C1", "1.1")
        assert sum(deliveries) == 1
        assert stored is not None
        assert [t for t in tickets if t is not None] == [stored.id]


async def test_replicas_starting_at_once_migrate_once(postgres_url: str) -> None:
    """Three stores opening a new database together run each migration exactly once."""
    opened = await asyncio.gather(*(PostgresStore.open(postgres_url) for _ in range(3)))
    try:
        versions = [await store.schema_version() for store in opened]
    finally:
        for store in opened:
            await store.close()
    assert versions == [len(POSTGRES_MIGRATIONS)] * 3


async def test_postgres_keeps_times_as_timestamptz_read_back_in_utc(postgres_url: str) -> None:
    """Times are TIMESTAMPTZ columns and read back aware, in UTC."""
    async with Backend(postgres=postgres_url).open() as store:
        ticket = await store.add_ticket(
            channel="C1", ts="1.1", author="U1", text="x", received_at=NOW
        )
        assert ticket is not None
        async with await psycopg.AsyncConnection.connect(postgres_url) as connection:
            cursor = await connection.execute(
                "SELECT data_type FROM information_schema.columns"
                " WHERE table_name = 'tickets' AND column_name = 'received_at'"
                " AND table_schema = current_schema()"
            )
            assert await cursor.fetchone() == ("timestamp with time zone",)
        stored = await store.ticket(ticket)
    assert stored is not None
    assert stored.received_at == NOW
    assert stored.received_at.utcoffset() == UTC.utcoffset(None)


async def test_the_tickets_language_is_stored_in_its_column(backend: Backend) -> None:
    """record_triage keeps the decision's language in the tickets table, on both backends."""
    async with backend.open() as store:
        ticket_id = await store.add_ticket(
            channel="C1", ts="1.0", author="U1", text="hola", received_at=NOW
        )
        assert ticket_id is not None
        decision = Decision(
            category="general",
            priority="low",
            team="support",
            sentiment="neutral",
            confidence=0.2,
            source="local",
            language="es",
        )
        escalation = Escalation(needs_human=True)
        await store.record_triage(ticket_id, layers=(), decision=decision, escalation=escalation)
        stored = await store.ticket(ticket_id)
        assert stored is not None
        assert stored.language == "es"
        assert stored.decision is not None
        assert stored.decision.language == "es"


async def test_the_audit_log_and_corrections_keep_no_personal_data(backend: Backend) -> None:
    """Beyond the ticket itself the store keeps customers' text redacted: audit, corrections."""
    text = "card 4111 1111 1111 1111, key AKIAIOSFODNN7EXAMPLE, mail jane@example.com"
    async with backend.open() as store:
        ticket_id = await store.add_ticket(
            channel="C1", ts="2.0", author="U1", text=text, received_at=NOW
        )
        await store.audit(
            ticket_id=ticket_id, actor="U0AGENT", action="edited", before=text, after={"t": [text]}
        )
        example = LabeledExample(text=text, category="billing")
        await store.add_correction(example, ticket_id=ticket_id, by="U0AGENT")
        (entry,) = await store.audit_log(ticket_id)
        (learnt,) = await store.corrections()
        stored = await store.ticket(ticket_id) if ticket_id is not None else None
    for kept in (json.dumps(entry.before), json.dumps(entry.after), learnt.text):
        for secret in ("4111", "AKIAIOSFODNN7EXAMPLE", "jane@example.com"):
            assert secret not in kept
    assert learnt.category == "billing"
    assert stored is not None
    assert stored.text == text  # the ticket itself keeps what the customer wrote


# --- pages claimed, sent, then marked sent (issue 12, item 1) ---------------------------------


async def _a_ticket(store: TicketStore) -> int:
    ticket = await store.add_ticket(channel="C1", ts="1.1", author="U1", text="hi", received_at=NOW)
    assert ticket is not None
    return ticket


async def test_a_claimed_page_stays_unsent_until_it_is_marked_sent(backend: Backend) -> None:
    """A claim is listed as unsent (if claimed before the cutoff) until the page is marked sent."""
    async with backend.open() as store:
        ticket = await _a_ticket(store)
        assert await store.claim_page(
            ticket,
            team="billing:critical",
            people=["U2", "S3"],
            reasons=["down"],
            direct=True,
            asked_by=None,
        )
        later = datetime.now(UTC) + timedelta(minutes=1)
        earlier = datetime.now(UTC) - timedelta(minutes=1)
        (unsent,) = await store.unsent_pages(claimed_before=later)
        assert (unsent.ticket_id, unsent.key, unsent.team) == (
            ticket,
            "billing:critical",
            "billing",
        )
        assert (unsent.people, unsent.reasons, unsent.direct) == (("U2", "S3"), ("down",), True)
        assert unsent.noted_at is None
        assert unsent.sent_at is None
        # Claimed after the cutoff: another replica's page that is still being sent.
        assert await store.unsent_pages(claimed_before=earlier) == []
        await store.mark_page_noted(ticket, team="billing:critical")
        (noted,) = await store.unsent_pages(claimed_before=later)
        assert noted.noted_at is not None
        await store.mark_page_sent(ticket, team="billing:critical")
        assert await store.unsent_pages(claimed_before=later) == []
        page = await store.page(ticket, team="billing:critical")
        assert page is not None
        assert page.sent_at is not None
        assert await store.pages(ticket) == ["billing:critical"]


async def test_an_unsent_page_is_taken_over_by_exactly_one_caller(backend: Backend) -> None:
    """Five replicas taking over the same stale claim at once: one wins; the claim is new after."""
    async with backend.open() as store:
        ticket = await _a_ticket(store)
        assert await store.claim_page(ticket, team="billing", people=["U2"], reasons=["x"])
        cutoff = datetime.now(UTC) + timedelta(seconds=30)
        (stale,) = await store.unsent_pages(claimed_before=cutoff)
        results = await asyncio.gather(
            *(
                store.retake_page(ticket, team="billing", claimed_at=stale.claimed_at)
                for _ in range(5)
            )
        )
        assert sorted(results) == [False, False, False, False, True]
        (taken,) = await store.unsent_pages(claimed_before=cutoff)
        assert taken.claimed_at > stale.claimed_at
        await store.mark_page_sent(ticket, team="billing")
        assert not await store.retake_page(ticket, team="billing", claimed_at=taken.claimed_at)


async def test_a_page_let_go_is_anyones_at_once_and_only_its_holder_lets_it_go(
    backend: Backend,
) -> None:
    """A claim given up by its holder is unsent before any cutoff; a stale token gives up none."""
    async with backend.open() as store:
        ticket = await _a_ticket(store)
        assert await store.claim_page(ticket, team="billing", people=["U2"], reasons=["x"])
        claim = await store.page(ticket, team="billing")
        assert claim is not None
        # Claimed just now: a start's cutoff (a lease ago) does not reach it yet.
        a_lease_ago = datetime.now(UTC) - timedelta(seconds=30)
        assert await store.unsent_pages(claimed_before=a_lease_ago) == []
        stale = claim.claimed_at - timedelta(seconds=1)
        assert not await store.let_go_page(ticket, team="billing", claimed_at=stale)
        assert await store.let_go_page(ticket, team="billing", claimed_at=claim.claimed_at)
        (free,) = await store.unsent_pages(claimed_before=a_lease_ago)
        assert free.claimed_at == PAGE_LET_GO_AT
        assert (free.people, free.reasons, free.sent_at) == (("U2",), ("x",), None)
        # Taken over by one replica, then no longer the old holder's to give up.
        assert await store.retake_page(ticket, team="billing", claimed_at=free.claimed_at)
        assert not await store.let_go_page(ticket, team="billing", claimed_at=free.claimed_at)
        await store.mark_page_sent(ticket, team="billing")
        taken = await store.page(ticket, team="billing")
        assert taken is not None
        assert not await store.let_go_page(ticket, team="billing", claimed_at=taken.claimed_at)


async def test_a_critical_tickets_dm_is_claimed_once_per_person(backend: Backend) -> None:
    """A DM is claimed once per ticket and person (whichever page claims it) and marked sent."""
    async with backend.open() as store:
        ticket = await _a_ticket(store)
        assert await store.claim_direct_page(ticket, person="U2", page="billing:critical")
        assert not await store.claim_direct_page(ticket, person="U2", page="support:critical")
        assert await store.claim_direct_page(ticket, person="U3", page="billing:critical")
        await store.mark_direct_page_sent(ticket, person="U3")
        assert await store.direct_pages(ticket) == {
            "U2": ("billing:critical", False),
            "U3": ("billing:critical", True),
        }


async def test_a_failed_send_marks_the_draft_tried(backend: Backend) -> None:
    """A send that failed is remembered, so the next approval looks in Slack before sending."""
    async with backend.open() as store:
        ticket = await _a_ticket(store)
        await store.set_draft(ticket, text="first", source="template")
        fresh = await store.draft(ticket)
        assert fresh is not None
        assert fresh.tried_at is None
        assert await store.claim_draft(ticket, "U9")
        await store.finish_draft(ticket, sent_ts=None)
        tried = await store.draft(ticket)
        assert tried is not None
        assert (tried.status, tried.tried_at is not None) == ("pending", True)


async def test_pages_made_before_the_migration_count_as_sent(
    sql_backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Upgrading a database whose pages were recorded the old way sends none of them again."""
    monkeypatch.setattr(sql_backend.module, "MIGRATIONS", sql_backend.module.MIGRATIONS[:4])
    async with sql_backend.open() as store:
        ticket = await _a_ticket(store)
        assert await store.schema_version() == 4
    old_page = (
        "INSERT INTO pages (ticket_id, team, people_json, reasons_json, at)"
        " VALUES ({0}, 'billing', '[]', '[]', {1})"
    )
    if sql_backend.postgres is not None:
        async with await psycopg.AsyncConnection.connect(sql_backend.postgres) as connection:
            await connection.execute(old_page.format("%s", "now()"), (ticket,))
    else:
        assert sql_backend.sqlite is not None
        async with aiosqlite.connect(sql_backend.sqlite) as db:
            await db.execute(old_page.format("?", "?"), (ticket, NOW.isoformat()))
            await db.commit()
    monkeypatch.undo()
    async with sql_backend.open() as store:
        assert await store.schema_version() == len(MIGRATIONS)
        far = datetime.now(UTC) + timedelta(days=1)
        assert await store.unsent_pages(claimed_before=far) == []


async def test_two_connections_taking_over_one_page_one_wins(postgres_url: str) -> None:
    """Two replicas' take-overs of one unsent page over separate connections: exactly one wins."""
    backend = Backend(postgres=postgres_url)
    async with backend.open() as first, backend.open() as second:
        ticket = await _a_ticket(first)
        assert await first.claim_page(ticket, team="billing", people=["U2"], reasons=["x"])
        (stale,) = await first.unsent_pages(claimed_before=datetime.now(UTC) + timedelta(days=1))
        async with await psycopg.AsyncConnection.connect(postgres_url) as holder:
            # A transaction holding the row: both take-overs wait on it, then race.
            await holder.execute("SELECT 1 FROM pages WHERE ticket_id = %s FOR UPDATE", (ticket,))
            takes = [
                asyncio.create_task(
                    store.retake_page(ticket, team="billing", claimed_at=stale.claimed_at)
                )
                for store in (first, second)
            ]
            async with await psycopg.AsyncConnection.connect(
                postgres_url, autocommit=True
            ) as observer:
                await _until_waiting_on_locks(observer, 2)
            await holder.rollback()
            results = await asyncio.gather(*takes)
        assert sorted(results) == [False, True]


# --- routing leases: work is claimed for a while, not owned by a process ------------------------


async def _tickets(store: TicketStore, count: int) -> list[int]:
    made = []
    for n in range(count):
        ticket = await store.add_ticket(
            channel="C1", ts=f"1.{n:06d}", author="U1", text=f"hi {n}", received_at=NOW
        )
        assert ticket is not None
        made.append(ticket)
    return made


async def test_a_routing_claim_holds_the_ticket_until_its_lease_expires(backend: Backend) -> None:
    """One replica's lease keeps others out until it expires; then another claims it again."""
    start = utc_now()
    async with backend.open() as store:
        (ticket,) = await _tickets(store, 1)
        lease = timedelta(seconds=30)
        assert await store.claim_for_routing(ticket, holder="A", now=start, until=start + lease)
        later = start + timedelta(seconds=10)
        assert (
            await store.claim_for_routing(ticket, holder="B", now=later, until=later + lease)
            is None
        )
        # The holder claims again (a retry), counted as a further claim: its post may exist.
        assert (
            await store.claim_for_routing(ticket, holder="A", now=later, until=later + lease)
            == "routing"
        )
        expired = start + timedelta(seconds=41)
        assert (
            await store.claim_for_routing(ticket, holder="B", now=expired, until=expired + lease)
            == "routing"
        )
        assert (
            await store.claim_for_routing(ticket, holder="A", now=expired, until=expired + lease)
            is None
        )
        await store.mark_routed(ticket)
        much_later = start + timedelta(days=1)
        assert (
            await store.claim_for_routing(ticket, holder="C", now=much_later, until=much_later)
            is None
        )


async def test_a_first_claim_says_new_and_is_the_only_winner_of_a_race(backend: Backend) -> None:
    """Ten replicas claiming one new ticket at once: one wins, and is told it is the first."""
    start = utc_now()
    async with backend.open() as store:
        (ticket,) = await _tickets(store, 1)
        until = start + timedelta(seconds=30)
        results = await asyncio.gather(
            *(
                store.claim_for_routing(ticket, holder=f"R{i}", now=start, until=until)
                for i in range(10)
            )
        )
        assert [claim for claim in results if claim is not None] == ["new"]


async def test_renewing_extends_only_the_holders_own_leases(backend: Backend) -> None:
    """A renewal in one statement extends the holder's leases; another's it leaves alone."""
    start = utc_now()
    lease = timedelta(seconds=30)
    async with backend.open() as store:
        mine, also_mine, theirs = await _tickets(store, 3)
        for ticket, holder in ((mine, "A"), (also_mine, "A"), (theirs, "B")):
            assert await store.claim_for_routing(
                ticket, holder=holder, now=start, until=start + lease
            )
        renewed = await store.renew_leases(
            "A", [mine, also_mine, theirs], until=start + timedelta(seconds=100)
        )
        assert renewed == 2
        assert await store.renew_leases("A", [], until=start) == 0
        later = start + timedelta(seconds=60)
        assert await store.claim_for_routing(mine, holder="C", now=later, until=later) is None
        assert (
            await store.claim_for_routing(theirs, holder="C", now=later, until=later) == "routing"
        )


async def test_stale_tickets_are_taken_and_live_leases_and_routed_ones_are_not(
    backend: Backend,
) -> None:
    """A sweep takes new tickets stored a while ago and expired leases, nothing else."""
    start = utc_now()
    async with backend.open() as store:
        fresh_new, held, expired, routed = await _tickets(store, 4)
        assert await store.claim_for_routing(
            held, holder="A", now=start, until=start + timedelta(seconds=30)
        )
        assert await store.claim_for_routing(expired, holder="A", now=start, until=start)
        assert await store.claim_for_routing(routed, holder="A", now=start, until=start)
        await store.mark_routed(routed)
        later = start + timedelta(seconds=5)
        until = later + timedelta(seconds=30)
        # New tickets count as stale only if stored before new_before: this one is not yet.
        taken = await store.take_stale_tickets(
            "B", now=later, until=until, new_before=start - timedelta(hours=1), limit=10
        )
        assert taken == [(expired, "routing")]
        taken = await store.take_stale_tickets(
            "B", now=later, until=until, new_before=later + timedelta(hours=1), limit=10
        )
        assert taken == [(fresh_new, "new")]
        # Now B holds both: nobody else takes them while its lease runs.
        again = await store.take_stale_tickets(
            "C", now=later, until=until, new_before=later + timedelta(hours=1), limit=10
        )
        assert again == []
        assert await store.renew_leases("B", [fresh_new, expired, held], until=until) == 2


async def test_racing_sweeps_take_every_stale_ticket_exactly_once(backend: Backend) -> None:
    """Five replicas sweeping thirty abandoned tickets at once: each ticket goes to one."""
    start = utc_now()
    async with backend.open() as first, backend.open() as second:
        tickets = await _tickets(first, 30)
        until = start + timedelta(seconds=30)
        sweeps = await asyncio.gather(
            *(
                store.take_stale_tickets(
                    f"R{i}",
                    now=start,
                    until=until,
                    new_before=start + timedelta(hours=1),
                    limit=7,
                )
                for i, store in enumerate([first, second, first, second, first])
            )
        )
        taken = [ticket for sweep in sweeps for ticket, _ in sweep]
        assert len(taken) == len(set(taken))
        more = await second.take_stale_tickets(
            "R9", now=start, until=until, new_before=start + timedelta(hours=1), limit=30
        )
        assert sorted(taken + [ticket for ticket, _ in more]) == tickets


async def test_released_leases_are_taken_at_once(backend: Backend) -> None:
    """A replica stopping ends its leases: another claims the ticket before they would expire."""
    start = utc_now()
    async with backend.open() as store:
        held, other = await _tickets(store, 2)
        until = start + timedelta(seconds=30)
        assert await store.claim_for_routing(held, holder="A", now=start, until=until)
        assert await store.claim_for_routing(other, holder="B", now=start, until=until)
        assert await store.release_leases("A") == 1
        assert await store.claim_for_routing(held, holder="C", now=start, until=until) == "routing"
        assert await store.claim_for_routing(other, holder="C", now=start, until=until) is None


async def test_replicas_on_separate_connections_claim_one_ticket_once(postgres_url: str) -> None:
    """Four PostgreSQL replicas, each on its own pool, race to claim and sweep: one wins each."""
    backend = Backend(postgres=postgres_url)
    start = utc_now()
    until = start + timedelta(seconds=30)
    async with (
        backend.open() as a,
        backend.open() as b,
        backend.open() as c,
        backend.open() as d,
    ):
        stores = [a, b, c, d]
        tickets = await _tickets(a, 20)
        claims = await asyncio.gather(
            *(
                store.claim_for_routing(tickets[0], holder=f"R{i}", now=start, until=until)
                for i, store in enumerate(stores)
            )
        )
        assert [claim for claim in claims if claim is not None] == ["new"]
        sweeps = await asyncio.gather(
            *(
                store.take_stale_tickets(
                    f"R{i}", now=start, until=until, new_before=until, limit=20
                )
                for i, store in enumerate(stores)
            )
        )
        taken = sorted(ticket for sweep in sweeps for ticket, _ in sweep)
        assert taken == tickets[1:]


# --- the model stage's state --------------------------------------------------------------


async def _pending_ticket(store: TicketStore, ts: str, *, received_at: datetime = NOW) -> int:
    """A ticket decided locally, its offline draft stored, waiting for the model."""
    ticket = await store.add_ticket(
        channel="C1", ts=ts, author="U1", text="charged twice", received_at=received_at
    )
    assert ticket is not None
    await store.record_triage(
        ticket,
        layers=[LayerCall(layer="local", decision=_decision())],
        decision=_decision(),
        escalation=Escalation(needs_human=False),
        model_state="pending",
    )
    await store.set_draft(ticket, text="offline draft", source="template")
    return ticket


async def test_a_refinement_is_kept_once_while_the_ticket_waits_for_the_model(
    backend: Backend,
) -> None:
    """The model's layers, decision, state and draft are kept once; a second answer is refused."""
    async with backend.open() as store:
        offline = await store.add_ticket(
            channel="C1", ts="0.9", author="U1", text="hi", received_at=NOW
        )
        assert offline is not None
        await store.record_triage(
            offline, layers=(), decision=_decision(), escalation=Escalation(needs_human=False)
        )
        stored = await store.ticket(offline)
        assert stored is not None
        assert stored.model_state is None  # no model asked: nothing to wait for

        ticket = await _pending_ticket(store, "1.1")
        pending = await store.ticket(ticket)
        assert pending is not None
        assert pending.model_state == "pending"
        refined = _decision(priority="critical").model_copy(update={"source": "llm_cheap"})
        call = LayerCall(layer="llm_cheap", model="m", decision=refined)
        escalation = Escalation(needs_human=True)
        assert await store.record_refinement(
            ticket,
            layers=[call],
            decision=refined,
            escalation=escalation,
            state="answered",
            draft=("model draft", "llm"),
            replacing="offline draft",
        )
        stored = await store.ticket(ticket)
        assert stored is not None
        assert (stored.model_state, stored.decision, stored.escalation) == (
            "answered",
            refined,
            escalation,
        )
        assert [c.layer for c in await store.layer_calls(ticket)] == ["local", "llm_cheap"]
        draft = await store.draft(ticket)
        assert draft is not None
        assert (draft.text, draft.source, draft.status) == ("model draft", "llm", "pending")
        # A second answer (another replica's, or a late one) changes nothing.
        assert not await store.record_refinement(
            ticket,
            layers=[call],
            decision=_decision(),
            escalation=Escalation(needs_human=False),
            state="late",
        )
        again = await store.ticket(ticket)
        assert again is not None
        assert (again.model_state, again.decision) == ("answered", refined)
        assert len(await store.layer_calls(ticket)) == 2


async def test_the_models_draft_never_replaces_one_an_agent_edited_approved_or_sent(
    backend: Backend,
) -> None:
    """Only the local stage's own pending draft is replaced; an agent's stays as it is."""
    async with backend.open() as store:
        edited = await _pending_ticket(store, "1.1")
        assert await store.edit_draft(edited, "agent's words")
        sending = await _pending_ticket(store, "1.2")
        assert await store.claim_draft(sending, "U9")
        sent = await _pending_ticket(store, "1.3")
        assert await store.claim_draft(sent, "U9")
        await store.finish_draft(sent, sent_ts="2.2")
        rejected = await _pending_ticket(store, "1.4")
        assert await store.reject_draft(rejected, "U9")
        for ticket in (edited, sending, sent, rejected):
            assert await store.record_refinement(
                ticket,
                layers=(),
                decision=_decision(),
                escalation=Escalation(needs_human=False),
                state="answered",
                draft=("model draft", "llm"),
                replacing="offline draft",
            )
        drafts = [await store.draft(ticket) for ticket in (edited, sending, sent, rejected)]
        assert [(d.text, d.status) for d in drafts if d is not None] == [
            ("agent's words", "pending"),
            ("offline draft", "sending"),
            ("offline draft", "sent"),
            ("offline draft", "rejected"),
        ]


async def test_tickets_waiting_for_the_model_past_a_cutoff_are_marked_late_once(
    backend: Backend,
) -> None:
    """The sweep's cutoff marks old pending tickets late, not new ones or answered ones."""
    async with backend.open() as store:
        old = await _pending_ticket(store, "1.1", received_at=NOW - timedelta(minutes=5))
        new = await _pending_ticket(store, "1.2", received_at=NOW)
        answered = await _pending_ticket(store, "1.3", received_at=NOW - timedelta(minutes=5))
        assert await store.record_refinement(
            answered,
            layers=(),
            decision=_decision(),
            escalation=Escalation(needs_human=False),
            state="answered",
        )
        cutoff = NOW - timedelta(minutes=1)
        assert await store.expire_model_waits(received_before=cutoff) == [old]
        assert await store.expire_model_waits(received_before=cutoff) == []
        states = [await store.ticket(ticket) for ticket in (old, new, answered)]
        assert [t.model_state for t in states if t is not None] == ["late", "pending", "answered"]
        # The refiner's answer after the sweep gave up is not kept.
        assert not await store.record_refinement(
            old,
            layers=(),
            decision=_decision(priority="critical"),
            escalation=Escalation(needs_human=True),
            state="answered",
        )
        stored = await store.ticket(old)
        assert stored is not None
        assert stored.decision == _decision()


async def test_an_edit_older_than_the_stored_one_changes_nothing(backend: Backend) -> None:
    """Edits apply by Slack ts: a late older one is refused; a newer or an untimed one applies."""
    async with backend.open() as store:
        ticket = await _a_ticket(store)
        assert await store.set_text(ticket, "second", edited_ts="1700000010.000200")
        assert not await store.set_text(ticket, "first", edited_ts="1700000009.999999")
        assert not await store.set_text(ticket, "again", edited_ts="1700000010.000200")
        stored = await store.ticket(ticket)
        assert stored is not None
        assert stored.text == "second"
        assert await store.set_text(ticket, "third", edited_ts="1700000011.000000")
        assert await store.set_text(ticket, "untimed")
        stored = await store.ticket(ticket)
        assert stored is not None
        assert stored.text == "untimed"


async def test_one_customers_burst_is_started_once_and_counts_each_ticket_once(
    backend: Backend,
) -> None:
    """Two stores ask at once: one burst; later pages join it, a critical one starts anew."""
    window = timedelta(minutes=10)
    async with backend.open() as one, backend.open() as other:
        first, second, third, fourth = await _tickets(one, 4)

        async def join(
            store: TicketStore,
            ticket: int,
            at: datetime,
            critical: bool = False,
            key: str = "billing",
        ) -> StoredBurst:
            return await store.join_burst(
                "U1",
                "U9",
                ticket_id=ticket,
                channel="C2",
                ts=f"2.{ticket:06d}",
                key=key,
                critical=critical,
                at=at,
                window=window,
            )

        a, b = await asyncio.gather(join(one, first, NOW), join(other, second, NOW))
        assert a == b
        lead = a.ticket_id
        assert lead in (first, second)
        assert (await join(other, third, NOW + timedelta(minutes=9))).ticket_id == lead
        # The same ticket's other post, counted once; the count is one store's, read by both.
        assert await one.count_in_burst("U1", "U9", lead=lead, ticket_id=third) == (third,)
        assert await other.count_in_burst("U1", "U9", lead=lead, ticket_id=third) == (third,)
        # One replica posts the counting note; the other sees it claimed, then posted.
        assert await one.claim_burst_followup("U1", "U9", lead=lead)
        assert not await other.claim_burst_followup("U1", "U9", lead=lead)
        assert await other.burst_followup("U1", "U9", lead=lead) is True
        # Slack refused it: given up, claimed again by the next counter.
        await one.release_burst_followup("U1", "U9", lead=lead)
        assert await other.burst_followup("U1", "U9", lead=lead) is None
        assert await other.claim_burst_followup("U1", "U9", lead=lead)
        await one.set_burst_followup("U1", "U9", lead=lead, channel="C2", ts="3.000001")
        assert await other.burst_followup("U1", "U9", lead=lead) == ("C2", "3.000001")
        await other.release_burst_followup("U1", "U9", lead=lead)  # posted: kept
        assert await one.burst_followup("U1", "U9", lead=lead) == ("C2", "3.000001")
        # More urgent than what was paged: a new burst; after the window: a new one too.
        critical = await join(one, fourth, NOW + timedelta(minutes=9), True, "billing:critical")
        assert (critical.ticket_id, critical.critical) == (fourth, True)
        # The same team's critical page joins it; another team's critical page starts its own.
        same = await join(other, third, NOW + timedelta(minutes=9), True, "billing:critical")
        assert same.ticket_id == fourth
        elsewhere = await join(
            other, third, NOW + timedelta(minutes=9), True, "engineering:critical"
        )
        assert (elsewhere.ticket_id, elsewhere.key) == (third, "engineering:critical")
        later = NOW + timedelta(minutes=30)
        assert (await join(other, third, later)).started_at == later
        await other.end_burst("U1", "U9", ticket_id=third, started_at=later)
        assert (await join(one, first, later)).ticket_id == first


async def test_two_stores_take_a_channels_post_slots_one_each_spaced(backend: Backend) -> None:
    """Replicas asking at once get distinct slots a spacing apart; an idle channel's is now."""
    async with backend.open() as one, backend.open() as other:
        first, second, third = await asyncio.gather(
            one.take_post_slot("C1", now=NOW, spacing=1.5),
            other.take_post_slot("C1", now=NOW, spacing=1.5),
            one.take_post_slot("C1", now=NOW, spacing=1.5),
        )
        offsets = sorted((slot - NOW).total_seconds() for slot in (first, second, third))
        assert offsets == pytest.approx([0.0, 1.5, 3.0])
        # Another channel has its own slots.
        assert await other.take_post_slot("C2", now=NOW, spacing=1.5) == NOW
        # Long after the last slot: the next is now, not in the past.
        later = NOW + timedelta(minutes=5)
        assert await other.take_post_slot("C1", now=later, spacing=1.5) == later


async def test_a_send_claim_is_settled_by_one_of_two_stores_reading_it(backend: Backend) -> None:
    """Two stores settle the claim they both read: one wins; a newer claim is left alone."""
    async with backend.open() as one, backend.open() as other:
        (ticket,) = await _tickets(one, 1)
        await one.set_draft(ticket, text="Sorry", source="template")
        assert await one.claim_draft(ticket, "U7")
        read = await other.draft(ticket)
        assert read is not None
        assert read.decided_at is not None
        won = await asyncio.gather(
            one.settle_draft(ticket, claimed_at=read.decided_at, sent_ts=None),
            other.settle_draft(ticket, claimed_at=read.decided_at, sent_ts=None),
        )
        assert sorted(won) == [False, True]
        draft = await one.draft(ticket)
        assert draft is not None
        assert (draft.status, draft.decided_by) == ("pending", None)
        # Claimed again by an agent: the old reading settles nothing, sent or not.
        assert await one.claim_draft(ticket, "U8")
        assert not await other.settle_draft(ticket, claimed_at=read.decided_at, sent_ts="9.1")
        fresh = await other.draft(ticket)
        assert fresh is not None
        assert fresh.decided_at is not None
        assert await other.settle_draft(ticket, claimed_at=fresh.decided_at, sent_ts="9.2")
        sent = await one.draft(ticket)
        assert sent is not None
        assert (sent.status, sent.reply_ts, sent.decided_by) == ("sent", "9.2", "U8")


async def test_a_follow_up_is_pending_until_done_and_taken_over_once(backend: Backend) -> None:
    """A stored reply, edit or deletion is pending with its write; taken over once; then done."""
    async with backend.open() as one, backend.open() as other:
        (ticket,) = await _tickets(one, 1)
        later = utc_now() + timedelta(days=1)
        assert await one.add_reply(ticket, ts="2.000001", author="U1", text="more")
        assert await one.set_text(ticket, "edited", edited_ts="3.000001")
        assert not await one.set_reply_text(ticket, ts="2.000001", text="more")  # no change
        assert await one.mark_withdrawn(ticket)
        pending = await other.pending_follow_ups(stored_before=later)
        assert sorted((p.kind, p.ref) for p in pending) == [
            ("edit", "3.000001"),
            ("reply", "2.000001"),
            ("withdrawn", ""),
        ]
        reply = next(p for p in pending if p.kind == "reply")
        won = await asyncio.gather(one.retake_follow_up(reply), other.retake_follow_up(reply))
        assert sorted(won) == [False, True]
        for item in pending:
            await one.finish_follow_up(ticket, kind=item.kind, ref=item.ref)
        assert await other.pending_follow_ups(stored_before=later) == []
        assert await other.pending_follow_ups(stored_before=NOW - timedelta(days=1)) == []


async def test_a_claim_with_its_reads_wins_as_a_claim_does_and_reads_what_is_stored(
    backend: Backend,
) -> None:
    """claim_ticket claims as claim_for_routing does, with the ticket, active posts, replies."""
    start = utc_now()
    lease = timedelta(seconds=30)
    async with backend.open() as store:
        fresh, replied = await _tickets(store, 2)
        assert await store.add_reply(replied, ts="1700000100.000020", author="U1", text="second")
        assert await store.add_reply(replied, ts="1700000100.000010", author=None, text="first")
        await store.add_post(replied, team="billing", channel="C1", ts="1700000200.000001")
        await store.add_post(replied, team="support", channel="C2", ts="1700000200.000002")
        [billing, support] = await store.posts(replied)
        await store.set_post_status(support.id, "moved", moved_to="C1", moved_by="U2")

        got = await store.claim_ticket(fresh, holder="A", now=start, until=start + lease)
        assert got is not None
        assert got.claimed == "new"
        assert got.ticket == await store.ticket(fresh)
        assert (got.ticket.status, got.posts, got.replies) == ("routing", (), ())
        # Another holder while A's lease runs: nothing; A again: its claim, seen as a retry.
        assert await store.claim_ticket(fresh, holder="B", now=start, until=start + lease) is None
        again = await store.claim_ticket(fresh, holder="A", now=start, until=start + lease)
        assert again is not None
        assert again.claimed == "routing"

        got = await store.claim_ticket(replied, holder="A", now=start, until=start + lease)
        assert got is not None
        assert got.posts == (billing,)
        assert got.replies == tuple(await store.replies(replied))
        assert [reply.text for reply in got.replies] == ["first", "second"]
        assert got.replies[0].author is None
        assert await store.mark_withdrawn(replied)
        later = start + timedelta(minutes=5)
        assert await store.claim_ticket(replied, holder="B", now=later, until=later) is None


async def test_a_renewed_lease_reads_the_posts_replies_draft_and_public_id_as_stored(
    backend: Backend,
) -> None:
    """renew_lease's read is what the post step would read apart: posts, replies, draft, id."""
    start = utc_now()
    lease = timedelta(seconds=30)
    async with backend.open() as store:
        [ticket] = await _tickets(store, 1)
        assert await store.claim_for_routing(ticket, holder="A", now=start, until=start + lease)
        bare = await store.renew_lease("A", ticket, until=start + lease)
        assert bare is not None
        assert (bare.posts, bare.replies, bare.draft, bare.public_id) == ((), (), None, None)
        await store.set_draft(ticket, text="Hello, we are on it.", source="template")
        assert await store.add_reply(ticket, ts="1700000100.000010", author="U1", text="more")
        await store.add_post(ticket, team="billing", channel="C1", ts="1700000200.000001")
        public_id = await store.public_id(ticket)
        leased = await store.renew_lease("A", ticket, until=start + lease)
        assert leased is not None
        assert leased.posts == tuple(await store.posts(ticket))
        assert leased.replies == tuple(await store.replies(ticket))
        assert leased.draft == await store.draft(ticket)
        assert leased.public_id == public_id


async def test_renewing_one_lease_reads_the_ticket_only_for_its_holder(backend: Backend) -> None:
    """renew_lease extends the holder's lease and returns the ticket; anyone else gets None."""
    start = utc_now()
    lease = timedelta(seconds=30)
    async with backend.open() as store:
        mine, withdrawn = await _tickets(store, 2)
        for ticket in (mine, withdrawn):
            assert await store.claim_for_routing(ticket, holder="A", now=start, until=start + lease)
        assert await store.mark_withdrawn(withdrawn)
        renewed = await store.renew_lease("A", mine, until=start + timedelta(seconds=100))
        assert renewed is not None
        assert (renewed.ticket.id, renewed.ticket.status) == (mine, "routing")
        assert renewed.ticket == await store.ticket(mine)
        assert await store.renew_lease("B", mine, until=start + timedelta(seconds=100)) is None
        assert await store.renew_lease("A", withdrawn, until=start + lease) is None
        # Renewed: still A's a minute on, when the first lease would have run out.
        later = start + timedelta(seconds=60)
        assert await store.claim_for_routing(mine, holder="C", now=later, until=later) is None


async def test_a_triage_recorded_with_its_draft_and_link_stores_all_three(
    backend: Backend,
) -> None:
    """record_triage with a draft and a link stores them with the decision; a sent draft stays."""
    async with backend.open() as store:
        fresh, sent = await _tickets(store, 2)
        await store.set_draft(sent, text="Sent already.", source="template")
        assert await store.claim_draft(sent, "U1")
        await store.finish_draft(sent, sent_ts="1700000000.000900")
        escalation = Escalation(needs_human=False)
        for ticket in (fresh, sent):
            await store.record_triage(
                ticket,
                layers=(),
                decision=_decision(),
                escalation=escalation,
                draft=("We are looking into it.", "template"),
                permalink=f"https://example.slack.com/archives/C1/p{ticket}",
            )
        stored = await store.ticket(fresh)
        assert stored is not None
        assert stored.decision == _decision()
        assert stored.permalink == f"https://example.slack.com/archives/C1/p{fresh}"
        draft = await store.draft(fresh)
        assert draft is not None
        assert (draft.text, draft.source, draft.status) == (
            "We are looking into it.",
            "template",
            "pending",
        )
        kept = await store.draft(sent)
        assert kept is not None
        assert (kept.text, kept.status) == ("Sent already.", "sent")
        # Without a link the stored one stays.
        await store.record_triage(fresh, layers=(), decision=_decision(), escalation=escalation)
        again = await store.ticket(fresh)
        assert again is not None
        assert again.permalink == f"https://example.slack.com/archives/C1/p{fresh}"


async def test_many_new_tickets_at_once_each_get_their_own_id_and_a_repeat_gets_none(
    backend: Backend,
) -> None:
    """Concurrent inserts (grouped on PostgreSQL) give one id per message, None to each repeat."""
    async with backend.open() as store:
        stamps = [f"1700000000.{i:06d}" for i in range(60)]
        results = await asyncio.gather(
            *(
                store.add_ticket(channel="C1", ts=ts, author="U1", text=f"t {ts}", received_at=NOW)
                for ts in [*stamps, *stamps[:20]]
            )
        )
        ids = [result for result in results[:60] if result is not None]
        assert len(ids) == 60
        assert len(set(ids)) == 60
        assert results[60:] == [None] * 20
        for ts, ticket_id in zip(stamps, results[:60], strict=True):
            stored = await store.ticket_at("C1", ts)
            assert stored is not None
            assert (stored.id, stored.text) == (ticket_id, f"t {ts}")


async def test_a_row_postgresql_refuses_fails_only_its_own_message_of_a_grouped_insert(
    postgres_url: str,
) -> None:
    """One message the server refuses (a NUL in its text) among others: only that one fails."""
    async with await PostgresStore.open(postgres_url) as store:
        texts = ["fine", "has a \x00 in it", "fine too"]
        results = await asyncio.gather(
            *(
                store.add_ticket(
                    channel="C1", ts=f"1.{i:06d}", author="U1", text=text, received_at=NOW
                )
                for i, text in enumerate(texts)
            ),
            return_exceptions=True,
        )
        assert isinstance(results[0], int)
        assert isinstance(results[1], psycopg.DataError)
        assert isinstance(results[2], int)
        assert await store.ticket_at("C1", "1.000001") is None


async def test_new_tickets_inserted_on_their_own_connection_survive_losing_it(
    postgres_url: str,
) -> None:
    """The grouped inserts' own connection, dropped by the server, is opened again: stored."""
    store = await PostgresStore.open(postgres_url)
    try:
        first = await store.add_ticket(
            channel="C1", ts="1700000000.000001", author="U1", text="one", received_at=NOW
        )
        # The server ends the inserts' own connection (the pool's are left alone).
        async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as admin:
            cursor = await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = %s",
                (postgres_backend.INSERTS_NAME,),
            )
            assert len(await cursor.fetchall()) >= 1
        second = await store.add_ticket(
            channel="C1", ts="1700000000.000002", author="U1", text="two", received_at=NOW
        )
        assert first is not None
        assert second is not None
        ticket = await store.ticket(second)
        assert ticket is not None
        assert ticket.text == "two"
    finally:
        await store.close()
