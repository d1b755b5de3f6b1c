"""What an attacker and a fault injector found against the served app, each as a test."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.intake import customer_message
from bot.sandbox.shell import AGENT, CUSTOMER, INTAKE, ONCALL
from routing.config import load_config
from routing.drafter import TemplateDrafter, find_details
from routing.embedding_cache import CachingEmbedder
from routing.models import Decision
from routing.redact import redact
from tests.slack_harness import SIGNING_SECRET, Harness, running_bot


@pytest.fixture
async def bot(tmp_path: Path, embedder: CachingEmbedder) -> AsyncIterator[Harness]:
    async with running_bot(tmp_path, embedder, config=load_config()) as harness:
        yield harness


async def _post_signed(bot: Harness, body: bytes) -> int:
    """POST raw JSON bytes to the bot, signed as Slack signs them; returns the status."""
    stamp = str(int(time.time()))
    digest = hmac.new(SIGNING_SECRET.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256)
    headers = {
        "Content-Type": "application/json",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": f"v0={digest.hexdigest()}",
    }
    async with bot.session.post(bot.url, data=body, headers=headers) as response:
        return response.status


def _envelope_without_event(bot: Harness, event: Any) -> bytes:
    """Our workspace's event_callback envelope carrying `event` as it is."""
    envelope = bot.workspace.envelope({"type": "message"})
    envelope["event"] = event
    return json.dumps(envelope).encode()


async def test_an_event_that_is_no_object_never_reaches_the_servers_crash_handler(
    bot: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """A signed envelope whose `event` is a string or a list is answered without a server crash."""
    for event in ("message", ["message"]):
        caplog.clear()
        with caplog.at_level(logging.INFO):
            await _post_signed(bot, _envelope_without_event(bot, event))
        crashes = [r for r in caplog.records if r.name == "aiohttp.server"]
        assert crashes == [], event


async def test_a_signed_event_that_is_no_object_is_a_400(bot: Harness) -> None:
    """`"event": "message"` or `"event": [..]` in a signed body is a body Slack never sends: 400."""
    statuses = [
        await _post_signed(bot, _envelope_without_event(bot, event))
        for event in ("message", ["message"])
    ]
    assert statuses == [400, 400]


async def test_a_signed_event_from_another_organisations_org_wide_install_is_refused(
    bot: Harness,
) -> None:
    """An event with no team but another enterprise's install, signed: 403 and no ticket."""
    message = bot.slack.add_message(INTAKE, user=CUSTOMER, text="refund my invoice (org)")
    event = bot.workspace.message(
        channel=INTAKE, user=CUSTOMER, text=message["text"], ts=message["ts"]
    )
    event["team"] = None
    envelope = bot.workspace.envelope(event)
    envelope.update(team_id=None, enterprise_id="E0OTHER", is_enterprise_install=True)
    envelope["authorizations"] = [
        {
            "enterprise_id": "E0OTHER",
            "team_id": None,
            "user_id": "U0BOT",
            "is_bot": True,
            "is_enterprise_install": True,
        }
    ]
    status = await _post_signed(bot, json.dumps(envelope).encode())
    await bot.desk.drain()
    assert (status, await bot.store.ticket_at(INTAKE, message["ts"])) == (403, None)


def test_a_me_message_is_a_customers_message() -> None:
    """`/me is charged twice` (subtype me_message) is a person's text, not a system message."""
    message = {
        "type": "message",
        "subtype": "me_message",
        "user": CUSTOMER,
        "text": "is charged twice this month",
        "ts": "1700000000.000100",
    }
    taken = customer_message(INTAKE, message)
    assert taken is not None
    assert taken.text == "is charged twice this month"


async def test_a_me_message_in_the_intake_channel_is_routed(bot: Harness) -> None:
    """A customer's /me message becomes a ticket with a team post."""
    ts = await bot.customer_says("is charged twice for the subscription", subtype="me_message")
    await bot.desk.drain()
    ticket = await bot.store.ticket_at(INTAKE, ts)
    assert ticket is not None
    assert ticket.text == "is charged twice for the subscription"
    assert len(await bot.store.posts(ticket.id)) == 1


@pytest.mark.parametrize(
    "text",
    [
        "CPF 123.456.789-09, please refund the double charge",
        "my NINO is QQ123456C and I was charged twice",
    ],
)
def test_a_redaction_placeholder_is_never_repeated_in_a_draft(text: str) -> None:
    """A redacted national id is no detail: the draft never names NATIONAL_ID."""
    redacted = redact(text).text
    assert "[NATIONAL_ID]" in redacted
    assert find_details(redacted) == []
    decision = Decision(
        category="billing",
        priority="medium",
        team="billing",
        sentiment="neutral",
        confidence=0.9,
        source="local",
    )
    draft = TemplateDrafter(load_config()).draft(redacted, decision)
    assert "NATIONAL_ID" not in draft.text


async def test_edits_delivered_out_of_order_keep_the_newest_text(bot: Harness) -> None:
    """The newer edit (by `edited.ts`) wins even when Slack delivers the older one after it."""
    ts = await bot.customer_says("I was charged twice, please refund")
    await bot.desk.drain()
    newer = bot.workspace.message_changed(
        channel=INTAKE,
        user=CUSTOMER,
        ts=ts,
        text="SECOND: charged three times, please refund",
        previous_text="FIRST: charged twice, please refund",
    )
    older = bot.workspace.message_changed(
        channel=INTAKE,
        user=CUSTOMER,
        ts=ts,
        text="FIRST: charged twice, please refund",
        previous_text="I was charged twice, please refund",
    )
    older_ts = f"{float(newer['message']['edited']['ts']) - 5:.6f}"
    older["message"]["edited"]["ts"] = older["ts"] = older["event_ts"] = older_ts
    assert await bot.event(newer) == 200
    await bot.desk.drain()
    assert await bot.event(older) == 200
    await bot.desk.drain()
    ticket = await bot.store.ticket_at(INTAKE, ts)
    assert ticket is not None
    assert ticket.text.startswith("SECOND")


async def test_an_oncall_named_many_times_is_paged_once(bot: Harness) -> None:
    """`/triage oncall billing @a @a @a ...` keeps @a once: a page mentions them once."""
    answer = await bot.command(AGENT, "oncall billing " + f"<@{ONCALL}> " * 40)
    assert answer == f"On-call for billing is now <@{ONCALL}>."
    ticket_id = await bot.new_ticket("Urgent: I was charged twice, refund now")
    (post, *_) = await bot.store.posts(ticket_id)
    notes = bot.thread_of(post.channel, post.ts)
    assert [note["text"].count(f"<@{ONCALL}>") for note in notes] == [1]


@pytest.mark.parametrize(
    ("field", "value", "kept"),
    [
        ("message", "charged three times", "I was charged twice, please refund"),
        ("message", ["charged three times"], "I was charged twice, please refund"),
        ("message.ts", 1700000000.5, "I was charged twice, please refund"),
        ("message.thread_ts", 5, "I was charged twice, please refund"),
        ("message.text", {"text": "charged three times"}, "I was charged twice, please refund"),
        # Only the old text is odd: the edit itself is whole and is taken.
        ("previous_message", "I was charged twice, please refund", "charged three times"),
    ],
)
async def test_an_edit_of_an_odd_shape_is_acknowledged_and_never_empties_the_ticket(
    bot: Harness, caplog: pytest.LogCaptureFixture, field: str, value: Any, kept: str
) -> None:
    """A message_changed whose message is no object, or whose ts is no string: 200, no crash."""
    ts = await bot.customer_says("I was charged twice, please refund")
    await bot.desk.drain()
    edit = bot.workspace.message_changed(
        channel=INTAKE,
        user=CUSTOMER,
        ts=ts,
        text="charged three times",
        previous_text="I was charged twice, please refund",
    )
    outer, _, inner = field.partition(".")
    if inner:
        edit[outer][inner] = value
    else:
        edit[outer] = value
    with caplog.at_level(logging.WARNING):
        status = await bot.event(edit)
        await bot.desk.drain()
    ticket = await bot.store.ticket_at(INTAKE, ts)
    assert ticket is not None
    assert (status, ticket.text) == (200, kept)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
