"""Messages in intake channels: new tickets, thread replies, edits and deletions.

What the customer said is stored before Slack is acknowledged (a listener middleware runs
before Bolt's ack, in HTTP and Socket Mode alike): a new message as a ticket, a thread reply,
an edit's text, a deletion's withdrawal. An acknowledged message is a stored one; what follows
(notes in the team threads, a re-check, a redraw) runs after the ack. When the store refuses,
Slack gets a 503 (HTTP) or no ack (Socket Mode) within ACK_WRITE_SECONDS and delivers the event
again.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_bolt.response import BoltResponse

from bot.intake import TICKET_SUBTYPES, customer_message, message_text, valid_ts
from bot.services import Services
from routing.desk import Desk
from routing.errors import StoreUnavailableError

logger = logging.getLogger(__name__)

AfterAck = Callable[[], Awaitable[None]]


def register(app: AsyncApp, services: Services) -> None:
    """Listen to every message event: the manifest subscribes message.channels/.groups."""
    desk = services.desk

    async def store_first(
        body: dict[str, Any], context: AsyncBoltContext, next_: Callable[[], Awaitable[None]]
    ) -> BoltResponse | None:
        """What a customer said is stored before the ack; refused, no ack."""
        event = body.get("event") or {}
        channel = event.get("channel")
        if desk.is_intake(channel):
            assert isinstance(channel, str)  # noqa: S101  # is_intake matched a configured id
            try:
                context["after_ack"] = await _store(desk, channel, event)
            except StoreUnavailableError as error:
                logger.error(  # one line: the cause is in it, no traceback
                    "not acknowledged, Slack will deliver it again: %s", error
                )
                return BoltResponse(status=503, body="")
            context["stored"] = True
        await next_()
        return None

    @app.event("message", middleware=[store_first])
    async def on_message(
        event: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        after: AfterAck | None = context.get("after_ack")
        if after is None:
            if not context.get("stored"):
                # Other bots, joins, topic changes, other channels: acknowledged, never a ticket.
                logger.debug("ignored message subtype %s", event.get("subtype"))
            return  # stored before the ack, nothing more to do (redeliveries dedupe on ts)
        if await desk.first_delivery(body.get("event_id")):
            await after()


async def _store(desk: Desk, channel: str, event: dict[str, Any]) -> AfterAck | None:
    """Store what the event says the customer did; what to do after the ack, if anything."""
    subtype = event.get("subtype")
    if subtype in TICKET_SUBTYPES:
        # None for another bot's post, or a message rejected (and logged) as malformed.
        customer = customer_message(channel, event)
        if customer is None:
            return None
        if customer.is_thread_reply:
            return await desk.store_reply(customer)
        await desk.receive(customer)  # a new ticket, queued; its (channel, ts) dedupes
        return None
    if subtype == "message_changed":
        message = event.get("message")
        if not isinstance(message, dict) or not _edit_of_slacks_shape(channel, message):
            return None
        previous = event.get("previous_message")
        previous = previous if isinstance(previous, dict) else {}
        if message.get("bot_id"):
            return None
        if message.get("subtype") == "tombstone":
            # A deleted message that has a thread stays as a tombstone: a deletion.
            return await desk.store_deletion(channel, message["ts"])
        if message.get("subtype") not in TICKET_SUBTYPES:
            return None
        text = message_text(message)
        thread_ts = message.get("thread_ts")
        if thread_ts and thread_ts != message["ts"]:
            if text == message_text(previous):  # an unfurl changes nothing
                return None
            return await desk.store_reply_edit(channel, thread_ts, message["ts"], text)
        return await desk.store_edit(
            channel,
            message["ts"],
            text,
            message_text(previous) or None,
            edited_ts=_edited_ts(message),
        )
    if subtype == "message_deleted":
        deleted = event.get("deleted_ts") or (event.get("previous_message") or {}).get("ts")
        return await desk.store_deletion(channel, deleted) if deleted else None
    return None


def _edit_of_slacks_shape(channel: str, message: dict[str, Any]) -> bool:
    """An edited message as Slack sends one: a ts, a string text, a thread ts if any.

    Anything else changes nothing: read as no text, it would empty the ticket.
    """
    if "ts" not in message:
        return False
    thread_ts = message.get("thread_ts")
    if (
        valid_ts(message["ts"])
        and (thread_ts is None or valid_ts(thread_ts))
        and isinstance(message.get("text", ""), str)
    ):
        return True
    logger.warning("ignored an edit in %s: its message is not the shape Slack sends", channel)
    return False


def _edited_ts(message: Mapping[str, Any]) -> str | None:
    """The Slack ts of an edit (`edited.ts`), if it is one Slack could send: a number."""
    edited = message.get("edited")
    ts = edited.get("ts") if isinstance(edited, Mapping) else None
    if not isinstance(ts, str):
        return None
    try:
        number = float(ts)
    except ValueError:
        return None
    return ts if math.isfinite(number) else None
