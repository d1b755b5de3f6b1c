"""The desk's parts on their own: the in-memory store and a fake Outbox, no Slack, no database.

Each test builds one part (Pager, AgentActions, WorkQueue) the way routing/desk/facade.py does,
with routing.store.MemoryStore and tests.fakes.FakeOutbox, and checks what it stored and said.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from routing.cascade import Pipeline
from routing.config import SlackConfig, TeamChannelConfig, TriageConfig, load_config
from routing.desk.actions import AgentActions
from routing.desk.agents import Agents
from routing.desk.limits import SEND_STALE_SECONDS
from routing.desk.paging import Pager
from routing.desk.placement import Placement
from routing.desk.tickets import TicketLocks
from routing.desk.types import BadRequestError, NotAllowedError
from routing.desk.work_queue import Send, WorkQueue
from routing.models import Decision, Escalation, EscalationReason
from routing.ports import TicketStore
from routing.records import TicketStatus, utc_now
from routing.store import MemoryStore
from tests.fakes import CountingStore, FakeOutbox
from tests.timekeeping import ManualClock

INTAKE = "C0INTAKE"
BILLING = "C0BILLING"
AGENT = "U0AGENT"
ONCALL = "U0ONCALL"
OUTSIDER = "U0OUTSIDER"
CUSTOMER = "U0CUSTOMER"
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def config() -> TriageConfig:
    return load_config()


@pytest.fixture
def slack() -> SlackConfig:
    return SlackConfig(
        intake_channels=(INTAKE,),
        teams={"billing": TeamChannelConfig(channel=BILLING, agents=(AGENT,), oncall=(ONCALL,))},
    )


async def _posted_ticket(store: TicketStore, *, priority: str, needs_human: bool = True) -> int:
    """A ticket decided for billing and posted in its channel, as the router leaves it."""
    ticket = await store.add_ticket(
        channel=INTAKE, ts="1700000000.000100", author=CUSTOMER, text="it is down", received_at=NOW
    )
    assert ticket is not None
    decision = Decision(
        category="billing",
        priority=priority,
        team="billing",
        sentiment="neutral",
        confidence=0.9,
        source="local",
    )
    reasons = (EscalationReason(code="critical_priority", detail=f"priority {priority}"),)
    escalation = Escalation(needs_human=needs_human, reasons=reasons if needs_human else ())
    await store.record_triage(ticket, layers=(), decision=decision, escalation=escalation)
    await store.add_post(ticket, team="billing", channel=BILLING, ts="1700000000.000200")
    await store.mark_routed(ticket)
    return ticket


def _pager(
    config: TriageConfig, slack: SlackConfig, store: TicketStore, outbox: FakeOutbox
) -> tuple[Pager, list[int]]:
    """A Pager as the desk builds it; the list collects the tickets it asks to retry."""
    retried: list[int] = []
    clock = ManualClock()
    agents = Agents(config=config, slack=slack, store=store, groups=outbox, clock=clock)
    pager = Pager(
        config=config,
        slack=slack,
        store=store,
        outbox=outbox,
        oncall=agents,
        clock=clock,
        now=utc_now,
        requeue=retried.append,
        retry_later=retried.append,
    )
    return pager, retried


def _actions(
    config: TriageConfig, slack: SlackConfig, store: TicketStore, outbox: FakeOutbox
) -> AgentActions:
    """An agent's actions as the desk builds them (the pipeline is never run here)."""
    pager, _ = _pager(config, slack, store, outbox)
    agents = Agents(config=config, slack=slack, store=store, groups=outbox, clock=ManualClock())

    alerts: list[tuple[str, str]] = []

    return AgentActions(
        config=config,
        slack=slack,
        store=store,
        outbox=outbox,
        pipeline=Pipeline(config=config, local=None),
        agents=agents,
        placement=Placement(
            config=config,
            slack=slack,
            store=store,
            outbox=outbox,
            alert_ops=lambda key, text: alerts.append((key, text)),
        ),
        pager=pager,
        locks=TicketLocks(),
        now=lambda: NOW,
    )


async def test_a_critical_page_is_claimed_noted_dmed_then_marked_sent(
    config: TriageConfig, slack: SlackConfig
) -> None:
    """A critical ticket's page: one thread note and one DM to the on-call, then marked sent."""
    store, outbox = MemoryStore(), FakeOutbox()
    ticket = await _posted_ticket(store, priority="critical")
    pager, retried = _pager(config, slack, store, outbox)
    await pager.page_if_needed(ticket)
    page = await store.page(ticket, team="billing:critical")
    assert page is not None
    assert (page.people, page.direct) == ((ONCALL,), True)
    assert page.noted_at is not None
    assert page.sent_at is not None
    assert [(call["ticket_id"], call["page"]) for call in outbox.called("post_page")] == [
        (ticket, "billing:critical")
    ]
    assert [call["user"] for call in outbox.called("direct_page")] == [ONCALL]
    assert await store.direct_pages(ticket) == {ONCALL: ("billing:critical", True)}
    assert retried == []


async def test_a_page_whose_dm_fails_stays_claimed_unsent_and_is_finished_once(
    config: TriageConfig, slack: SlackConfig
) -> None:
    """A refused DM leaves the page noted but unsent; the retry sends the DM, not the note."""
    store, outbox = MemoryStore(), FakeOutbox(failing={"direct_page"})
    ticket = await _posted_ticket(store, priority="critical")
    pager, retried = _pager(config, slack, store, outbox)
    await pager.page_if_needed(ticket)
    assert retried == [ticket]
    held = await store.page(ticket, team="billing:critical")
    assert held is not None
    assert held.noted_at is not None
    assert held.sent_at is None
    outbox.failing.clear()
    await pager.page_if_needed(ticket)
    done = await store.page(ticket, team="billing:critical")
    assert done is not None
    assert done.sent_at is not None
    assert len(outbox.called("post_page")) == 1
    assert [call["user"] for call in outbox.called("direct_page")] == [ONCALL]


async def test_a_replayed_escalate_pages_once(config: TriageConfig, slack: SlackConfig) -> None:
    """An agent's Escalate pressed twice (or replayed) pages the on-call once, then says so."""
    store, outbox = MemoryStore(), FakeOutbox()
    ticket = await _posted_ticket(store, priority="low", needs_human=False)
    actions = _actions(config, slack, store, outbox)
    await actions.escalate(ticket, user=AGENT)
    with pytest.raises(BadRequestError, match=r"escalated ticket #\d+ already"):
        await actions.escalate(ticket, user=AGENT)
    assert [call["page"] for call in outbox.called("post_page")] == [f"billing:escalated:{AGENT}"]
    assert [entry.action for entry in await store.audit_log(ticket)] == ["escalated"]


async def test_an_approval_by_a_non_agent_is_refused_before_any_lookup(
    config: TriageConfig, slack: SlackConfig
) -> None:
    """Someone who is no agent is refused before the ticket, its posts or its draft are read."""
    store, outbox = CountingStore(), FakeOutbox()
    ticket = await _posted_ticket(store, priority="high", needs_human=False)
    await store.set_draft(ticket, text="We refunded you.", source="template")
    actions = _actions(config, slack, store, outbox)
    store.lookups.clear()
    with pytest.raises(NotAllowedError) as existing:
        await actions.approve(ticket, user=OUTSIDER)
    with pytest.raises(NotAllowedError) as missing:
        await actions.approve(ticket + 99, user=OUTSIDER)
    with pytest.raises(NotAllowedError):
        await actions.ticket_for_button(
            await store.public_id(ticket),
            channel=BILLING,
            ts="1700000000.000200",
            user=OUTSIDER,
            action="approve the reply",
        )
    assert store.lookups == []
    # The refusal says nothing about whether the ticket exists.
    assert existing.value.message == missing.value.message
    draft = await store.draft(ticket)
    assert draft is not None
    assert draft.status == "pending"
    assert outbox.called("reply_to_customer") == []


class _NoPages:
    """Page claims for a work queue whose tickets have none."""

    async def renew(self) -> None:
        """Nothing to renew."""

    async def recover_pages(self, *, claimed_before: datetime) -> int:
        """Nothing to recover."""
        return 0

    def forget(self, ticket_id: int) -> None:
        """Nothing to forget."""


async def test_a_sweep_takes_a_ticket_whose_lease_expired_and_decides_it(
    config: TriageConfig, slack: SlackConfig
) -> None:
    """Replica B's sweep leaves A's live lease alone, then takes the ticket once it expires."""
    store = MemoryStore()
    ticket = await store.add_ticket(
        channel=INTAKE, ts="1700000000.000100", author=CUSTOMER, text="hi", received_at=NOW
    )
    assert ticket is not None
    lease = timedelta(seconds=30)
    assert await store.claim_for_routing(ticket, holder="A", now=NOW, until=NOW + lease) == "new"
    now = [NOW + timedelta(seconds=10)]
    decided: list[tuple[int, TicketStatus | None]] = []

    async def decide(ticket_id: int, claimed: TicketStatus | None) -> None:
        decided.append((ticket_id, claimed))

    async def post(job: Send) -> None:
        raise AssertionError("nothing is posted here")

    async def finish(ticket_id: int) -> None:
        raise AssertionError("nothing is finished here")

    queue = WorkQueue(
        store=store.sibling(),
        replica="B",
        lease=lease,
        now=lambda: now[0],
        retry_delays=(),
        pages=_NoPages(),
        decide=decide,
        post=post,
        finish=finish,
    )
    queue.start_workers(1)
    try:
        assert await queue.sweep(new_before=NOW - lease, limit=10) == 0
        now[0] = NOW + lease + timedelta(seconds=1)
        assert await queue.sweep(new_before=NOW - lease, limit=10) == 1
        await queue.drain()
        assert queue.held == {ticket}
        assert decided == [(ticket, "routing")]
        # B holds it now: A's retry is refused, and B renews its lease.
        assert await store.claim_for_routing(ticket, holder="A", now=now[0], until=now[0]) is None
        assert await store.renew_leases("B", [ticket], until=now[0] + lease) == 1
    finally:
        for task in queue.tasks:
            task.cancel()


async def test_a_sweep_settles_a_reply_whose_sender_died_but_not_one_being_sent() -> None:
    """Each sweep round settles replies claimed SEND_STALE_SECONDS ago, never a fresh one."""
    store = MemoryStore()
    dead = await store.add_ticket(
        channel=INTAKE, ts="1700000000.000100", author=CUSTOMER, text="refund?", received_at=NOW
    )
    live = await store.add_ticket(
        channel=INTAKE, ts="1700000000.000300", author=CUSTOMER, text="invoice?", received_at=NOW
    )
    assert dead is not None
    assert live is not None
    for ticket in (dead, live):
        await store.set_draft(ticket, text="Hi there", source="offline")
        assert await store.claim_draft(ticket, AGENT)
    # The dead replica's claim is old; the live one's was made just now (by the store's clock).
    store.tables.drafts[dead] = dataclasses.replace(
        store.tables.drafts[dead],
        decided_at=datetime.now(UTC) - timedelta(seconds=SEND_STALE_SECONDS + 5),
    )
    settled: list[list[int]] = []
    swept = asyncio.Event()

    async def settle(claimed_before: datetime) -> None:
        settled.append(await store.sending_drafts(claimed_before=claimed_before))
        swept.set()

    async def unused(*_: object) -> None:
        raise AssertionError("no ticket is routed here")

    queue = WorkQueue(
        store=store,
        replica="B",
        lease=timedelta(seconds=0.03),
        now=lambda: datetime.now(UTC),
        retry_delays=(),
        pages=_NoPages(),
        decide=unused,
        post=unused,
        finish=unused,
        settle_sends=settle,
    )
    queue.keep_leases()
    try:
        await asyncio.wait_for(swept.wait(), timeout=60)
    finally:
        for task in queue.tasks:
            task.cancel()
        await asyncio.gather(*queue.tasks, return_exceptions=True)
    assert settled[0] == [dead]


async def test_a_ticket_that_sounds_urgent_is_decided_before_those_queued_earlier(
    config: TriageConfig,
) -> None:
    """The tickets waiting to be decided go by their priority cues, then by arrival."""
    pipeline = Pipeline(config=config, local=None)
    decided: list[int] = []

    async def decide(ticket_id: int, claimed: TicketStatus | None) -> None:
        decided.append(ticket_id)

    async def unused(*_: object) -> None:
        raise AssertionError("nothing is posted here")

    queue = WorkQueue(
        store=MemoryStore(),
        replica="A",
        lease=timedelta(seconds=30),
        now=lambda: NOW,
        retry_delays=(),
        pages=_NoPages(),
        decide=decide,
        post=unused,
        finish=unused,
        urgency=pipeline.urgency,
    )
    queue.put(1, text="Could you add a dark mode to the dashboard?")
    queue.put(2, text="I was charged twice for my subscription this month")  # a high cue
    queue.put(3, text="Where can I find your office hours?")
    queue.put(4, text="Production is down for all our users, nothing loads")  # critical cues
    queue.put(5)  # a sweep's or a retry's, no text: as the least urgent
    queue.start_workers(1)
    try:
        await queue.drain()
    finally:
        for task in queue.tasks:
            task.cancel()
    assert decided == [4, 2, 1, 3, 5]


async def test_a_worker_decides_nothing_while_new_tickets_are_being_stored() -> None:
    """acks_first holds the workers: a queued ticket is decided only once it returns."""
    acks = asyncio.Event()
    decided: list[int] = []

    async def acks_first() -> None:
        await acks.wait()

    async def decide(ticket_id: int, claimed: TicketStatus | None) -> None:
        decided.append(ticket_id)

    async def unused(*_: object) -> None:
        raise AssertionError("nothing is posted here")

    queue = WorkQueue(
        store=MemoryStore(),
        replica="A",
        lease=timedelta(seconds=30),
        now=lambda: NOW,
        retry_delays=(),
        pages=_NoPages(),
        decide=decide,
        post=unused,
        finish=unused,
        acks_first=acks_first,
    )
    queue.start_workers(2)
    try:
        queue.put(7)
        for _ in range(5):
            await asyncio.sleep(0)
        assert decided == []
        acks.set()
        await asyncio.wait_for(queue.drain(), timeout=5)
        assert decided == [7]
    finally:
        for task in queue.tasks:
            task.cancel()
