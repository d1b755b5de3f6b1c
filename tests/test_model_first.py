"""Posts and pages never wait for the model: the local decision goes out, the model refines it.

The real app over HTTP, the strict Slack stand-in and the real openai client against the LLM
stand-in, whose answers wait for an event the test sets: "the model answers later" is a moment
the test chooses, never a sleep. The deadline is passed with the desk's wall clock (run ahead
by the test) or, for a call the model never answers, with a deadline shorter than the wait.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.sandbox.shell import AGENT, INTAKE, ONCALL
from routing.config import TriageConfig, load_config
from routing.desk.limits import MODEL_LATE_MARGIN_SECONDS
from routing.embedding_cache import CachingEmbedder
from routing.llm import LLMClassifier, build_openai_client
from routing.records import utc_now
from tests.slack_harness import Harness, running_bot
from tests.standins.openai_server import OpenAIStandIn, Scripted, held, reply_json, reply_text
from tests.timekeeping import until

# The model's draft: the configured greeting and sign-off, no promise, no fact of its own.
MODEL_DRAFT = (
    "Hi there,\n\nThanks for the details. We are looking into this and will update you here."
    "\n\nThe support team"
)
MODEL_WORDS = "We are looking into this"

EXPORT = "The export button does nothing when I click it. Tried Firefox and Chrome, same issue."
CSV = "The export to CSV fails with an error since yesterday"  # local: technical, medium
DASHBOARD = "I have a question about the numbers on my dashboard"  # local: support, unsure
OUTAGE = "Production is down for all our users, nothing loads"  # local: critical, pages


def _answer(**overrides: Any) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "category": "technical",
        "priority": "medium",
        "team": "engineering",
        "sentiment": "neutral",
        "confidence": 0.9,
        "needs_human": False,
        "reason": "scripted",
    }
    answer.update(overrides)
    return answer


class LateModel:
    """The LLM stand-in's answers by words in the ticket, each given only once `release` is set."""

    def __init__(self, answers: dict[str, dict[str, Any]]) -> None:
        self.answers = answers
        self.release = asyncio.Event()

    def __call__(self, body: dict[str, Any]) -> Scripted:
        """The answer to one request, held until released."""
        if not body.get("response_format"):
            return held(self.release, reply_text(MODEL_DRAFT))
        asked = str(body["messages"][-1]["content"])
        answer = next((answer for word, answer in self.answers.items() if word in asked), _answer())
        return held(self.release, reply_json(answer))


def classified(server: OpenAIStandIn) -> list[str]:
    """The ticket text of every classification request the model got, in order."""
    asked = [str(body["messages"][-1]["content"]) for body in server.requests]
    return [
        prompt.split("<ticket>\n", 1)[1].split("\n</ticket>", 1)[0]
        for body, prompt in zip(server.requests, asked, strict=True)
        if body.get("response_format")
    ]


async def asked(server: OpenAIStandIn, count: int) -> None:
    """Wait until the model has been asked to classify `count` tickets."""
    await until(lambda: len(classified(server)) >= count, what=f"{count} classification requests")


def _config(**llm: Any) -> TriageConfig:
    base = load_config()
    # No client retries: one request per call, so the stand-in's requests tell the story. The
    # longest deadline, so however slow the machine a held answer is not late unless the test
    # runs the desk's clock past it (or gives a deadline of its own).
    settings = {"max_retries": 0, "deadline_seconds": 600.0, **llm}
    return base.model_copy(update={"llm": base.llm.model_copy(update=settings)})


@asynccontextmanager
async def model_bot(
    tmp_path: Path,
    embedder: CachingEmbedder,
    server: OpenAIStandIn,
    config: TriageConfig,
    *,
    now: Callable[[], datetime] | None = None,
    lease_seconds: float | None = None,
) -> AsyncIterator[Harness]:
    """The bot with the LLM layer on, against the stand-in."""
    client = build_openai_client(
        api_key="test", base_url=server.url, timeout_seconds=60, max_retries=0
    )
    extra: dict[str, Any] = {} if lease_seconds is None else {"lease_seconds": lease_seconds}
    try:
        async with running_bot(
            tmp_path,
            embedder,
            config=config,
            llm=LLMClassifier(client=client, config=config),
            desk_now=now,
            **extra,
        ) as bot:
            yield bot
    finally:
        await client.close()


def _blocks(message: dict[str, Any]) -> str:
    return json.dumps(message.get("blocks"))


async def _pages(bot: Harness, ticket_id: int) -> list[dict[str, Any]]:
    """The page notes in the threads of a ticket's posts (moved ones included)."""
    notes = []
    for post in await bot.store.posts(ticket_id, active_only=False):
        notes += [
            reply
            for reply in bot.thread_of(post.channel, post.ts)
            if "needs a human" in reply["text"]
        ]
    return notes


def _dms(bot: Harness) -> list[dict[str, Any]]:
    return [
        call.args
        for call in bot.slack.calls_to("chat.postMessage")
        if call.ok and call.args.get("channel") == f"D{ONCALL[1:]}"
    ]


async def test_the_post_shows_the_local_decision_first_and_is_updated_when_the_model_answers(
    tmp_path: Path, embedder: CachingEmbedder, openai_server: OpenAIStandIn
) -> None:
    """The team post goes out "model pending" on the local decision, then is redrawn in place."""
    model = LateModel({"export button": _answer()})
    openai_server.default = model
    async with model_bot(tmp_path, embedder, openai_server, _config()) as bot:
        ts = await bot.customer_says(EXPORT)
        await bot.desk.drain(model=False)
        ticket_id = await bot.ticket_for(ts)
        (post,) = bot.posts_in("engineering")
        assert "Model pending" in _blocks(post)
        assert "decided by the local model" in _blocks(post)
        assert MODEL_WORDS not in _blocks(post)
        ticket = await bot.store.ticket(ticket_id)
        assert ticket is not None
        assert ticket.model_state == "pending"
        await asked(openai_server, 1)
        assert classified(openai_server) == [EXPORT]  # asked, and not answered yet

        model.release.set()
        await bot.desk.drain()
        (after,) = bot.posts_in("engineering")
        assert after["ts"] == post["ts"]  # the same post, updated
        assert any(call.args["ts"] == post["ts"] for call in bot.slack.calls_to("chat.update"))
        assert "Model pending" not in _blocks(after)
        assert "decided by the LLM (cheap model)" in _blocks(after)
        assert MODEL_WORDS in _blocks(after)
        ticket = await bot.store.ticket(ticket_id)
        assert ticket is not None
        assert ticket.model_state == "answered"
        assert [call.layer for call in await bot.store.layer_calls(ticket_id)] == [
            "local",
            "llm_cheap",
        ]
        draft = await bot.store.draft(ticket_id)
        assert draft is not None
        assert (draft.source, draft.text) == ("llm", MODEL_DRAFT)


async def test_a_model_answering_after_the_deadline_leaves_the_card_saying_it_did_not_answer(
    tmp_path: Path, embedder: CachingEmbedder, openai_server: OpenAIStandIn
) -> None:
    """The model answers after the deadline: the local decision stands; the card says so."""
    model = LateModel({"export button": _answer(priority="critical", needs_human=True)})
    openai_server.default = model
    # The stand-in answers only once released, which the test does after the deadline.
    async with model_bot(tmp_path, embedder, openai_server, _config(deadline_seconds=0.2)) as bot:
        ts = await bot.customer_says(EXPORT)
        await bot.desk.drain()
        model.release.set()
        ticket_id = await bot.ticket_for(ts)
        (post,) = bot.posts_in("engineering")
        assert "did not answer" in _blocks(post)
        assert "Model pending" not in _blocks(post)
        ticket = await bot.store.ticket(ticket_id)
        assert ticket is not None
        assert ticket.model_state == "late"
        assert ticket.decision is not None
        assert (ticket.decision.source, ticket.decision.priority) == ("local", "medium")
        calls = await bot.store.layer_calls(ticket_id)
        assert [(call.layer, call.error) for call in calls] == [
            ("local", None),
            ("llm_cheap", "no answer within the 0.2 s deadline"),
        ]
        draft = await bot.store.draft(ticket_id)
        assert draft is not None
        assert draft.source == "template"
        # Not verified by the model is no reason to page: the local decision pages as offline.
        assert await _pages(bot, ticket_id) == []


async def test_a_ticket_whose_deadline_passed_in_the_queue_is_not_sent_to_the_model(
    tmp_path: Path, embedder: CachingEmbedder, openai_server: OpenAIStandIn
) -> None:
    """With one model call at a time, a ticket still queued past its deadline is marked late."""
    model = LateModel({})
    openai_server.default = model
    ahead = [timedelta(0)]
    config = _config(concurrent_calls=1)
    async with model_bot(
        tmp_path, embedder, openai_server, config, now=lambda: utc_now() + ahead[0]
    ) as bot:
        first = await bot.customer_says(EXPORT)
        second = await bot.customer_says(CSV)
        await bot.desk.drain(model=False)
        await asked(openai_server, 1)
        assert classified(openai_server) == [EXPORT]
        # The second ticket's deadline passes while the first holds the only model call.
        ahead[0] = timedelta(seconds=config.llm.deadline_seconds + 1)
        model.release.set()
        await bot.desk.drain()
        assert classified(openai_server) == [EXPORT]  # the second was never sent
        late = await bot.store.ticket(await bot.ticket_for(second))
        answered = await bot.store.ticket(await bot.ticket_for(first))
        assert late is not None
        assert answered is not None
        assert (late.model_state, answered.model_state) == ("late", "answered")
        (post,) = [p for p in bot.posts_in("engineering") if "CSV" in _blocks(p)]
        assert "did not answer" in _blocks(post)


async def test_a_model_raising_the_priority_to_critical_pages_after_the_post(
    tmp_path: Path, embedder: CachingEmbedder, openai_server: OpenAIStandIn
) -> None:
    """Local medium is posted unpaged; the model's critical redraws the post and pages once."""
    model = LateModel({"CSV": _answer(priority="critical", sentiment="angry", needs_human=True)})
    openai_server.default = model
    async with model_bot(tmp_path, embedder, openai_server, _config()) as bot:
        ts = await bot.customer_says(CSV)
        await bot.desk.drain(model=False)
        ticket_id = await bot.ticket_for(ts)
        (post,) = bot.posts_in("engineering")
        assert "*MEDIUM*" in _blocks(post)
        assert await _pages(bot, ticket_id) == []
        assert _dms(bot) == []

        model.release.set()
        await bot.desk.drain()
        (after,) = bot.posts_in("engineering")
        assert after["ts"] == post["ts"]
        assert "*CRITICAL*" in _blocks(after)
        (page,) = await _pages(bot, ticket_id)
        assert f"<@{ONCALL}>" in page["text"]
        assert "priority is critical" in page["text"]
        assert len(_dms(bot)) == 1  # critical: the on-call is also DMed, once


async def test_a_model_naming_another_team_moves_the_post(
    tmp_path: Path, embedder: CachingEmbedder, openai_server: OpenAIStandIn
) -> None:
    """The local guess goes to support; the model's engineering posts there and marks it moved."""
    model = LateModel({"dashboard": _answer()})
    openai_server.default = model
    async with model_bot(tmp_path, embedder, openai_server, _config()) as bot:
        ts = await bot.customer_says(DASHBOARD)
        await bot.desk.drain(model=False)
        ticket_id = await bot.ticket_for(ts)
        (first,) = bot.posts_in("support")
        assert bot.posts_in("engineering") == []

        model.release.set()
        await bot.desk.drain()
        (moved,) = bot.posts_in("support")
        (live,) = bot.posts_in("engineering")
        assert moved["ts"] == first["ts"]
        assert f"Moved to <#{bot.channel_of('engineering')}>" in _blocks(moved)
        assert "Model pending" not in _blocks(live)
        assert [post.team for post in await bot.store.posts(ticket_id)] == ["engineering"]
        (old,) = [
            p for p in await bot.store.posts(ticket_id, active_only=False) if p.team == "support"
        ]
        assert old.status == "moved"


async def test_a_draft_the_agent_already_approved_is_not_replaced_by_the_models(
    tmp_path: Path, embedder: CachingEmbedder, openai_server: OpenAIStandIn
) -> None:
    """An agent approves the offline draft before the model answers: that reply is what stays."""
    model = LateModel({"export button": _answer()})
    openai_server.default = model
    async with model_bot(tmp_path, embedder, openai_server, _config()) as bot:
        ts = await bot.customer_says(EXPORT)
        await bot.desk.drain(model=False)
        ticket_id = await bot.ticket_for(ts)
        offline = await bot.store.draft(ticket_id)
        assert offline is not None
        assert await bot.react(AGENT, "white_check_mark", ticket_id) == 200
        await until(
            lambda: len(bot.thread_of(INTAKE, ts)) == 1, what="the approved reply in the thread"
        )

        model.release.set()
        await bot.desk.drain()
        draft = await bot.store.draft(ticket_id)
        assert draft is not None
        assert (draft.text, draft.source, draft.status) == (offline.text, offline.source, "sent")
        (reply,) = bot.thread_of(INTAKE, ts)
        assert reply["text"] == offline.text
        (post,) = bot.posts_in("engineering")
        assert MODEL_WORDS not in _blocks(post)
        assert "Reply sent" in _blocks(post)
        ticket = await bot.store.ticket(ticket_id)
        assert ticket is not None
        assert ticket.model_state == "answered"  # the decision is the model's all the same


async def test_a_stuck_refinement_is_marked_late_by_a_sweep(
    tmp_path: Path, embedder: CachingEmbedder, openai_server: OpenAIStandIn
) -> None:
    """Pending past the deadline and margin (its refiner gone), a sweep marks it late."""
    model = LateModel({"export button": _answer(priority="critical", needs_human=True)})
    openai_server.default = model
    ahead = [timedelta(0)]
    config = _config()
    async with model_bot(
        tmp_path,
        embedder,
        openai_server,
        config,
        now=lambda: utc_now() + ahead[0],
        lease_seconds=0.3,  # a sweep every 0.1 s
    ) as bot:
        ts = await bot.customer_says(EXPORT)
        await bot.desk.drain(model=False)
        ticket_id = await bot.ticket_for(ts)
        ahead[0] = timedelta(seconds=config.llm.deadline_seconds + MODEL_LATE_MARGIN_SECONDS + 1)

        async def swept() -> bool:
            ticket = await bot.store.ticket(ticket_id)
            return ticket is not None and ticket.model_state == "late"

        await until(swept, what="the sweep marking the ticket late")
        await until(
            lambda: "did not answer" in _blocks(bot.posts_in("engineering")[0]),
            what="the card redrawn",
        )
        # The refiner's answer after that is not kept: the card and decision stay local.
        model.release.set()
        await bot.desk.drain()
        ticket = await bot.store.ticket(ticket_id)
        assert ticket is not None
        assert ticket.decision is not None
        assert (ticket.model_state, ticket.decision.source) == ("late", "local")
        assert await _pages(bot, ticket_id) == []


@pytest.mark.slow  # 51 tickets through the real app
async def test_a_critical_ticket_is_posted_and_paged_before_queued_ones_get_their_answers(
    tmp_path: Path, embedder: CachingEmbedder, openai_server: OpenAIStandIn
) -> None:
    """Behind 50 tickets waiting for the model an outage is posted and paged, and refined next."""
    model = LateModel({"Production is down": _answer(priority="critical", needs_human=True)})
    openai_server.default = model
    ordinary = [
        "The export to CSV fails with an error since yesterday",
        "I cannot log in, the password reset link never arrives",
        "Could you add a dark mode to the dashboard?",
        "Where can I find your office hours and contact details?",
        "I was charged twice for my subscription this month",
    ]
    async with model_bot(tmp_path, embedder, openai_server, _config(concurrent_calls=1)) as bot:
        for number in range(50):
            await bot.customer_says(f"{ordinary[number % len(ordinary)]} (ref {number})")
        ts = await bot.customer_says(OUTAGE)
        await bot.desk.drain(model=False)
        ticket_id = await bot.ticket_for(ts)
        # Every ticket is posted, the outage paged, and the model has answered none of them.
        assert len(bot.all_ticket_posts()) == 51
        (post,) = [p for p in bot.posts_in("engineering") if "Production is down" in _blocks(p)]
        assert "*CRITICAL*" in _blocks(post)
        assert len(await _pages(bot, ticket_id)) == 1
        await asked(openai_server, 1)
        assert len(classified(openai_server)) == 1  # the first, still waiting for its answer

        model.release.set()
        await bot.desk.drain()
        # The model took the outage next: the most urgent first, then the oldest.
        order = classified(openai_server)
        assert order[0] != OUTAGE
        assert order[1] == OUTAGE
        assert len(await _pages(bot, ticket_id)) == 1  # refined critical: no second page
