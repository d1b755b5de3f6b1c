"""Messages: chat.postMessage, chat.update, chat.postEphemeral, chat.getPermalink, reactions.add.

Message content is checked as Slack checks it (text, markdown_text, Block Kit, attachments,
metadata); posts are rate limited per channel and can be refused by an injected fault.
"""

from __future__ import annotations

import copy
from typing import Any
from urllib.parse import urlencode

from bot.sandbox import block_kit
from bot.sandbox.slack_api.faults import Faults, PostRateLimit
from bot.sandbox.slack_api.wire import (
    EMOJI_PATTERN,
    MAX_MARKDOWN_TEXT_CHARS,
    MAX_TEXT_CHARS,
    TS_PATTERN,
    Handler,
    SlackError,
    blank,
    flag,
    json_arg,
)
from bot.sandbox.slack_api.workspace import WorkspaceState


def message_content(args: dict[str, Any], *, update: bool = False) -> dict[str, Any]:
    """The message fields a chat.* call sets, after Slack's checks on them."""
    text = args.get("text")
    text = None if text is None else str(text)
    markdown = args.get("markdown_text")
    blocks = json_arg(args, "blocks", "invalid_blocks_format")
    attachments = json_arg(args, "attachments", "invalid_attachments")
    metadata = json_arg(args, "metadata", "invalid_metadata_format")
    if markdown and (text or blocks):
        raise SlackError("markdown_text_conflict")
    if not (text or blocks or attachments or markdown):
        raise SlackError("no_text")
    if text and len(text) > MAX_TEXT_CHARS:
        raise SlackError("msg_too_long")
    if isinstance(markdown, str) and len(markdown) > MAX_MARKDOWN_TEXT_CHARS:
        raise SlackError("msg_too_long")
    fields: dict[str, Any] = {}
    if text is not None or not update:
        fields["text"] = text or ""
    if markdown:
        fields["text"] = str(markdown)
    if blocks is not None:
        if not isinstance(blocks, list):
            raise SlackError("invalid_blocks_format")
        errors = block_kit.message_block_errors(blocks)
        if errors:
            raise SlackError(
                "invalid_blocks",
                errors=errors,
                response_metadata={"messages": [f"[ERROR] {e}" for e in errors]},
            )
        fields["blocks"] = blocks
    if attachments is not None:
        if not isinstance(attachments, list):
            raise SlackError("invalid_attachments")
        if len(attachments) > 100:
            raise SlackError("too_many_attachments")
        fields["attachments"] = attachments
    if metadata is not None:
        error = block_kit.metadata_error(metadata)
        if error:
            raise SlackError(error)
        fields["metadata"] = metadata
    return fields


class ChatMethods:
    """The methods that post, change and react to messages."""

    def __init__(
        self, workspace: WorkspaceState, *, rate_limit: PostRateLimit, faults: Faults
    ) -> None:
        self._workspace = workspace
        self._rate_limit = rate_limit
        self._faults = faults

    def handlers(self) -> dict[str, Handler]:
        """Each method's handler, by its Web API name."""
        return {
            "chat.postMessage": self.post_message,
            "chat.update": self.update,
            "chat.postEphemeral": self.post_ephemeral,
            "chat.getPermalink": self.get_permalink,
            "reactions.add": self.add_reaction,
        }

    def post_message(self, args: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
        """chat.postMessage."""
        space = self._workspace
        channel = space.channel(args["channel"], by_name=True, user_dm=True)
        refused = self._faults.refusal(channel)
        if refused is not None:
            raise SlackError(refused)
        self._rate_limit.take(channel)
        fields = message_content(args)
        message: dict[str, Any] = {
            "type": "message",
            "user": space.bot_user_id,
            "bot_id": space.bot_id,
            "app_id": space.app_id,
            "team": space.team_id,
            **fields,
        }
        thread_ts = args.get("thread_ts")
        if not blank(thread_ts):
            thread_ts = str(thread_ts)
            if not TS_PATTERN.match(thread_ts):
                raise SlackError(
                    "invalid_thread_ts",
                    response_metadata={
                        "messages": [f"[ERROR] {thread_ts} is not a valid thread_ts"]
                    },
                )
            parent = space.by_ts.get((channel, thread_ts))
            if parent is None or parent.get("thread_ts", parent["ts"]) != parent["ts"]:
                # Slack answers ok and the reply is seen nowhere: flag it instead of failing.
                warnings.append("orphan_thread_ts")
            message["thread_ts"] = thread_ts
            if flag(args.get("reply_broadcast")):
                message["subtype"] = "thread_broadcast"
        for name in ("unfurl_links", "unfurl_media"):
            if name in args:
                message[name] = flag(args[name])
        message["ts"] = space.next_ts()
        space.store(channel, message)
        return {"channel": channel, "ts": message["ts"], "message": copy.deepcopy(message)}

    def update(self, args: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
        """chat.update: only the bot's own messages."""
        space = self._workspace
        channel = space.channel(args["channel"])
        message = space.by_ts.get((channel, str(args["ts"])))
        if message is None:
            raise SlackError("message_not_found")
        if message.get("user") != space.bot_user_id or message.get("bot_id") != space.bot_id:
            raise SlackError("cant_update_message")
        message.update(message_content(args, update=True))
        message["edited"] = {"user": space.bot_user_id, "ts": space.next_ts()}
        return {
            "channel": channel,
            "ts": message["ts"],
            "text": message.get("text", ""),
            "message": copy.deepcopy(message),
        }

    def post_ephemeral(self, args: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
        """chat.postEphemeral: seen by one user, never in history."""
        space = self._workspace
        channel = space.channel(args["channel"], by_name=True)
        user = str(args["user"])
        if user not in space.users:
            raise SlackError("user_not_in_channel")
        ephemeral = {"channel": channel, "user": user, **message_content(args)}
        if not blank(args.get("thread_ts")):
            ephemeral["thread_ts"] = str(args["thread_ts"])
        ephemeral["message_ts"] = space.next_ts()
        space.ephemerals.append(ephemeral)
        return {"message_ts": ephemeral["message_ts"]}

    def get_permalink(self, args: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
        """chat.getPermalink, shaped like Slack's (a thread reply's carries its thread)."""
        space = self._workspace
        channel = space.channel(args["channel"])
        message = space.by_ts.get((channel, str(args["message_ts"])))
        if message is None:
            raise SlackError("message_not_found")
        ts = message["ts"]
        link = f"https://{space.team_domain}.slack.com/archives/{channel}/p{ts.replace('.', '')}"
        thread_ts = message.get("thread_ts")
        if thread_ts and thread_ts != ts:
            link += "?" + urlencode({"thread_ts": thread_ts, "cid": channel})
        return {"channel": channel, "permalink": link}

    def add_reaction(self, args: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
        """reactions.add, as the bot: once per emoji and message."""
        space = self._workspace
        channel = space.channel(args["channel"])
        name = str(args["name"])
        if not EMOJI_PATTERN.match(name):
            raise SlackError("invalid_name")
        message = space.by_ts.get((channel, str(args["timestamp"])))
        if message is None:
            raise SlackError("message_not_found")
        reactions: list[dict[str, Any]] = message.setdefault("reactions", [])
        reaction = next((r for r in reactions if r["name"] == name), None)
        if reaction is None:
            reaction = {"name": name, "users": [], "count": 0}
            reactions.append(reaction)
        if space.bot_user_id in reaction["users"]:
            raise SlackError("already_reacted")
        reaction["users"].append(space.bot_user_id)
        reaction["count"] += 1
        return {}
