"""Logs keep customers' text and tokens out: libraries stay at INFO unless a flag asks."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.slack_response import SlackResponse

from bot.__main__ import LIBRARY_LOGGERS, configure_logging
from bot.logs import LOG_FORMAT, WithheldMessageFormatter, describe
from bot.sandbox.slack_api import SlackStandIn
from bot.settings import load_settings

BOT_TOKEN = "xoxb-logging-test"
CHANNEL = "C0LOGGING"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in LIBRARY_LOGGERS}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, saved in levels.items():
        logging.getLogger(name).setLevel(saved)


def test_debug_level_keeps_libraries_at_info() -> None:
    """TRIAGE_LOG_LEVEL=DEBUG turns the bot's loggers to DEBUG, never the libraries'."""
    configure_logging(load_settings(environ={"TRIAGE_LOG_LEVEL": "debug"}))
    assert logging.getLogger("routing.desk").isEnabledFor(logging.DEBUG)
    for name in LIBRARY_LOGGERS:
        assert not logging.getLogger(name).isEnabledFor(logging.DEBUG), name
        assert logging.getLogger(name).isEnabledFor(logging.INFO), name


def test_a_quieter_level_applies_to_libraries_too() -> None:
    """TRIAGE_LOG_LEVEL=ERROR silences the libraries' warnings as well."""
    configure_logging(load_settings(environ={"TRIAGE_LOG_LEVEL": "ERROR"}))
    assert not logging.getLogger("slack_sdk").isEnabledFor(logging.WARNING)


def test_the_flag_lets_library_debug_through() -> None:
    """TRIAGE_LOG_LIBRARY_DEBUG=1 is the explicit way to see library payloads."""
    settings = load_settings(environ={"TRIAGE_LOG_LEVEL": "DEBUG", "TRIAGE_LOG_LIBRARY_DEBUG": "1"})
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET)
    configure_logging(settings)
    assert logging.getLogger("slack_sdk").isEnabledFor(logging.DEBUG)


async def test_a_posted_message_never_reaches_the_debug_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """At DEBUG, a real AsyncWebClient post logs neither the customer's text nor the token."""
    configure_logging(load_settings(environ={"TRIAGE_LOG_LEVEL": "DEBUG"}))
    caplog.set_level(logging.DEBUG)  # the root and its handler: only the loggers' own levels stop
    text = "My card 4111 1111 1111 1111 was charged twice"
    async with SlackStandIn(bot_token=BOT_TOKEN, channels={CHANNEL: "support"}) as slack:
        client = AsyncWebClient(token=BOT_TOKEN, base_url=slack.base_url)
        await client.chat_postMessage(channel=CHANNEL, text=text)
    assert slack.calls_to("chat.postMessage")
    assert "4111" not in caplog.text
    assert BOT_TOKEN not in caplog.text


def _raise_with_customer_text() -> None:
    text = "card 4111 1111 1111 1111 password: hunter2 \udcff"
    text.encode("utf-8")  # UnicodeEncodeError, whose message quotes the text


def test_a_traceback_keeps_its_frames_and_withholds_the_message() -> None:
    """A failure quoting the customer's text is logged by type and frames, not its message."""
    formatter = WithheldMessageFormatter(LOG_FORMAT)
    try:
        try:
            _raise_with_customer_text()
        except UnicodeEncodeError as inner:
            raise RuntimeError(f"while routing {inner.object!r}") from inner
    except RuntimeError:
        record = logging.LogRecord(
            "bot", logging.ERROR, __file__, 1, "failed", None, sys.exc_info()
        )
    formatted = formatter.format(record)
    assert "_raise_with_customer_text" in formatted
    assert "UnicodeEncodeError" in formatted
    assert "RuntimeError" in formatted
    assert "4111" not in formatted
    assert "hunter2" not in formatted


def test_slacks_error_code_is_kept() -> None:
    """A SlackApiError is described with Slack's error code, which quotes nobody."""
    response = SlackResponse(
        client=None,
        http_verb="POST",
        api_url="https://slack.com/api/chat.postMessage",
        req_args={},
        data={"ok": False, "error": "channel_not_found"},
        headers={},
        status_code=200,
    )
    error = SlackApiError("text: my card 4111", response)  # type: ignore[no-untyped-call]  # SDK
    assert describe(error).startswith("SlackApiError (channel_not_found)")
