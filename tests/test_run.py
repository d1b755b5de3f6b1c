"""`triage run`: Socket Mode, HTTP mode, the sandbox, the LLM path, and start-up errors."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.__main__ import main
from bot.runner import run_slack
from bot.sandbox.events import Workspace
from bot.sandbox.shell import AGENT, CUSTOMER, INTAKE, ONCALL, sandbox_slack_config
from bot.sandbox.slack_api import SlackStandIn
from bot.settings import Settings, load_settings
from routing.config import TriageConfig, load_config
from routing.embedding_cache import CachingEmbedder
from routing.errors import ConfigError, UserError
from routing.llm import LLMClassifier, build_openai_client
from tests.slack_harness import running_bot, sign, write_standin_config
from tests.standins.openai_server import OpenAIStandIn, Scripted, reply_json, reply_text
from tests.timekeeping import HANG_GUARD_SECONDS, until

BOT_TOKEN = "xoxb-run-test"  # the stand-in's token
APP_TOKEN = "xapp-run-test"
SECRET = "run-test-secret"


@pytest.fixture
def slack_config_toml(tmp_path: Path) -> Path:
    """The default config plus a [slack] section for the stand-in's channels."""
    return write_standin_config(tmp_path)


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    config = load_config()
    channels = {INTAKE: "intake"} | {
        s.channel: team for team, s in sandbox_slack_config(config).teams.items()
    }
    async with SlackStandIn(
        bot_token=BOT_TOKEN,
        app_token=APP_TOKEN,
        channels=channels,
        users={CUSTOMER: "customer", AGENT: "agent", ONCALL: "oncall"},
    ) as server:
        yield server


def _settings(slack: SlackStandIn, tmp_path: Path, config: Path, **extra: str) -> Settings:
    return load_settings(
        environ={
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_API_URL": slack.base_url,
            "TRIAGE_DB": str(tmp_path / "bot.sqlite3"),
            "TRIAGE_CONFIG": str(config),
            **extra,
        },
        dotenv_path=tmp_path / "no.env",
    )


async def _serving_or_ended(port: int, ended: Callable[[], bool]) -> bool:
    """True once something listens on 127.0.0.1:port, or once the bot has ended (failed)."""
    if ended():
        return True
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    await writer.wait_closed()
    return True


def _billing_posts(slack: SlackStandIn) -> list[dict[str, Any]]:
    return [m for m in slack.messages("C0BILLING") if "metadata" in m]


@pytest.mark.slow  # end to end: `triage run` in Socket Mode, started twice
async def test_socket_mode_run_acks_and_routes_a_ticket(
    slack: SlackStandIn, tmp_path: Path, slack_config_toml: Path
) -> None:
    """Socket Mode: the envelope is acked and posted; at the next connection, a missed one too."""
    settings = _settings(slack, tmp_path, slack_config_toml, SLACK_APP_TOKEN=APP_TOKEN)
    config = load_config(settings.triage_config)
    running = asyncio.create_task(run_slack(settings, config, http=False, port=0))
    try:
        message = slack.add_message(INTAKE, user=CUSTOMER, text="I was charged twice this month")
        workspace = Workspace()
        event = workspace.message(
            channel=INTAKE, user=CUSTOMER, text=message["text"], ts=message["ts"]
        )
        # Slack's 3 s for the ack is its rule, not this test's: on a loaded machine start-up
        # and the ack may take longer, so the stand-in waits as long as the hang guard.
        ack = await slack.send_envelope(
            "events_api",
            workspace.envelope(event),
            connect_timeout=HANG_GUARD_SECONDS,
            ack_timeout=HANG_GUARD_SECONDS,
        )
        assert "envelope_id" in ack
        await until(lambda: len(_billing_posts(slack)) == 1, what="the ticket posted")
    finally:
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
    assert slack.calls_to("auth.test")[0].ok
    assert slack.calls_to("apps.connections.open")[0].ok
    # While it is down a customer writes; the next connection reads it back and posts it.
    slack.add_message(INTAKE, user=CUSTOMER, text="My invoice shows the wrong VAT")
    running = asyncio.create_task(run_slack(settings, config, http=False, port=0))
    try:
        await until(lambda: len(_billing_posts(slack)) == 2, what="the missed ticket posted")
    finally:
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
    assert "wrong VAT" in json.dumps(_billing_posts(slack)[-1]["blocks"])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.slow  # end to end: `triage run --http`, model and all
async def test_http_mode_checks_signatures_and_routes_a_ticket(
    slack: SlackStandIn,
    tmp_path: Path,
    slack_config_toml: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """`run --http`: a signed event is routed; a bad signature, one warning without the body."""
    settings = _settings(slack, tmp_path, slack_config_toml, SLACK_SIGNING_SECRET=SECRET)
    config = load_config(settings.triage_config)
    port = _free_port()
    running = asyncio.create_task(run_slack(settings, config, http=True, port=port))
    message = slack.add_message(INTAKE, user=CUSTOMER, text="I was charged twice this month")
    workspace = Workspace()
    body = json.dumps(
        workspace.envelope(
            workspace.message(channel=INTAKE, user=CUSTOMER, text=message["text"], ts=message["ts"])
        )
    )
    stamp = str(int(time.time()))
    signed = {
        "Content-Type": "application/json",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": sign(SECRET, stamp, body),
    }
    url = f"http://127.0.0.1:{port}/slack/events"
    try:
        await until(lambda: _serving_or_ended(port, running.done), what=f"serving on port {port}")
        assert not running.done()
        async with aiohttp.ClientSession() as session:
            async with session.post(
                url, data=body, headers={**signed, "X-Slack-Signature": "v0=0"}
            ) as refused:
                assert refused.status == 401
            refusals = [r for r in caplog.records if "SLACK_SIGNING_SECRET" in r.getMessage()]
            assert len(refusals) == 1
            assert refusals[0].levelname == "WARNING"
            assert "charged twice" not in caplog.text
            async with session.post(url, data=body, headers=signed) as accepted:
                assert accepted.status == 200
        await until(lambda: len(_billing_posts(slack)) == 1, what="the ticket posted")
    finally:
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running


async def test_start_up_names_the_missing_or_wrong_setting(
    slack: SlackStandIn, tmp_path: Path, slack_config_toml: Path
) -> None:
    """No app token, no signing secret, a refused token, a bad token or no [slack]: named."""
    settings = _settings(slack, tmp_path, slack_config_toml)
    config = load_config(settings.triage_config)
    with pytest.raises(UserError, match="SLACK_APP_TOKEN"):
        await run_slack(settings, config, http=False, port=0)
    with pytest.raises(UserError, match="SLACK_SIGNING_SECRET"):
        await run_slack(settings, config, http=True, port=0)
    refused = load_settings(
        environ={
            "SLACK_BOT_TOKEN": "xoxb-wrong",
            "SLACK_API_URL": slack.base_url,
            "SLACK_APP_TOKEN": APP_TOKEN,
        },
        dotenv_path=tmp_path / "no.env",
    )
    with pytest.raises(UserError, match="SLACK_BOT_TOKEN: Slack refused it \\(invalid_auth\\)"):
        await run_slack(refused, config, http=False, port=0)
    with pytest.raises(UserError, match="SLACK_BOT_TOKEN") as error:
        load_settings(environ={"SLACK_BOT_TOKEN": "xapp-secret-value"}, dotenv_path=tmp_path / "x")
    assert "secret-value" not in str(error.value)
    with pytest.raises(ConfigError, match="slack: missing"):
        await run_slack(settings, load_config(), http=False, port=0)


def test_a_bad_slack_section_fails_at_load_naming_the_field(
    tmp_path: Path, slack_config_toml: Path
) -> None:
    """A channel name instead of an id, or a team without a channel, names the field."""
    text = slack_config_toml.read_text(encoding="utf-8")
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace(f'intake_channels = ["{INTAKE}"]', 'intake_channels = ["#help"]'))
    with pytest.raises(ConfigError, match=r"slack\.intake_channels.*not a channel id"):
        load_config(bad)
    bad.write_text(text.replace("[slack.teams.support]", "[slack.teams.kitchen]"))
    with pytest.raises(ConfigError, match=r"slack\.teams\.kitchen.*unknown team"):
        load_config(bad)


@pytest.mark.slow  # end to end: `triage run` in the sandbox
def test_piping_a_message_into_run_shows_the_sandbox_routing_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`echo "I was charged twice this month" | triage run` routes it to billing in the sandbox."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.stdin", io.StringIO("I was charged twice this month\n"))
    assert main(["run"]) == 0
    out = capsys.readouterr().out
    assert "This is the sandbox" in out
    assert "SLACK_BOT_TOKEN" in out
    assert "[#intake] @customer: I was charged twice this month  (ticket #1)" in out
    billing = [line for line in out.splitlines() if line.startswith("[#billing]")]
    assert billing
    assert "category billing → team billing" in billing[0]
    assert billing[0].split()[1] in ("🟠", "🔴", "🟡", "🟢")
    assert "Draft reply" in out
    assert "End of input: the sandbox stops." in out


@pytest.mark.slow  # end to end: `triage run` in the sandbox
def test_agents_actions_typed_into_the_sandbox(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Typed reactions, buttons and commands act as agents and customers in the sandbox."""
    monkeypatch.chdir(tmp_path)
    lines = [
        "I was charged twice this month",
        "/as customer :white_check_mark: #1",
        ":white_check_mark: #1",
        "/triage status #1",
        "/reply #1 thanks!",
        "/frobnicate #1",
        "/approve #7",
        "/triage oncall billing @oncall",
    ]
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(lines) + "\n"))
    assert main(["run"]) == 0
    out = capsys.readouterr().out
    assert "[only @customer sees, in #billing] Only agents can approve the reply." in out
    assert "[#intake > thread of ticket #1] Hi there," in out
    assert "✅ *Sent by @agent*" in out
    assert "[only @agent sees] Ticket #1: routed" in out
    assert "[#billing > thread of ticket #1] The customer replied in their thread:" in out
    assert "@customer: /frobnicate #1  (ticket #2)" in out  # no action: a customer's words
    assert "no ticket '#7'" in out
    assert "On-call for billing is now @oncall." in out  # @oncall sent as Slack escapes it


async def test_with_an_llm_the_decision_and_draft_come_from_the_model(
    tmp_path: Path, openai_server: OpenAIStandIn, embedder: CachingEmbedder
) -> None:
    """With a model configured, the real openai client decides the team and writes the draft."""
    config: TriageConfig = load_config()
    answer = {
        "category": "account",
        "priority": "high",
        "team": "account_management",
        "sentiment": "frustrated",
        "confidence": 0.95,
        "needs_human": False,
        "reason": "Cannot sign in.",
    }

    def scripted(body: dict[str, Any]) -> Scripted:
        if body.get("response_format"):
            return reply_json(answer)
        # A draft that passes the checks: the configured greeting and sign-off, no promise.
        return reply_text(
            "Hi there,\n\nThanks, we are checking your sign-in now and will update you here.\n\n"
            "The support team"
        )

    openai_server.default = scripted
    client = build_openai_client(
        api_key="test", base_url=openai_server.url, timeout_seconds=5, max_retries=0
    )
    llm = LLMClassifier(client=client, config=config)
    try:
        async with running_bot(tmp_path, embedder, config=config, llm=llm) as bot:
            ticket_id = await bot.new_ticket("I can't get in since this morning, jane@example.com")
            ticket = await bot.store.ticket(ticket_id)
            assert ticket is not None
            assert ticket.decision is not None
            assert ticket.decision.source == "llm_cheap"
            (post,) = bot.posts_in("account_management")
            assert "we are checking your sign-in" in json.dumps(post["blocks"])
            layers = [call.layer for call in await bot.store.layer_calls(ticket_id)]
            assert layers == ["local", "llm_cheap"]
    finally:
        await client.close()
    assert openai_server.requests
    assert all("jane@example.com" not in json.dumps(r) for r in openai_server.requests)


@pytest.mark.slow  # end to end: a `triage run` subprocess
async def test_sigterm_stops_the_bot_cleanly(
    slack: SlackStandIn, tmp_path: Path, slack_config_toml: Path
) -> None:
    """`triage run --http` stopped by SIGTERM exits 0, says so, and leaves the database closed."""
    port = _free_port()
    database = tmp_path / "bot.sqlite3"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": slack.base_url,
        "TRIAGE_CONFIG": str(slack_config_toml),
        "TRIAGE_DB": str(database),
    }
    bot = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "run",
        "--http",
        "--port",
        str(port),
        env=env,
        cwd=tmp_path,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        # Until it serves (the model loaded, the database open): stopped earlier, it would be
        # stopped while starting, which is not what this test is about.
        await until(
            lambda: _serving_or_ended(port, lambda: bot.returncode is not None),
            what=f"serving on port {port}",
        )
        assert bot.returncode is None
        bot.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(bot.communicate(), timeout=HANG_GUARD_SECONDS)
    finally:
        if bot.returncode is None:
            bot.kill()
            await bot.wait()
    assert bot.returncode == 0
    assert b"triage: stopped" in stderr
    # Closed: SQLite folded its write-ahead log back into the file.
    assert not await asyncio.to_thread(Path(f"{database}-wal").exists)
