"""Someone who is no agent learns nothing from `/triage` or a button: the same answer every time."""

from __future__ import annotations

import io
import logging
import math
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.sandbox.shell import ONCALL, open_sandbox
from bot.settings import load_settings
from routing.cascade import build_pipeline
from routing.config import TriageConfig, load_config
from routing.embedding_cache import CachingEmbedder
from tests.slack_harness import OUTSIDER, Harness, running_bot


@pytest.fixture
def config() -> TriageConfig:
    return load_config()


@pytest.fixture
async def bot(
    tmp_path: Path, embedder: CachingEmbedder, config: TriageConfig
) -> AsyncIterator[Harness]:
    async with running_bot(tmp_path, embedder, config=config) as harness:
        yield harness


def _link(channel: str, ts: str, *, thread_ts: str | None = None) -> str:
    """A message link as Slack pastes it into a command (escaped, in angle brackets)."""
    thread = f"?thread_ts={thread_ts}&amp;cid={channel}" if thread_ts else ""
    return f"<https://sandbox.slack.com/archives/{channel}/p{ts.replace('.', '')}{thread}>"


async def _references(bot: Harness) -> tuple[dict[str, str], dict[str, str]]:
    """Ways to name an existing ticket, and the same ways naming nothing."""
    ticket_id = await bot.new_ticket("I was charged twice this month")
    ticket = await bot.store.ticket(ticket_id)
    assert ticket is not None
    (post,) = await bot.store.posts(ticket_id)
    existing = {
        "number": f"#{ticket_id}",
        "bare number": str(ticket_id),
        "customer's message": _link(ticket.channel, ticket.ts),
        "team post": _link(post.channel, post.ts),
        "thread reply": _link(ticket.channel, "1999999999.000001", thread_ts=ticket.ts),
    }
    missing = {
        "number": "#9999",
        "bare number": "9999",
        "customer's message": _link(ticket.channel, "1999999999.000002"),
        "team post": _link(post.channel, "1999999999.000003"),
        "thread reply": _link(ticket.channel, "1999999999.000004", thread_ts="1999999999.000005"),
    }
    return existing, missing


async def test_a_non_agents_reclassify_gets_one_answer_whether_or_not_the_ticket_exists(
    bot: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """Existing or missing, by number or link, with good or bad changes: the same refusal."""
    existing, missing = await _references(bot)
    answers: set[str] = set()
    for kind in existing:
        for reference in (existing[kind], missing[kind]):
            for changes in ("category=account", "team=product", "bogus", "category=nonsense"):
                caplog.clear()
                with caplog.at_level(logging.WARNING):
                    answers.add(await bot.command(OUTSIDER, f"reclassify {reference} {changes}"))
                (line,) = [r.getMessage() for r in caplog.records]
                assert OUTSIDER in line, (kind, reference, changes)
    assert answers == {"Only agents can reclassify tickets."}
    ticket = await bot.store.ticket(1)
    assert ticket is not None
    assert ticket.decision is not None
    assert ticket.decision.category == "billing"


async def test_a_non_agents_status_gets_one_answer_whether_or_not_the_ticket_exists(
    bot: Harness,
) -> None:
    """`/triage status` of an existing or a missing ticket, by number or link: one refusal."""
    existing, missing = await _references(bot)
    answers = {
        await bot.command(OUTSIDER, f"status {reference}")
        for reference in (*existing.values(), *missing.values())
    }
    assert answers == {"Only agents can see ticket status."}
    assert await bot.command(OUTSIDER, "stats") == "Only agents can see stats."


async def test_a_non_agent_is_not_told_who_is_on_call_or_which_teams_exist(
    bot: Harness, config: TriageConfig
) -> None:
    """`/triage oncall <team>`, real team or not, shows no one and names no team to a non-agent."""
    answers = {
        await bot.command(OUTSIDER, f"oncall {team}")
        for team in (*config.team_names, "nosuchteam", "billing <@U0OUTSIDER>")
    }
    assert answers == {"Only agents can see or change who is on call."}
    (answer,) = answers
    assert ONCALL not in answer
    assert await bot.desk.oncall("billing") == (ONCALL,)


async def test_the_sandbox_answers_a_non_agent_the_same_for_any_ticket(
    tmp_path: Path, config: TriageConfig
) -> None:
    """In the sandbox too, an outsider's buttons and commands get one answer, ticket or not."""
    out = io.StringIO()
    settings = load_settings(environ={}, dotenv_path=tmp_path / "no.env")
    async with open_sandbox(
        settings,
        config,
        out=out,
        database=tmp_path / "sandbox.sqlite3",
        pipeline=build_pipeline(config, embedder=None),
        post_rate_per_second=math.inf,
    ) as sandbox:
        await sandbox.line("I was charged twice this month")
        for verb in ("/approve", "/escalate", "/edit", "/triage reclassify", "/triage status"):
            shown = []
            for reference in ("#1", "#99"):
                start = len(out.getvalue())
                tail = " Sorry!" if verb == "/edit" else ""
                tail = " category=account" if verb == "/triage reclassify" else tail
                await sandbox.line(f"/as outsider {verb} {reference}{tail}")
                shown.append(out.getvalue()[start:].replace(reference, "#N"))
            assert shown[0] == shown[1], verb
            assert "Only agents can" in shown[0], verb
            assert "sandbox: no ticket" not in shown[0]
