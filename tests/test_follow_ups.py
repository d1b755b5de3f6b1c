"""FollowUps on its own: the in-memory store, a fake Outbox, and fakes of the parts beside it.

FollowUps is typed to small Protocols of the parts it calls (routing/desk/roles.py), so the fakes
only record what they were asked: no Slack stand-in, no database, no model (the pipeline runs its
keyword rules only).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from routing.cascade import Pipeline
from routing.config import SlackConfig, TeamChannelConfig, TriageConfig, load_config
from routing.desk.follow_ups import FollowUps
from routing.desk.tickets import TicketLocks
from routing.desk.types import CustomerMessage
from routing.models import Decision, Escalation, Triage
from routing.records import StoredTicket
from routing.store import MemoryStore
from tests.fakes import FakeAgents, FakeOutbox, FakePager, FakePlacement
from tests.timekeeping import ManualClock

INTAKE = "C0INTAKE"
BILLING = "C0BILLING"
AGENT = "U0AGENT"
CUSTOMER = "U0CUSTOMER"
NEIGHBOUR = "U0NEIGHBOUR"
TS = "1700000000.000100"
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


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
            agents=FakeAgents(self.store, frozenset({AGENT})),
            placement=self.placement,
            pager=self.pager,
            locks=TicketLocks(),
            clock=ManualClock(),
            now=lambda: NOW,
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
    assert parts.pager.needed == [ticket]


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
    assert parts.pager.needed == [ticket]


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
    assert parts.pager.needed == []
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
    assert parts.pager.needed == []


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
