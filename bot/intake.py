"""Which Slack messages are customers' messages: one rule for live events and for history."""

from __future__ import annotations

import logging
import re
from typing import Any, TypeGuard

from routing.desk import CustomerMessage
from routing.models import clean_text

logger = logging.getLogger(__name__)

# Message subtypes a person sends as a ticket (Slack gives plain messages no subtype;
# "me_message" is a person's `/me ...`, their own words like any other message).
TICKET_SUBTYPES = frozenset({None, "file_share", "thread_broadcast", "me_message"})
# Slack's message ts: epoch seconds, a dot, six digits. Anything else is no message of Slack's
# (the store orders tickets by it, and the start-up reads history back from it).
TS_PATTERN = re.compile(r"\d{10}\.\d{6}")
# A user id as Slack writes them.
USER_PATTERN = re.compile(r"[A-Z][A-Z0-9]+")


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
    user, ts, thread_ts = message.get("user"), message.get("ts"), message.get("thread_ts")
    if user is None and ts is None:
        return None  # no person's message at all (Slack's own notices have neither)
    if not valid_ts(ts) or (thread_ts is not None and not valid_ts(thread_ts)):
        # Rejected, said once: stored, it would sort after every real ticket and stop the
        # start-up's read-back (which counts from the newest ts). A number is no ts either.
        bad = ts if not valid_ts(ts) else thread_ts
        which = "ts" if bad is ts else "thread_ts"
        logger.warning(
            "rejected a message in %s: its %s is not Slack's (%.40r)", channel, which, bad
        )
        return None
    if not isinstance(user, str):
        logger.warning("rejected message %s in %s: it has no user id", ts, channel)
        return None
    if not USER_PATTERN.fullmatch(user):
        logger.warning("rejected message %s in %s: its user is not a Slack user id", ts, channel)
        return None
    return CustomerMessage(
        channel=channel,
        ts=ts,
        user=user,
        text=message_text(message),
        thread_ts=thread_ts,
    )


def valid_ts(ts: object) -> TypeGuard[str]:
    """True for a message ts as Slack writes them ("1700000000.000100")."""
    return isinstance(ts, str) and TS_PATTERN.fullmatch(ts) is not None
