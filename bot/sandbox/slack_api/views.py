"""Modals: views.open, with Slack's one-use, short-lived trigger ids and Block Kit limits."""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any

from bot.sandbox import block_kit
from bot.sandbox.slack_api.wire import (
    MAX_VIEW_BYTES,
    TRIGGER_PATTERN,
    Handler,
    SlackError,
    blank,
    flag,
    json_arg,
    missing_field,
)
from bot.sandbox.slack_api.workspace import WorkspaceState


class ViewMethods:
    """The method that opens a modal."""

    def __init__(self, workspace: WorkspaceState) -> None:
        self._workspace = workspace

    def handlers(self) -> dict[str, Handler]:
        """Each method's handler, by its Web API name."""
        return {"views.open": self.open}

    def open(self, args: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
        """views.open: a fresh trigger, used once, opens a valid view."""
        space = self._workspace
        trigger = args.get("trigger_id") or args.get("interactivity_pointer")
        if blank(trigger):
            raise SlackError("invalid_arguments", **missing_field("trigger_id"))
        trigger = str(trigger)
        if not TRIGGER_PATTERN.match(trigger):
            raise SlackError("invalid_trigger_id")
        if trigger in space.used_triggers:
            raise SlackError("exchanged_trigger_id")
        issued = space.triggers.get(trigger)
        # Slack cannot tell a trigger it never issued from one it forgot: both are expired.
        if issued is None or space.clock() - issued > space.trigger_ttl:
            raise SlackError("expired_trigger_id")
        view = json_arg(args, "view", "invalid_arguments")
        errors = block_kit.view_errors(view)
        if errors:
            raise SlackError(
                "invalid_arguments",
                response_metadata={"messages": [f"[ERROR] {e}" for e in errors]},
            )
        if len(json.dumps(view)) > MAX_VIEW_BYTES:
            raise SlackError("view_too_large")
        space.used_triggers.add(trigger)
        view_id = f"V{space.next_id():08d}"
        opened = {
            "id": view_id,
            "team_id": space.team_id,
            "type": view["type"],
            "title": view["title"],
            "submit": view.get("submit"),
            "close": view.get("close"),
            "blocks": view["blocks"],
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "external_id": view.get("external_id", ""),
            "state": {"values": {}},
            "hash": f"{int(space.wall_clock())}.{uuid.uuid4().hex[:8]}",
            "clear_on_close": flag(view.get("clear_on_close")),
            "notify_on_close": flag(view.get("notify_on_close")),
            "previous_view_id": None,
            "root_view_id": view_id,
            "app_id": space.app_id,
            "app_installed_team_id": space.team_id,
            "bot_id": space.bot_id,
        }
        space.views.append(opened)
        return {"view": copy.deepcopy(opened)}
