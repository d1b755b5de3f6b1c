"""A readable transcript of what the bot sends to the Slack stand-in."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping
from typing import Any, TextIO

from bot.sandbox.slack_api import RecordedCall
from bot.terminal import show_emoji

_LINK = re.compile(r"<([^<>|]+)\|([^<>]*)>")
_BARE = re.compile(r"<([^<>]+)>")


class Transcript:
    """Prints each message the bot posts, updates, pages or DMs, as a person would read it."""

    def __init__(
        self, out: TextIO, *, channels: Mapping[str, str], users: Mapping[str, str]
    ) -> None:
        self._out = out
        self._channels = dict(channels)
        self._users = dict(users)
        # The bot's IM ids (conversations.open) -> whose DM each is.
        self._dm_users: dict[str, str] = {}
        # (channel, ts) of each team post -> its ticket number, to label thread notes.
        self._tickets: dict[tuple[str, str], int] = {}

    def add_user(self, user: str, name: str) -> None:
        """Show this user id as @name from now on."""
        self._users[user] = name

    def remember_ticket(self, channel: str, ts: str, ticket_id: int) -> None:
        """Label replies in this message's thread with its ticket number."""
        self._tickets[(channel, ts)] = ticket_id

    def say(self, line: str) -> None:
        """Print one line of the transcript."""
        self._out.write(line + "\n")
        self._out.flush()

    def on_call(self, call: RecordedCall) -> None:
        """The stand-in's hook: print the successful calls people would see."""
        if call.http_status != 200 or not call.response.get("ok"):
            if call.http_status == 429:
                self.say(f"   (Slack rate limit on {call.method}; the bot waits and retries)")
            else:
                error = call.response.get("error")
                self.say(f"   (Slack refused {call.method}: {error})")
            return
        handler = {
            "chat.postMessage": self._posted,
            "chat.update": self._updated,
            "chat.postEphemeral": self._ephemeral,
            "views.open": self._modal,
            "response_url": self._response,
            "conversations.open": self._opened,
        }.get(call.method)
        if handler is not None:
            handler(call.args, call.response)

    def _posted(self, args: Mapping[str, Any], response: Mapping[str, Any]) -> None:
        channel = str(args.get("channel", ""))
        metadata = _json_field(args.get("metadata"))
        payload = metadata.get("event_payload") if isinstance(metadata, dict) else None
        if isinstance(payload, dict) and "ticket_id" in payload:
            self._tickets[(str(response.get("channel")), str(response.get("ts")))] = int(
                payload["ticket_id"]
            )
        channel = self._dm_users.get(channel, channel)
        if channel.startswith(("U", "W")):
            where = f"DM to @{self._users.get(channel, channel)}"
        else:
            where = self._where(channel, args.get("thread_ts"))
        self._print(where, args)

    def _opened(self, args: Mapping[str, Any], response: Mapping[str, Any]) -> None:
        """Remember whose DM an IM id is (nothing is printed: a person sees no such call)."""
        opened = response.get("channel")
        user = str(args.get("users", ""))
        if isinstance(opened, dict) and user and "," not in user:
            self._dm_users[str(opened.get("id"))] = user

    def _updated(self, args: Mapping[str, Any], _response: Mapping[str, Any]) -> None:
        channel, ts = str(args.get("channel", "")), str(args.get("ts", ""))
        ticket = self._tickets.get((channel, ts))
        label = f"ticket #{ticket} updated" if ticket else "message updated"
        self._print(f"#{self._channel(channel)} · {label}", args)

    def _ephemeral(self, args: Mapping[str, Any], _response: Mapping[str, Any]) -> None:
        user = self._users.get(str(args.get("user")), str(args.get("user")))
        self._print(f"only @{user} sees, in #{self._channel(str(args.get('channel')))}", args)

    def _modal(self, args: Mapping[str, Any], _response: Mapping[str, Any]) -> None:
        view = _json_field(args.get("view"))
        title = view.get("title", {}).get("text", "") if isinstance(view, dict) else ""
        self.say(f"[modal opened] {title}")

    def _response(self, args: Mapping[str, Any], _response: Mapping[str, Any]) -> None:
        user = str(args.get("user"))
        self._print(f"only @{self._users.get(user, user)} sees", args)

    def _where(self, channel: str, thread_ts: object) -> str:
        name = f"#{self._channel(channel)}"
        if thread_ts is None:
            return name
        ticket = self._tickets.get((channel, str(thread_ts)))
        return f"{name} > thread of ticket #{ticket}" if ticket else f"{name} > thread"

    def _channel(self, channel: str) -> str:
        return self._channels.get(channel, channel)

    def _print(self, where: str, args: Mapping[str, Any]) -> None:
        blocks = _json_field(args.get("blocks"))
        lines = _block_lines(blocks) if isinstance(blocks, list) and blocks else []
        if not lines:
            lines = str(args.get("text", "")).splitlines() or [""]
        readable = [self.readable(line) for line in lines]
        self.say(f"[{where}] {readable[0]}")
        for line in readable[1:]:
            self.say(f"    {line}")

    def readable(self, mrkdwn: str) -> str:
        """Mentions as @name, channels as #name, links as their label, emoji as pictures."""

        def bare(match: re.Match[str]) -> str:
            inner = match.group(1)
            if inner.startswith("@"):
                return "@" + self._users.get(inner[1:], inner[1:])
            if inner.startswith("#"):
                return "#" + self._channel(inner[1:])
            if inner.startswith("!subteam^"):
                return "@" + inner.removeprefix("!subteam^")
            return inner

        text = _LINK.sub(lambda match: f"{match.group(2)} ({match.group(1)})", mrkdwn)
        text = _BARE.sub(bare, text)
        text = show_emoji(text)
        # Escaped customer text shows as typed (it was sent escaped; Slack shows it this way).
        return html.unescape(text)


def _json_field(value: object) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _block_lines(blocks: list[Any]) -> list[str]:
    lines: list[str] = []
    for block in blocks:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind in ("section", "header"):
            lines.extend(str(block.get("text", {}).get("text", "")).splitlines())
        elif kind == "context":
            lines.extend(str(element.get("text", "")) for element in block.get("elements", []))
        elif kind == "actions":
            labels = [str(e.get("text", {}).get("text", "")) for e in block.get("elements", [])]
            lines.append("[" + "] [".join(labels) + "]")
    return [line for line in lines if line.strip()]
