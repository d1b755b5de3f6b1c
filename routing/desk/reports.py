"""What agents ask the desk to show: a ticket's status, today's figures, a ticket by reference."""

from __future__ import annotations

import re
import statistics
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from routing.config import TriageConfig
from routing.desk.types import BadRequestError, StatusReport
from routing.models import DECIDED_BY
from routing.ports import TicketStore


class AgentCheck(Protocol):
    """Refuses (and logs) someone who is no agent of any team."""

    async def require_any_agent(self, user: str, action: str) -> None:
        """Refuse unless user is an agent of some team."""
        ...


class Reports:
    """Answers agents' questions about tickets from the store; agents only."""

    def __init__(
        self,
        *,
        config: TriageConfig,
        store: TicketStore,
        agents: AgentCheck,
        now: Callable[[], datetime],
    ) -> None:
        self._config = config
        self._store = store
        self._agents = agents
        # The desk's wall clock in UTC: which day "today" is.
        self._now = now

    async def status(self, ticket_id: int, *, user: str) -> StatusReport:
        """A ticket's state in a few lines, for an agent."""
        await self._agents.require_any_agent(user, "see ticket status")
        ticket = await self._store.ticket(ticket_id)
        if ticket is None:
            raise BadRequestError(f"There is no ticket #{ticket_id}.")
        lines = [f"Ticket #{ticket.id}: {ticket.status}"]
        if ticket.decision is not None:
            d = ticket.decision
            lines.append(
                f"{d.category} / {d.priority} / {d.team}, {d.sentiment}, "
                f"confidence {d.confidence:.2f}, decided by {DECIDED_BY[d.source]}"
            )
        reasons: tuple[str, ...] = ()
        if ticket.escalation is not None and ticket.escalation.needs_human:
            reasons = tuple(r.detail for r in ticket.escalation.reasons)
        after: list[str] = []
        draft = await self._store.draft(ticket.id)
        # A withdrawn ticket's unsent draft is dropped with it: nothing is pending.
        dropped = ticket.status == "withdrawn" and draft is not None and draft.status == "pending"
        if draft is not None and not dropped:
            by = f" by <@{draft.decided_by}>" if draft.decided_by else ""
            after.append(f"Draft: {draft.status}{by}")
        # Page keys are "team", "team:critical" or "team:escalated:<n>": show the teams.
        paged = dict.fromkeys(key.split(":")[0] for key in await self._store.pages(ticket.id))
        if paged:
            after.append(f"Paged: {', '.join(paged)}")
        for post in await self._store.posts(ticket.id, active_only=False):
            after.append(f"Post in <#{post.channel}>: {post.status}")
        return StatusReport(head=tuple(lines), reasons=reasons, tail=tuple(after))

    async def stats(self, *, user: str) -> str:
        """Today's figures (UTC): tickets by category and priority, rates, time to approval."""
        await self._agents.require_any_agent(user, "see stats")
        today = self._now().date()
        day = await self._store.day_stats(today)
        if day.tickets == 0:
            return f"No tickets today ({today.isoformat()}, UTC)."

        def counts(by: dict[str, int], order: Sequence[str]) -> str:
            return ", ".join(f"{name} {by[name]}" for name in order if name in by) or "none"

        approval = (
            f"{day.drafts_sent}/{day.drafts_decided} ({day.drafts_sent / day.drafts_decided:.0%})"
            if day.drafts_decided
            else "no drafts decided yet"
        )
        median = (
            f"{statistics.median(day.minutes_to_approval):.1f} min"
            if day.minutes_to_approval
            else "n/a"
        )
        return "\n".join(
            [
                f"Today ({today.isoformat()}, UTC): {day.tickets}"
                f" ticket{'' if day.tickets == 1 else 's'}",
                f"By category: {counts(day.by_category, self._config.category_names)}",
                f"By priority: {counts(day.by_priority, self._config.priority_names)}",
                f"Needs a human: {day.needs_human}/{day.tickets}"
                f" ({day.needs_human / day.tickets:.0%})",
                f"Drafts approved: {approval}",
                f"Median time to approval: {median}",
            ]
        )

    async def find_ticket(self, reference: str, *, user: str, action: str) -> int:
        """A ticket id from `#12`, `12`, or a link to the customer's message or a team post.

        Only for agents: anyone else is refused before the reference is read, so they learn
        nothing, not even whether the ticket or the linked message exists.
        """
        await self._agents.require_any_agent(user, action)
        text = reference.strip().strip("<>").split("|")[0]
        number = re.fullmatch(r"#?([0-9]{1,12})", text)  # ASCII digits only: '#٣' is no ticket
        if number:
            return int(number.group(1))
        link = re.search(r"/archives/([A-Z0-9]+)/p(\d{10})(\d{6})", text)
        if link:
            channel, ts = link.group(1), f"{link.group(2)}.{link.group(3)}"
            thread = re.search(r"thread_ts=(\d+\.\d+)", text)
            ticket = await self._store.ticket_at(channel, thread.group(1) if thread else ts)
            if ticket is not None:
                return ticket.id
            post = await self._store.post_at(channel, ts)
            if post is not None:
                return post.ticket_id
            raise BadRequestError("That link is not a ticket or a ticket's post.")
        raise BadRequestError(
            f"`{reference}` is not a ticket: give its number (#12) or a message link."
        )
