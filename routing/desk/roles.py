"""What the desk's parts see of one another, where more than one part needs the same slice.

Each is a small Protocol a part is typed to, so a test hands it a fake; the desk (facade.py)
hands it the real part named beside each. A slice only one part needs is declared beside that
part instead (Intake's ThreadReplies, Pager's OnCall, WorkQueue's PageClaims, ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from routing.records import StoredTicket


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

    async def page_if_needed(self, ticket_id: int) -> None:
        """Page the on-call if the ticket needs a human (once per page)."""
        ...


class Paging(PageTrigger, Protocol):
    """Pages when a ticket needs it, and when an agent asks (Pager is one)."""

    async def page(
        self, ticket_id: int, *, reasons: Sequence[str], asked_by: str | None = None
    ) -> int:
        """Page each posted team's on-call; returns the pages sent."""
        ...
