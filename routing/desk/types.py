"""What the desk hands to the Slack edge and takes from it: the data, the refusals, the Outbox."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict

from routing.errors import TriageError
from routing.models import Decision, Escalation
from routing.records import ModelState


class ActionRefusedError(TriageError):
    """A person's action that cannot be done; `message` is what they are told."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotAllowedError(ActionRefusedError):
    """The person is not an agent of the team the action concerns."""


class StalePostError(ActionRefusedError):
    """A button or window that belongs to no ticket of this database (it was recreated)."""


# What an agent is told about a button from a post that is no ticket of this database.
STALE_POST = (
    "This post is not a ticket of this bot's current database (it was probably recreated),"
    " so nothing was done. Find the ticket with `/triage status` and a link to the"
    " customer's message."
)


class BadRequestError(ActionRefusedError):
    """The action names a ticket, team or label that does not exist, or is malformed."""


class PageNotSentError(TriageError):
    """Part of a page (a DM) did not reach Slack; the page is tried again."""


@dataclass(frozen=True)
class CustomerMessage:
    """A human's message in an intake channel, as the edge hands it over."""

    channel: str
    ts: str
    user: str | None
    text: str
    thread_ts: str | None = None

    @property
    def is_thread_reply(self) -> bool:
        """True for a reply in a thread (Slack gives replies no subtype, only a thread_ts)."""
        return self.thread_ts is not None and self.thread_ts != self.ts


class TicketCard(BaseModel):
    """Everything a team post shows about a ticket; the edge renders it."""

    model_config = ConfigDict(frozen=True)

    ticket_id: int
    team: str
    channel: str
    emoji: str
    # The customer's message redacted (routing.redact.shown_to_agents); the store keeps it whole.
    text: str
    # What the redaction took out of text that the customer must replace ("secret", "card"):
    # hidden here, but it was posted in the channel (routing.redact.credentials_posted).
    credentials: tuple[str, ...] = ()
    author: str | None
    permalink: str | None
    decision: Decision
    escalation: Escalation
    draft: str | None
    draft_status: Literal["pending", "sending", "sent", "rejected"] | None
    decided_by: str | None
    # Set when this post is no longer the live one.
    moved_to: str | None = None
    moved_by: str | None = None
    withdrawn: bool = False
    # Links to the same ticket's posts in other teams (close calls), as (team, permalink).
    related: tuple[tuple[str, str], ...] = ()
    # A multi-issue message: the customer's words that are this team's part.
    part: str | None = None
    # The message's language (ISO 639-1), and whether its draft is an English template anyway.
    language: str | None = None
    english_draft: bool = False
    # What the post's buttons carry: the ticket's random public id (None: the ticket number).
    public_id: str | None = None
    # The model stage: "pending" while the card shows the local decision, "late" when the
    # model did not answer in time; None offline.
    model: ModelState | None = None


@dataclass(frozen=True)
class Note:
    """The bot's words (mrkdwn, never customer text), maybe quoting the customer (escaped)."""

    text: str
    # Customer text, redacted by the caller (routing.redact.shown_to_agents).
    quote: str | None = None
    mentions: tuple[str, ...] = ()
    # Phrases from the pipeline (escalation reasons) shown after the text, escaped: a reason
    # can carry a keyword or a label that came from customer text.
    details: tuple[str, ...] = ()


@dataclass(frozen=True)
class DirectPage:
    """A critical ticket's DM to an on-call person: what the ticket is, and where its post is."""

    ticket_id: int
    team: str
    priority: str
    emoji: str
    # The customer's user id (None when Slack gave none), and their message: the edge shows
    # its first line, escaped.
    customer: str | None
    text: str
    reasons: tuple[str, ...]
    # The team post's permalink.
    link: str | None


@dataclass(frozen=True)
class StatusReport:
    """A ticket's state for `/triage status`: the desk's lines, and the reasons apart.

    A reason can quote the customer (the words that tried to instruct the model), so the edge
    escapes the reasons; head and tail are the desk's own mrkdwn (mentions, channel links).
    """

    head: tuple[str, ...]
    reasons: tuple[str, ...]
    tail: tuple[str, ...]


@dataclass(frozen=True)
class PostRef:
    """Where a message is: channel and ts."""

    channel: str
    ts: str


class Outbox(Protocol):
    """How the desk reaches people; the Slack edge implements it."""

    async def post_card(self, card: TicketCard) -> PostRef:
        """Post a ticket in its team channel."""
        ...

    async def update_card(self, post: PostRef, card: TicketCard) -> None:
        """Replace a ticket post's content."""
        ...

    async def find_card(self, channel: str, ticket_id: int) -> PostRef | None:
        """A post of this ticket already in the channel (after a crash between post and store)."""
        ...

    async def recent_messages(self, channel: str, oldest: str) -> list[CustomerMessage]:
        """Customers' messages in a channel after oldest (a ts), oldest first."""
        ...

    async def message_at(self, channel: str, ts: str) -> CustomerMessage | None:
        """The customer's message at (channel, ts); None if it is none (a bot's, a join...)."""
        ...

    async def post_note(self, post: PostRef, note: Note) -> None:
        """Say something in a ticket post's thread."""
        ...

    async def post_page(
        self, post: PostRef, note: Note, *, ticket_id: int, page: str, resume: bool = False
    ) -> str:
        """Page in a ticket post's thread, tagged with the page's key; the first note's ts.

        Several notes when the mentions do not fit one (each with the words and the details);
        with resume, the notes of this page already in the thread are not posted again.
        """
        ...

    async def find_page(self, post: PostRef, *, ticket_id: int, page: str) -> str | None:
        """The first note's ts of a page whose notes are all in the post's thread, else None."""
        ...

    async def update_note(self, note: PostRef, text: Note) -> None:
        """Replace the words of a note the bot posted."""
        ...

    async def post_alert(self, channel: str, note: Note) -> None:
        """Tell the operator, in the ops channel, what failed and what to fix."""
        ...

    async def direct_message(self, user: str, note: Note) -> None:
        """Message one person directly."""
        ...

    async def direct_page(self, user: str, page: DirectPage, *, key: str) -> None:
        """Page one on-call person directly about a ticket, tagged with the page's key."""
        ...

    async def find_direct_page(self, user: str, *, ticket_id: int, key: str) -> bool:
        """Whether this page of the ticket is already in the bot's DM with user."""
        ...

    async def reply_to_customer(self, channel: str, thread_ts: str, text: str) -> str:
        """Post an approved reply in the customer's thread; returns its ts."""
        ...

    async def find_reply(self, channel: str, thread_ts: str, text: str) -> str | None:
        """The ts of the bot's reply with this text in the customer's thread, if it is there."""
        ...

    async def permalink(self, channel: str, ts: str) -> str | None:
        """A link to a message, or None if Slack will not give one."""
        ...

    async def tell(self, channel: str, user: str, text: str) -> None:
        """Tell one person something only they see (ephemeral)."""
        ...

    async def group_members(self, group: str) -> tuple[str, ...]:
        """The users in a user group."""
        ...
