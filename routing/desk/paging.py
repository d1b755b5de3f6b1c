"""Paging the on-call: claimed, sent, marked sent; bursts coalesced; unsent pages resumed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from routing.config import SlackConfig, TriageConfig
from routing.desk.limits import BURST_WINDOW_SECONDS
from routing.desk.types import DirectPage, Note, PageNotSentError, PostRef
from routing.ports import TicketStore
from routing.records import StoredBurst, StoredPage, StoredTicket
from routing.redact import shown_to_agents

logger = logging.getLogger(__name__)


class PageOutbox(Protocol):
    """The part of the Outbox a page goes through."""

    async def post_page(
        self, post: PostRef, note: Note, *, ticket_id: int, page: str, resume: bool = False
    ) -> str:
        """Page in a ticket post's thread, tagged with the page's key; the first note's ts."""
        ...

    async def find_page(self, post: PostRef, *, ticket_id: int, page: str) -> str | None:
        """The first note's ts of a page whose notes are all in the post's thread, else None."""
        ...

    async def update_note(self, note: PostRef, text: Note) -> None:
        """Replace the words of a note the bot posted."""
        ...

    async def direct_page(self, user: str, page: DirectPage, *, key: str) -> None:
        """Page one on-call person directly about a ticket, tagged with the page's key."""
        ...

    async def find_direct_page(self, user: str, *, ticket_id: int, key: str) -> bool:
        """Whether this page of the ticket is already in the bot's DM with user."""
        ...

    async def permalink(self, channel: str, ts: str) -> str | None:
        """A link to a message, or None if Slack will not give one."""
        ...


class OnCall(Protocol):
    """Who is paged for a team, and who a list of people and user groups names."""

    async def oncall(self, team: str) -> tuple[str, ...]:
        """Who is paged for a team."""
        ...

    async def expand(self, people: Sequence[str]) -> set[str]:
        """The users named, user groups replaced by their members."""
        ...


class Pager:
    """Pages each posted team's on-call once per ticket (and key), and finishes unsent pages.

    requeue queues a ticket for the work queue (whose worker resumes its held pages);
    retry_later schedules a ticket whose page Slack refused.
    """

    def __init__(
        self,
        *,
        config: TriageConfig,
        slack: SlackConfig,
        store: TicketStore,
        outbox: PageOutbox,
        oncall: OnCall,
        clock: Callable[[], float],
        now: Callable[[], datetime],
        requeue: Callable[[int], None],
        retry_later: Callable[[int], None],
    ) -> None:
        self._config = config
        self._slack = slack
        self._store = store
        self._outbox = outbox
        self._oncall = oncall
        self._clock = clock
        # Bursts are compared across replicas, in the store: on the wall clock.
        self._now = now
        self._requeue = requeue
        self._retry_later = retry_later
        # Pages this process holds claimed but not (all) sent: tried again, Slack checked first.
        self._resume: set[tuple[int, str]] = set()
        # Held while this process posts or updates a burst's counting note, per burst lead.
        self._writing: dict[tuple[str, str, int], asyncio.Lock] = {}
        # Unsent page -> the claim time this replica holds it by (renewed like a lease).
        self._claims: dict[tuple[int, str], datetime] = {}
        # Claims forgotten after the ticket's last retry: no longer renewed, given up at a stop.
        self._dropped: dict[tuple[int, str], datetime] = {}
        # Held while a claim is renewed (moved, then read back) or checked before a resend.
        self._claiming = asyncio.Lock()

    def forget(self, ticket_id: int) -> None:
        """Drop this replica's claims on a ticket's unsent pages (no longer renewed)."""
        for held in [claim for claim in self._claims if claim[0] == ticket_id]:
            self._dropped[held] = self._claims.pop(held)
            self._resume.discard(held)

    def clear(self) -> None:
        """Forget every claim held: a stopped desk renews none, so any replica takes them."""
        self._claims.clear()
        self._dropped.clear()
        self._resume.clear()

    async def let_go(self) -> None:
        """Give up every unsent page this replica holds, for the next start (any replica's).

        A start takes over only claims a lease old (a live replica's are younger: it may be
        sending them right now), so a stop in good order hands its own over explicitly.
        """
        for (ticket_id, key), token in sorted({**self._dropped, **self._claims}.items()):
            try:
                await self._store.let_go_page(ticket_id, team=key, claimed_at=token)
            except Exception:
                logger.exception("could not give up ticket %s's page %s", ticket_id, key)
        self.clear()

    async def recover_pages(self, *, claimed_before: datetime) -> int:
        """Take over the pages claimed before a time and never sent, and queue their tickets.

        The claimer stopped (or gave up) between claiming and sending: the worker sends what
        Slack does not have yet, looking in the post's thread first. Each page is taken over
        by one caller (a compare-and-set), so replicas call this in every sweep with a lease's
        cutoff: a live replica renews the claims it holds (see _renew_pages), a dead one's age.
        """
        taken = 0
        for page in await self._store.unsent_pages(claimed_before=claimed_before):
            if (page.ticket_id, page.key) in self._claims:
                continue  # this replica's own, late in renewing: it is still sending it
            if await self._store.retake_page(
                page.ticket_id, team=page.key, claimed_at=page.claimed_at
            ):
                logger.warning(
                    "ticket %s's page %s was never sent: sending it", page.ticket_id, page.key
                )
                await self._hold_claim(page.ticket_id, page.key)
                self._resume.add((page.ticket_id, page.key))
                self._requeue(page.ticket_id)
                taken += 1
        return taken

    async def _hold_claim(self, ticket_id: int, key: str) -> None:
        """Remember the claim this replica holds on an unsent page (its time is the token)."""
        page = await self._store.page(ticket_id, team=key)
        if page is not None and page.sent_at is None:
            self._claims[(ticket_id, key)] = page.claimed_at
        else:
            self._claims.pop((ticket_id, key), None)

    async def renew(self) -> None:
        """Move this replica's unsent page claims to now, as a lease is renewed.

        A claim another replica took over meanwhile (the compare-and-set fails) is no longer
        this replica's to send: it is forgotten here.
        """
        for (ticket_id, key), token in sorted(self._claims.items()):
            async with self._claiming:
                if await self._store.retake_page(ticket_id, team=key, claimed_at=token):
                    await self._hold_claim(ticket_id, key)
                elif self._claims.get((ticket_id, key)) == token:
                    # Sent meanwhile, or taken over by another replica.
                    logger.info("ticket %s's page %s is no longer held here", ticket_id, key)
                    self._claims.pop((ticket_id, key), None)
                    self._resume.discard((ticket_id, key))

    async def page_if_needed(self, ticket_id: int, *, ticket: StoredTicket | None = None) -> None:
        """Page the on-call if the ticket needs a human; a page Slack refuses is retried.

        ticket is the ticket as the caller has just read it (else read here).
        """
        if ticket is None:
            ticket = await self._store.ticket(ticket_id)
        if ticket is None:
            return
        try:
            # A page claimed earlier and not all sent (a crash, a refusal, a late answer).
            for held_ticket, key in sorted(self._resume):
                if held_ticket == ticket_id:
                    await self._resume_page(ticket_id, key)
            if ticket.escalation is None or ticket.status == "withdrawn":
                return
            if not ticket.escalation.needs_human:
                return
            reasons = tuple(reason.detail for reason in ticket.escalation.reasons)
            await self.page(ticket_id, reasons=reasons, ticket=ticket)
        except Exception:
            logger.exception("paging for ticket %s failed; trying again later", ticket_id)
            self._retry_later(ticket_id)

    async def page(
        self,
        ticket_id: int,
        *,
        reasons: Sequence[str],
        asked_by: str | None = None,
        ticket: StoredTicket | None = None,
    ) -> int:
        """Page each posted team's on-call in the post's thread, and by DM when critical.

        Once per ticket and team, and once more if the ticket becomes critical later; an
        agent's Escalate (asked_by) pages once per agent. A page is claimed, sent, then marked
        sent; one this process could not finish is finished here (Slack's thread checked first).
        Pages to the same on-call about the same customer within BURST_WINDOW_SECONDS of a
        first one mention nobody: the first page's thread counts them. Returns the pages sent.
        ticket is the ticket as the caller has just read it (else read here).
        """
        if ticket is None:
            ticket = await self._store.ticket(ticket_id)
        assert ticket is not None  # noqa: S101  # only routed tickets are paged
        assert ticket.decision is not None  # noqa: S101
        critical = self._config.priority(ticket.decision.priority).always_human
        sent = 0
        for post in await self._store.posts(ticket_id):
            people = tuple(await self._oncall.oncall(post.team) or self._slack.fallback_oncall)
            if not people:
                logger.error("ticket %s needs a human but %s has no on-call", ticket_id, post.team)
            if asked_by is not None:
                key = f"{post.team}:escalated:{asked_by}"  # once per agent: a replay pages no one
            else:
                key = post.team + (":critical" if critical else "")
            ref = PostRef(post.channel, post.ts)
            burst, started = None, None
            if asked_by is None and people and ticket.author is not None:
                # In the store: replicas sharing it see the same burst, and one starts it.
                at = self._now()
                current = await self._store.join_burst(
                    ticket.author,
                    ",".join(people),
                    ticket_id=ticket_id,
                    channel=ref.channel,
                    ts=ref.ts,
                    key=key,
                    critical=critical,
                    at=at,
                    window=timedelta(seconds=BURST_WINDOW_SECONDS),
                )
                if current.ticket_id != ticket_id:
                    burst = current
                elif current.started_at == at:
                    started = current
            claimed = await self._store.claim_page(
                ticket_id,
                team=key,
                people=() if burst is not None else people,
                reasons=reasons,
                direct=critical and burst is None,
                asked_by=asked_by,
            )
            if not claimed:
                # Paged long ago, not now: this page starts no burst.
                if started is not None:
                    await self._store.end_burst(
                        started.customer,
                        started.oncall,
                        ticket_id=ticket_id,
                        started_at=started.started_at,
                    )
                sent += await self._resume_page(ticket_id, key)
                continue
            page = await self._store.page(ticket_id, team=key)
            assert page is not None  # noqa: S101  # claimed just now
            self._claims[(ticket_id, key)] = page.claimed_at
            note = None
            if burst is not None:
                note = Note(
                    f"Ticket #{ticket_id} needs a human: another ticket from this customer"
                    f" within {BURST_WINDOW_SECONDS / 60:.0f} minutes of ticket"
                    f" #{burst.ticket_id}, whose on-call was paged: not paged again.",
                    details=tuple(reasons),
                )
            await self._deliver_page(ticket_id, ref, page, resume=False, note=note)
            sent += 1
            if burst is not None:
                await self._count_in_burst(burst, ticket_id)
        return sent

    async def _count_in_burst(self, burst: StoredBurst, ticket_id: int) -> None:
        """One follow-up in the first page's thread counts the burst's other tickets.

        The count is in the store, so replicas count into one note: the one that claims the
        note posts it, and whoever writes it reads the count again after writing, until what
        the note says is what the store holds (the last writer shows them all).
        """
        customer, oncall, lead = burst.customer, burst.oncall, burst.ticket_id
        try:
            # Counted once, however many teams the ticket is posted to.
            more = await self._store.count_in_burst(
                customer, oncall, lead=lead, ticket_id=ticket_id
            )
            async with self._writing.setdefault((customer, oncall, lead), asyncio.Lock()):
                known = await self._store.burst_followup(customer, oncall, lead=lead)
                if known is None:
                    if not await self._store.claim_burst_followup(customer, oncall, lead=lead):
                        return  # another replica posts it, and reads the count after
                    more = await self._store.count_in_burst(
                        customer, oncall, lead=lead, ticket_id=ticket_id
                    )
                    try:
                        ts = await self._outbox.post_page(
                            PostRef(burst.channel, burst.ts),
                            _count_note(more),
                            ticket_id=lead,
                            page=f"{burst.key}:more",
                        )
                    except Exception:
                        # Not posted: the next ticket counted (any replica's) posts it.
                        await self._store.release_burst_followup(customer, oncall, lead=lead)
                        raise
                    await self._store.set_burst_followup(
                        customer, oncall, lead=lead, channel=burst.channel, ts=ts
                    )
                    followup = PostRef(burst.channel, ts)
                elif isinstance(known, tuple):
                    followup = PostRef(*known)
                    await self._outbox.update_note(followup, _count_note(more))
                else:
                    return  # being posted by another replica, which reads the count after
                for _ in range(5):  # a few rounds: each counter does its own
                    now_counted = await self._store.count_in_burst(
                        customer, oncall, lead=lead, ticket_id=ticket_id
                    )
                    if now_counted == more:
                        break
                    more = now_counted
                    await self._outbox.update_note(followup, _count_note(more))
        except Exception:
            logger.exception("could not count ticket %s under ticket %s", ticket_id, lead)

    async def _resume_page(self, ticket_id: int, key: str) -> int:
        """Finish a page this process holds (1), or nothing (0) if it holds none by that key."""
        if (ticket_id, key) not in self._resume:
            return 0
        self._resume.discard((ticket_id, key))  # this task's while it sends (no await before)
        async with self._claiming:
            page = await self._store.page(ticket_id, team=key)
            taken_over = page is not None and page.claimed_at != self._claims.get(
                (ticket_id, key), page.claimed_at
            )
        ticket = await self._store.ticket(ticket_id)
        if page is None or page.sent_at is not None or ticket is None:
            self._claims.pop((ticket_id, key), None)
            return 0
        if taken_over:
            # Another replica's sweep took it over (this one stalled past a lease): theirs.
            logger.warning("ticket %s's page %s was taken over by another replica", ticket_id, key)
            self._claims.pop((ticket_id, key), None)
            return 0
        # Withdrawn, or edited since into a message that needs no action ("never mind, fixed
        # it"): the unsent page is dropped. An agent's Escalate stands whatever the text says.
        settled = (
            page.asked_by is None
            and ticket.decision is not None
            and ticket.decision.no_action is not None
            and not (ticket.escalation is not None and ticket.escalation.needs_human)
        )
        if ticket.status == "withdrawn" or settled:
            await self._store.release_page(ticket_id, team=key)
            self._claims.pop((ticket_id, key), None)
            return 0
        posts = await self._store.posts(ticket_id, active_only=False)
        post = next((p for p in posts if p.team == page.team and p.status == "active"), None)
        post = post or next((p for p in reversed(posts) if p.team == page.team), None)
        if post is None:
            logger.error("ticket %s's page %s has no post to go under", ticket_id, key)
            return 0
        await self._deliver_page(ticket_id, PostRef(post.channel, post.ts), page, resume=True)
        return 1

    async def _deliver_page(
        self,
        ticket_id: int,
        post: PostRef,
        page: StoredPage,
        *,
        resume: bool,
        note: Note | None = None,
    ) -> None:
        """Send a claimed page's note and DMs, then mark it sent; kept for a retry if it fails.

        The note and the DMs go at once: a DM never waits for a busy team channel's rate
        limit, and the note never waits for a slow DM.
        """
        if note is None:
            headline = f"Ticket #{ticket_id} needs a human:"
            if page.asked_by is not None:
                headline += f" escalated by <@{page.asked_by}>" + (";" if page.reasons else "")
            note = Note(headline, mentions=page.people, details=page.reasons)
        page_note = note

        async def send_note() -> None:
            if page.noted_at is not None:
                return
            try:
                await self._outbox.post_page(
                    post, page_note, ticket_id=ticket_id, page=page.key, resume=resume
                )
            except Exception:
                # Slack may have posted it and answered too late: look before retrying.
                found = await self._outbox.find_page(post, ticket_id=ticket_id, page=page.key)
                if found is None:
                    raise
                logger.warning("ticket %s's page %s was sent after all", ticket_id, page.key)
            await self._store.mark_page_noted(ticket_id, team=page.key)

        async def send_dms() -> None:
            if page.direct:
                await self._direct_page(ticket_id, post, page, resume=resume)

        try:
            outcomes = await asyncio.gather(send_note(), send_dms(), return_exceptions=True)
            for outcome in outcomes:
                if isinstance(outcome, BaseException):
                    raise outcome
            await self._store.mark_page_sent(ticket_id, team=page.key)
            self._claims.pop((ticket_id, page.key), None)
        except Exception as error:
            self._resume.add((ticket_id, page.key))
            raise PageNotSentError(f"ticket {ticket_id}'s page {page.key} is not sent") from error

    async def _direct_page(
        self, ticket_id: int, post: PostRef, page: StoredPage, *, resume: bool
    ) -> None:
        """A critical ticket's DM to each on-call person, once per ticket, claimed then sent.

        A DM is tagged with its ticket and page. One claimed and not marked sent (a crash, a
        failure, an answer after the client's timeout) is looked for in the bot's DM with that
        person first, and sent again only if it is not there: exactly once, unless Slack
        cannot be read (then it is tried later, not sent blind).
        """
        ticket = await self._store.ticket(ticket_id)
        assert ticket is not None  # noqa: S101  # only routed tickets are paged
        assert ticket.decision is not None  # noqa: S101
        dm = DirectPage(
            ticket_id=ticket_id,
            team=page.team,
            priority=ticket.decision.priority,
            emoji=self._config.priority(ticket.decision.priority).emoji,
            customer=ticket.author,
            text=shown_to_agents(ticket.text),
            reasons=page.reasons,
            link=await self._outbox.permalink(post.channel, post.ts),
        )
        known = await self._store.direct_pages(ticket_id)
        failed = 0
        for user in sorted(await self._oncall.expand(page.people)):
            if user in known:
                key, sent = known[user]
                if sent or not resume or key != page.key:
                    continue  # sent, or another page of the ticket has it
                # Claimed before and never marked sent: Slack may have it already.
                there = await self._dm_there(user, ticket_id, page.key)
                if there is None:
                    failed += 1
                    continue
                if there:
                    logger.warning("ticket %s's DM to %s was sent after all", ticket_id, user)
                    await self._store.mark_direct_page_sent(ticket_id, person=user)
                    continue
            elif not await self._store.claim_direct_page(ticket_id, person=user, page=page.key):
                continue
            try:
                await self._outbox.direct_page(user, dm, key=page.key)
            except Exception:
                # Slack may have taken it and answered too late: look before trying again.
                if not await self._dm_there(user, ticket_id, page.key):
                    logger.exception("could not DM %s about critical ticket %s", user, ticket_id)
                    failed += 1
                    continue
                logger.warning("ticket %s's DM to %s was sent after all", ticket_id, user)
            await self._store.mark_direct_page_sent(ticket_id, person=user)
        if failed:
            raise PageNotSentError(f"{failed} DMs of ticket {ticket_id}'s page were not sent")

    async def _dm_there(self, user: str, ticket_id: int, key: str) -> bool | None:
        """Whether the page's DM is in the bot's DM with user; None if Slack cannot say."""
        try:
            return await self._outbox.find_direct_page(user, ticket_id=ticket_id, key=key)
        except Exception:
            logger.exception("could not read the DM with %s for ticket %s", user, ticket_id)
            return None


def _count_note(more: Sequence[int]) -> Note:
    """The follow-up under a burst's first page: how many more tickets, and the last 20."""
    count = len(more)
    listed = ", ".join(f"#{number}" for number in sorted(more)[-20:])
    return Note(
        f"…and {count} more ticket{'' if count == 1 else 's'} from this customer"
        f" since this page, not paged again: {listed}."
    )
