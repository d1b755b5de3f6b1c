"""AgentActions on its own: the in-memory store, a fake Outbox, and fakes of the parts beside it.

AgentActions is typed to small Protocols of the parts it calls (routing/desk/roles.py): here the
agents, the placement and the pager are recording fakes, so each test shows what one action
stored, sent and asked the other parts to do. No Slack stand-in, no database, no model.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from routing.cascade import Pipeline
from routing.config import SlackConfig, TeamChannelConfig, TriageConfig, load_config
from routing.desk.actions import AgentActions
from routing.desk.tickets import TicketLocks
from routing.desk.types import BadRequestError, PageNotSentError
from routing.models import Decision, Escalation, EscalationReason
from routing.records import StoredPost
from routing.store import MemoryStore
from tests.fakes import FakeAgents, FakeOutbox, FakePager, FakePlacement
from tests.timekeeping import until

INTAKE = "C0INTAKE"
BILLING = "C0BILLING"
AGENTS = ("U0AGENTA", "U0AGENTB")
CUSTOMER = "U0CUSTOMER"
TS = "1700000000.000100"
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def config() -> TriageConfig:
    return load_config()


@pytest.fixture
def slack() -> SlackConfig:
    return SlackConfig(
        intake_channels=(INTAKE,),
        teams={"billing": TeamChannelConfig(channel=BILLING, agents=AGENTS)},
    )


class Parts:
    """AgentActions built as the desk builds it, over fakes it can be asked about."""

    def __init__(
        self,
        config: TriageConfig,
        slack: SlackConfig,
        *,
        pager: FakePager | None = None,
        store: MemoryStore | None = None,
        outbox: FakeOutbox | None = None,
    ) -> None:
        self.store = store or MemoryStore()
        self.outbox = outbox or FakeOutbox()
        self.placement = FakePlacement()
        self.pager = pager or FakePager()
        self.actions = AgentActions(
            config=config,
            slack=slack,
            store=self.store,
            outbox=self.outbox,
            pipeline=Pipeline(config=config, local=None),
            agents=FakeAgents(self.store, frozenset(AGENTS)),
            placement=self.placement,
            pager=self.pager,
            locks=TicketLocks(),
            now=lambda: NOW,
        )

    async def drafted_ticket(self) -> int:
        """A billing ticket posted in its channel with a pending draft, marked for a human."""
        ticket = await self.store.add_ticket(
            channel=INTAKE, ts=TS, author=CUSTOMER, text="I was charged twice", received_at=NOW
        )
        assert ticket is not None
        decision = Decision(
            category="billing",
            priority="high",
            team="billing",
            sentiment="frustrated",
            confidence=0.9,
            source="local",
        )
        reason = EscalationReason(code="low_confidence", detail="the decision is a close call")
        escalation = Escalation(needs_human=True, reasons=(reason,))
        await self.store.record_triage(ticket, layers=(), decision=decision, escalation=escalation)
        await self.store.add_post(ticket, team="billing", channel=BILLING, ts="1700000000.000200")
        await self.store.mark_routed(ticket)
        await self.store.set_draft(ticket, text="Sorry: we are looking into it.", source="template")
        return ticket


async def test_two_agents_approving_at_once_send_one_reply(
    config: TriageConfig, slack: SlackConfig
) -> None:
    """Both approve together: one reply in the thread, the other agent told who sent it."""
    parts = Parts(config, slack)
    ticket = await parts.drafted_ticket()
    outcomes = await asyncio.gather(
        *(parts.actions.approve(ticket, user=agent) for agent in AGENTS), return_exceptions=True
    )
    refused = [outcome for outcome in outcomes if isinstance(outcome, BadRequestError)]
    assert len(refused) == 1
    assert outcomes.count(None) == 1
    assert parts.outbox.called("reply_to_customer") == [
        {"channel": INTAKE, "thread_ts": TS, "text": "Sorry: we are looking into it."}
    ]
    draft = await parts.store.draft(ticket)
    assert draft is not None
    assert draft.status == "sent"
    assert (
        refused[0].message
        == f"The reply to ticket #{ticket} was already sent by <@{draft.decided_by}>."
    )
    assert [entry.action for entry in await parts.store.audit_log(ticket)] == ["reply_sent"]
    assert parts.placement.calls == [("refresh", ticket, False)]


async def test_a_reply_slack_refuses_stays_a_draft_and_the_next_approval_sends_it(
    config: TriageConfig, slack: SlackConfig
) -> None:
    """Slack refusing the reply: pending again, the agent told; the retry sends it once."""
    parts = Parts(config, slack)
    ticket = await parts.drafted_ticket()
    parts.outbox.failing.add("reply_to_customer")
    with pytest.raises(BadRequestError, match="Slack did not take the reply"):
        await parts.actions.approve(ticket, user=AGENTS[0])
    draft = await parts.store.draft(ticket)
    assert draft is not None
    assert draft.status == "pending"
    assert parts.placement.calls == []
    parts.outbox.failing.clear()
    await parts.actions.approve(ticket, user=AGENTS[0])
    # The retry looked in the thread first (the failed send's answer may have been lost).
    assert len(parts.outbox.called("find_reply")) == 2
    assert len(parts.outbox.called("reply_to_customer")) == 1
    assert [entry.action for entry in await parts.store.audit_log(ticket)] == ["reply_sent"]


async def test_escalate_pages_with_the_tickets_reasons_and_who_asked(
    config: TriageConfig, slack: SlackConfig
) -> None:
    """Escalate asks the pager for a page with the ticket's reasons and the agent, and audits it."""
    parts = Parts(config, slack)
    ticket = await parts.drafted_ticket()
    await parts.actions.escalate(ticket, user=AGENTS[1])
    assert parts.pager.asked == [(ticket, ("the decision is a close call",), AGENTS[1])]
    assert [entry.action for entry in await parts.store.audit_log(ticket)] == ["escalated"]


async def test_escalate_that_slack_refuses_asks_to_try_again_and_audits_nothing(
    config: TriageConfig, slack: SlackConfig
) -> None:
    """A page Slack did not take: the agent is asked to press Escalate again; nothing audited."""
    parts = Parts(config, slack, pager=FakePager(refusal=PageNotSentError("DM refused")))
    ticket = await parts.drafted_ticket()
    with pytest.raises(BadRequestError, match="try Escalate again"):
        await parts.actions.escalate(ticket, user=AGENTS[0])
    assert await parts.store.audit_log(ticket) == []


async def test_a_second_escalate_by_the_same_agent_is_refused(
    config: TriageConfig, slack: SlackConfig
) -> None:
    """The pager sent nothing new (this agent's page exists): the agent is told, not audited."""
    parts = Parts(config, slack, pager=FakePager(sent=0))
    ticket = await parts.drafted_ticket()
    with pytest.raises(BadRequestError, match=r"escalated ticket #\d+ already"):
        await parts.actions.escalate(ticket, user=AGENTS[0])
    assert await parts.store.audit_log(ticket) == []


@dataclass
class _HeldOutbox(FakeOutbox):
    """A FakeOutbox whose find_reply waits until released (a slow conversations.replies)."""

    release: asyncio.Event = field(default_factory=asyncio.Event)
    waiting: int = 0

    async def find_reply(self, channel: str, thread_ts: str, text: str) -> str | None:
        """No reply is found, once released."""
        self.waiting += 1
        await self.release.wait()
        return await super().find_reply(channel, thread_ts, text)


async def test_two_replicas_settling_one_interrupted_reply_tell_the_agent_once(
    config: TriageConfig, slack: SlackConfig
) -> None:
    """Two starts settle one stale send claim at once: one settles it, one DM to the agent."""
    first = Parts(config, slack, outbox=_HeldOutbox())
    second = Parts(config, slack, store=first.store.sibling(), outbox=_HeldOutbox())
    ticket = await first.drafted_ticket()
    assert await first.store.claim_draft(ticket, AGENTS[0])
    settles = [
        asyncio.create_task(parts.actions.settle_interrupted_reply(ticket))
        for parts in (first, second)
    ]
    outboxes = [first.outbox, second.outbox]
    assert all(isinstance(outbox, _HeldOutbox) for outbox in outboxes)
    held = [outbox for outbox in outboxes if isinstance(outbox, _HeldOutbox)]
    # Both have read the claim and are asking Slack: neither has settled it yet.
    await until(lambda: all(outbox.waiting == 1 for outbox in held), what="both asking Slack")
    for outbox in held:
        outbox.release.set()
    await asyncio.gather(*settles)
    told = [call["user"] for outbox in held for call in outbox.called("direct_message")]
    assert told == [AGENTS[0]]
    draft = await first.store.draft(ticket)
    assert draft is not None
    assert (draft.status, draft.decided_by) == ("pending", None)
    assert len(first.placement.calls + second.placement.calls) == 1


async def test_an_emoji_whose_post_was_stored_after_the_first_look_is_applied_once(
    config: TriageConfig, slack: SlackConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The post stored (by another replica) between react's first look and its hold.

    The recorder looked for held emoji before this one was held, so react's second look
    applies it; the recorder's own take afterwards finds nothing: one reply.
    """
    parts = Parts(config, slack)
    ticket = await parts.drafted_ticket()
    (post,) = await parts.store.posts(ticket)
    looks: list[str] = []
    stored = parts.store.post_at

    async def post_at(channel: str, ts: str) -> StoredPost | None:
        looks.append(ts)
        return None if len(looks) == 1 else await stored(channel, ts)

    monkeypatch.setattr(parts.store, "post_at", post_at)
    await parts.actions.react(
        user=AGENTS[0], reaction="white_check_mark", channel=BILLING, ts=post.ts
    )
    await parts.actions.post_recorded(BILLING, post.ts)
    assert len(parts.outbox.called("reply_to_customer")) == 1
    assert await parts.store.take_held_reactions(BILLING, post.ts) == []


async def test_an_emoji_outside_the_team_channels_is_not_held(
    config: TriageConfig, slack: SlackConfig
) -> None:
    """Only a team channel holds the bot's posts: an emoji anywhere else is nothing."""
    parts = Parts(config, slack)
    await parts.actions.react(user=AGENTS[0], reaction="white_check_mark", channel=INTAKE, ts=TS)
    assert await parts.store.take_held_reactions(INTAKE, TS) == []
