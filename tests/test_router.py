"""The router on its own: the in-memory store, fakes of placement, paging and the work queue.

Router (routing/desk/router.py) is typed to the Protocols of routing/desk/roles.py; here each is
a recording fake (tests/fakes.py), so a test sees what the router asked of the other parts and
what it stored, step by step: decide, post, finish.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from routing.cascade import Pipeline
from routing.config import TriageConfig, load_config
from routing.desk.router import Router
from routing.desk.tickets import TicketLocks
from routing.desk.work_queue import Send
from routing.store import MemoryStore
from tests.fakes import CountingStore, FakeOutbox, FakePager, FakePostPlacement, FakeRoutingQueue

INTAKE = "C0INTAKE"
BILLING = "C0BILLING"
CUSTOMER = "U0CUSTOMER"
REPLICA = "host:1:replica"
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def config() -> TriageConfig:
    return load_config()


class Parts:
    """A router over a counting store and recording fakes of the parts it uses."""

    def __init__(self, config: TriageConfig, store: MemoryStore | None = None) -> None:
        self.store = store or CountingStore()
        self.outbox = FakeOutbox()
        channels = {team.name: f"C0{team.name.upper()}" for team in config.teams}
        channels["billing"] = BILLING
        self.placement = FakePostPlacement(store=self.store, channels=channels)
        self.pager = FakePager()
        self.queue = FakeRoutingQueue()
        self.router = Router(
            config=config,
            store=self.store,
            outbox=self.outbox,
            pipeline=Pipeline(config=config, local=None),
            placement=self.placement,
            pager=self.pager,
            locks=TicketLocks(),
            queue=self.queue,
            replica=REPLICA,
            lease=timedelta(seconds=30),
            now=lambda: NOW,
        )

    async def new_ticket(self, text: str = "I want a refund for last month") -> int:
        """A customer's message stored as a new ticket."""
        ticket = await self.store.add_ticket(
            channel=INTAKE, ts="1700000000.000100", author=CUSTOMER, text=text, received_at=NOW
        )
        assert ticket is not None
        return ticket

    def jobs(self, kind: str) -> list[tuple[str, Send]]:
        """The channel jobs of one kind the router queued, in order."""
        return [(channel, job) for channel, job in self.queue.sent if job.kind == kind]


async def test_deciding_stores_decision_draft_and_link_and_queues_the_teams_post(
    config: TriageConfig,
) -> None:
    """Decide claims the ticket, stores its decision, draft and link, and queues billing's post."""
    parts = Parts(config)
    ticket_id = await parts.new_ticket()
    await parts.router.decide(ticket_id, None)
    stored = await parts.store.ticket(ticket_id)
    assert stored is not None
    assert stored.status == "routing"
    assert stored.decision is not None
    assert stored.decision.team == "billing"
    assert stored.permalink == f"https://example.slack.com/archives/{INTAKE}/p1700000000000100"
    draft = await parts.store.draft(ticket_id)
    assert draft is not None
    assert draft.status == "pending"
    assert [(channel, job.ticket_id, job.team) for channel, job in parts.jobs("post")] == [
        (BILLING, ticket_id, "billing")
    ]
    assert parts.queue.held == {ticket_id}
    assert set(parts.queue.placing) == {ticket_id}
    assert parts.placement.posted == []


async def test_each_step_reads_the_ticket_at_most_once(config: TriageConfig) -> None:
    """Decide and post read nothing beside their claim and lease renewal; finish reads once."""
    store = CountingStore()
    parts = Parts(config, store)
    ticket_id = await parts.new_ticket()
    await parts.router.decide(ticket_id, None)
    decided = list(store.lookups)
    store.lookups.clear()
    [(_, post)] = parts.jobs("post")
    await parts.router.post(post)
    posting = list(store.lookups)
    store.lookups.clear()
    await parts.router.finish(ticket_id)
    # The decide step's reads come with its claim (claim_ticket), not counted here.
    assert decided == []
    # The post step's read comes with its lease renewal (renew_lease), not counted here.
    assert posting == []
    assert store.lookups == ["ticket", "posts"]


async def test_posting_hands_placement_the_ticket_its_lease_renewal_read(
    config: TriageConfig,
) -> None:
    """The post step posts in the team's channel with the ticket as just read, then finishes."""
    parts = Parts(config)
    ticket_id = await parts.new_ticket()
    await parts.router.decide(ticket_id, None)
    [(_, post)] = parts.jobs("post")
    await parts.router.post(post)
    [(posted_id, team, recovering, ticket)] = parts.placement.posted
    assert (posted_id, team, recovering) == (ticket_id, "billing", False)
    assert ticket is not None
    assert ticket.decision is not None
    assert ticket.decision.team == "billing"
    assert [(channel, job.ticket_id) for channel, job in parts.jobs("finish")] == [
        (BILLING, ticket_id)
    ]


async def test_a_ticket_whose_lease_another_replica_took_is_not_posted(
    config: TriageConfig,
) -> None:
    """A lease lost while the post waited: nothing is posted, and the ticket is let go."""
    parts = Parts(config)
    ticket_id = await parts.new_ticket()
    await parts.router.decide(ticket_id, None)
    later = NOW + timedelta(minutes=5)
    taken = await parts.store.claim_for_routing(
        ticket_id, holder="other:2:replica", now=later, until=later + timedelta(seconds=30)
    )
    assert taken == "routing"
    [(_, post)] = parts.jobs("post")
    await parts.router.post(post)
    assert parts.placement.posted == []
    assert parts.jobs("finish") == []
    assert parts.queue.placing == {}
    assert parts.queue.held == set()


async def test_a_ticket_withdrawn_before_its_post_is_not_posted_nor_marked_routed(
    config: TriageConfig,
) -> None:
    """The customer deleted the message while its post waited: no post, it stays withdrawn."""
    parts = Parts(config)
    ticket_id = await parts.new_ticket()
    await parts.router.decide(ticket_id, None)
    assert await parts.store.mark_withdrawn(ticket_id)
    [(_, post)] = parts.jobs("post")
    await parts.router.post(post)
    assert parts.placement.posted == []
    [(_, finish)] = parts.jobs("finish")
    await parts.router.finish(finish.ticket_id)
    stored = await parts.store.ticket(ticket_id)
    assert stored is not None
    assert stored.status == "withdrawn"


async def test_finishing_links_the_posts_marks_it_routed_and_asks_for_a_page(
    config: TriageConfig,
) -> None:
    """Finish hands placement the posts it read, marks the ticket routed and asks the pager."""
    parts = Parts(config)
    ticket_id = await parts.new_ticket()
    await parts.router.decide(ticket_id, None)
    [(_, post)] = parts.jobs("post")
    await parts.router.post(post)
    await parts.router.finish(ticket_id)
    assert parts.placement.calls == [("link_related", ticket_id, ["billing"])]
    stored = await parts.store.ticket(ticket_id)
    assert stored is not None
    assert stored.status == "routed"
    assert parts.pager.needed == [ticket_id]
    assert parts.queue.held == set()
    assert parts.queue.placing == {}
