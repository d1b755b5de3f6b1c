"""The stand-in's workspace: who the bot is, channels, people, user groups, messages, threads.

What the method handlers read and change, and what a test sets up (add_channel, add_message) and
looks at afterwards (messages, thread). Ids are issued here as Slack issues them: message ts
unique and increasing, trigger ids that expire.
"""

from __future__ import annotations

import copy
import itertools
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from bot.sandbox.slack_api.wire import TS_PATTERN, SlackError, format_ts, ts_micros


class WorkspaceState:
    """One in-memory Slack workspace with the bot installed in it."""

    def __init__(
        self,
        *,
        team_id: str,
        team_name: str,
        team_domain: str,
        bot_user_id: str,
        bot_id: str,
        bot_name: str,
        app_id: str,
        trigger_ttl: float,
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
    ) -> None:
        self.team_id = team_id
        self.team_name = team_name
        self.team_domain = team_domain
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.bot_name = bot_name
        self.app_id = app_id
        # How long a trigger_id stays usable (seconds of clock).
        self.trigger_ttl = trigger_ttl
        self.clock = clock
        self.wall_clock = wall_clock

        self.channels: dict[str, str] = {}
        self.users: dict[str, str] = {}
        self.usergroups: dict[str, list[str]] = {}
        self._dm_of_user: dict[str, str] = {}
        self.user_of_dm: dict[str, str] = {}
        # Group DMs (conversations.open with 2 to 8 users): id -> the people in it, in order.
        self.group_dms: dict[str, tuple[str, ...]] = {}
        self.history: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
        self.by_ts: dict[tuple[str, str], dict[str, Any]] = {}
        self.replies: defaultdict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        self.ephemerals: list[dict[str, Any]] = []
        self.views: list[dict[str, Any]] = []
        self._last_ts = 0
        self._ids = itertools.count(1)
        self.triggers: dict[str, float] = {}
        self.used_triggers: set[str] = set()

    def next_id(self) -> int:
        """A number never handed out before (trigger ids, view ids, response URLs)."""
        return next(self._ids)

    # -- set up by a test ----------------------------------------------------------------------

    def add_channel(self, channel_id: str, name: str) -> None:
        """Create a public channel the bot is in."""
        self.channels[channel_id] = name.removeprefix("#")

    def add_user(self, user_id: str, display_name: str) -> None:
        """Create a human member of the workspace."""
        self.users[user_id] = display_name

    def add_usergroup(self, group_id: str, members: Sequence[str]) -> None:
        """Create a user group ("S...") with these member user ids."""
        self.usergroups[group_id] = list(members)

    def new_trigger_id(self) -> str:
        """Issue a trigger_id, as Slack does with a slash command or an interaction."""
        trigger = f"{self.next_id()}.{int(self.wall_clock())}.{uuid.uuid4().hex[:24]}"
        self.triggers[trigger] = self.clock()
        return trigger

    def add_message(
        self,
        channel: str,
        *,
        user: str,
        text: str,
        thread_ts: str | None = None,
        subtype: str | None = None,
        files: Sequence[Mapping[str, Any]] | None = None,
        ts: str | None = None,
        fields: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Store a message as if a human posted it; returns it (with its ts) for the event.

        fields are set on the message as they are (blocks, attachments, a malformed text).
        """
        channel = self._known_channel(channel)
        if user not in self.users:
            raise ValueError(f"unknown user {user!r}: add_user() it first")
        if ts is not None:
            if not TS_PATTERN.match(ts) or (channel, ts) in self.by_ts:
                raise ValueError(f"ts {ts!r} is malformed or already used in {channel}")
            self._last_ts = max(self._last_ts, ts_micros(ts))
        message: dict[str, Any] = {
            "type": "message",
            "user": user,
            "text": text,
            "ts": ts or self.next_ts(),
            "team": self.team_id,
            "client_msg_id": str(uuid.uuid4()),
        }
        if subtype is not None:
            message["subtype"] = subtype
        if files is not None:
            message["files"] = [dict(file) for file in files]
        if fields is not None:
            message.update(fields)
        if thread_ts is not None:
            parent = self.by_ts.get((channel, thread_ts))
            if parent is None or parent.get("thread_ts", parent["ts"]) != parent["ts"]:
                raise ValueError(f"no top-level message {thread_ts} in {channel}")
            message["thread_ts"] = thread_ts
        self.store(channel, message)
        return copy.deepcopy(message)

    def edit_message(self, channel: str, ts: str, *, text: str) -> dict[str, Any]:
        """Change a person's message as if they edited it; returns it for the event."""
        message = self.by_ts.get((self._known_channel(channel), ts))
        if message is None:
            raise ValueError(f"no message {ts} in {channel}")
        message["text"] = text
        message["edited"] = {"user": message.get("user"), "ts": self.next_ts()}
        return copy.deepcopy(message)

    def _known_channel(self, channel: str) -> str:
        if channel in self.channels or channel in self.user_of_dm or channel in self.group_dms:
            return channel
        if channel in self.users:
            return self.dm_with(channel)
        raise ValueError(f"unknown channel {channel!r}: add_channel() it first")

    # -- looked at by a test -------------------------------------------------------------------

    def messages(self, channel: str) -> list[dict[str, Any]]:
        """Every message of a channel (thread replies included), in the order posted."""
        return copy.deepcopy(self.history.get(channel, []))

    def thread(self, channel: str, ts: str) -> list[dict[str, Any]]:
        """A thread's parent then its replies, oldest first; empty if there is no such message."""
        message = self.by_ts.get((channel, ts))
        if message is None:
            return []
        parent = self.by_ts.get((channel, message.get("thread_ts", ts)), message)
        return copy.deepcopy([parent, *self.replies.get((channel, parent["ts"]), [])])

    # -- used by the method handlers -----------------------------------------------------------

    def channel(self, value: Any, *, by_name: bool = False, user_dm: bool = False) -> str:
        """A channel id the workspace knows; names and user ids only where the method allows."""
        key = str(value)
        if key in self.channels or key in self.user_of_dm or key in self.group_dms:
            return key
        if user_dm and key in self.users:
            return self.dm_with(key)
        if by_name:
            name = key.removeprefix("#")
            for channel_id, channel_name in self.channels.items():
                if channel_name == name:
                    return channel_id
        raise SlackError("channel_not_found")

    def dm_with(self, user_id: str) -> str:
        """The bot's DM channel with a user, opened the first time it is asked for."""
        channel = self._dm_of_user.get(user_id)
        if channel is None:
            channel = f"D{user_id[1:]}"
            self._dm_of_user[user_id] = channel
            self.user_of_dm[channel] = user_id
        return channel

    def has_dm_with(self, user_id: str) -> bool:
        """Whether the bot's DM with a user is open already."""
        return user_id in self._dm_of_user

    def group_dm_with(self, people: Sequence[str]) -> str:
        """The bot's group DM with these people (the same people: the same one)."""
        members = tuple(people)
        for channel, present in self.group_dms.items():
            if sorted(present) == sorted(members):
                return channel
        channel = f"G0MPDM{self.next_id()}"
        self.group_dms[channel] = members
        return channel

    def next_ts(self) -> str:
        """A new message ts: unique and increasing within the workspace."""
        # Slack's ts: epoch seconds with 6 decimals, unique and increasing within the workspace.
        self._last_ts = max(int(self.wall_clock() * 1_000_000), self._last_ts + 1)
        return format_ts(self._last_ts)

    def store(self, channel: str, message: dict[str, Any]) -> None:
        """Keep a message in its channel (and its thread, whose summary Slack keeps current)."""
        self.history[channel].append(message)
        self.by_ts[(channel, message["ts"])] = message
        parent_ts = message.get("thread_ts")
        parent = self.by_ts.get((channel, parent_ts)) if parent_ts else None
        if parent is None or parent is message:
            return
        replies = self.replies[(channel, parent["ts"])]
        replies.append(message)
        message["parent_user_id"] = parent.get("user")
        # Slack marks the parent as a thread root and keeps its reply summary current.
        reply_users = list(dict.fromkeys(reply.get("user") for reply in replies))
        parent.update(
            thread_ts=parent["ts"],
            reply_count=len(replies),
            reply_users=reply_users,
            reply_users_count=len(reply_users),
            latest_reply=message["ts"],
        )

    @staticmethod
    def render(message: dict[str, Any], *, with_metadata: bool) -> dict[str, Any]:
        """A stored message as a method returns it (metadata only when asked for)."""
        rendered = copy.deepcopy(message)
        if not with_metadata:
            rendered.pop("metadata", None)
        return rendered
