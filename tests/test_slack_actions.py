"""Buttons, modals and `/triage` when agents change little, Slack refuses, or outsiders probe."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite
import pytest

from bot import render
from bot.listeners.actions import FAILED
from bot.sandbox.shell import AGENT, CUSTOMER, INTAKE
from routing.config import TriageConfig, load_config
from routing.embedding_cache import CachingEmbedder
from tests.slack_harness import Harness, running_bot

FEATURE_REQUEST = "Would love a dark mode for the dashboard"


@pytest.fixture
def config() -> TriageConfig:
    return load_config()


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / "triage.sqlite3"


@pytest.fixture
async def bot(
    tmp_path: Path, embedder: CachingEmbedder, config: TriageConfig, database: Path
) -> AsyncIterator[Harness]:
    async with running_bot(tmp_path, embedder, config=config, database=database) as harness:
        yield harness


def _menus(view: dict[str, Any], **chosen: str) -> dict[str, Any]:
    """The state of the Reclassify modal: each menu at its preset unless chosen differently."""
    values = {}
    for block in view["blocks"]:
        name = block["block_id"]
        value = chosen.get(name, block["element"]["initial_option"]["value"])
        values[name] = {name: {"type": "static_select", "selected_option": {"value": value}}}
    return values


async def _open_reclassify(bot: Harness, ticket_id: int) -> dict[str, Any]:
    assert await bot.press(AGENT, render.RECLASSIFY_ACTION, ticket_id) == 200
    return bot.slack.views[-1]


def _dms_to(bot: Harness, user: str) -> list[str]:
    return [
        str(call.args["text"])
        for call in bot.slack.calls_to("chat.postMessage")
        if call.ok and call.args.get("channel") == user
    ]


# --- the Reclassify modal ---------------------------------------------------------------------


async def test_changing_only_the_category_in_the_modal_moves_the_ticket_to_that_categorys_team(
    bot: Harness,
) -> None:
    """A product ticket given only category=billing in the modal goes to billing's team."""
    ticket_id = await bot.new_ticket(FEATURE_REQUEST)
    before = await bot.store.ticket(ticket_id)
    assert before is not None
    assert before.decision is not None
    assert (before.decision.category, before.decision.team) == ("feature_request", "product")
    view = await _open_reclassify(bot, ticket_id)
    assert len(view["private_metadata"]) <= render.PRIVATE_METADATA_LIMIT
    values = _menus(view, category="billing")
    assert values["team"]["team"]["selected_option"]["value"] == "product"
    assert (
        await bot.form(bot.workspace.view_submission(user=AGENT, view=view, values=values)) == 200
    )
    after = await bot.store.ticket(ticket_id)
    assert after is not None
    assert after.decision is not None
    assert (after.decision.category, after.decision.team) == ("billing", "billing")
    (live,) = await bot.store.posts(ticket_id)
    assert (live.team, live.channel) == ("billing", bot.channel_of("billing"))
    (post,) = [p for p in bot.posts_in("billing") if p["ts"] == live.ts]
    assert post["metadata"]["event_payload"]["ticket_id"] == ticket_id
    expected = f"now billing / {before.decision.priority} / {before.decision.sentiment} for billing"
    assert expected in _dms_to(bot, AGENT)[-1]


async def test_submitting_the_modal_unchanged_changes_nothing_and_says_so(bot: Harness) -> None:
    """The modal submitted as it opened is no correction: the agent is told "Nothing changed."."""
    ticket_id = await bot.new_ticket(FEATURE_REQUEST)
    view = await _open_reclassify(bot, ticket_id)
    values = _menus(view)
    assert (
        await bot.form(bot.workspace.view_submission(user=AGENT, view=view, values=values)) == 200
    )
    assert _dms_to(bot, AGENT)[-1] == "Nothing changed."
    audit = [entry.action for entry in await bot.store.audit_log(ticket_id)]
    assert "reclassified" not in audit
    assert await bot.store.corrections() == []
    (live,) = await bot.store.posts(ticket_id)
    assert live.team == "product"


# --- views.open refused -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "button"),
    [(render.EDIT_ACTION, "Edit"), (render.RECLASSIFY_ACTION, "Reclassify")],
)
@pytest.mark.parametrize("error", ["expired_trigger_id", "exchanged_trigger_id"])
async def test_a_modal_slack_will_not_open_tells_the_agent_to_press_again(
    bot: Harness, caplog: pytest.LogCaptureFixture, action: str, button: str, error: str
) -> None:
    """A stale or used trigger_id: the agent is told privately to press the button again."""
    ticket_id = await bot.new_ticket("I was charged twice this month")
    if error == "expired_trigger_id":
        bot.slack.trigger_ttl = -1.0  # every trigger is already too old, as after a slow ack
    else:
        bot.slack.fail_next("views.open", error)
    with caplog.at_level(logging.WARNING, logger="bot.listeners.actions"):
        assert await bot.press(AGENT, action, ticket_id) == 200
    assert [call.error for call in bot.slack.calls_to("views.open")] == [error]
    assert bot.slack.views == []
    (answer,) = bot.slack.responses
    assert answer["user"] == AGENT
    assert answer["response_type"] == "ephemeral"
    assert answer["replace_original"] is False
    assert answer["text"] == (f"Slack closed the window before it opened; press {button} again.")
    (warning,) = [r for r in caplog.records if r.name == "bot.listeners.actions"]
    assert warning.levelno == logging.WARNING
    assert error in warning.getMessage()


# --- unexpected failures ----------------------------------------------------------------------


@asynccontextmanager
async def _database_locked(path: Path) -> AsyncIterator[None]:
    """Another process holds the bot's SQLite file in a write transaction (a backup, a shell)."""
    async with aiosqlite.connect(str(path)) as other:
        await other.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            await other.rollback()


async def test_slack_refusing_the_post_of_a_slash_reclassify_answers_the_agent(
    bot: Harness,
) -> None:
    """Slack refusing the moved post during `/triage reclassify`: an answer, and the bot runs on."""
    ticket_id = await bot.new_ticket(FEATURE_REQUEST)
    bot.slack.fail_next("chat.postMessage", "internal_error")
    answer = await bot.command(AGENT, f"reclassify #{ticket_id} team=billing")
    assert "Try again" in answer
    assert f"Ticket #{ticket_id}:" in await bot.command(AGENT, f"status #{ticket_id}")


async def test_a_failure_the_desk_did_not_expect_still_answers_a_slash_command(
    bot: Harness, database: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A locked database during `/triage reclassify`: the agent is told it did not work."""
    ticket_id = await bot.new_ticket(FEATURE_REQUEST)
    with caplog.at_level(logging.ERROR, logger="bot.listeners.commands"):
        async with _database_locked(database):
            answer = await bot.command(AGENT, f"reclassify #{ticket_id} team=billing")
    assert answer == FAILED
    (failure,) = [r for r in caplog.records if r.name == "bot.listeners.commands"]
    assert failure.getMessage() == "/triage reclassify failed"
    assert failure.exc_info is not None
    assert "team=billing" not in caplog.text
    assert "billing" in await bot.command(AGENT, f"reclassify #{ticket_id} team=billing")


async def test_a_failure_the_desk_did_not_expect_still_answers_a_button_and_a_modal(
    bot: Harness, database: Path
) -> None:
    """A locked database: Escalate answers privately, the Reclassify modal by DM; none is lost."""
    ticket_id = await bot.new_ticket(FEATURE_REQUEST)
    view = await _open_reclassify(bot, ticket_id)
    async with _database_locked(database):
        assert await bot.press(AGENT, render.ESCALATE_ACTION, ticket_id) == 200
        values = _menus(view, team="billing")
        submission = bot.workspace.view_submission(user=AGENT, view=view, values=values)
        assert await bot.form(submission) == 200
    (answer,) = bot.slack.responses
    assert answer["user"] == AGENT
    assert answer["response_type"] == "ephemeral"
    assert answer["replace_original"] is False
    assert answer["text"] == FAILED
    assert _dms_to(bot, AGENT)[-1] == FAILED


# --- /triage status and oncall ----------------------------------------------------------------


async def test_a_non_agent_cannot_tell_a_ticket_link_from_any_other_link(bot: Harness) -> None:
    """`/triage status <link>` refuses a non-agent the same way whether the link is a ticket."""
    ts = await bot.customer_says("I was charged twice this month")
    await bot.desk.drain()
    ticket = f"https://sandbox.slack.com/archives/{INTAKE}/p{ts.replace('.', '')}"
    other = f"https://sandbox.slack.com/archives/{INTAKE}/p1700000000000100"
    on_ticket = await bot.command(CUSTOMER, f"status <{ticket}>")
    elsewhere = await bot.command(CUSTOMER, f"status <{other}>")
    assert on_ticket == elsewhere == "Only agents can see ticket status."
    assert "Ticket #" in await bot.command(AGENT, f"status <{ticket}>")


async def test_oncall_refuses_a_typed_name_saying_how_to_name_someone(bot: Harness) -> None:
    """`@alice` that Slack sent as plain text is refused with how to mention or give an id."""
    refused = await bot.command(AGENT, "oncall engineering @alice")
    assert "`@alice` is not a person or user group" in refused
    assert "pick them from the @ list" in refused
    assert "(U... or S...)" in refused
    assert await bot.desk.oncall("engineering") != ("@alice",)


async def test_oncall_takes_slack_ids_but_not_capitalised_words(bot: Harness) -> None:
    """`oncall engineering SUPPORT` gets the usage; a real-shaped id U0123ABCD9 is set."""
    refused = await bot.command(AGENT, "oncall engineering SUPPORT")
    assert "`SUPPORT` is not a person or user group" in refused
    assert "Usage: `/triage oncall" in refused
    assert "STATUS` is not a person" in await bot.command(AGENT, "oncall engineering STATUS")
    assert await bot.desk.oncall("engineering") != ("SUPPORT",)
    accepted = await bot.command(AGENT, "oncall engineering U0123ABCD9")
    assert accepted == "On-call for engineering is now <@U0123ABCD9>."
    assert await bot.desk.oncall("engineering") == ("U0123ABCD9",)
    assert json.dumps(await bot.store.oncall("engineering")) == '["U0123ABCD9"]'
