"""Slack-shaped payloads for the sandbox, the tests and the benchmark.

Shapes follow Slack's own examples (events in an `event_callback` envelope; slash commands as
form fields; interactivity as `payload=<json>`), so the app cannot tell them from Slack's.
"""

from __future__ import annotations

import itertools
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from slack_bolt.request.async_request import AsyncBoltRequest


@dataclass
class Workspace:
    """The ids every payload carries, and counters that make event ids unique."""

    team_id: str = "T0SANDBOX"
    api_app_id: str = "A0SANDBOX"
    bot_user_id: str = "U0BOT"
    # Where respond() answers go: the stand-in's /response/ endpoint.
    response_url_base: str = "http://127.0.0.1/response/"
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def next_id(self) -> int:
        """A number never handed out before by this workspace."""
        return next(self._ids)

    # --- events --------------------------------------------------------------------------

    def envelope(self, event: dict[str, Any], *, event_id: str | None = None) -> dict[str, Any]:
        """An Events API `event_callback` wrapping one event."""
        return {
            "token": "sandbox-verification-token",
            "team_id": self.team_id,
            "api_app_id": self.api_app_id,
            "event": event,
            "type": "event_callback",
            # Unique across runs too, like Slack's: a restarted bot keeps the ids it has seen.
            "event_id": event_id or f"Ev{secrets.token_hex(5).upper()}",
            "event_time": int(time.time()),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": self.team_id,
                    "user_id": self.bot_user_id,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
        }

    def message(
        self,
        *,
        channel: str,
        user: str,
        text: str,
        ts: str,
        thread_ts: str | None = None,
        subtype: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A `message` event (message.channels) as Slack sends it."""
        event: dict[str, Any] = {
            "type": "message",
            "channel": channel,
            "user": user,
            "text": text,
            "ts": ts,
            "event_ts": ts,
            "channel_type": "channel",
            "team": self.team_id,
        }
        if thread_ts is not None:
            event["thread_ts"] = thread_ts
            event["parent_user_id"] = user
        if subtype is not None:
            event["subtype"] = subtype
        event.update(extra or {})
        return event

    def message_changed(
        self, *, channel: str, user: str, ts: str, text: str, previous_text: str
    ) -> dict[str, Any]:
        """A `message_changed` event: an edit, or an unfurl when the text is the same."""
        now = f"{time.time():.6f}"
        return {
            "type": "message",
            "subtype": "message_changed",
            "hidden": True,
            "channel": channel,
            "ts": now,
            "event_ts": now,
            "channel_type": "channel",
            "message": {
                "type": "message",
                "user": user,
                "text": text,
                "ts": ts,
                "edited": {"user": user, "ts": now} if text != previous_text else None,
            },
            "previous_message": {"type": "message", "user": user, "text": previous_text, "ts": ts},
        }

    def message_deleted(self, *, channel: str, ts: str, previous_text: str) -> dict[str, Any]:
        """A `message_deleted` event."""
        now = f"{time.time():.6f}"
        return {
            "type": "message",
            "subtype": "message_deleted",
            "hidden": True,
            "channel": channel,
            "ts": now,
            "deleted_ts": ts,
            "event_ts": now,
            "channel_type": "channel",
            "previous_message": {"type": "message", "text": previous_text, "ts": ts},
        }

    def message_tombstoned(self, *, channel: str, ts: str, previous_text: str) -> dict[str, Any]:
        """A deleted message that has a thread: Slack sends `message_changed` to a tombstone."""
        event = self.message_changed(
            channel=channel,
            user="USLACKBOT",
            ts=ts,
            text="This message was deleted.",
            previous_text=previous_text,
        )
        event["message"].pop("edited")
        event["message"].update(subtype="tombstone", hidden=True, thread_ts=ts, reply_count=1)
        return event

    def reaction_added(
        self, *, user: str, reaction: str, channel: str, ts: str, item_user: str | None
    ) -> dict[str, Any]:
        """A `reaction_added` event on a message."""
        event: dict[str, Any] = {
            "type": "reaction_added",
            "user": user,
            "reaction": reaction,
            "item": {"type": "message", "channel": channel, "ts": ts},
            "event_ts": f"{time.time():.6f}",
        }
        if item_user is not None:
            event["item_user"] = item_user
        return event

    # --- commands and interactivity ------------------------------------------------------

    def slash_command(self, *, user: str, channel: str, text: str, trigger_id: str) -> str:
        """The form body Slack POSTs for `/triage ...`."""
        return urlencode(
            {
                "token": "sandbox-verification-token",
                "team_id": self.team_id,
                "team_domain": "sandbox",
                "channel_id": channel,
                "channel_name": "sandbox",
                "user_id": user,
                "user_name": user.lower(),
                "command": "/triage",
                "text": text,
                "api_app_id": self.api_app_id,
                "is_enterprise_install": "false",
                "response_url": f"{self.response_url_base}{user}/{self.next_id()}",
                "trigger_id": trigger_id,
            }
        )

    def block_action(
        self,
        *,
        user: str,
        action_id: str,
        value: str,
        channel: str,
        message_ts: str,
        trigger_id: str,
    ) -> str:
        """The form body of a button press on a message (`payload=<json>`)."""
        payload = {
            "type": "block_actions",
            "user": {"id": user, "username": user.lower(), "team_id": self.team_id},
            "api_app_id": self.api_app_id,
            "token": "sandbox-verification-token",
            "container": {"type": "message", "message_ts": message_ts, "channel_id": channel},
            "trigger_id": trigger_id,
            "team": {"id": self.team_id, "domain": "sandbox"},
            "channel": {"id": channel, "name": "sandbox"},
            "message": {"type": "message", "ts": message_ts},
            "response_url": f"{self.response_url_base}{user}/{self.next_id()}",
            "actions": [
                {
                    "type": "button",
                    "action_id": action_id,
                    "block_id": "ticket_actions",
                    "value": value,
                    "action_ts": f"{time.time():.6f}",
                }
            ],
        }
        return urlencode({"payload": json.dumps(payload)})

    def view_submission(self, *, user: str, view: dict[str, Any], values: dict[str, Any]) -> str:
        """The form body of a modal's submission, with the state the person entered."""
        submitted = {
            **view,
            "id": view.get("id", f"V{self.next_id():08d}"),
            "state": {"values": values},
        }
        payload = {
            "type": "view_submission",
            "team": {"id": self.team_id, "domain": "sandbox"},
            "user": {"id": user, "username": user.lower(), "team_id": self.team_id},
            "api_app_id": self.api_app_id,
            "token": "sandbox-verification-token",
            "trigger_id": f"{self.next_id()}.sandbox",
            "view": submitted,
        }
        return urlencode({"payload": json.dumps(payload)})


def socket_request(body: dict[str, Any] | str) -> AsyncBoltRequest:
    """A request as Socket Mode delivers it (no signature: the socket is authenticated)."""
    raw = body if isinstance(body, str) else json.dumps(body)
    return AsyncBoltRequest(body=raw, mode="socket_mode")
