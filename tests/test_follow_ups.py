"""FollowUps and Intake on their own: the in-memory store, a fake Outbox, and fakes of the parts.

Each part is typed to small Protocols of the parts beside it (routing/desk/follow_ups.py,
routing/desk/intake.py), so the fakes here only record what they were asked: no Slack stand-in,
no database, no model (the pipeline runs its keyword rules only).
"""

from __future__ import annotations

from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any

import pytest

from routing.cascade import Pipeline
from routing.config import SlackConfig, TeamChannelConfig, TriageConfig, load_config
from routing.desk.follow_ups import FollowUps
from routing.desk.intake import Intake
from routing.desk.tickets import TicketLocks
from routing.desk.types import CustomerMessage
from routing.errors import StoreUnavailableError
from routing.models import Decision, Escalation, Triage
from routing.records import StoredTicket
from routing.store import MemoryStore
from tests.fakes import FakeOutbox
from tests.timekeeping import ManualClock

INTAKE = "C0INTAKE"
BILLING = "C0BILLING"
AGENT = "U0AGENT"
CUSTOMER = "U0CUSTOMER"
NEIGHBOUR = "U0NEIGHBOUR"
TS = "1700000000.000100"
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


class FakeAgents:
    """Only AGENT is an agent."""

    async def is_any_agent(self, user: str | None) -> bool:
        """True for AGENT."""
        return user == AGENT


class FakePlacement:
    """Records each place and refresh it is asked for."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, Any]] = []

    async def place(self, ticket_id: int, teams: set[str], *, moved_by: str | None) -> None:
        """Recorded."""
        self.calls.append(("place", ticket_id, sorted(teams)))

    async def refresh(self, ticket_id: int, *, include_inactive: bool = False) -> None:
        """Recorded."""
        self.calls.append(("refresh", ticket_id, include_inactive))


class FakePager:
    """Records the tickets it is asked to page about."""

    def __init__(self) -> None:
        self.asked: list[int] = []

    async def page_if_needed(self, ticket_id: int) -> None:
        """Recorded."""
        self.asked.append(ticket_id)


class Received:
    """The desk's receive: records the messages handed back to intake, makes no ticket."""

    def __init__(self) -> None:
        self.messages: list[CustomerMessage] = []

    async def __call__(self, message: CustomerMessage) -> int | None:
        """Recorded."""
        self.messages.append(message)
        return None


async def _never_classify(ticket_id: int) -> tuple[StoredTicket, Triage]:
    raise AssertionError("no ticket is classified again here")


@pytest.fixture(scope="module")
def config() -> TriageConfig:
    return load_config()


@pytest.fixture
def slack() -> SlackConfig:
    return SlackConfig(
        intake_channels=(INTAKE,),
        teams={"billing": TeamChannelConfig(channel=BILLING, agents=(AGENT,))},
    )


class Parts:
    """A FollowUps built as the desk builds it, over fakes it can be asked about."""

    def __init__(self, config: TriageConfig, slack: SlackConfig) -> None:
        self.store = MemoryStore()
        self.outbox = FakeOutbox()
        self.placement = FakePlacement()
        self.pager = FakePager()
        self.received = Received()
        self.follow_ups = FollowUps(
            config=config,
            slack=slack,
            store=self.store,
            outbox=self.outbox,
            pipeline=Pipeline(config=config, local=None),
            agents=FakeAgents(),
            placement=self.placement,
            pager=self.pager,
            locks=TicketLocks(),
            clock=ManualClock(),
            receive=self.received,
            classify=_never_classify,
        )

    async def posted_ticket(self) -> int:
        """A low-priority billing ticket posted in its channel, needing no human."""
        ticket = await self.store.add_ticket(
            channel=INTAKE, ts=TS, author=CUSTOMER, text="where is my invoice?", received_at=NOW
        )
        assert ticket is not None
        decision = Decision(
            category="billing",
            priority="low",
            team="billing",
            sentiment="neutral",
            confidence=0.9,
            source="local",
        )
        escalation = Escalation(needs_human=False)
        await self.store.record_triage(ticket, layers=(), decision=decision, escalation=escalation)
        await self.store.add_post(ticket, team="billing", channel=BILLING, ts="1700000000.000200")
        await self.store.mark_routed(ticket)
        return ticket

    def notes(self) -> list[tuple[str, str | None]]:
        """The (text, quote) of every note posted under a team post."""
        return [(call["note"].text, call["note"].quote) for call in self.outbox.called("post_note")]


def _reply(user: str, text: str, ts: str = "1700000000.000300") -> CustomerMessage:
    return CustomerMessage(channel=INTAKE, ts=ts, user=user, text=text, thread_ts=TS)


async def test_the_customers_reply_is_kept_shown_and_can_make_the_ticket_need_a_human(
    config: TriageConfig, slack: SlackConfig
) -> None:
    """A reply saying "production down" is stored, shown, and marks the ticket for a human."""
    parts = Parts(config, slack)
    ticket = await parts.posted_ticket()
    said = "now production down for us"
    await parts.follow_ups.thread_reply(_reply(CUSTOMER, said), TS)
    assert [reply.text for reply in await parts.store.replies(ticket)] == [said]
    assert parts.notes() == [("The customer replied in their thread:", said)]
    stored = await parts.store.ticket(ticket)
    assert stored is not None
    assert stored.escalation is not None
    assert stored.escalation.needs_human
    assert "forced_keyword" in {reason.code for reason in stored.escalation.reasons}
    assert [entry.action for entry in await parts.store.audit_log(ticket)] == ["recheck"]
    assert parts.placement.calls == [("refresh", ticket, False)]
    assert parts.pager.asked == [ticket]


async def test_a_reply_redelivered_is_shown_and_rechecked_once(
    config: TriageConfig, slack: SlackConfig
) -> None:
    """The same reply twice (a retried event): one stored reply, one note, one recheck."""
    parts = Parts(config, slack)
    ticket = await parts.posted_ticket()
    for _ in range(2):
        await parts.follow_ups.thread_reply(_reply(CUSTOMER, "production down"), TS)
    assert len(await parts.store.replies(ticket)) == 1
    assert len(parts.notes()) == 1
    assert parts.pager.asked == [ticket]


async def test_someone_elses_reply_is_shown_once_and_changes_nothing(
    config: TriageConfig, slack: SlackConfig
) -> None:
    """Another person's reply is shown to the team once, never stored, never re-checks."""
    parts = Parts(config, slack)
    ticket = await parts.posted_ticket()
    for _ in range(2):
        await parts.follow_ups.thread_reply(_reply(NEIGHBOUR, "production down here too"), TS)
    assert parts.notes() == [
        (f"<@{NEIGHBOUR}> replied in the customer's thread:", "production down here too")
    ]
    assert await parts.store.replies(ticket) == []
    assert parts.pager.asked == []
    assert parts.placement.calls == []


async def test_an_agents_reply_in_the_customers_thread_is_not_the_customers(
    config: TriageConfig, slack: SlackConfig
) -> None:
    """An agent answering by hand in the thread: nothing stored, shown or re-checked."""
    parts = Parts(config, slack)
    ticket = await parts.posted_ticket()
    await parts.follow_ups.thread_reply(_reply(AGENT, "production down? looking"), TS)
    assert await parts.store.replies(ticket) == []
    assert parts.outbox.calls == []
    assert parts.pager.asked == []


async def test_a_deleted_message_withdraws_its_ticket_once(
    config: TriageConfig, slack: SlackConfig
) -> None:
    """Deleting withdraws the ticket and its posts and redraws them; a second delete is nothing."""
    parts = Parts(config, slack)
    ticket = await parts.posted_ticket()
    await parts.follow_ups.deleted(INTAKE, TS)
    await parts.follow_ups.deleted(INTAKE, TS)
    stored = await parts.store.ticket(ticket)
    assert stored is not None
    assert stored.status == "withdrawn"
    assert [post.status for post in await parts.store.posts(ticket, active_only=False)] == [
        "withdrawn"
    ]
    assert [entry.action for entry in await parts.store.audit_log(ticket)] == ["withdrawn"]
    assert parts.placement.calls == [("refresh", ticket, True)]


async def test_an_edit_of_a_message_the_bot_never_got_asks_slack_and_hands_it_to_intake(
    config: TriageConfig, slack: SlackConfig
) -> None:
    """An edit of an unknown message after the first ticket: Slack's copy is read, none is found."""
    parts = Parts(config, slack)
    await parts.posted_ticket()
    await parts.follow_ups.edited(INTAKE, "1700000050.000100", "refund please", "refund")
    assert parts.outbox.called("message_at") == [{"channel": INTAKE, "ts": "1700000050.000100"}]
    assert parts.received.messages == []  # the fake Slack has no such message


# --- Intake -------------------------------------------------------------------------------


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

    def put(self, ticket_id: int) -> None:
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
            agents=FakeAgents(),
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
