"""Messages in intake channels: new tickets, thread replies, edits and deletions.

A new customer message is stored before Slack is acknowledged (a listener middleware runs
before Bolt's ack, in HTTP and Socket Mode alike): an acknowledged message is a stored ticket.
When the store refuses it, Slack gets a 503 (HTTP) or no ack (Socket Mode) and delivers the
event again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_bolt.response import BoltResponse

from bot.intake import TICKET_SUBTYPES, customer_message, message_text
from bot.services import Services
from routing.errors import StoreUnavailableError

logger = logging.getLogger(__name__)


def register(app: AsyncApp, services: Services) -> None:
    """Listen to every message event: the manifest subscribes message.channels/.groups."""
    desk = services.desk

    async def store_first(
        body: dict[str, Any], context: AsyncBoltContext, next_: Callable[[], Awaitable[None]]
    ) -> BoltResponse | None:
        """A new top-level message becomes a ticket before the ack; refused, no ack."""
        event = body.get("event") or {}
        channel = event.get("channel")
        top_level = event.get("thread_ts") in (None, event.get("ts"))
        if desk.is_intake(channel) and event.get("subtype") in TICKET_SUBTYPES and top_level:
            assert isinstance(channel, str)  # noqa: S101  # is_intake matched a configured id
            # None for another bot's post, or a message rejected (and logged) as malformed.
            customer = customer_message(channel, event)
            if customer is not None:
                try:
                    await desk.receive(customer)
                except StoreUnavailableError as error:
                    logger.error(  # one line: the cause is in it, no traceback
                        "not acknowledged, Slack will deliver it again: %s", error
                    )
                    return BoltResponse(status=503, body="")
            context["handled"] = True
        await next_()
        return None

    @app.event("message", middleware=[store_first])
    async def on_message(
        event: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        channel = event.get("channel")
        if context.get("handled"):
            return  # a new ticket, stored before the ack (its (channel, ts) dedupes redeliveries)
        if not desk.is_intake(channel) or not await desk.first_delivery(body.get("event_id")):
            return
        assert isinstance(channel, str)  # noqa: S101  # is_intake matched a configured id
        subtype = event.get("subtype")
        if subtype == "message_changed":
            message = event.get("message") or {}
            previous = event.get("previous_message") or {}
            if message.get("bot_id") or "ts" not in message:
                return
            if message.get("subtype") == "tombstone":
                # A deleted message that has a thread stays as a tombstone: a deletion.
                await desk.deleted(channel, message["ts"])
            elif message.get("subtype") in TICKET_SUBTYPES:
                text = message_text(message)
                thread_ts = message.get("thread_ts")
                if thread_ts and thread_ts != message["ts"]:
                    if text != message_text(previous):  # an unfurl changes nothing
                        await desk.reply_edited(channel, thread_ts, message["ts"], text)
                else:
                    await desk.edited(channel, message["ts"], text, message_text(previous) or None)
        elif subtype == "message_deleted":
            deleted = event.get("deleted_ts") or (event.get("previous_message") or {}).get("ts")
            if deleted:
                await desk.deleted(channel, deleted)
        elif (customer := customer_message(channel, event)) is not None:
            await desk.receive(customer)
        else:
            # Other bots, joins, topic changes...: acknowledged, never a ticket.
            logger.debug("ignored message subtype %s in %s", subtype, channel)
