"""The HTTP endpoint: the signature before the body, a bad body a 400, other workspaces refused."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import aiohttp
import pytest

from bot import render
from bot.runner import run_slack
from bot.sandbox.events import Workspace
from bot.sandbox.shell import AGENT, CUSTOMER, INTAKE
from bot.sandbox.slack_api import SlackStandIn
from bot.settings import load_settings
from routing.config import TriageConfig, load_config
from routing.embedding_cache import CachingEmbedder
from tests.slack_harness import (
    SIGNING_SECRET,
    Harness,
    running_bot,
    standin_for,
    write_standin_config,
)
from tests.timekeeping import until

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
# Bodies no Slack request has, each as (what it is, content type, raw bytes).
MALFORMED: list[tuple[str, str, bytes]] = [
    ("truncated JSON", JSON, b'{"type": "event_callback", "event": {"type": "mess'),
    ("a JSON array", JSON, b'[{"type": "event_callback"}]'),
    ("a JSON string", JSON, b'"event_callback"'),
    ("bytes that are no UTF-8", JSON, b'{"type": "event_callback", "x": "\xff\xfe"}'),
    ("JSON nested 100,000 deep", JSON, b'{"a":' * 100_000 + b"1" + b"}" * 100_000),
    ("a team that is a number", JSON, b'{"type": "event_callback", "team": 5, "event": {}}'),
    ("a form payload that is no JSON", FORM, b"payload=%7Bnot+json"),
    ("a form payload that is a list", FORM, b"payload=%5B1%2C2%5D"),
    ("an unknown charset", "application/json; charset=klingon", b'{"type": "x"}'),
]


@pytest.fixture
def config() -> TriageConfig:
    return load_config()


@pytest.fixture
async def bot(
    tmp_path: Path, embedder: CachingEmbedder, config: TriageConfig
) -> AsyncIterator[Harness]:
    async with running_bot(tmp_path, embedder, config=config) as harness:
        yield harness


def _headers(content_type: str, body: bytes, *, secret: str = SIGNING_SECRET) -> dict[str, str]:
    """Slack's headers for body, signed with secret (an empty secret: a wrong signature)."""
    stamp = str(int(time.time()))
    # Slack signs the raw bytes, which need not be UTF-8 (sign() takes text).
    digest = hmac.new(secret.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256)
    signature = f"v0={digest.hexdigest()}" if secret else "v0=0"
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": signature,
    }


async def _post(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]
) -> tuple[int, str]:
    async with session.post(url, data=body, headers=headers) as response:
        return response.status, await response.text()


async def test_a_malformed_body_with_a_wrong_signature_is_refused_unread(
    bot: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """Each malformed body with a bad signature gets 401 and one warning; nothing is parsed."""
    for what, content_type, body in MALFORMED:
        caplog.clear()
        with caplog.at_level(logging.INFO):
            status, _ = await _post(
                bot.session, bot.url, body, _headers(content_type, body, secret="")
            )
        assert status == 401, what
        warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert [r.levelname for r in warnings] == ["WARNING"], what
        assert "SLACK_SIGNING_SECRET" in warnings[0].getMessage()
        assert not any(r.exc_info for r in caplog.records), what


async def test_a_stamp_or_signature_no_slack_request_has_is_a_401_not_a_crash(
    bot: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """A timestamp that is no number, a signature with non-ASCII characters: 401, no traceback."""
    body = b'{"type": "event_callback"'
    good = _headers(JSON, body)
    for headers in (
        {**good, "X-Slack-Request-Timestamp": "soon"},
        {**good, "X-Slack-Request-Timestamp": str(int(time.time()) - 3600)},
        {**good, "X-Slack-Signature": "v0=\u00e9\u00e9"},
        {"Content-Type": JSON},
    ):
        with caplog.at_level(logging.INFO):
            status, _ = await _post(bot.session, bot.url, body, headers)
        assert status == 401, headers
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_malformed_body_with_a_right_signature_is_a_400_with_one_line(
    bot: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """Each signed malformed body gets 400 and one warning naming none of its content."""
    for what, content_type, body in MALFORMED:
        caplog.clear()
        with caplog.at_level(logging.INFO):
            status, _ = await _post(bot.session, bot.url, body, _headers(content_type, body))
        assert status == 400, what
        warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert [r.levelname for r in warnings] == ["WARNING"], what
        line = warnings[0].getMessage()
        assert "signed request" in line
        assert f"{len(body)} bytes" in line
        assert "event_callback" not in line
        assert "not json" not in line
        assert not any(r.exc_info for r in caplog.records), what
    # The endpoint still serves Slack: a good event after all of them is a ticket.
    await bot.customer_says("I was charged twice this month")
    await bot.desk.drain()
    assert len(bot.posts_in("billing")) == 1


async def test_a_signed_event_from_another_workspace_or_app_is_refused(
    bot: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """Another team_id or api_app_id, signed with our secret: 403, one warning, no ticket."""
    base = bot.workspace.response_url_base
    strangers = {
        "team": Workspace(team_id="T0OTHER", response_url_base=base),
        "app": Workspace(api_app_id="A0OTHER", response_url_base=base),
    }
    for name, workspace in strangers.items():
        message = bot.slack.add_message(INTAKE, user=CUSTOMER, text=f"refund please ({name})")
        event = workspace.message(
            channel=INTAKE, user=CUSTOMER, text=message["text"], ts=message["ts"]
        )
        body = json.dumps(workspace.envelope(event)).encode()
        caplog.clear()
        with caplog.at_level(logging.INFO):
            status, _ = await _post(bot.session, bot.url, body, _headers(JSON, body))
        assert status == 403, name
        (line,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert ("T0OTHER" if name == "team" else "A0OTHER") in line
        assert "refund" not in line
        await bot.desk.drain()
        assert await bot.store.ticket_at(INTAKE, message["ts"]) is None, name
    assert bot.all_ticket_posts() == []


async def test_a_signed_event_that_names_no_workspace_is_refused(
    bot: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """No team_id, team or authorizations (only the event's own team): 403, one line, no ticket."""
    message = bot.slack.add_message(INTAKE, user=CUSTOMER, text="refund please")
    event = bot.workspace.message(
        channel=INTAKE, user=CUSTOMER, text=message["text"], ts=message["ts"]
    )
    envelope = bot.workspace.envelope(event)
    for field in ("team_id", "authorizations"):
        del envelope[field]
    assert event["team"] == bot.slack.team_id  # what Bolt would have taken for the workspace
    body = json.dumps(envelope).encode()
    with caplog.at_level(logging.INFO):
        status, _ = await _post(bot.session, bot.url, body, _headers(JSON, body))
    assert status == 403
    (line,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert "no workspace" in line
    assert "refund" not in line
    await bot.desk.drain()
    assert await bot.store.ticket_at(INTAKE, message["ts"]) is None
    assert bot.all_ticket_posts() == []


async def test_every_shape_slack_sends_names_its_workspace_and_is_served(
    bot: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """url_verification, ssl_check, app_rate_limited, org-wide (Grid) events and presses: no 403."""
    team, app = bot.slack.team_id, bot.slack.app_id
    post_ts = bot.slack.add_message(INTAKE, user=CUSTOMER, text="hello")["ts"]
    grid_event = bot.workspace.envelope(
        bot.workspace.message(channel=INTAKE, user=CUSTOMER, text="hi", ts=post_ts)
    )
    # An org-wide install's event: the organization and the workspace, installed org-wide.
    grid_event.update(enterprise_id="E0GRID", is_ext_shared_channel=False)
    grid_event["authorizations"][0].update(enterprise_id="E0GRID", is_enterprise_install=True)
    press = json.loads(
        dict(
            parse_qsl(
                bot.workspace.block_action(
                    user=AGENT,
                    action_id="no_such_action",
                    value="x",
                    channel=INTAKE,
                    message_ts=post_ts,
                    trigger_id=bot.slack.new_trigger_id(),
                )
            )
        )["payload"]
    )
    # In an org-wide install's interaction `team` is null: the user's team names the workspace.
    press.update(team=None, enterprise={"id": "E0GRID", "name": "Grid"}, is_enterprise_install=True)
    shapes: list[tuple[str, str, bytes]] = [
        (
            "url_verification",
            JSON,
            json.dumps(
                {
                    "token": "t",
                    "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
                    "type": "url_verification",
                }
            ).encode(),
        ),
        ("ssl_check", FORM, b"ssl_check=1&token=t"),
        (
            "app_rate_limited",
            JSON,
            json.dumps(
                {
                    "token": "t",
                    "type": "app_rate_limited",
                    "team_id": team,
                    "minute_rate_limited": 1518467820,
                    "api_app_id": app,
                }
            ).encode(),
        ),
        ("an org-wide install's event", JSON, json.dumps(grid_event).encode()),
        ("an org-wide install's press", FORM, urlencode({"payload": json.dumps(press)}).encode()),
        (
            "a slash command",
            FORM,
            bot.workspace.slash_command(
                user=AGENT, channel=INTAKE, text="help", trigger_id=bot.slack.new_trigger_id()
            ).encode(),
        ),
    ]
    for what, content_type, body in shapes:
        caplog.clear()
        with caplog.at_level(logging.INFO):
            status, text = await _post(bot.session, bot.url, body, _headers(content_type, body))
        assert status != 403, what
        assert not [r for r in caplog.records if "refused" in r.getMessage()], what
        if what == "url_verification":
            assert status == 200
            assert "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P" in text


async def test_a_command_or_button_from_another_workspace_or_app_does_nothing(
    bot: Harness,
) -> None:
    """/triage and a button press signed for another team or app get 403 and no answer."""
    ticket_id = await bot.new_ticket("I was charged twice this month")
    (post,) = await bot.store.posts(ticket_id)
    base = bot.workspace.response_url_base
    for workspace in (
        Workspace(team_id="T0OTHER", response_url_base=base),
        Workspace(api_app_id="A0OTHER", response_url_base=base),
    ):
        command = workspace.slash_command(
            user=AGENT, channel=INTAKE, text="stats", trigger_id=bot.slack.new_trigger_id()
        ).encode()
        press = workspace.block_action(
            user=AGENT,
            action_id=render.APPROVE_ACTION,
            value=bot.button_value(post.channel, post.ts),
            channel=post.channel,
            message_ts=post.ts,
            trigger_id=bot.slack.new_trigger_id(),
        ).encode()
        for body in (command, press):
            status, _ = await _post(bot.session, bot.url, body, _headers(FORM, body))
            assert status == 403
    assert bot.slack.responses == []
    ticket = await bot.store.ticket(ticket_id)
    assert ticket is not None
    assert bot.thread_of(INTAKE, ticket.ts) == []
    # The same press from our own workspace is served.
    assert await bot.press(AGENT, render.APPROVE_ACTION, ticket_id) == 200
    assert len(bot.slack.calls_to("chat.postMessage")) >= 2


async def test_a_command_with_the_word_payload_in_it_is_answered(bot: Harness) -> None:
    """`/triage status payload` is a command, not an empty interaction: it gets its usage answer."""
    answer = await bot.command(AGENT, "status payload")
    assert answer.startswith("`payload` is not a ticket")
    assert await bot.command(AGENT, "help payload") != ""


@pytest.fixture
async def standin(config: TriageConfig) -> AsyncIterator[SlackStandIn]:
    async with standin_for(config) as slack:
        yield slack


@pytest.mark.slow  # end to end: `triage run --http`, its start-up and all
async def test_triage_run_http_checks_signature_then_body_then_workspace(
    standin: SlackStandIn, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`run --http`: 401 unread, 400 for a signed bad body, 403 for a stranger; ours is routed."""
    settings = load_settings(
        environ={
            "SLACK_BOT_TOKEN": "xoxb-test",
            "SLACK_API_URL": standin.base_url,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "TRIAGE_DB": str(tmp_path / "bot.sqlite3"),
            "TRIAGE_CONFIG": str(write_standin_config(tmp_path)),
        },
        dotenv_path=tmp_path / "no.env",
    )
    config = load_config(settings.triage_config)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    running = asyncio.create_task(run_slack(settings, config, http=True, port=port))
    url = f"http://127.0.0.1:{port}/slack/events"
    ours, other_team, other_app = (
        Workspace(),
        Workspace(team_id="T0OTHER"),
        Workspace(api_app_id="A0OTHER"),
    )

    def envelope(workspace: Workspace, text: str) -> bytes:
        message = standin.add_message(INTAKE, user=CUSTOMER, text=text)
        event = workspace.message(channel=INTAKE, user=CUSTOMER, text=text, ts=message["ts"])
        return json.dumps(workspace.envelope(event)).encode()

    truncated = b'{"type": "event_callback", "event": {"type"'
    try:
        async with aiohttp.ClientSession() as session:

            async def serving() -> bool:
                if running.done():
                    return True
                try:
                    await _post(session, url, b"", {})
                except aiohttp.ClientConnectionError:
                    return False
                return True

            await until(serving, what=f"serving on port {port}")
            assert not running.done()
            with caplog.at_level(logging.INFO):
                unsigned = await _post(
                    session, url, truncated, _headers(JSON, truncated, secret="")
                )
                signed_bad = await _post(session, url, truncated, _headers(JSON, truncated))
                for workspace in (other_team, other_app):
                    body = envelope(workspace, "refund my last invoice please")
                    status, _ = await _post(session, url, body, _headers(JSON, body))
                    assert status == 403
                body = envelope(ours, "I was charged twice this month")
                accepted = await _post(session, url, body, _headers(JSON, body))
            assert (unsigned[0], signed_bad[0], accepted[0]) == (401, 400, 200)
            assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
            await until(
                lambda: len([m for m in standin.messages("C0BILLING") if "metadata" in m]) == 1,
                what="our workspace's ticket posted",
            )
    finally:
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
    posted = json.dumps(standin.messages("C0BILLING"))
    assert "charged twice" in posted
    assert "refund my last invoice" not in posted
