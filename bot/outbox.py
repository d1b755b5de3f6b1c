"""The desk's Outbox over Slack's Web API: how cards, notes, pages and replies reach people."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot import render
from bot.intake import customer_message
from routing.desk import CustomerMessage, DirectPage, Note, PostRef, TicketCard
from routing.errors import DeliveryRefusedError

logger = logging.getLogger(__name__)

# How far back to look for a ticket's post after a crash between posting and storing it.
HISTORY_LOOKBACK = 200
# At most this many intake messages are read back at start-up (5 pages of conversations.history).
CATCH_UP_LIMIT = 1000
CATCH_UP_PAGE = 200
# chat.postMessage's errors that no retry cures: someone must fix the channel or invite the bot.
PERMANENT_POST_ERRORS = frozenset(
    {"channel_not_found", "not_in_channel", "is_archived", "restricted_action"}
)


class SlackOutbox:
    """Implements routing.desk.Outbox with a real AsyncWebClient."""

    def __init__(
        self, client: AsyncWebClient, *, pace: Callable[[str], Awaitable[None]] | None = None
    ) -> None:
        self._client = client
        # Awaited before each post in a team channel (routing.desk.PostPacer.take_turn).
        self._pace = pace or _unpaced
        # Permalinks never change: ask Slack once per message.
        self._permalinks: dict[tuple[str, str], str] = {}
        # The bot's DM (IM) channel with each person, as conversations.open gave it.
        self._ims: dict[str, str] = {}

    async def post_card(self, card: TicketCard) -> PostRef:
        """Post a ticket in its team channel, with metadata that finds it again after a crash."""
        text, blocks = render.card_message(card)
        await self._pace(card.channel)
        try:
            response = await self._client.chat_postMessage(
                channel=card.channel,
                text=text,
                blocks=blocks,
                # Customer text may hold links: never unfurl them into the team channel.
                unfurl_links=False,
                unfurl_media=False,
                metadata={
                    "event_type": render.TICKET_METADATA,
                    "event_payload": {"ticket_id": card.ticket_id},
                },
            )
        except SlackApiError as error:
            code = error.response.get("error")
            if code in PERMANENT_POST_ERRORS:
                raise DeliveryRefusedError(card.channel, str(code)) from error
            raise
        return PostRef(channel=str(response["channel"]), ts=str(response["ts"]))

    async def update_card(self, post: PostRef, card: TicketCard) -> None:
        """Redraw a ticket post."""
        text, blocks = render.card_message(card)
        await self._client.chat_update(channel=post.channel, ts=post.ts, text=text, blocks=blocks)

    async def find_card(self, channel: str, ticket_id: int) -> PostRef | None:
        """A post of this ticket in the channel's recent history, by its metadata."""
        response = await self._client.conversations_history(
            channel=channel, limit=HISTORY_LOOKBACK, include_all_metadata=True
        )
        for message in response.get("messages") or []:
            metadata: dict[str, Any] = message.get("metadata") or {}
            payload = metadata.get("event_payload") or {}
            if (
                metadata.get("event_type") == render.TICKET_METADATA
                and payload.get("ticket_id") == ticket_id
            ):
                return PostRef(channel=channel, ts=str(message["ts"]))
        return None

    async def recent_messages(self, channel: str, oldest: str) -> list[CustomerMessage]:
        """Customers' messages in a channel after oldest, thread replies included, oldest first.

        At most CATCH_UP_LIMIT top-level messages (the newest), and the replies after oldest in
        their threads.
        """
        found: list[CustomerMessage] = []
        threads: list[str] = []
        cursor: str | None = None
        while len(found) < CATCH_UP_LIMIT:
            response = await self._client.conversations_history(
                channel=channel, oldest=oldest, limit=CATCH_UP_PAGE, cursor=cursor
            )
            for message in response.get("messages") or []:
                customer = customer_message(channel, message)
                if customer is not None and len(found) < CATCH_UP_LIMIT:
                    found.append(customer)
                    # History shows a thread's parent, not its replies: those are read apart.
                    if float(message.get("latest_reply") or 0) > float(oldest):
                        threads.append(customer.ts)
            cursor = (response.get("response_metadata") or {}).get("next_cursor")
            if not response.get("has_more") or not cursor:
                break
        else:  # the loop ran out of room, not of messages
            logger.warning(
                "more than %d messages in %s since %s: only the newest are read back",
                CATCH_UP_LIMIT,
                channel,
                oldest,
            )
        for thread_ts in threads:
            response = await self._client.conversations_replies(
                channel=channel, ts=thread_ts, oldest=oldest
            )
            for message in response.get("messages") or []:
                reply = customer_message(channel, message)
                if reply is not None and reply.is_thread_reply:
                    found.append(reply)
        # Slack lists newest first; tickets are numbered in the order customers wrote, and a
        # thread's parent comes before its replies.
        return sorted(found, key=lambda message: float(message.ts))

    async def message_at(self, channel: str, ts: str) -> CustomerMessage | None:
        """A customer's message by its ts (the first of the thread conversations.replies reads)."""
        response = await self._client.conversations_replies(channel=channel, ts=ts, limit=1)
        messages = response.get("messages") or []
        if not messages or messages[0].get("ts") != ts:
            return None
        return customer_message(channel, messages[0])

    async def post_note(self, post: PostRef, note: Note) -> None:
        """Say something in a ticket post's thread."""
        await self._pace(post.channel)
        await self._client.chat_postMessage(
            channel=post.channel,
            thread_ts=post.ts,
            text=render.note_text(note),
            unfurl_links=False,
            unfurl_media=False,
        )

    async def post_page(
        self, post: PostRef, note: Note, *, ticket_id: int, page: str, resume: bool = False
    ) -> str:
        """Page in a post's thread: one note per part (render.note_texts), each tagged.

        With resume, the parts already in the thread (by their metadata) are not posted again.
        """
        texts = render.note_texts(note)
        have = (await self._page_notes(post, ticket_id, page))[0] if resume else {}
        first = have.get(0)
        for part, text in enumerate(texts):
            if part in have:
                continue
            await self._pace(post.channel)
            response = await self._client.chat_postMessage(
                channel=post.channel,
                thread_ts=post.ts,
                text=text,
                unfurl_links=False,
                unfurl_media=False,
                metadata={
                    "event_type": render.PAGE_METADATA,
                    "event_payload": {
                        "ticket_id": ticket_id,
                        "page": page,
                        "part": part,
                        "parts": len(texts),
                    },
                },
            )
            if first is None:
                first = str(response["ts"])
        assert first is not None  # noqa: S101  # note_texts gives at least one text
        return first

    async def find_page(self, post: PostRef, *, ticket_id: int, page: str) -> str | None:
        """The first note's ts of a page whose every part is in the post's thread."""
        have, parts = await self._page_notes(post, ticket_id, page)
        return have.get(0) if have and len(have) >= parts else None

    async def _page_notes(
        self, post: PostRef, ticket_id: int, page: str
    ) -> tuple[dict[int, str], int]:
        """A page's notes in a thread, part -> ts, and how many parts it has."""
        response = await self._client.conversations_replies(
            channel=post.channel, ts=post.ts, limit=1000, include_all_metadata=True
        )
        have: dict[int, str] = {}
        parts = 1
        for message in response.get("messages") or []:
            metadata: dict[str, Any] = message.get("metadata") or {}
            payload = metadata.get("event_payload") or {}
            if (
                metadata.get("event_type") == render.PAGE_METADATA
                and payload.get("ticket_id") == ticket_id
                and payload.get("page") == page
            ):
                have[int(payload.get("part") or 0)] = str(message["ts"])
                parts = int(payload.get("parts") or 1)
        return have, parts

    async def update_note(self, note: PostRef, text: Note) -> None:
        """Replace the words of a note the bot posted."""
        await self._client.chat_update(
            channel=note.channel, ts=note.ts, text=render.note_text(text)
        )

    async def post_alert(self, channel: str, note: Note) -> None:
        """The operator's alert in the ops channel."""
        await self._client.chat_postMessage(
            channel=channel, text=render.note_text(note), unfurl_links=False, unfurl_media=False
        )

    async def direct_message(self, user: str, note: Note) -> None:
        """A DM from the bot (posting to a user id opens the app's DM with them)."""
        await self._client.chat_postMessage(
            channel=user, text=render.note_text(note), unfurl_links=False, unfurl_media=False
        )

    async def direct_page(self, user: str, page: DirectPage, *, key: str) -> None:
        """An on-call person's DM about a critical ticket, tagged with the ticket and page.

        Posted into the IM conversations.open gives (im:write), so find_direct_page can read
        it back there (im:history).
        """
        await self._client.chat_postMessage(
            channel=await self._im(user),
            text=render.page_text(page),
            unfurl_links=False,
            unfurl_media=False,
            metadata={
                "event_type": render.DIRECT_PAGE_METADATA,
                "event_payload": {"ticket_id": page.ticket_id, "page": key, "person": user},
            },
        )

    async def find_direct_page(self, user: str, *, ticket_id: int, key: str) -> bool:
        """Whether the bot's DM with user already holds this page of the ticket (its metadata)."""
        response = await self._client.conversations_history(
            channel=await self._im(user), limit=HISTORY_LOOKBACK, include_all_metadata=True
        )
        for message in response.get("messages") or []:
            metadata: dict[str, Any] = message.get("metadata") or {}
            payload = metadata.get("event_payload") or {}
            if (
                message.get("bot_id")
                and metadata.get("event_type") == render.DIRECT_PAGE_METADATA
                and payload.get("ticket_id") == ticket_id
                and payload.get("page") == key
            ):
                return True
        return False

    async def _im(self, user: str) -> str:
        """The bot's IM channel with a person (conversations.open, asked once per person)."""
        if user not in self._ims:
            response = await self._client.conversations_open(users=user)
            self._ims[user] = str(response["channel"]["id"])
        return self._ims[user]

    async def reply_to_customer(self, channel: str, thread_ts: str, text: str) -> str:
        """Post an approved reply in the customer's thread."""
        response = await self._client.chat_postMessage(
            channel=channel,
            thread_ts=thread_ts,
            text=render.reply_text(text),
            unfurl_links=False,
            unfurl_media=False,
        )
        return str(response["ts"])

    async def find_reply(self, channel: str, thread_ts: str, text: str) -> str | None:
        """The ts of the bot's reply with this text in a thread, if Slack has it."""
        sent = render.reply_text(text)
        response = await self._client.conversations_replies(channel=channel, ts=thread_ts)
        for message in response.get("messages") or []:
            if message.get("bot_id") and message.get("text") == sent:
                return str(message["ts"])
        return None

    async def permalink(self, channel: str, ts: str) -> str | None:
        """A link to a message; None (logged) when Slack will not give one."""
        key = (channel, ts)
        if key not in self._permalinks:
            try:
                response = await self._client.chat_getPermalink(channel=channel, message_ts=ts)
            except SlackApiError as error:
                logger.warning("no permalink for %s/%s: %s", channel, ts, error.response["error"])
                return None
            self._permalinks[key] = str(response["permalink"])
        return self._permalinks[key]

    async def tell(self, channel: str, user: str, text: str) -> None:
        """An ephemeral message only this user sees."""
        try:
            await self._client.chat_postEphemeral(channel=channel, user=user, text=text)
        except SlackApiError as error:
            # The person is not in the channel (e.g. reacted through a shared link): log only.
            logger.warning("could not tell %s in %s: %s", user, channel, error.response["error"])

    async def group_members(self, group: str) -> tuple[str, ...]:
        """The users of a user group."""
        response = await self._client.usergroups_users_list(usergroup=group)
        return tuple(str(user) for user in response.get("users") or [])


async def _unpaced(channel: str) -> None:
    """No pacing: every post goes at once (429s are retried as Slack asks)."""
