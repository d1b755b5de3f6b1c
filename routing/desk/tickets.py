"""What every part of the desk does to a stored ticket: lock it, read it whole, label it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from routing.models import Decision, Ticket
from routing.ports import TicketStore
from routing.records import StoredReply, StoredTicket


class TicketLocks:
    """One lock per ticket: a customer's edit and an agent's reclassify never interleave."""

    def __init__(self) -> None:
        self._locks: dict[int, asyncio.Lock] = {}

    def lock(self, ticket_id: int) -> asyncio.Lock:
        """The ticket's lock (made on first use)."""
        return self._locks.setdefault(ticket_id, asyncio.Lock())


async def with_replies(
    store: TicketStore, ticket: StoredTicket, *, replies: Sequence[StoredReply] | None = None
) -> Ticket:
    """The ticket as the pipeline reads it: the message, then the customer's thread replies.

    replies, if given, are the ticket's as just read with it (else read here).
    """
    if replies is None:
        replies = await store.replies(ticket.id)
    combined = "\n".join([ticket.text, *(reply.text for reply in replies)])
    return as_ticket(ticket).model_copy(update={"text": combined})


def as_ticket(ticket: StoredTicket) -> Ticket:
    """The pipeline's view of a stored ticket."""
    return Ticket(
        text=ticket.text,
        author=ticket.author,
        channel=ticket.channel,
        ts=ticket.ts,
        received_at=ticket.received_at,
    )


def labels(decision: Decision) -> dict[str, str]:
    """A decision's labels, as the audit log keeps them."""
    return {
        "category": decision.category,
        "priority": decision.priority,
        "team": decision.team,
        "sentiment": decision.sentiment,
    }
