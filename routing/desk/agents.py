"""Who is an agent of which team (user groups included), who is on call, and the refusals."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from routing.config import SlackConfig, TriageConfig
from routing.desk.limits import GROUP_CACHE_SECONDS
from routing.desk.types import BadRequestError, NotAllowedError
from routing.ports import TicketStore
from routing.records import StoredTicket

logger = logging.getLogger(__name__)


class GroupDirectory(Protocol):
    """Where a user group's members are read (the Slack edge's Outbox is one)."""

    async def group_members(self, group: str) -> tuple[str, ...]:
        """The users in a user group."""
        ...


class Agents:
    """Decides who may act on what: agents by team, user groups cached, and the on-call."""

    def __init__(
        self,
        *,
        config: TriageConfig,
        slack: SlackConfig,
        store: TicketStore,
        groups: GroupDirectory,
        clock: Callable[[], float],
    ) -> None:
        self._config = config
        self._slack = slack
        self._store = store
        self._directory = groups
        self._clock = clock
        self._groups: dict[str, tuple[float, tuple[str, ...]]] = {}

    async def set_oncall(self, team: str, people: Sequence[str], *, user: str) -> str:
        """Change a team's on-call (or show it when people is empty)."""
        # Who is on call is for agents only, as are the team names.
        await self.require_any_agent(user, "see or change who is on call")
        if team not in self._config.team_names:
            raise BadRequestError(
                f"Unknown team `{team}`: use one of {', '.join(self._config.team_names)}."
            )
        current = await self.oncall(team)
        if not people:
            shown = _people(current) or "nobody (the fallback on-call is paged)"
            return f"On-call for {team}: {shown}."
        await self.require_agent(user, team, f"change the on-call of {team}")
        # Each person once, in the order named: a person named twice is paged once.
        people = tuple(dict.fromkeys(people))
        await self._store.set_oncall(team, people, set_by=user)
        await self._store.audit(
            ticket_id=None,
            actor=user,
            action="oncall_changed",
            before={"team": team, "people": list(current)},
            after={"team": team, "people": list(people)},
        )
        return f"On-call for {team} is now {_people(people)}."

    async def oncall(self, team: str) -> tuple[str, ...]:
        """Who is paged for a team: `/triage oncall`'s choice, else the config's."""
        chosen = await self._store.oncall(team)
        if chosen is not None:
            return chosen
        settings = self._slack.teams.get(team)
        return settings.oncall if settings is not None else ()

    async def ticket_for_agent(self, ticket_id: int, user: str, action: str) -> StoredTicket:
        """The ticket, if user is an agent of a team that has it; else refused (and logged)."""
        # Someone who is no agent at all learns nothing: not whether the ticket exists, nor
        # which team has it.
        await self.require_any_agent(user, action)
        ticket = await self._store.ticket(ticket_id)
        if ticket is None:
            raise BadRequestError(f"There is no ticket #{ticket_id}.")
        teams = {post.team for post in await self._store.posts(ticket_id)}
        if ticket.decision is not None:
            teams.add(ticket.decision.team)
        for team in teams:
            if await self.is_agent(user, team):
                return ticket
        self.log_refusal(user, action, ticket_id)
        raise NotAllowedError(
            f"Only agents of {' or '.join(sorted(teams)) or 'the ticket team'} can {action}."
        )

    async def require_agent(self, user: str, team: str, action: str) -> None:
        """Refuse (and log) unless user is one of the team's agents."""
        if not await self.is_agent(user, team):
            self.log_refusal(user, action, None)
            raise NotAllowedError(f"Only agents of {team} can {action}.")

    async def require_any_agent(self, user: str, action: str) -> None:
        """Refuse (and log) unless user is an agent of some team."""
        if not await self.is_any_agent(user):
            self.log_refusal(user, action, None)
            raise NotAllowedError(f"Only agents can {action}.")

    def log_refusal(self, user: str, action: str, ticket_id: int | None) -> None:
        """Say in the log who was refused what."""
        about = "" if ticket_id is None else f" (ticket {ticket_id})"
        logger.warning("refused: user %s may not %s%s", user, action, about)

    async def is_any_agent(self, user: str | None) -> bool:
        """True if user is an agent of any team."""
        if user is None:
            return False
        return any([await self.is_agent(user, team) for team in self._slack.teams])

    async def is_agent(self, user: str, team: str) -> bool:
        """True if user is one of the team's agents, directly or through a user group."""
        settings = self._slack.teams.get(team)
        if settings is None:
            return False
        return user in await self.expand(settings.agents)

    async def expand(self, people: Sequence[str]) -> set[str]:
        """The users named, user groups (S...) replaced by their members."""
        users = {person for person in people if not person.startswith("S")}
        for group in (person for person in people if person.startswith("S")):
            users.update(await self._group(group))
        return users

    async def _group(self, group: str) -> tuple[str, ...]:
        cached = self._groups.get(group)
        if cached is not None and self._clock() - cached[0] < GROUP_CACHE_SECONDS:
            return cached[1]
        try:
            members = await self._directory.group_members(group)
        except Exception:
            logger.exception("could not read the members of user group %s", group)
            return cached[1] if cached else ()
        self._groups[group] = (self._clock(), members)
        return members


def _people(people: Sequence[str]) -> str:
    return ", ".join(f"<!subteam^{p}>" if p.startswith("S") else f"<@{p}>" for p in people)
