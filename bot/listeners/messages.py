"""Messages in intake channels: new tickets, thread replies, edits and deletions."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.intake import TICKET_SUBTYPES, customer_message, message_text
from bot.services import Services

logger = logging.getLogger(__name__)


def register(app: AsyncApp, services: Services) -> None:
    """Listen to every message event: the manifest subscribes message.channels/.groups."""
    desk = services.desk

    @app.event("message")
    async def on_message(event: dict[str, Any], body: dict[str, Any]) -> None:
        channel = event.get("channel")
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
