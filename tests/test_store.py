"""The SQLite store: schema, dedupe, the compare-and-set claims, and the audit log."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import aiosqlite

from routing.models import Decision, Escalation, LabeledExample, LayerCall
from routing.store import MIGRATIONS, Store, utc_now

NOW = datetime(2026, 11, 22, 9, 30, tzinfo=UTC)


def _decision(category: str = "billing", priority: str = "high") -> Decision:
    return Decision(
        category=category,
        priority=priority,
        team="billing",
        sentiment="neutral",
        confidence=0.8,
        source="local",
    )


async def test_a_new_file_is_migrated_to_the_latest_version_in_wal_mode(tmp_path: Path) -> None:
    """Opening a new file runs every migration once and switches SQLite to WAL."""
    path = tmp_path / "triage.sqlite3"
    async with await Store.open(path) as store:
        assert await store.schema_version() == len(MIGRATIONS)
        assert await store.journal_mode() == "wal"
    # Opening again runs nothing twice (a second CREATE TABLE would fail).
    async with await Store.open(path) as store:
        assert await store.schema_version() == len(MIGRATIONS)


async def test_the_same_message_is_one_ticket(tmp_path: Path) -> None:
    """A second add of the same (channel, ts) makes no second ticket."""
    async with await Store.open(tmp_path / "db") as store:
        first = await store.add_ticket(
            channel="C1", ts="1.000001", author="U1", text="hi", received_at=NOW
        )
        again = await store.add_ticket(
            channel="C1", ts="1.000001", author="U1", text="hi", received_at=NOW
        )
        assert first is not None
        assert again is None
        assert [t.id for t in await store.unrouted_tickets()] == [first]


async def test_an_event_id_is_first_delivered_once(tmp_path: Path) -> None:
    """Slack's retries of an event id are recognised as already handled."""
    async with await Store.open(tmp_path / "db") as store:
        assert await store.first_delivery("Ev1") is True
        assert await store.first_delivery("Ev1") is False
        assert await store.first_delivery("Ev2") is True


async def test_event_ids_older_than_the_cutoff_are_forgotten(tmp_path: Path) -> None:
    """forget_events drops old event ids only; a recent retry is still recognised."""
    async with await Store.open(tmp_path / "db") as store:
        assert await store.first_delivery("EvOLD") is True
        assert await store.first_delivery("EvNEW") is True
    async with aiosqlite.connect(tmp_path / "db") as db:
        await db.execute(
            "UPDATE processed_events SET at = '2026-01-01T00:00:00+00:00' WHERE event_id = 'EvOLD'"
        )
        await db.commit()
    async with await Store.open(tmp_path / "db") as store:
        assert await store.forget_events(before=datetime(2026, 6, 1, tzinfo=UTC)) == 1
        assert await store.first_delivery("EvOLD") is True
        assert await store.first_delivery("EvNEW") is False


async def test_only_one_of_many_concurrent_claims_of_a_draft_wins(tmp_path: Path) -> None:
    """Twenty agents approving at once: exactly one claims the draft."""
    async with await Store.open(tmp_path / "db") as store:
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


async def test_a_sent_draft_is_never_replaced_by_a_new_one(tmp_path: Path) -> None:
    """Re-drafting after the reply went out keeps the sent text."""
    async with await Store.open(tmp_path / "db") as store:
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


async def test_a_failed_send_puts_the_draft_back_to_pending(tmp_path: Path) -> None:
    """When Slack does not take the reply, the draft can be approved again."""
    async with await Store.open(tmp_path / "db") as store:
        ticket = await store.add_ticket(
            channel="C1", ts="1.1", author="U1", text="hi", received_at=NOW
        )
        assert ticket is not None
        await store.set_draft(ticket, text="first", source="template")
        assert await store.claim_draft(ticket, "U9")
        await store.finish_draft(ticket, sent_ts=None)
        assert await store.claim_draft(ticket, "U8")


async def test_a_team_is_paged_once_per_ticket(tmp_path: Path) -> None:
    """The second page claim for the same ticket and team is refused."""
    async with await Store.open(tmp_path / "db") as store:
        ticket = await store.add_ticket(
            channel="C1", ts="1.1", author="U1", text="hi", received_at=NOW
        )
        assert ticket is not None
        assert await store.claim_page(ticket, team="billing", people=["U2"], reasons=["x"])
        assert not await store.claim_page(ticket, team="billing", people=["U2"], reasons=["x"])
        assert await store.pages(ticket) == ["billing"]


async def test_decisions_audit_and_corrections_round_trip(tmp_path: Path) -> None:
    """Every layer's call, the audit entry and a correction read back as written, in UTC."""
    async with await Store.open(tmp_path / "db") as store:
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


async def test_day_stats_count_only_that_day(tmp_path: Path) -> None:
    """Stats count the day's tickets by label, the needs-human ones and the approvals."""
    async with await Store.open(tmp_path / "db") as store:
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


async def test_timestamps_are_stored_as_utc_text(tmp_path: Path) -> None:
    """Every stored time carries the +00:00 offset."""
    path = tmp_path / "db"
    async with await Store.open(path) as store:
        await store.add_ticket(channel="C1", ts="1.1", author="U1", text="x", received_at=NOW)
    async with (
        aiosqlite.connect(path) as db,
        db.execute("SELECT received_at, updated_at FROM tickets") as cursor,
    ):
        row = await cursor.fetchone()
    assert row is not None
    assert all(str(value).endswith("+00:00") for value in row)


async def test_the_tickets_language_is_stored_in_its_column(tmp_path: Path) -> None:
    """record_triage keeps the decision's language in the tickets table; None when unknown."""
    async with await Store.open(tmp_path / "language.sqlite3") as store:
        ticket_id = await store.add_ticket(
            channel="C1", ts="1.0", author="U1", text="hola", received_at=utc_now()
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
