"""What the desk's parts see of one another, where more than one part needs the same slice.

Each is a small Protocol a part is typed to, so a test hands it a fake; the desk (facade.py)
hands it the real part named beside each. A slice only one part needs is declared beside that
part instead (Intake's ThreadReplies, Pager's OnCall, WorkQueue's PageClaims, ...), except the
router's (PostPlacement, RoutingQueue, PageTrigger): it is the one part that ties the others
together, and its slices of them are here, beside theirs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from routing.desk.types import PostRef
from routing.desk.work_queue import ModelJob, Placing, Send
from routing.records import LeasedTicket, StoredPost, StoredTicket


class AgentLookup(Protocol):
    """Tells an agent's message from a customer's (routing.desk.agents.Agents is one)."""

    async def is_any_agent(self, user: str | None) -> bool:
        """True if user is an agent of any team."""
        ...


class AgentGate(Protocol):
    """Lets only agents act, and only on their teams' tickets (Agents is one)."""

    async def require_any_agent(self, user: str, action: str) -> None:
        """Refuse (and log) unless user is an agent of some team."""
        ...

    async def ticket_for_agent(self, ticket_id: int, user: str, action: str) -> StoredTicket:
        """The ticket, if user is an agent of a team that has it; else refused (and logged)."""
        ...


class CardPlacement(Protocol):
    """Moves and redraws a ticket's team posts (routing.desk.placement.Placement is one)."""

    async def place(self, ticket_id: int, teams: set[str], *, moved_by: str | None) -> None:
        """Make the ticket's live posts be in exactly these teams' channels."""
        ...

    async def refresh(self, ticket_id: int, *, include_inactive: bool = False) -> None:
        """Redraw every post of a ticket from what is stored."""
        ...


class PageTrigger(Protocol):
    """Pages the on-call when a ticket needs a human (routing.desk.paging.Pager is one)."""

    async def page_if_needed(self, ticket_id: int, *, ticket: StoredTicket | None = None) -> None:
        """Page the on-call if the ticket needs a human (once per page).

        ticket is the ticket as the caller has just read it (else read here).
        """
        ...


class Paging(PageTrigger, Protocol):
    """Pages when a ticket needs it, and when an agent asks (Pager is one)."""

    async def page(
        self, ticket_id: int, *, reasons: Sequence[str], asked_by: str | None = None
    ) -> int:
        """Page each posted team's on-call; returns the pages sent."""
        ...


class PostPlacement(CardPlacement, Protocol):
    """Posts, redraws, moves and links a ticket's cards, as the router asks (Placement is one)."""

    def team_channel(self, team: str) -> str:
        """The channel a team's posts go in."""
        ...

    async def post_once(
        self, ticket_id: int, team: str, *, recovering: bool, leased: LeasedTicket | None = None
    ) -> PostRef | None:
        """Post the ticket in a team's channel unless it is there; the new post, if made.

        leased is the ticket as the caller has just read it with its lease (else read here).
        """
        ...

    async def refresh(
        self,
        ticket_id: int,
        *,
        include_inactive: bool = False,
        ticket: StoredTicket | None = None,
        posts: Sequence[StoredPost] | None = None,
    ) -> None:
        """Redraw every post of a ticket (from ticket and posts when the caller read them)."""
        ...

    async def link_related(
        self,
        ticket_id: int,
        *,
        ticket: StoredTicket | None = None,
        posts: Sequence[StoredPost] | None = None,
    ) -> None:
        """Redraw a ticket posted in several teams so each post links to the others."""
        ...


class RoutingQueue(Protocol):
    """The work queue's state and queues as the router uses them (WorkQueue is one)."""

    @property
    def placing(self) -> dict[int, Placing]:
        """Decided tickets whose posts are queued, by ticket id."""
        ...

    @property
    def held(self) -> set[int]:
        """Tickets this replica holds a routing lease on."""
        ...

    @property
    def retries(self) -> dict[int, int]:
        """Tickets being retried, and how many retries each has had."""
        ...

    @property
    def refining(self) -> dict[int, int]:
        """Tickets queued for the model stage or being refined here."""
        ...

    def next_seq(self) -> int:
        """A number that orders jobs of equal urgency and age by when they were queued."""
        ...

    def send(self, channel: str, job: Send) -> None:
        """Queue a message for a team channel."""
        ...

    def retry_later(self, ticket_id: int) -> None:
        """Queue the ticket again after its next retry delay; after the last, leave it."""
        ...

    def ask_model(self, job: ModelJob) -> None:
        """Queue a ticket for the model stage."""
        ...
