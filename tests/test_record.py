"""`triage run --record FILE` and `TRIAGE_DB`: what the bot sent, and where it keeps its store."""

from __future__ import annotations

import asyncio
import io
import json
import socket
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError

from bot.__main__ import main
from bot.app import build_client
from bot.record import CallRecorder
from bot.sandbox.shell import open_sandbox
from bot.sandbox.slack_api import SlackStandIn
from bot.services import open_store
from bot.settings import load_settings, redact_database_url
from routing.cascade import build_pipeline
from routing.config import load_config
from routing.embedding import MiniLMEmbedder
from routing.embedding_cache import CachingEmbedder
from routing.errors import UserError
from routing.store.postgres import PostgresStore

KEYS = ["method", "channel", "text", "thread_ts", "user", "ok"]


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_the_record_has_every_call_the_stand_in_answered_in_order(tmp_path: Path) -> None:
    """Each Web API call (the desk's and a listener's views.open) is one line, as Slack saw it."""
    config = load_config()
    pipeline = build_pipeline(config, embedder=CachingEmbedder(MiniLMEmbedder.load()))
    settings = load_settings(environ={}, dotenv_path=tmp_path / "no.env")
    record = tmp_path / "calls.jsonl"
    with CallRecorder(record) as recorder:
        async with open_sandbox(
            settings,
            config,
            out=io.StringIO(),
            database=tmp_path / "db.sqlite3",
            pipeline=pipeline,
            recorder=recorder,
        ) as sandbox:
            for line in ("I was charged twice this month", "/edit #1 Refunded, sorry!"):
                await sandbox.line(line)
                await sandbox.desk.drain()
            answered = [
                call
                for call in sandbox.slack_api.calls
                if call.method != "response_url" and call.http_status != 429
            ]
    lines = _lines(record)
    assert all(list(line)[:6] == KEYS for line in lines)
    assert [(line["method"], line["channel"], line["text"], line["ok"]) for line in lines] == [
        (call.method, call.args.get("channel"), call.args.get("text"), call.ok) for call in answered
    ]
    methods = [line["method"] for line in lines]
    assert "views.open" in methods  # a listener's own client, which Bolt makes per request
    (post,) = [
        line
        for line in lines
        if line["method"] == "chat.postMessage" and line["channel"] == "C0BILLING"
    ]
    assert "I was charged twice this month" in post["text"]
    assert post["thread_ts"] is None
    assert "blocks" not in post


async def test_a_refused_call_is_recorded_with_slacks_error(tmp_path: Path) -> None:
    """A call Slack refuses is a line with ok false and its error code, and still raises."""
    record = tmp_path / "calls.jsonl"
    async with SlackStandIn(bot_token="xoxb-record", channels={"C0KNOWN": "known"}) as slack:
        with CallRecorder(record) as recorder:
            client = build_client(token="xoxb-record", base_url=slack.base_url, recorder=recorder)
            await client.chat_postMessage(channel="C0KNOWN", text="hello", thread_ts=None)
            with pytest.raises(SlackApiError):
                await client.chat_postEphemeral(channel="C0NOWHERE", user="U0NOBODY", text="hi")
    first, second = _lines(record)
    assert first == {
        "method": "chat.postMessage",
        "channel": "C0KNOWN",
        "text": "hello",
        "thread_ts": None,
        "user": None,
        "ok": True,
    }
    assert second == {
        "method": "chat.postEphemeral",
        "channel": "C0NOWHERE",
        "text": "hi",
        "thread_ts": None,
        "user": "U0NOBODY",
        "ok": False,
        "error": "channel_not_found",
    }


@pytest.mark.parametrize("name", ["missing/calls.jsonl", "."])
def test_a_record_file_that_cannot_be_opened_is_one_error_line_not_a_traceback(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    name: str,
) -> None:
    """`run --record` into a missing folder or onto a folder stops with one line and status 2."""
    monkeypatch.chdir(tmp_path)
    for variable in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "TRIAGE_DB", "TRIAGE_CONFIG"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr("sys.stdin", io.StringIO("I was charged twice\n"))
    assert main(["run", "--record", str(tmp_path / name)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"triage: error: --record {tmp_path / name}: cannot append to it (")
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1


def test_the_sandbox_keeps_its_tickets_in_the_postgres_database_triage_db_names(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    postgres_url: str,
) -> None:
    """`echo "I was charged twice" | TRIAGE_DB=postgresql://... triage run` routes it there."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TRIAGE_DB", postgres_url)
    monkeypatch.setattr("sys.stdin", io.StringIO("I was charged twice\n"))
    record = tmp_path / "calls.jsonl"
    assert main(["run", "--record", str(record)]) == 0
    out = capsys.readouterr().out
    assert "[#intake] @customer: I was charged twice  (ticket #1)" in out
    assert not list(tmp_path.glob("*.sqlite3"))

    async def stored() -> tuple[str | None, str | None, int]:
        async with await PostgresStore.open(postgres_url) as store:
            ticket = await store.ticket(1)
            assert ticket is not None
            assert ticket.decision is not None
            return ticket.status, ticket.decision.category, len(await store.posts(1))

    assert asyncio.run(stored()) == ("routed", "billing", 1)
    posts = [
        line
        for line in _lines(record)
        if line["method"] == "chat.postMessage" and line["channel"] == "C0BILLING"
    ]
    assert len(posts) == 1
    assert posts[0]["ok"] is True


def test_triage_db_takes_a_path_or_a_postgres_url_kept_secret(tmp_path: Path) -> None:
    """TRIAGE_DB is a path or a postgresql:// URL, whose password never shows in the settings."""
    url = "postgresql://triage:s3cret-pw@db.internal:5432/triage"
    settings = load_settings(environ={"TRIAGE_DB": url}, dotenv_path=tmp_path / "no.env")
    assert settings.database_location(tmp_path / "default") == url
    assert "s3cret-pw" not in repr(settings)
    assert "s3cret-pw" not in str(settings.model_dump())
    path = load_settings(environ={"TRIAGE_DB": "data/t.sqlite3"}, dotenv_path=tmp_path / "no")
    assert path.database_location(tmp_path / "default") == Path("data/t.sqlite3")
    unset = load_settings(environ={}, dotenv_path=tmp_path / "no.env")
    assert unset.database_location(tmp_path / "default") == tmp_path / "default"


def test_a_database_url_is_shown_with_its_password_redacted() -> None:
    """A password in the user part or in a password= parameter is shown as ***."""
    assert (
        redact_database_url("postgresql://bot:pw1@db:5432/triage?sslmode=require&password=pw2")
        == "postgresql://bot:***@db:5432/triage?sslmode=require&password=***"
    )
    assert redact_database_url("postgresql://bot@db/triage") == "postgresql://bot@db/triage"


async def test_a_database_that_refuses_the_connection_names_the_setting_not_the_password() -> None:
    """An unreachable PostgreSQL stops the start with TRIAGE_DB named and the password hidden."""
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql://bot:hunter2@127.0.0.1:{port}/triage?connect_timeout=5"
    with pytest.raises(UserError) as raised:
        await open_store(url)
    message = str(raised.value)
    assert message.startswith(
        f"setting TRIAGE_DB: cannot open postgresql://bot:***@127.0.0.1:{port}"
    )
    assert "hunter2" not in message
    assert "\n" not in message  # psycopg's hint lines joined: one line for the operator
