"""Which Slack messages are customers' messages: one rule for live events and for history."""

from __future__ import annotations

from typing import Any

from routing.desk import CustomerMessage
from routing.models import clean_text

# Message subtypes a person sends as a ticket (Slack gives plain messages no subtype).
TICKET_SUBTYPES = frozenset({None, "file_share", "thread_broadcast"})


def message_text(message: dict[str, Any]) -> str:
    """A message's text as the customer typed it, cleaned; anything but a string is no text.

    Slack sends a typed &, < and > as &amp;, &lt; and &gt; (its mentions and links stay in
    <...>): undone here, so the classifier reads "R&D" and a post shows it once, not "R&amp;amp;D"
    (bot/render escapes every text it sends).
    """
    text = message.get("text")
    if not isinstance(text, str):
        return ""
    return clean_text(text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"))


def customer_message(channel: str, message: dict[str, Any]) -> CustomerMessage | None:
    """A human's message as the desk takes it; None for bots, joins and other system messages."""
    if message.get("subtype") not in TICKET_SUBTYPES or message.get("bot_id"):
        return None
    user, ts = message.get("user"), message.get("ts")
    if not isinstance(user, str) or not isinstance(ts, str):
        return None
    return CustomerMessage(
        channel=channel,
        ts=ts,
        user=user,
        text=message_text(message),
        thread_ts=message.get("thread_ts"),
    )
