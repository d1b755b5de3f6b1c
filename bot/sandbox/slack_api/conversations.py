"""Conversations: history and replies paged as Slack pages them, and conversations.open (DMs)."""

from __future__ import annotations

import base64
from typing import Any

from bot.sandbox.slack_api.wire import (
    Handler,
    SlackError,
    blank,
    flag,
    int_arg,
    ts_bound,
    ts_micros,
)
from bot.sandbox.slack_api.workspace import WorkspaceState


class ConversationMethods:
    """The methods that read a channel's history and a thread."""

    def __init__(self, workspace: WorkspaceState) -> None:
        self._workspace = workspace

    def handlers(self) -> dict[str, Handler]:
        """Each method's handler, by its Web API name."""
        return {
            "conversations.history": self.history,
            "conversations.replies": self.replies,
            "conversations.open": self.open,
        }

    def open(self, args: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
        """conversations.open: the bot's DM with one user, or a group DM with 2 to 8 people.

        As Slack answers: an id already open says so (no_op, already_open); a channel that is
        no DM cannot be opened; with neither channel nor users, users_list_not_supplied.
        """
        space = self._workspace
        channel = args.get("channel")
        if not blank(channel):
            key = str(channel)
            if key in space.user_of_dm or key in space.group_dms:
                return {"no_op": True, "already_open": True, "channel": {"id": key}}
            if key in space.channels:
                raise SlackError("method_not_supported_for_channel_type")
            raise SlackError("channel_not_found")
        users = args.get("users")
        if blank(users):
            raise SlackError("users_list_not_supplied")
        people = [user.strip() for user in str(users).split(",") if user.strip()]
        if len(people) > 8:
            raise SlackError("too_many_users")
        if any(person not in space.users for person in people):
            raise SlackError("user_not_found")
        if len(people) == 1:
            (person,) = people
            existed = space.has_dm_with(person)
            opened = space.dm_with(person)
            answer: dict[str, Any] = {"channel": {"id": opened}}
            if flag(args.get("return_im")):
                answer["channel"] |= {"is_im": True, "user": person, "is_open": True}
            if existed:
                answer |= {"no_op": True, "already_open": True}
            return answer
        return {"channel": {"id": space.group_dm_with(people)}}

    def _page(
        self,
        messages: list[dict[str, Any]],
        args: dict[str, Any],
        *,
        default_limit: int,
        max_limit: int,
    ) -> dict[str, Any]:
        """One page of messages after cursor, with Slack's has_more / next_cursor."""
        cursor = args.get("cursor")
        if not blank(cursor):
            try:
                start = int(base64.urlsafe_b64decode(str(cursor)).decode().removeprefix("next:"))
            except ValueError:
                raise SlackError("invalid_cursor") from None
            messages = messages[start:]
        else:
            start = 0
        limit = int_arg(args.get("limit"), default_limit, low=1, high=max_limit)
        with_metadata = flag(args.get("include_all_metadata"))
        page = messages[:limit]
        answer: dict[str, Any] = {
            "messages": [self._workspace.render(m, with_metadata=with_metadata) for m in page],
            "has_more": len(messages) > limit,
        }
        if answer["has_more"]:
            token = base64.urlsafe_b64encode(f"next:{start + limit}".encode()).decode()
            answer["response_metadata"] = {"next_cursor": token}
        return answer

    def history(self, args: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
        """conversations.history: top-level messages, newest first, within oldest / latest."""
        space = self._workspace
        channel = space.channel(args["channel"])
        oldest = ts_bound(args.get("oldest"), "invalid_ts_oldest")
        latest = ts_bound(args.get("latest"), "invalid_ts_latest")
        inclusive = flag(args.get("inclusive"))
        shown = []
        for message in reversed(space.history.get(channel, [])):
            # History holds top-level messages (and broadcast replies), never thread replies.
            if message.get("thread_ts", message["ts"]) != message["ts"] and (
                message.get("subtype") != "thread_broadcast"
            ):
                continue
            at = ts_micros(message["ts"])
            if oldest is not None and (at < oldest or (at == oldest and not inclusive)):
                continue
            if latest is not None and (at > latest or (at == latest and not inclusive)):
                continue
            shown.append(message)
        return {**self._page(shown, args, default_limit=100, max_limit=999), "pin_count": 0}

    def replies(self, args: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
        """conversations.replies: a thread's parent, then its replies, oldest first."""
        space = self._workspace
        channel = space.channel(args["channel"])
        message = space.by_ts.get((channel, str(args["ts"])))
        if message is None:
            raise SlackError("thread_not_found")
        root = space.by_ts.get((channel, message.get("thread_ts", message["ts"])), message)
        thread = [root, *space.replies.get((channel, root["ts"]), [])]
        return self._page(thread, args, default_limit=1000, max_limit=1000)
