"""Pages and replies under crashes, late answers and noise, against the strict stand-in.

A page is claimed, sent, then marked sent: a kill in between sends it at the next start, and
a message Slack took (its answer lost to a timeout or a kill) is found in the thread, not sent
again. The same holds for an approved reply. Bursts, replayed Escalates and alternating edits
make one page or post, and a page to hundreds of people is split, never cut.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot import render
from bot.sandbox.shell import AGENT, CUSTOMER, INTAKE, ONCALL, sandbox_slack_config
from routing.config import SlackConfig, TeamChannelConfig, TriageConfig, load_config
from routing.desk import BURST_WINDOW_SECONDS, EDIT_WINDOW_SECONDS
from routing.embedding_cache import CachingEmbedder
from routing.records import utc_now
from tests.slack_harness import OUTSIDER, Harness, running_bot, standin_for
from tests.timekeeping import ManualClock, until

CRITICAL = "Our production API is down, all requests fail, urgent"
# A client timeout far shorter than the held answer (which never comes before the test ends).
SHORT_TIMEOUT = 5
QUICK_RETRIES = (0.01, 0.01, 0.01)


@pytest.fixture
def config() -> TriageConfig:
    return load_config()


def _page_note(args: dict[str, Any]) -> bool:
    """A page's note in a team post's thread (what the bot says when it pages)."""
    return bool(args.get("thread_ts")) and "needs a human" in str(args.get("text"))


def _dm_to_oncall(args: dict[str, Any]) -> bool:
    return args.get("channel") == f"D{ONCALL[1:]}"


def _reply_to_customer(args: dict[str, Any]) -> bool:
    return args.get("channel") == INTAKE and bool(args.get("thread_ts"))


async def _page_notes(bot: Harness, ticket_id: int, person: str = ONCALL) -> list[str]:
    """The notes under the ticket's posts that mention the person (the pages that notify)."""
    notes = []
    for post in await bot.store.posts(ticket_id, active_only=False):
        notes += [
            reply["text"]
            for reply in bot.thread_of(post.channel, post.ts)
            if f"<@{person}>" in reply["text"]
        ]
    return notes


def _dms(bot: Harness) -> list[str]:
    """The DMs Slack took for the on-call."""
    return [m["text"] for m in bot.slack.messages(f"D{ONCALL[1:]}")]


# --- item 1: a page survives a kill -----------------------------------------------------------


async def test_a_page_claimed_but_not_sent_when_the_bot_died_is_sent_at_the_next_start(
    tmp_path: Path, embedder: CachingEmbedder, config: TriageConfig, store_location: Path | str
) -> None:
    """Killed while the page note was on its way (Slack never got it): the restart pages, once."""
    async with standin_for(config) as slack:
        slack.never_answer("chat.postMessage", when=_page_note)
        async with running_bot(
            tmp_path, embedder, config=config, database=store_location, workspace=slack
        ) as bot:
            ts = await bot.customer_says(CRITICAL)
            await until(lambda: bool(slack.held), what="the page note on its way to Slack")
            ticket_id = await bot.ticket_for(ts)
        # The process is gone; nothing reached Slack.
        async with running_bot(
            tmp_path, embedder, config=config, database=store_location, workspace=slack
        ) as bot:
            await bot.desk.drain()
            (page,) = await _page_notes(bot, ticket_id)
            assert f"Ticket #{ticket_id} needs a human" in page
            (dm,) = _dms(bot)
            assert f"ticket #{ticket_id}" in dm
            far = datetime.now(UTC) + timedelta(days=1)
            assert await bot.store.unsent_pages(claimed_before=far) == []


async def test_a_page_slack_took_before_the_bot_died_is_not_sent_again(
    tmp_path: Path, embedder: CachingEmbedder, config: TriageConfig, store_location: Path | str
) -> None:
    """Killed after Slack posted the note but before its answer: found in the thread, DM sent."""
    async with standin_for(config) as slack:
        slack.answer_late("chat.postMessage", when=_page_note)
        async with running_bot(
            tmp_path, embedder, config=config, database=store_location, workspace=slack
        ) as bot:
            ts = await bot.customer_says(CRITICAL)
            await until(lambda: bool(slack.held), what="the page note posted, its answer held")
            ticket_id = await bot.ticket_for(ts)
        async with running_bot(
            tmp_path, embedder, config=config, database=store_location, workspace=slack
        ) as bot:
            await bot.desk.drain()
            assert len(await _page_notes(bot, ticket_id)) == 1
            assert len(_dms(bot)) == 1


async def test_a_critical_pages_dm_does_not_wait_for_the_team_channel(
    tmp_path: Path, embedder: CachingEmbedder, config: TriageConfig
) -> None:
    """The page note held up in the team channel: the on-call's DM goes out all the same."""
    async with standin_for(config) as slack:
        slack.never_answer("chat.postMessage", when=_page_note)
        async with running_bot(tmp_path, embedder, config=config, workspace=slack) as bot:
            ts = await bot.customer_says(CRITICAL)
            await until(lambda: bool(_dms(bot)), what="the on-call's DM")
            ticket_id = await bot.ticket_for(ts)
            (dm,) = _dms(bot)
            assert f"ticket #{ticket_id}" in dm
            # Sent while the note was still on its way, not after it.
            assert await _page_notes(bot, ticket_id) == []


async def test_a_dm_cut_off_by_a_kill_is_sent_at_the_next_start(
    tmp_path: Path, embedder: CachingEmbedder, config: TriageConfig
) -> None:
    """Killed while the critical DM was on its way: the restart DMs, and pages the thread once."""
    database = tmp_path / "triage.sqlite3"
    async with standin_for(config) as slack:
        slack.never_answer("chat.postMessage", when=_dm_to_oncall)
        async with running_bot(
            tmp_path, embedder, config=config, database=database, workspace=slack
        ) as bot:
            ts = await bot.customer_says(CRITICAL)
            await until(lambda: bool(slack.held), what="the DM on its way to Slack")
            ticket_id = await bot.ticket_for(ts)
            assert len(await _page_notes(bot, ticket_id)) == 1
        async with running_bot(
            tmp_path, embedder, config=config, database=database, workspace=slack
        ) as bot:
            await bot.desk.drain()
            assert len(await _page_notes(bot, ticket_id)) == 1
            (dm,) = _dms(bot)
            assert f"ticket #{ticket_id}" in dm


# --- item 6: one message when Slack answers late ---------------------------------------------


async def test_a_page_note_answered_after_the_timeout_is_not_sent_twice(
    tmp_path: Path, embedder: CachingEmbedder, config: TriageConfig
) -> None:
    """Slack posts the page but answers after the client gave up: one page, one DM."""
    async with running_bot(
        tmp_path,
        embedder,
        config=config,
        client_timeout=SHORT_TIMEOUT,
        retry_delays=QUICK_RETRIES,
    ) as bot:
        bot.slack.answer_late("chat.postMessage", when=_page_note)
        ticket_id = await bot.new_ticket(CRITICAL)
        assert bot.slack.held
        assert len(await _page_notes(bot, ticket_id)) == 1
        assert len(_dms(bot)) == 1


async def test_a_reply_answered_after_the_timeout_is_not_sent_twice(
    tmp_path: Path, embedder: CachingEmbedder, config: TriageConfig
) -> None:
    """Slack posts the approved reply but answers late: it is sent; approving again sends none."""
    async with running_bot(tmp_path, embedder, config=config, client_timeout=SHORT_TIMEOUT) as bot:
        ts = await bot.customer_says("I was charged twice this month")
        await bot.desk.drain()
        ticket_id = await bot.ticket_for(ts)
        bot.slack.answer_late("chat.postMessage", when=_reply_to_customer)
        await bot.press(AGENT, render.APPROVE_ACTION, ticket_id)
        await bot.react(AGENT, "white_check_mark", ticket_id)
        (reply,) = bot.thread_of(INTAKE, ts)
        draft = await bot.store.draft(ticket_id)
        assert draft is not None
        assert (draft.status, draft.reply_ts) == ("sent", reply["ts"])


async def test_a_reply_whose_check_failed_is_looked_for_before_the_next_send(
    tmp_path: Path, embedder: CachingEmbedder, config: TriageConfig
) -> None:
    """Answered late, and the thread unreadable just then: the next approval finds the reply."""
    async with running_bot(tmp_path, embedder, config=config, client_timeout=SHORT_TIMEOUT) as bot:
        ts = await bot.customer_says("I was charged twice this month")
        await bot.desk.drain()
        ticket_id = await bot.ticket_for(ts)
        bot.slack.answer_late("chat.postMessage", when=_reply_to_customer)
        bot.slack.fail_next("conversations.replies")
        await bot.press(AGENT, render.APPROVE_ACTION, ticket_id)
        assert "Slack did not take the reply" in bot.slack.responses[-1]["text"]
        await bot.press(AGENT, render.APPROVE_ACTION, ticket_id)
        (reply,) = bot.thread_of(INTAKE, ts)
        draft = await bot.store.draft(ticket_id)
        assert draft is not None
        assert (draft.status, draft.reply_ts) == ("sent", reply["ts"])


# --- item 8: noise ----------------------------------------------------------------------------


async def test_a_replayed_escalate_pages_once(bot_and_clock: tuple[Harness, ManualClock]) -> None:
    """The same agent's Escalate twice (a replayed request): one page, and the agent is told."""
    bot, _ = bot_and_clock
    ticket_id = await bot.new_ticket("Would love a dark mode for the dashboard")
    await bot.press(AGENT, render.ESCALATE_ACTION, ticket_id)
    await bot.press(AGENT, render.ESCALATE_ACTION, ticket_id)
    (page,) = await _page_notes(bot, ticket_id)
    assert f"escalated by <@{AGENT}>" in page
    assert "already" in bot.slack.responses[-1]["text"]
    escalations = [e for e in await bot.store.audit_log(ticket_id) if e.action == "escalated"]
    assert len(escalations) == 1


@pytest.fixture
async def bot_and_clock(tmp_path: Path, embedder: CachingEmbedder, config: TriageConfig) -> Any:
    clock = ManualClock()
    start = clock.now

    def wall() -> datetime:
        # The wall clock moves with the test's clock too: bursts are timed on it (in the store).
        return utc_now() + timedelta(seconds=clock.now - start)

    async with running_bot(
        tmp_path, embedder, config=config, desk_clock=clock, desk_now=wall
    ) as bot:
        yield bot, clock


async def test_one_customers_burst_pages_once_then_counts(
    bot_and_clock: tuple[Harness, ManualClock],
) -> None:
    """20 urgent outage messages from one customer: one page and one DM, then a count."""
    bot, clock = bot_and_clock
    for number in range(20):
        await bot.customer_says(f"URGENT outage {number}: our production API is down")
    await bot.desk.drain()
    tickets = list(range(1, 21))
    notifying = [note for ticket in tickets for note in await _page_notes(bot, ticket)]
    paged = [ticket for ticket in tickets if await _page_notes(bot, ticket)]
    (first,) = paged
    assert len(notifying) == len(await bot.store.posts(first))
    assert len(_dms(bot)) == 1
    (post, *_) = await bot.store.posts(first)
    counts = [m["text"] for m in bot.thread_of(post.channel, post.ts) if "more ticket" in m["text"]]
    assert counts == [counts[0]]
    assert "19 more tickets from this customer" in counts[0]
    # Every ticket still says it needs a human, under its own post.
    for ticket in tickets:
        (own, *_) = await bot.store.posts(ticket)
        assert any("needs a human" in m["text"] for m in bot.thread_of(own.channel, own.ts))
    # After the window the same customer's next ticket pages again.
    clock.advance(BURST_WINDOW_SECONDS + 1)
    later = await bot.new_ticket("URGENT outage again: our production API is down")
    assert len(await _page_notes(bot, later)) >= 1


async def test_another_customers_urgent_ticket_in_a_burst_still_pages(
    bot_and_clock: tuple[Harness, ManualClock],
) -> None:
    """A burst coalesces one customer's pages only: someone else's outage pages at once."""
    bot, _ = bot_and_clock
    for number in range(3):
        await bot.customer_says(f"URGENT outage {number}: our production API is down")
    other = await bot.customer_says(CRITICAL, user=OUTSIDER)
    await bot.desk.drain()
    assert len(await _page_notes(bot, await bot.ticket_for(other))) >= 1


async def test_a_customers_critical_ticket_for_another_team_in_a_burst_still_pages(
    bot_and_clock: tuple[Harness, ManualClock],
) -> None:
    """One customer's second outage, for another team, is paged and DMed, not counted."""
    bot, _ = bot_and_clock
    lockout = await bot.new_ticket(
        "Our whole company is locked out: nobody can sign in, SSO fails for all 300 people"
    )
    outage = await bot.new_ticket(CRITICAL)
    first, second = await bot.store.ticket(lockout), await bot.store.ticket(outage)
    assert first is not None
    assert second is not None
    assert first.decision is not None
    assert second.decision is not None
    assert (first.decision.priority, second.decision.priority) == ("critical", "critical")
    assert first.decision.team != second.decision.team
    assert await _page_notes(bot, lockout)
    assert await _page_notes(bot, outage)
    assert [dm for dm in _dms(bot) if f"#{outage}" in dm]


async def test_alternating_edits_keep_one_post_per_team(
    bot_and_clock: tuple[Harness, ManualClock],
) -> None:
    """12 edits back and forth between two teams within the window: two posts, not thirteen."""
    bot, clock = bot_and_clock
    product, billing = (
        "Would love a dark mode for the dashboard",
        "I was charged twice this month, please fix my invoice",
    )
    ts = await bot.customer_says(product)
    await bot.desk.drain()
    ticket_id = await bot.ticket_for(ts)
    previous = product
    for number in range(12):
        text = billing if number % 2 == 0 else product
        assert await bot.customer_edits(ts, text, previous=previous) == 200
        previous = text
    posts = await bot.store.posts(ticket_id, active_only=False)
    assert sorted(post.team for post in posts) == ["billing", "product"]
    (live,) = await bot.store.posts(ticket_id)
    assert live.team == "product"
    cards = [m for m in bot.all_ticket_posts() if f"ticket #{ticket_id}" in m["text"]]
    assert len(cards) == 2
    # Long after, an edit is news to the team: it gets a fresh post at the channel's bottom.
    clock.advance(EDIT_WINDOW_SECONDS + 1)
    assert await bot.customer_edits(ts, billing, previous=previous) == 200
    assert len(await bot.store.posts(ticket_id, active_only=False)) == 3


# --- item 13: a page to 400 people ------------------------------------------------------------


async def test_a_page_to_400_people_is_split_whole_mentions_each_with_the_reason(
    tmp_path: Path, embedder: CachingEmbedder, config: TriageConfig
) -> None:
    """400 on-call people: several notes within Slack's 4,000, no mention cut, each with why."""
    people = tuple(f"U{number:08d}" for number in range(400))
    base = sandbox_slack_config(config)
    slack_config = SlackConfig(
        intake_channels=base.intake_channels,
        teams={
            team: TeamChannelConfig(channel=settings.channel, agents=(AGENT,), oncall=people)
            for team, settings in base.teams.items()
        },
        fallback_oncall=people,
    )
    async with running_bot(tmp_path, embedder, config=config, slack_config=slack_config) as bot:
        ticket_id = await bot.new_ticket("Can you help me?")
        (post,) = await bot.store.posts(ticket_id)
        notes = [m["text"] for m in bot.thread_of(post.channel, post.ts)]
        pages = [note for note in notes if "needs a human" in note]
        assert len(pages) > 1
        mentioned: list[str] = []
        for page in pages:
            assert len(page) <= render.FALLBACK_TEXT_LIMIT
            assert page.count("<@") == len(re.findall(r"<@U\d{8}>", page))
            mentioned += re.findall(r"<@(U\d{8})>", page)
            ticket = await bot.store.ticket(ticket_id)
            assert ticket is not None
            assert ticket.escalation is not None
            assert render.escape(ticket.escalation.reasons[0].detail)[:40] in page
        assert sorted(mentioned) == list(people)
        assert not [call for call in bot.slack.calls if "text_over_4000_chars" in call.warnings]
        assert CUSTOMER not in mentioned


# --- pages and leases: the claim's time is renewed like a lease, and swept like one -----------

LEASE = 0.3  # the desk's lease (seconds): its sweep runs every 0.1 s


async def test_a_page_another_replica_claimed_and_never_sent_is_sent_by_a_sweep(
    tmp_path: Path, embedder: CachingEmbedder, config: TriageConfig
) -> None:
    """A page claimed after this replica started, by one that died, is sent by a sweep, once."""
    async with running_bot(tmp_path, embedder, config=config, lease_seconds=LEASE) as bot:
        ticket_id = await bot.new_ticket("How do I download last month's invoice as a PDF?")
        await bot.desk.drain()
        (post,) = await bot.store.posts(ticket_id)
        # The dead replica's claim: made, never sent, never renewed.
        assert await bot.store.claim_page(
            ticket_id, team=post.team, people=[ONCALL], reasons=["a dead replica's page"]
        )

        async def sent() -> bool:
            page = await bot.store.page(ticket_id, team=post.team)
            return page is not None and page.sent_at is not None

        await until(sent, what="the abandoned page sent by a sweep")
        await bot.desk.drain()
        (note,) = await _page_notes(bot, ticket_id)
        assert "a dead replica's page" in note
        far = datetime.now(UTC) + timedelta(days=1)
        assert await bot.store.unsent_pages(claimed_before=far) == []


async def test_a_page_held_past_several_leases_is_renewed_not_taken_over(
    tmp_path: Path, embedder: CachingEmbedder, config: TriageConfig
) -> None:
    """A page note Slack holds for many leases keeps its claim renewed: one page, one DM."""
    async with standin_for(config) as slack:
        slack.never_answer("chat.postMessage", when=_page_note)
        async with running_bot(
            tmp_path,
            embedder,
            config=config,
            workspace=slack,
            lease_seconds=LEASE,
            client_timeout=SHORT_TIMEOUT,
            retry_delays=QUICK_RETRIES,
        ) as bot:
            ts = await bot.customer_says(CRITICAL)
            await until(lambda: bool(slack.held), what="the page note on its way to Slack")
            ticket_id = await bot.ticket_for(ts)
            (key,) = await bot.store.pages(ticket_id)
            first = await bot.store.page(ticket_id, team=key)
            assert first is not None
            seen = {first.claimed_at}

            async def renewed_twice() -> bool:
                page = await bot.store.page(ticket_id, team=key)
                assert page is not None
                assert page.sent_at is None or len(seen) > 2
                seen.add(page.claimed_at)
                return len(seen) > 2

            await until(renewed_twice, what="the page's claim renewed twice while it is sent")
            # Many leases later, still the one call held: no sweep sent the page again.
            assert len(slack.held) == 1
            await bot.desk.drain()
            assert len(await _page_notes(bot, ticket_id)) == 1
            assert len(_dms(bot)) == 1
            far = datetime.now(UTC) + timedelta(days=1)
            assert await bot.store.unsent_pages(claimed_before=far) == []


async def test_a_desk_stopped_while_paging_sends_the_page_when_started_again(
    tmp_path: Path, embedder: CachingEmbedder, config: TriageConfig
) -> None:
    """Stopped with a page note on its way: the same desk's next start sends it, once."""
    async with standin_for(config) as slack:
        slack.never_answer("chat.postMessage", when=_page_note)
        async with running_bot(tmp_path, embedder, config=config, workspace=slack) as bot:
            ts = await bot.customer_says(CRITICAL)
            await until(lambda: bool(slack.held), what="the page note on its way to Slack")
            ticket_id = await bot.ticket_for(ts)
            await bot.desk.stop()
            await bot.desk.start()
            await bot.desk.drain()
            assert len(await _page_notes(bot, ticket_id)) == 1
            assert len(_dms(bot)) == 1
            far = datetime.now(UTC) + timedelta(days=1)
            assert await bot.store.unsent_pages(claimed_before=far) == []


async def test_a_replica_started_while_another_waits_to_send_a_page_leaves_it_to_that_one(
    tmp_path: Path, embedder: CachingEmbedder, config: TriageConfig, store_location: Path | str
) -> None:
    """A start takes over no live replica's page: its note, held back by 429s, is sent once."""
    clock = ManualClock()
    # One post per channel until the clock moves: the page note waits out 429s after the card.
    async with standin_for(config, post_rate_per_second=1.0, post_burst=1, clock=clock) as slack:

        def note_held_back() -> bool:
            return any(
                call.http_status == 429 and _page_note(call.args)  # Too Many Requests
                for call in slack.calls_to("chat.postMessage")
            )

        async with running_bot(
            tmp_path, embedder, config=config, database=store_location, workspace=slack
        ) as first:
            ts = await first.customer_says(CRITICAL)
            await until(note_held_back, what="the first replica's page note waiting out a 429")
            ticket_id = await first.ticket_for(ts)
            (key,) = await first.store.pages(ticket_id)
            claim = await first.store.page(ticket_id, team=key)
            assert claim is not None
            async with running_bot(
                tmp_path, embedder, config=config, database=store_location, workspace=slack
            ) as second:
                # The second replica's start left the live claim alone (it would page again).
                page = await second.store.page(ticket_id, team=key)
                assert page is not None
                assert (page.claimed_at, page.sent_at) == (claim.claimed_at, None)
            clock.advance(60)
            await first.desk.drain()
            (note,) = await _page_notes(first, ticket_id)
            assert f"Ticket #{ticket_id} needs a human" in note
            assert len(_dms(first)) == 1


async def test_a_burst_ticket_posted_in_two_teams_is_counted_once(
    bot_and_clock: tuple[Harness, ManualClock],
) -> None:
    """A two-team ticket in one customer's burst is one more ticket in the count, not two."""
    bot, _ = bot_and_clock
    first = await bot.new_ticket("URGENT outage: our production API is down for everyone")
    second = await bot.new_ticket(
        "URGENT: I cannot log in since this morning, and separately our last invoice"
        " charged us for 20 seats instead of 12"
    )
    assert len({post.team for post in await bot.store.posts(second)}) == 2
    (post, *_) = await bot.store.posts(first)
    counts = [m["text"] for m in bot.thread_of(post.channel, post.ts) if "more ticket" in m["text"]]
    assert counts
    assert "1 more ticket from this customer" in counts[-1]
    assert f"#{second}, #{second}" not in counts[-1]


async def test_two_replicas_page_one_customers_burst_once(
    tmp_path: Path, embedder: CachingEmbedder, config: TriageConfig, store_location: Path | str
) -> None:
    """One customer's outages split between two replicas on one store: one page, then a count."""
    async with (
        standin_for(config) as slack,
        running_bot(
            tmp_path, embedder, config=config, database=store_location, workspace=slack
        ) as first,
        running_bot(
            tmp_path, embedder, config=config, database=store_location, workspace=slack
        ) as second,
    ):
        tickets = []
        for number in range(6):
            bot = (first, second)[number % 2]
            ts = await bot.customer_says(f"URGENT outage {number}: our production API is down")
            await bot.desk.drain()
            tickets.append(await bot.ticket_for(ts))
        paged = [ticket for ticket in tickets if await _page_notes(first, ticket)]
        assert paged == tickets[:1]
        assert len(_dms(first)) == 1
        (post, *_) = await first.store.posts(tickets[0])
        counts = [
            m["text"] for m in first.thread_of(post.channel, post.ts) if "more ticket" in m["text"]
        ]
        assert len(counts) == 1
        assert "5 more tickets from this customer" in counts[0]
        for ticket in tickets[1:]:
            assert f"#{ticket}" in counts[0]


async def test_a_page_cut_off_by_a_kill_is_not_sent_once_an_edit_says_never_mind(
    tmp_path: Path, embedder: CachingEmbedder, config: TriageConfig
) -> None:
    """Killed with the page note on its way, then edited to 'never mind': no note, no new DM."""
    database = tmp_path / "triage.sqlite3"
    async with standin_for(config) as slack:
        slack.never_answer("chat.postMessage", when=_page_note)
        async with running_bot(
            tmp_path, embedder, config=config, database=database, workspace=slack
        ) as bot:
            ts = await bot.customer_says(CRITICAL)
            await until(lambda: bool(slack.held), what="the page note on its way to Slack")
            # The DM goes with the note, not after it: sent while the ticket was critical.
            await until(lambda: bool(_dms(bot)), what="the on-call's DM")
            ticket_id = await bot.ticket_for(ts)
            assert await bot.customer_edits(ts, "never mind, fixed it", previous=CRITICAL) == 200
        # The next start is a lease later: the edit and the page it left are taken up.
        later = datetime.now(UTC) + timedelta(hours=1)
        async with running_bot(
            tmp_path,
            embedder,
            config=config,
            database=database,
            workspace=slack,
            desk_now=lambda: later,
        ) as bot:
            await bot.desk.drain()
            ticket = await bot.store.ticket(ticket_id)
            assert ticket is not None
            assert ticket.decision is not None
            assert ticket.decision.no_action is not None
            assert await _page_notes(bot, ticket_id) == []
            assert len(_dms(bot)) == 1  # the one sent before the edit: none again
