"""Text no encoder takes (lone surrogates), control characters and non-string text."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.intake import customer_message
from bot.sandbox.shell import INTAKE
from routing.config import load_config
from routing.embedding_cache import CachingEmbedder
from routing.models import Ticket, clean_text
from tests.slack_harness import Harness, running_bot
from tests.test_slack_app import _ticket_posts


@pytest.fixture
async def bot(tmp_path: Path, embedder: CachingEmbedder) -> AsyncIterator[Harness]:
    async with running_bot(tmp_path, embedder, config=load_config()) as harness:
        yield harness


@pytest.mark.parametrize(
    ("text", "cleaned"),
    [
        ("my invoice \ud800 is wrong", "my invoice \ufffd is wrong"),
        ("red \x1b[31malert\x1b[0m", "red [31malert[0m"),
        ("nul\x00 and bell\x07", "nul and bell"),
        ("tabs\tand\nnewlines\r\nstay", "tabs\tand\nnewlines\r\nstay"),
        ("héllo 😀 日本語", "héllo 😀 日本語"),
    ],
)
def test_clean_text(text: str, cleaned: str) -> None:
    """Lone surrogates become U+FFFD, control characters go, everything else stays."""
    assert clean_text(text) == cleaned
    clean_text(text).encode("utf-8")  # writable as UTF-8 now


def test_a_ticket_is_always_clean() -> None:
    """Every Ticket's text is cleaned, whoever builds it."""
    assert Ticket(text="a \udcff b").text == "a \ufffd b"


async def test_a_message_with_a_lone_surrogate_is_stored_and_routed(bot: Harness) -> None:
    """A lone surrogate in Slack's text no longer loses the message: it is stored and posted."""
    ticket_id = await bot.new_ticket("my invoice \ud800 is wrong, charged twice")
    ticket = await bot.store.ticket(ticket_id)
    assert ticket is not None
    assert ticket.text == "my invoice \ufffd is wrong, charged twice"
    assert len(_ticket_posts(bot, ticket_id)) == 1


async def test_text_that_is_not_a_string_is_a_ticket_with_no_text(bot: Harness) -> None:
    """`text` as a list is no text: the message is still a ticket, for a human."""
    message = bot.slack.add_message(INTAKE, user="U0CUSTOMER", text="")
    event = bot.workspace.message(channel=INTAKE, user="U0CUSTOMER", text="", ts=message["ts"])
    event["text"] = ["not", "a", "string"]
    assert await bot.event(event) == 200
    await bot.desk.drain()
    ticket = await bot.store.ticket_at(INTAKE, str(message["ts"]))
    assert ticket is not None
    assert ticket.text == ""


async def test_slacks_escaped_characters_are_read_once_and_sent_escaped_once(bot: Harness) -> None:
    """Slack sends '&' as '&amp;': stored as typed, posted as '&amp;', never '&amp;amp;'."""
    ticket_id = await bot.new_ticket("R&amp;D was charged twice, price &lt; 5 &gt; 3")
    ticket = await bot.store.ticket(ticket_id)
    assert ticket is not None
    assert ticket.text == "R&D was charged twice, price < 5 > 3"
    (post,) = _ticket_posts(bot, ticket_id)
    posted = json.dumps(post["blocks"])
    assert "R&amp;D" in posted
    assert "&amp;amp;" not in posted
    assert "&amp;lt;" not in posted


@pytest.mark.parametrize(
    ("ts", "thread_ts", "named"),
    [
        (1700000000.0001, None, "ts"),
        (None, None, "ts"),
        ("1700000000.000100", 1700000000.0001, "thread_ts"),
    ],
)
def test_a_message_whose_ts_is_not_slacks_is_rejected_with_a_log_line(
    caplog: pytest.LogCaptureFixture, ts: object, thread_ts: object, named: str
) -> None:
    """A number (or nothing) where Slack writes a ts string: no ticket, and one line saying so."""
    message = {"type": "message", "user": "U0CUSTOMER", "text": "refund me", "ts": ts}
    if thread_ts is not None:
        message["thread_ts"] = thread_ts
    with caplog.at_level(logging.WARNING, logger="bot.intake"):
        assert customer_message("C0INTAKE", message) is None
    (line,) = [record.getMessage() for record in caplog.records]
    assert f"its {named} is not Slack's" in line
    assert "refund me" not in line
