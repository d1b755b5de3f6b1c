"""The Slack Web API stand-in, exercised through the real slack_sdk AsyncWebClient."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import pytest
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from bot.sandbox.slack_api import SlackStandIn
from tests.timekeeping import HANG_GUARD_SECONDS, ManualClock, until

BOT_TOKEN = "xoxb-sandbox"
APP_TOKEN = "xapp-sandbox"
CHANNELS = {"C0INTAKE": "intake", "C0BILLING": "billing"}
USERS = {"U0ALICE": "Alice Smith", "U0AGENT": "Agent Bob"}
GROUPS = {"S0BILLING": ["U0AGENT"]}
# Slack's 3 s for an ack is its rule, not these tests': a loaded machine may take longer.
PATIENT = HANG_GUARD_SECONDS


@pytest.fixture
def clock() -> ManualClock:
    # The rate limiter and the trigger expiry read this clock, so no test depends on the
    # machine's speed.
    return ManualClock()


@pytest.fixture
async def slack(clock: ManualClock) -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn(
        app_token=APP_TOKEN, channels=CHANNELS, users=USERS, usergroups=GROUPS, clock=clock
    ) as server:
        yield server


@pytest.fixture
def client(slack: SlackStandIn) -> AsyncWebClient:
    return AsyncWebClient(token=BOT_TOKEN, base_url=slack.base_url)


async def refused(call: Awaitable[Any]) -> SlackApiError:
    with pytest.raises(SlackApiError) as caught:
        await call
    return caught.value


def section(text: str, **extra: Any) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}, **extra}


async def test_auth_test_returns_the_bot_identity(client: AsyncWebClient) -> None:
    """auth.test answers the team and the bot's user_id / bot_id, which Bolt reads."""
    response = await client.auth_test()
    assert response["team_id"] == "T0SANDBOX"
    assert response["user_id"] == "U0BOT"
    assert response["bot_id"] == "B0BOT"
    assert response["url"] == "https://sandbox.slack.com/"


async def test_a_post_is_stored_and_returned(slack: SlackStandIn, client: AsyncWebClient) -> None:
    """chat.postMessage stores the bot's message and returns it with channel and ts."""
    blocks = [section("*New ticket*")]
    response = await client.chat_postMessage(
        channel="C0INTAKE", text="New ticket", blocks=blocks, unfurl_links=False
    )
    assert response["channel"] == "C0INTAKE"
    message = response["message"]
    assert message["ts"] == response["ts"]
    assert (message["user"], message["bot_id"], message["text"]) == ("U0BOT", "B0BOT", "New ticket")
    assert message["blocks"] == blocks
    assert message["unfurl_links"] is False
    assert slack.messages("C0INTAKE") == [message]
    [call] = slack.calls_to("chat.postMessage")
    assert call.ok
    assert call.args["text"] == "New ticket"
    assert not call.missing_text


async def test_ts_is_slack_shaped_unique_and_increasing(client: AsyncWebClient) -> None:
    """Each post gets a new ts like "1700000000.000100", later than the one before."""
    first = await client.chat_postMessage(channel="C0INTAKE", text="one")
    second = await client.chat_postMessage(channel="C0INTAKE", text="two")
    assert first["ts"].count(".") == 1
    assert len(first["ts"].split(".")[1]) == 6
    assert float(second["ts"]) > float(first["ts"])


async def test_a_post_to_a_user_id_goes_to_a_dm_channel(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    """Posting to a user id opens a "D..." channel, as Slack does."""
    response = await client.chat_postMessage(channel="U0ALICE", text="hello")
    assert response["channel"].startswith("D")
    assert [m["text"] for m in slack.messages(response["channel"])] == ["hello"]


async def test_a_missing_channel_argument_is_refused(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    """A missing required argument gets Slack's error for it, naming the argument."""
    error = await refused(client.api_call("chat.postMessage", json={"text": "hi"}))
    assert error.response.status_code == 200
    assert error.response["error"] == "channel_not_found"
    assert error.response["response_metadata"]["messages"] == [
        "[ERROR] missing required field: channel"
    ]
    assert slack.messages("C0INTAKE") == []


async def test_a_missing_argument_without_a_specific_error_is_invalid_arguments(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    """views.open without a view answers invalid_arguments naming `view`."""
    error = await refused(
        client.api_call("views.open", json={"trigger_id": slack.new_trigger_id()})
    )
    assert error.response["error"] == "invalid_arguments"
    assert "missing required field: view" in error.response["response_metadata"]["messages"][0]


async def test_an_unknown_channel_is_channel_not_found(client: AsyncWebClient) -> None:
    """Posting to a channel the workspace does not have answers channel_not_found."""
    error = await refused(client.chat_postMessage(channel="C0NOPE", text="hi"))
    assert error.response["error"] == "channel_not_found"


async def test_no_text_and_no_blocks_is_no_text(client: AsyncWebClient) -> None:
    """A post with neither text nor blocks answers no_text."""
    error = await refused(client.api_call("chat.postMessage", json={"channel": "C0INTAKE"}))
    assert error.response["error"] == "no_text"


async def test_blocks_without_text_are_accepted_but_flagged(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    """Blocks without a top-level text pass, as in Slack, but the call records missing_text."""
    with pytest.warns(UserWarning, match="top-level `text` argument is missing"):
        await client.chat_postMessage(channel="C0INTAKE", blocks=[section("hi")])
    [call] = slack.calls_to("chat.postMessage")
    assert call.ok
    assert call.missing_text
    assert "missing_text" in call.warnings


async def test_51_blocks_are_invalid_blocks(client: AsyncWebClient) -> None:
    """A message holds at most 50 blocks."""
    blocks = [section(f"line {i}") for i in range(51)]
    error = await refused(client.chat_postMessage(channel="C0INTAKE", text="t", blocks=blocks))
    assert error.response["error"] == "invalid_blocks"
    assert error.response["errors"] == ["no more than 50 items allowed [json-pointer:/blocks]"]


async def test_a_section_text_of_3001_chars_is_invalid_blocks(client: AsyncWebClient) -> None:
    """Section text is at most 3,000 characters."""
    await client.chat_postMessage(channel="C0INTAKE", text="t", blocks=[section("x" * 3000)])
    error = await refused(
        client.chat_postMessage(channel="C0INTAKE", text="t", blocks=[section("x" * 3001)])
    )
    assert error.response["error"] == "invalid_blocks"
    assert error.response["errors"] == [
        "must be less than 3001 characters [json-pointer:/blocks/0/text/text]"
    ]


async def test_a_button_text_of_76_chars_is_invalid_blocks(client: AsyncWebClient) -> None:
    """Button text is plain_text of at most 75 characters."""
    button = {
        "type": "button",
        "action_id": "approve",
        "text": {"type": "plain_text", "text": "y" * 76},
    }
    blocks = [{"type": "actions", "elements": [button]}]
    error = await refused(client.chat_postMessage(channel="C0INTAKE", text="t", blocks=blocks))
    assert error.response["errors"] == [
        "must be less than 76 characters [json-pointer:/blocks/0/elements/0/text/text]"
    ]


async def test_a_duplicate_block_id_is_invalid_blocks(client: AsyncWebClient) -> None:
    """block_id must be unique within a message."""
    blocks = [section("a", block_id="same"), section("b", block_id="same")]
    error = await refused(client.chat_postMessage(channel="C0INTAKE", text="t", blocks=blocks))
    assert error.response["error"] == "invalid_blocks"
    assert "duplicate block_id: same" in error.response["errors"][0]


async def test_blocks_sent_as_a_json_string_are_validated_too(client: AsyncWebClient) -> None:
    """A form post may carry blocks as a JSON string; a malformed one is invalid_blocks_format."""
    error = await refused(
        client.api_call(
            "chat.postMessage",
            data={"channel": "C0INTAKE", "text": "t", "blocks": "[{not json"},
        )
    )
    assert error.response["error"] == "invalid_blocks_format"


async def test_text_over_40000_chars_is_msg_too_long(client: AsyncWebClient) -> None:
    """Top-level text longer than 40,000 characters answers msg_too_long."""
    error = await refused(client.chat_postMessage(channel="C0INTAKE", text="z" * 40_001))
    assert error.response["error"] == "msg_too_long"


async def test_update_of_an_unknown_ts_is_message_not_found(client: AsyncWebClient) -> None:
    """chat.update needs an existing message."""
    error = await refused(
        client.chat_update(channel="C0INTAKE", ts="1700000000.000100", text="new")
    )
    assert error.response["error"] == "message_not_found"


async def test_update_replaces_the_bots_message_but_not_a_humans(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    """chat.update edits the bot's own message; a human's is cant_update_message."""
    posted = await client.chat_postMessage(channel="C0INTAKE", text="old")
    await client.chat_update(channel="C0INTAKE", ts=posted["ts"], text="new")
    assert [m["text"] for m in slack.messages("C0INTAKE")] == ["new"]
    human = slack.add_message("C0INTAKE", user="U0ALICE", text="my printer is on fire")
    error = await refused(client.chat_update(channel="C0INTAKE", ts=human["ts"], text="x"))
    assert error.response["error"] == "cant_update_message"


async def test_permalink_of_a_thread_reply_names_the_thread(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    """A reply's permalink carries thread_ts and cid, as Slack's does."""
    parent = slack.add_message("C0INTAKE", user="U0ALICE", text="help")
    reply = await client.chat_postMessage(channel="C0INTAKE", text="on it", thread_ts=parent["ts"])
    link = await client.chat_getPermalink(channel="C0INTAKE", message_ts=reply["ts"])
    path = reply["ts"].replace(".", "")
    assert link["permalink"] == (
        f"https://sandbox.slack.com/archives/C0INTAKE/p{path}?thread_ts={parent['ts']}&cid=C0INTAKE"
    )
    top = await client.chat_getPermalink(channel="C0INTAKE", message_ts=parent["ts"])
    assert "?" not in top["permalink"]


async def test_replies_list_the_parent_then_the_replies(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    """conversations.replies answers the parent then its replies, oldest first."""
    parent = slack.add_message("C0INTAKE", user="U0ALICE", text="help")
    slack.add_message("C0INTAKE", user="U0ALICE", text="please", thread_ts=parent["ts"])
    await client.chat_postMessage(channel="C0INTAKE", text="on it", thread_ts=parent["ts"])
    replies = await client.conversations_replies(channel="C0INTAKE", ts=parent["ts"])
    assert [m["text"] for m in replies["messages"]] == ["help", "please", "on it"]
    assert replies["messages"][0]["reply_count"] == 2
    missing = await refused(client.conversations_replies(channel="C0INTAKE", ts="1.000001"))
    assert missing.response["error"] == "thread_not_found"


async def test_a_reply_to_an_unknown_thread_is_accepted_but_flagged(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    """Slack accepts a thread_ts that matches no message; the call records orphan_thread_ts."""
    await client.chat_postMessage(channel="C0INTAKE", text="lost", thread_ts="1700000000.000100")
    [call] = slack.calls_to("chat.postMessage")
    assert call.ok
    assert call.warnings == ("orphan_thread_ts",)
    history = await client.conversations_history(channel="C0INTAKE")
    assert history["messages"] == []


async def test_views_open_needs_a_fresh_unused_trigger(
    slack: SlackStandIn, client: AsyncWebClient, clock: ManualClock
) -> None:
    """views.open refuses unknown, reused and stale triggers, and returns the view with an id."""
    view = {
        "type": "modal",
        "callback_id": "reroute",
        "title": {"type": "plain_text", "text": "Reroute ticket"},
        "submit": {"type": "plain_text", "text": "Move"},
        "blocks": [section("Where to?")],
    }
    unknown = await refused(client.views_open(trigger_id="123.456.abcdef", view=view))
    assert unknown.response["error"] == "expired_trigger_id"
    trigger = slack.new_trigger_id()
    opened = await client.views_open(trigger_id=trigger, view=view)
    assert opened["view"]["id"].startswith("V")
    assert opened["view"]["callback_id"] == "reroute"
    assert slack.views == [opened["view"]]
    reused = await refused(client.views_open(trigger_id=trigger, view=view))
    assert reused.response["error"] == "exchanged_trigger_id"
    stale = slack.new_trigger_id()
    clock.advance(3.5)
    expired = await refused(client.views_open(trigger_id=stale, view=view))
    assert expired.response["error"] == "expired_trigger_id"


async def test_a_modal_title_over_24_chars_is_refused(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    """Modal title, submit and close are plain_text of at most 24 characters."""
    view = {
        "type": "modal",
        "title": {"type": "plain_text", "text": "t" * 25},
        "blocks": [],
    }
    error = await refused(client.views_open(trigger_id=slack.new_trigger_id(), view=view))
    assert error.response["error"] == "invalid_arguments"
    assert error.response["response_metadata"]["messages"] == [
        "[ERROR] must be less than 25 characters [json-pointer:/view/title/text]"
    ]


async def test_posts_over_the_channel_rate_get_429_with_retry_after(
    clock: ManualClock,
) -> None:
    """Past the burst a channel's posts get 429 + Retry-After; other channels are unaffected."""
    async with SlackStandIn(
        channels=CHANNELS, post_rate_per_second=1.0, post_burst=2, clock=clock
    ) as slack:
        client = AsyncWebClient(token=BOT_TOKEN, base_url=slack.base_url)
        await client.chat_postMessage(channel="C0INTAKE", text="1")
        await client.chat_postMessage(channel="C0INTAKE", text="2")
        error = await refused(client.chat_postMessage(channel="C0INTAKE", text="3"))
        assert error.response.status_code == 429
        assert error.response.headers["Retry-After"] == "1"
        assert error.response["error"] == "ratelimited"
        await client.chat_postMessage(channel="C0BILLING", text="elsewhere")
        clock.advance(1.0)
        await client.chat_postMessage(channel="C0INTAKE", text="3 again")
    assert [m["text"] for m in slack.messages("C0INTAKE")] == ["1", "2", "3 again"]
    assert [c.http_status for c in slack.calls_to("chat.postMessage")] == [200] * 2 + [429] + [
        200
    ] * 2


async def test_the_sdk_rate_limit_handler_retries_and_the_post_arrives(
    clock: ManualClock,
) -> None:
    """With AsyncRateLimitErrorRetryHandler the client waits Retry-After and the post lands."""
    async with SlackStandIn(
        channels=CHANNELS, post_rate_per_second=1.0, post_burst=1, clock=clock
    ) as slack:
        client = AsyncWebClient(
            token=BOT_TOKEN,
            base_url=slack.base_url,
            retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=2)],
        )
        await client.chat_postMessage(channel="C0INTAKE", text="first")
        started = time.monotonic()
        second = asyncio.create_task(client.chat_postMessage(channel="C0INTAKE", text="second"))
        await until(
            lambda: len(slack.calls_to("chat.postMessage")) == 2, what="the second post answered"
        )
        # Refused (the clock has not moved, so no token came back); the client is waiting.
        assert [c.http_status for c in slack.calls_to("chat.postMessage")] == [200, 429]
        clock.advance(1.0)  # the second that Retry-After asked for
        response = await second
        waited = time.monotonic() - started
    assert response["ok"]
    assert [c.http_status for c in slack.calls_to("chat.postMessage")] == [200, 429, 200]
    assert [m["text"] for m in slack.messages("C0INTAKE")] == ["first", "second"]
    # A lower bound only (a loaded machine can only wait longer): the client slept Retry-After.
    assert waited >= 1.0


async def test_forced_rate_limit_and_failure_apply_once(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    """rate_limit_next and fail_next answer the next call of the method only."""
    slack.rate_limit_next("users.info", retry_after=7)
    slack.fail_next("users.info", error="internal_error", status=500)
    limited = await refused(client.users_info(user="U0ALICE"))
    assert (limited.response.status_code, limited.response.headers["Retry-After"]) == (429, "7")
    failed = await refused(client.users_info(user="U0ALICE"))
    assert (failed.response.status_code, failed.response["error"]) == (500, "internal_error")
    assert (await client.users_info(user="U0ALICE"))["ok"]


async def test_users_info_and_usergroup_members(client: AsyncWebClient) -> None:
    """users.info and usergroups.users.list answer known ids and refuse unknown ones."""
    user = (await client.users_info(user="U0ALICE"))["user"]
    assert user["id"] == "U0ALICE"
    assert user["is_bot"] is False
    assert user["profile"]["display_name"] == "Alice Smith"
    assert (await refused(client.users_info(user="U0NOBODY"))).response["error"] == "user_not_found"
    members = await client.usergroups_users_list(usergroup="S0BILLING")
    assert members["users"] == ["U0AGENT"]
    unknown = await refused(client.usergroups_users_list(usergroup="S0NONE"))
    assert unknown.response["error"] == "no_such_subteam"


async def test_json_body_is_ignored_by_methods_that_do_not_take_json(
    client: AsyncWebClient,
) -> None:
    """users.info reads no JSON body (its reference says so), so the user is missing."""
    error = await refused(client.api_call("users.info", json={"user": "U0ALICE"}))
    assert error.response["error"] == "user_not_found"


async def test_history_is_newest_first_top_level_with_metadata_on_request(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    """conversations.history lists top-level messages newest first; metadata only if asked."""
    metadata = {"event_type": "ticket_routed", "event_payload": {"ticket_id": 7}}
    parent = await client.chat_postMessage(channel="C0INTAKE", text="ticket", metadata=metadata)
    await client.chat_postMessage(channel="C0INTAKE", text="reply", thread_ts=parent["ts"])
    slack.add_message("C0INTAKE", user="U0ALICE", text="another")
    plain = await client.conversations_history(channel="C0INTAKE")
    assert [m["text"] for m in plain["messages"]] == ["another", "ticket"]
    assert "metadata" not in plain["messages"][1]
    assert plain["has_more"] is False
    full = await client.conversations_history(channel="C0INTAKE", include_all_metadata=True)
    assert full["messages"][1]["metadata"] == metadata
    page = await client.conversations_history(channel="C0INTAKE", limit=1)
    assert page["has_more"] is True
    rest = await client.conversations_history(
        channel="C0INTAKE", cursor=page["response_metadata"]["next_cursor"]
    )
    assert [m["text"] for m in rest["messages"]] == ["ticket"]


async def test_ephemerals_are_kept_apart_from_history(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    """chat.postEphemeral returns message_ts and never shows in the channel's history."""
    response = await client.chat_postEphemeral(channel="C0INTAKE", user="U0AGENT", text="psst")
    assert response["message_ts"]
    assert [(e["user"], e["text"]) for e in slack.ephemerals] == [("U0AGENT", "psst")]
    assert slack.messages("C0INTAKE") == []
    error = await refused(client.chat_postEphemeral(channel="C0INTAKE", user="U0X", text="x"))
    assert error.response["error"] == "user_not_in_channel"


async def test_reactions_are_recorded_once(slack: SlackStandIn, client: AsyncWebClient) -> None:
    """reactions.add marks an existing message; the same reaction twice is already_reacted."""
    message = slack.add_message("C0INTAKE", user="U0ALICE", text="help")
    await client.reactions_add(channel="C0INTAKE", timestamp=message["ts"], name="eyes")
    [stored] = slack.messages("C0INTAKE")
    assert stored["reactions"] == [{"name": "eyes", "users": ["U0BOT"], "count": 1}]
    again = await refused(
        client.reactions_add(channel="C0INTAKE", timestamp=message["ts"], name="eyes")
    )
    assert again.response["error"] == "already_reacted"
    missing = await refused(
        client.reactions_add(channel="C0INTAKE", timestamp="1700000000.000001", name="eyes")
    )
    assert missing.response["error"] == "message_not_found"


async def test_a_bad_or_missing_token_is_refused(slack: SlackStandIn) -> None:
    """An unknown token answers invalid_auth, none at all not_authed, and both are recorded."""
    bad = AsyncWebClient(token="xoxb-wrong", base_url=slack.base_url)
    assert (await refused(bad.auth_test())).response["error"] == "invalid_auth"
    anonymous = AsyncWebClient(base_url=slack.base_url)
    assert (await refused(anonymous.auth_test())).response["error"] == "not_authed"
    app_level = AsyncWebClient(token=APP_TOKEN, base_url=slack.base_url)
    wrong_kind = await refused(app_level.chat_postMessage(channel="C0INTAKE", text="x"))
    assert wrong_kind.response["error"] == "not_allowed_token_type"
    assert [c.error for c in slack.calls] == [
        "invalid_auth",
        "not_authed",
        "not_allowed_token_type",
    ]


async def test_an_unknown_method_is_unknown_method(client: AsyncWebClient) -> None:
    """A method the stand-in does not serve answers unknown_method."""
    error = await refused(client.api_call("chat.meMessage", json={"channel": "C0INTAKE"}))
    assert error.response["error"] == "unknown_method"


async def test_every_call_reaches_on_call_listeners(
    slack: SlackStandIn, client: AsyncWebClient
) -> None:
    """on_call sees each recorded call, failures included, in order."""
    seen: list[str] = []
    slack.on_call(lambda call: seen.append(f"{call.method}:{call.ok}"))
    await client.auth_test()
    await refused(client.chat_postMessage(channel="C0NOPE", text="x"))
    assert seen == ["auth.test:True", "chat.postMessage:False"]


async def test_a_burst_from_concurrent_tasks_keeps_every_message() -> None:
    """Concurrent posts (rate limit off) all land with unique, increasing ts."""
    async with SlackStandIn(channels=CHANNELS, post_rate_per_second=math.inf) as slack:
        client = AsyncWebClient(token=BOT_TOKEN, base_url=slack.base_url)

        async def poster(worker: int) -> None:
            for n in range(50):
                await client.chat_postMessage(channel="C0INTAKE", text=f"{worker}-{n}")

        await asyncio.gather(*(poster(worker) for worker in range(8)))
    stored = slack.messages("C0INTAKE")
    assert len(stored) == 400
    assert len({m["text"] for m in stored}) == 400
    timestamps = [float(m["ts"]) for m in stored]
    assert timestamps == sorted(timestamps)
    assert len(set(timestamps)) == 400


async def test_socket_mode_envelope_round_trip_with_the_sdk_client(slack: SlackStandIn) -> None:
    """An envelope reaches slack_sdk's aiohttp SocketModeClient and its ack comes back."""
    received: list[SocketModeRequest] = []

    async def on_request(client: AsyncBaseSocketModeClient, request: SocketModeRequest) -> None:
        received.append(request)
        await client.send_socket_mode_response(SocketModeResponse(envelope_id=request.envelope_id))

    socket_client = SocketModeClient(
        app_token=APP_TOKEN, web_client=AsyncWebClient(base_url=slack.base_url)
    )
    socket_client.socket_mode_request_listeners.append(on_request)
    try:
        await socket_client.connect()  # type: ignore[no-untyped-call]  # slack_sdk is untyped
        event = {"type": "event_callback", "event_id": "Ev1", "event": {"type": "app_mention"}}
        ack = await slack.send_envelope(
            "events_api",
            event,
            retry_attempt=1,
            retry_reason="timeout",
            connect_timeout=PATIENT,
            ack_timeout=PATIENT,
        )
    finally:
        await socket_client.close()  # type: ignore[no-untyped-call]
    [request] = received
    assert ack == {"envelope_id": request.envelope_id}
    assert request.payload == event
    assert (request.type, request.retry_attempt, request.retry_reason) == (
        "events_api",
        1,
        "timeout",
    )
    assert request.accepts_response_payload is False
    assert slack.calls_to("apps.connections.open")[0].ok


async def test_bolt_socket_mode_handler_acks_a_command_with_a_payload(
    slack: SlackStandIn,
) -> None:
    """Bolt's AsyncSocketModeHandler answers a slash command; the ack carries its response."""
    app = AsyncApp(client=AsyncWebClient(token=BOT_TOKEN, base_url=slack.base_url))

    @app.command("/triage")
    async def triage(ack: AsyncAck) -> None:
        await ack(text="Triage is listening")

    handler = AsyncSocketModeHandler(app, APP_TOKEN)
    command = {
        "command": "/triage",
        "text": "help",
        "team_id": "T0SANDBOX",
        "channel_id": "C0INTAKE",
        "user_id": "U0AGENT",
        "trigger_id": slack.new_trigger_id(),
        "response_url": "http://127.0.0.1:9/response",
    }
    try:
        await handler.connect_async()  # type: ignore[no-untyped-call]  # Bolt is untyped here
        ack = await slack.send_envelope(
            "slash_commands", command, connect_timeout=PATIENT, ack_timeout=PATIENT
        )
        await slack.request_reconnect(reconnect_timeout=PATIENT)
        again = await slack.send_envelope(
            "slash_commands", command, connect_timeout=PATIENT, ack_timeout=PATIENT
        )
    finally:
        await handler.close_async()  # type: ignore[no-untyped-call]
    assert ack["payload"] == {"text": "Triage is listening"}
    assert again["payload"] == {"text": "Triage is listening"}
    assert len(slack.calls_to("apps.connections.open")) == 2


async def test_the_method_reference_is_the_packaged_copy() -> None:
    """The stand-in reads Slack's reference from the bot package, not from /work/shared."""
    from importlib import resources

    methods = resources.files("bot.sandbox").joinpath("reference", "methods")
    names = sorted(entry.name for entry in methods.iterdir() if entry.name.endswith(".json"))
    assert len(names) == 13
    assert "chat.postMessage.json" in names


async def test_a_late_answer_posts_the_message_and_the_client_times_out(
    slack: SlackStandIn,
) -> None:
    """answer_late: Slack has the message, the client gives up waiting; the next call is normal."""
    impatient = AsyncWebClient(token=BOT_TOKEN, base_url=slack.base_url, timeout=1)
    slack.answer_late("chat.postMessage", when=lambda args: args.get("text") == "late")
    with pytest.raises(asyncio.TimeoutError):
        await impatient.chat_postMessage(channel="C0BILLING", text="late")
    assert [m["text"] for m in slack.messages("C0BILLING")] == ["late"]
    await impatient.chat_postMessage(channel="C0BILLING", text="on time")
    assert [m["text"] for m in slack.messages("C0BILLING")] == ["late", "on time"]
    assert [args["text"] for _, args in slack.held] == ["late"]


async def test_a_call_never_answered_is_not_carried_out(slack: SlackStandIn) -> None:
    """never_answer: the call is held and lost, as if cut off before Slack got it."""
    impatient = AsyncWebClient(token=BOT_TOKEN, base_url=slack.base_url, timeout=1)
    slack.never_answer("chat.postMessage")
    with pytest.raises(asyncio.TimeoutError):
        await impatient.chat_postMessage(channel="C0BILLING", text="lost")
    assert slack.messages("C0BILLING") == []
    assert slack.calls_to("chat.postMessage") == []


# --- conversations.open and a DM's history ------------------------------------------------------


async def test_conversations_open_gives_the_dm_and_its_history_keeps_the_metadata(
    client: AsyncWebClient,
) -> None:
    """conversations.open opens the bot's DM (again: already_open); its history shows metadata."""
    opened = await client.conversations_open(users="U0ALICE")
    assert opened["channel"] == {"id": "D0ALICE"}
    assert "already_open" not in opened.data
    again = await client.conversations_open(users="U0ALICE", return_im=True)
    assert again["already_open"] is True
    assert again["channel"]["id"] == "D0ALICE"
    assert again["channel"]["is_im"] is True
    metadata = {"event_type": "triage_direct_page", "event_payload": {"ticket_id": 7}}
    await client.chat_postMessage(channel="D0ALICE", text="paged", metadata=metadata)
    history = await client.conversations_history(channel="D0ALICE", include_all_metadata=True)
    assert [(m["text"], m["metadata"]) for m in history["messages"]] == [("paged", metadata)]
    plain = await client.conversations_history(channel="D0ALICE")
    assert "metadata" not in plain["messages"][0]


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({}, "users_list_not_supplied"),
        ({"users": "U0NOBODY"}, "user_not_found"),
        ({"users": ",".join(f"U0P{n}" for n in range(9))}, "too_many_users"),
        ({"channel": "C0BILLING"}, "method_not_supported_for_channel_type"),
        ({"channel": "D0NOBODY"}, "channel_not_found"),
    ],
)
async def test_conversations_open_refuses_as_slack_does(
    client: AsyncWebClient, arguments: dict[str, str], error: str
) -> None:
    """conversations.open without users, with an unknown one, 9 people or a channel: refused."""
    # api_call: the client's conversations_open refuses to send no users at all by itself.
    failure = await refused(client.api_call("conversations.open", params=arguments))
    assert failure.response["error"] == error


async def test_a_token_without_the_im_scopes_can_neither_open_nor_read_a_dm(
    clock: ManualClock,
) -> None:
    """Without im:write, conversations.open is missing_scope; without im:history, a DM's history."""
    async with SlackStandIn(
        channels=CHANNELS, users=USERS, clock=clock, scopes=("chat:write", "channels:history")
    ) as slack:
        client = AsyncWebClient(token=BOT_TOKEN, base_url=slack.base_url)
        failure = await refused(client.conversations_open(users="U0ALICE"))
        assert (failure.response["error"], failure.response["needed"]) == (
            "missing_scope",
            "im:write",
        )
        await client.chat_postMessage(channel="U0ALICE", text="a DM by user id")
        failure = await refused(client.conversations_history(channel="D0ALICE"))
        assert (failure.response["error"], failure.response["needed"]) == (
            "missing_scope",
            "im:history",
        )
        history = await client.conversations_history(channel="C0INTAKE")
        assert history["messages"] == []
