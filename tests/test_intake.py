"""Intake on its own: the in-memory store, a fake Outbox, and fakes of the parts beside it.

Intake is typed to small Protocols (routing/desk/intake.py, routing/desk/roles.py), so the fakes
only record what they were asked: no Slack stand-in, no database, no model.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any

import pytest

from routing.config import SlackConfig, TeamChannelConfig
from routing.desk.intake import Intake
from routing.desk.types import CustomerMessage
from routing.errors import StoreUnavailableError
from routing.store import MemoryStore
from tests.fakes import FakeAgents, FakeOutbox

INTAKE = "C0INTAKE"
BILLING = "C0BILLING"
AGENT = "U0AGENT"
CUSTOMER = "U0CUSTOMER"
TS = "1700000000.000100"
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def slack() -> SlackConfig:
    return SlackConfig(
        intake_channels=(INTAKE,),
        teams={"billing": TeamChannelConfig(channel=BILLING, agents=(AGENT,))},
    )


class RefusingStore(MemoryStore):
    """A MemoryStore that refuses new tickets while `refusing` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.refusing = False

    async def add_ticket(
        self, *, channel: str, ts: str, author: str | None, text: str, received_at: datetime
    ) -> int | None:
        """Refused while refusing, else stored."""
        if self.refusing:
            raise StoreUnavailableError("add_ticket", OSError("database is locked"))
        return await super().add_ticket(
            channel=channel, ts=ts, author=author, text=text, received_at=received_at
        )


class FakeThreads:
    """Records the thread replies handed over."""

    def __init__(self) -> None:
        self.replies: list[tuple[str, str]] = []

    async def thread_reply(self, message: CustomerMessage, thread_ts: str) -> None:
        """Recorded."""
        self.replies.append((message.ts, thread_ts))


class FakeQueue:
    """Records the tickets queued."""

    def __init__(self) -> None:
        self.queued: list[int] = []

    def put(self, ticket_id: int, *, text: str | None = None) -> None:
        """Recorded."""
        self.queued.append(ticket_id)


class FakeOps:
    """Records alerts by key; keeps background work to run when the test says."""

    def __init__(self) -> None:
        self.alerts: list[str] = []
        self.work: list[Coroutine[Any, Any, None]] = []

    def alert(self, key: str, text: str) -> None:
        """Recorded."""
        self.alerts.append(key)

    def in_background(self, work: Coroutine[Any, Any, None]) -> None:
        """Kept, to be awaited by the test."""
        self.work.append(work)


class IntakeParts:
    """An Intake built as the desk builds it, over fakes."""

    def __init__(self, slack: SlackConfig) -> None:
        self.store = RefusingStore()
        self.outbox = FakeOutbox()
        self.threads = FakeThreads()
        self.queue = FakeQueue()
        self.ops = FakeOps()
        self.intake = Intake(
            slack=slack,
            store=self.store,
            history=self.outbox,
            agents=FakeAgents(self.store, frozenset({AGENT})),
            follow_ups=self.threads,
            queue=self.queue,
            ops=self.ops,
            read_back_delays=(),
            now=lambda: NOW,
        )


def _message(ts: str, user: str = CUSTOMER, text: str = "I was charged twice") -> CustomerMessage:
    return CustomerMessage(channel=INTAKE, ts=ts, user=user, text=text)


async def test_a_message_becomes_one_ticket_queued_once(slack: SlackConfig) -> None:
    """A customer's message is stored and queued; the same message again makes nothing."""
    parts = IntakeParts(slack)
    ticket = await parts.intake.receive(_message(TS))
    assert ticket is not None
    assert await parts.intake.receive(_message(TS)) is None
    assert parts.queue.queued == [ticket]
    stored = await parts.store.ticket(ticket)
    assert stored is not None
    assert (stored.author, stored.text) == (CUSTOMER, "I was charged twice")
    assert stored.received_at == datetime.fromtimestamp(float(TS), UTC)


async def test_agents_messages_other_channels_and_replies_make_no_ticket(
    slack: SlackConfig,
) -> None:
    """An agent's post, another channel's message and a thread reply: no ticket, no queue."""
    parts = IntakeParts(slack)
    assert await parts.intake.receive(_message(TS, user=AGENT)) is None
    elsewhere = CustomerMessage(channel=BILLING, ts=TS, user=CUSTOMER, text="hello")
    assert await parts.intake.receive(elsewhere) is None
    reply = CustomerMessage(
        channel=INTAKE, ts="1700000000.000300", user=CUSTOMER, text="any news?", thread_ts=TS
    )
    assert await parts.intake.receive(reply) is None
    assert parts.threads.replies == [("1700000000.000300", TS)]
    assert parts.queue.queued == []
    assert await parts.store.ticket_at(INTAKE, TS) is None


async def test_a_malformed_ts_is_received_at_the_intakes_clock(slack: SlackConfig) -> None:
    """A message whose ts is no number is stored as received at the time its clock reads."""
    parts = IntakeParts(slack)
    ticket = await parts.intake.receive(_message("not-a-ts"))
    assert ticket is not None
    stored = await parts.store.ticket(ticket)
    assert stored is not None
    assert stored.received_at == NOW


async def test_a_refused_message_is_read_back_once_the_store_takes_tickets_again(
    slack: SlackConfig,
) -> None:
    """The store refusing raises and alerts; the next ticket it takes reads the channel back."""
    parts = IntakeParts(slack)
    parts.store.refusing = True
    with pytest.raises(StoreUnavailableError):
        await parts.intake.receive(_message("1700000010.000000"))
    assert parts.ops.alerts == ["store"]
    assert parts.ops.work == []
    parts.store.refusing = False
    assert await parts.intake.receive(_message("1700000020.000000")) is not None
    (read_back,) = parts.ops.work
    await read_back
    assert parts.outbox.called("recent_messages") == [
        {"channel": INTAKE, "oldest": "1700000009.000000"}
    ]


async def test_acks_done_returns_once_no_new_ticket_is_being_stored(slack: SlackConfig) -> None:
    """While a new ticket's insert is in flight acks_done waits; after it (stored, refused) not."""
    parts = IntakeParts(slack)
    await asyncio.wait_for(parts.intake.acks_done(), timeout=5)  # nothing stored: at once
    inserting = asyncio.Event()
    release = asyncio.Event()
    add_ticket = parts.store.add_ticket

    async def held_insert(**row: Any) -> int | None:
        inserting.set()
        await release.wait()
        return await add_ticket(**row)

    parts.store.add_ticket = held_insert  # type: ignore[method-assign]
    receiving = asyncio.create_task(parts.intake.receive(_message(TS)))
    await inserting.wait()
    done = asyncio.create_task(parts.intake.acks_done())
    await asyncio.sleep(0)
    assert not done.done()
    release.set()
    assert await receiving is not None
    await asyncio.wait_for(done, timeout=5)
    parts.store.add_ticket = add_ticket  # type: ignore[method-assign]
    parts.store.refusing = True
    with pytest.raises(StoreUnavailableError):
        await parts.intake.receive(_message("1700000001.000200"))
    await asyncio.wait_for(parts.intake.acks_done(), timeout=5)
