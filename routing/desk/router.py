"""The router: a ticket claimed, classified (or an agent's decision kept), its posts queued.

A worker of the work queue decides a ticket on the local stage alone; each team channel's
poster posts its card, then finishes it (links the posts, marks it routed, pages if it needs a
human). With an LLM configured, a model worker refines the decision after: stored, then the
posts redrawn (moved if the team changed) and paged if the refined decision needs a human.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Protocol

from routing.cascade import Pipeline
from routing.config import TriageConfig
from routing.desk.follow_ups import reply_note
from routing.desk.limits import MODEL_LATE_MARGIN_SECONDS
from routing.desk.roles import PageTrigger, PostPlacement, RoutingQueue
from routing.desk.tickets import TicketLocks
from routing.desk.tickets import with_replies as ticket_with_replies
from routing.desk.types import Note, PostRef
from routing.desk.work_queue import ModelJob, Placing, Send
from routing.models import Triage
from routing.ports import TicketStore
from routing.records import ModelState, StoredPost, StoredReply, StoredTicket, TicketStatus

logger = logging.getLogger(__name__)


class RouterOutbox(Protocol):
    """The part of the Outbox routing a ticket needs beyond its cards."""

    async def permalink(self, channel: str, ts: str) -> str | None:
        """A link to a message, or None if Slack will not give one."""
        ...

    async def post_note(self, post: PostRef, note: Note) -> None:
        """Say something in a ticket post's thread."""
        ...


class Router:
    """Decides each queued ticket once, under its lease, and posts it in each wanted team."""

    def __init__(
        self,
        *,
        config: TriageConfig,
        store: TicketStore,
        outbox: RouterOutbox,
        pipeline: Pipeline,
        placement: PostPlacement,
        pager: PageTrigger,
        locks: TicketLocks,
        queue: RoutingQueue,
        replica: str,
        lease: timedelta,
        now: Callable[[], datetime],
    ) -> None:
        self._config = config
        self._store = store
        self._outbox = outbox
        self._pipeline = pipeline
        self._placement = placement
        self._pager = pager
        self._locks = locks
        self._queue = queue
        self._replica = replica
        self._lease = lease
        self._now = now

    async def decide(self, ticket_id: int, claimed: TicketStatus | None) -> None:
        """Claim a ticket, classify it (or keep an agent's decision), and queue its posts."""
        async with self._locks.lock(ticket_id):
            if ticket_id in self._queue.placing:
                return  # decided already; its posts are queued
            now = self._now()
            # The claim comes with the ticket, its posts and its replies (one statement),
            # unless a sweep claimed it already.
            got = None
            if claimed is None:
                got = await self._store.claim_ticket(
                    ticket_id, holder=self._replica, now=now, until=now + self._lease
                )
            previous = claimed or (got.claimed if got is not None else None)
            if previous is None:
                self._queue.held.discard(ticket_id)
                ticket = await self._store.ticket(ticket_id)
                if ticket is not None and ticket.status == "routed":
                    # Routed already: a requeue after a page Slack refused pages again (once).
                    await self._paged(ticket_id)
                return  # else another replica holds it, or the customer withdrew it
            self._queue.held.add(ticket_id)
            # Read once: what this step writes is applied to it, not read back.
            if got is not None:
                stored, posts, replies = got.ticket, got.posts, got.replies
            else:
                read = await self._store.ticket(ticket_id)
                assert read is not None  # noqa: S101  # claimed just now
                stored, posts, replies = read, None, None
            # An agent's correction made while it waited for a retry stands, and so does what
            # the model stage answered or is working on; else classify.
            refined = stored.model_state in ("answered", "late") or (
                stored.model_state == "pending" and ticket_id in self._queue.refining
            )
            link = None
            if stored.permalink is None:
                link = await self._outbox.permalink(stored.channel, stored.ts)
            if stored.decision is None or (stored.decision.source != "agent" and not refined):
                # The link is stored with the decision and the draft, in one transaction.
                stored, _ = await self.classify(
                    ticket_id, ticket=stored, permalink=link, replies=replies
                )
            elif link:
                await self._store.set_permalink(ticket_id, link)
                stored = replace(stored, permalink=link)
            decided = stored
            assert decided.decision is not None  # noqa: S101  # classified just now
            placing = Placing(
                recovering=previous == "routing",
                urgency=-self._config.priority_rank(decided.decision.priority),
                received=decided.received_at.timestamp(),
                urgent=self._most_urgent(decided.decision.priority),
                # Posts made before a retry showed the local decision: redrawn at the end.
                refined=decided.model_state in ("answered", "late"),
            )
            self._queue.placing[ticket_id] = placing
            try:
                queued = await self._queue_posts(ticket_id, decided, placing, posts=posts)
            finally:
                if not placing.waiting:
                    self._queue.placing.pop(ticket_id, None)
            if not queued:
                await self._mark_routed(ticket_id)
        if ticket_id not in self._queue.placing:
            await self._paged(ticket_id)

    def _most_urgent(self, priority: str) -> bool:
        """Whether a priority is the config's most urgent (its posts take the urgent lane)."""
        return self._config.priority_rank(priority) == len(self._config.priority_names) - 1

    def _wanted_teams(self, ticket: StoredTicket) -> tuple[str, ...]:
        """The teams whose channels a ticket belongs in, by its stored decision."""
        decision, escalation = ticket.decision, ticket.escalation
        if decision is None or escalation is None:
            return ()
        if decision.source == "agent":
            return (decision.team,)
        if decision.no_action is not None and self._config.noise.post == "none":
            # Needs no action and the config wants no post: stored, drafted, posted nowhere.
            return ()
        teams = escalation.teams or (decision.team,)
        return (decision.team, *(team for team in teams if team != decision.team))

    async def _queue_posts(
        self,
        ticket_id: int,
        ticket: StoredTicket,
        placing: Placing,
        *,
        posts: Sequence[StoredPost] | None = None,
    ) -> bool:
        """Queue a post in each wanted team's channel that lacks one; False if none lacks one.

        posts are the ticket's active posts as read with its claim (else read here).
        """
        if posts is None:
            posts = await self._store.posts(ticket_id)
        posted = {post.team for post in posts}
        return self._queue_missing(ticket_id, ticket, placing, posted)

    def _queue_missing(
        self, ticket_id: int, ticket: StoredTicket, placing: Placing, posted: set[str]
    ) -> bool:
        """Queue a post in each wanted team's channel not in posted; False if none is missing."""
        missing = [team for team in self._wanted_teams(ticket) if team not in posted]
        if not missing and not self._wanted_teams(ticket):
            logger.info("ticket %s needs no action: not posted", ticket_id)
        for team in missing:
            placing.waiting.add(team)
            self._queue.send(
                self._placement.team_channel(team),
                Send(
                    placing.urgency,
                    placing.received,
                    self._queue.next_seq(),
                    ticket_id=ticket_id,
                    team=team,
                    kind="post",
                    urgent=placing.urgent,
                ),
            )
        return bool(missing)

    async def post(self, job: Send) -> None:
        """Post a ticket's card in one team's channel, if it still belongs there."""
        ticket_id, team = job.ticket_id, job.team
        placing = self._queue.placing.get(ticket_id)
        if placing is None:
            return
        try:
            async with self._locks.lock(ticket_id):
                now = self._now()
                # The lease renewed and the ticket read (its posts, replies, draft and public id
                # too) in one statement; read apart only when the lease is not held (to tell a
                # withdrawn ticket from one taken over).
                leased = await self._store.renew_lease(
                    self._replica, ticket_id, until=now + self._lease
                )
                held = leased is not None
                ticket = leased.ticket if leased else await self._store.ticket(ticket_id)
                if ticket is None or ticket.status == "withdrawn":
                    pass  # the customer deleted it: nothing to post
                elif not held:
                    # Stalled past the lease, and another replica took the ticket over.
                    logger.warning("ticket %s: lease lost to another replica", ticket_id)
                    placing.lost = True
                elif leased is not None and team in self._wanted_teams(ticket):
                    # (An agent's correction or the customer's edit may have moved it meanwhile.)
                    posted = await self._placement.post_once(
                        ticket_id, team, recovering=placing.recovering, leased=leased
                    )
                    if posted is not None:
                        # What the customer added in the thread before the post existed.
                        for reply in leased.replies:
                            await self._outbox.post_note(posted, reply_note(reply.text))
        except Exception:
            logger.exception("posting ticket %s in %s failed", ticket_id, team)
            placing.failed = True
        placing.waiting.discard(team)
        if placing.waiting:
            return
        if placing.lost:
            self._queue.placing.pop(ticket_id, None)
            self._queue.held.discard(ticket_id)
        elif placing.failed:
            # Slack down or rate limited past every retry: the whole ticket is tried again.
            self._queue.placing.pop(ticket_id, None)
            self._queue.retry_later(ticket_id)
        else:
            # Its page notes go in this channel's queue at the ticket's priority.
            self._queue.send(
                self._placement.team_channel(team),
                Send(
                    placing.urgency,
                    placing.received,
                    self._queue.next_seq(),
                    ticket_id=ticket_id,
                    team=team,
                    kind="finish",
                    urgent=placing.urgent,
                ),
            )

    async def finish(self, ticket_id: int) -> None:
        """Every post of a ticket made: link them, mark it routed, and page if it needs it."""
        placing = self._queue.placing.get(ticket_id)
        if placing is None:
            return
        async with self._locks.lock(ticket_id):
            ticket = await self._store.ticket(ticket_id)
            assert ticket is not None  # noqa: S101  # tickets are never deleted
            posts = await self._store.posts(ticket_id)
            posted = {post.team for post in posts}
            # A team that became wanted while the posts waited (an edit) is posted now.
            if ticket.status != "withdrawn" and self._queue_missing(
                ticket_id, ticket, placing, posted
            ):
                return
            self._queue.placing.pop(ticket_id, None)
            if placing.refined or posted - set(self._wanted_teams(ticket)):
                # The model answered, or an edit moved it, after some posts were made: those
                # are redrawn, and one in a team no longer wanted is marked moved.
                await self._show_refined(ticket_id, ticket=ticket, posts=posts)
            else:
                await self._placement.link_related(ticket_id, ticket=ticket, posts=posts)
            await self._mark_routed(ticket_id)
        # The page reads the ticket as read above (its decision and escalation; routed now).
        await self._paged(ticket_id, ticket=ticket)

    async def _mark_routed(self, ticket_id: int) -> None:
        # The store leaves a withdrawn ticket withdrawn (its deletion came before the ack).
        await self._store.mark_routed(ticket_id)
        self._queue.held.discard(ticket_id)

    async def _paged(self, ticket_id: int, *, ticket: StoredTicket | None = None) -> None:
        """Page if needed; the ticket's retries are done unless the page asked for one."""
        attempt = self._queue.retries.get(ticket_id)
        await self._pager.page_if_needed(ticket_id, ticket=ticket)
        if self._queue.retries.get(ticket_id) == attempt:
            self._queue.retries.pop(ticket_id, None)

    async def classify(
        self,
        ticket_id: int,
        *,
        ticket: StoredTicket | None = None,
        permalink: str | None = None,
        replies: Sequence[StoredReply] | None = None,
    ) -> tuple[StoredTicket, Triage]:
        """Run the local stage on the stored text; keep its layers and a fresh offline draft.

        With an LLM configured the ticket is then queued for the model stage ("pending").
        ticket is the ticket as the caller has just read it under its lock (else read here);
        permalink, if given, is stored with the decision; replies are the ticket's thread
        replies as the caller read them with it (else read here). Returns the ticket as now
        stored.
        """
        if ticket is None:
            ticket = await self._store.ticket(ticket_id)
        assert ticket is not None  # noqa: S101  # callers hold a stored ticket's id
        local = await self._pipeline.triage_locally(
            await ticket_with_replies(self._store, ticket, replies=replies)
        )
        triage = local.triage
        refines = self._pipeline.refines
        model_state: ModelState | None = "pending" if refines else None
        # One transaction: the layers, the decision, the link and the draft (which replaces a
        # pending or rejected draft only: a sent reply stays what was sent).
        await self._store.record_triage(
            ticket_id,
            layers=triage.layers,
            decision=triage.decision,
            escalation=triage.escalation,
            model_state=model_state,
            draft=(triage.draft.text, triage.draft.source),
            permalink=permalink,
        )
        if refines:
            self._queue.ask_model(
                ModelJob(
                    -self._config.priority_rank(triage.decision.priority),
                    ticket.received_at.timestamp(),
                    self._queue.next_seq(),
                    ticket_id=ticket_id,
                    local=local,
                    text=ticket.text,
                )
            )
        stored = replace(
            ticket,
            decision=triage.decision,
            escalation=triage.escalation,
            language=triage.decision.language,
            model_state=model_state,
            permalink=permalink or ticket.permalink,
        )
        return stored, triage

    # --- the model stage ----------------------------------------------------------------

    async def refine(self, job: ModelJob) -> None:
        """Ask the model about a ticket within its deadline, counted from when it was received.

        A ticket whose deadline passed while it waited is not sent to the model: it is marked
        "model did not answer" as one the model left unanswered is.
        """
        waited = self._now().timestamp() - job.received
        remaining = self._config.llm.deadline_seconds - waited
        deadline = asyncio.get_running_loop().time() + remaining
        refinement = await self._pipeline.refine(job.local, deadline=deadline)
        triage = refinement.triage
        ticket_id = job.ticket_id
        async with self._locks.lock(ticket_id):
            ticket = await self._store.ticket(ticket_id)
            if ticket is None or ticket.text != job.text or ticket.model_state != "pending":
                # Edited since (the new text's own refinement follows), or a sweep gave up.
                return
            decision, escalation = triage.decision, triage.escalation
            draft: tuple[str, str] | None = (triage.draft.text, triage.draft.source)
            if ticket.decision is not None and ticket.decision.source == "agent":
                # An agent's correction stands; the model's answer is kept with the layers.
                assert ticket.escalation is not None  # noqa: S101  # stored with the decision
                decision, escalation, draft = ticket.decision, ticket.escalation, None
            elif not refinement.answered:
                draft = None  # the offline draft stays
            recorded = await self._store.record_refinement(
                ticket_id,
                layers=triage.layers[len(job.local.triage.layers) :],
                decision=decision,
                escalation=escalation,
                state="answered" if refinement.answered else "late",
                draft=draft,
                replacing=job.local.triage.draft.text,
            )
            if not recorded:
                return
            placing = self._queue.placing.get(ticket_id)
            if placing is not None:
                # Posts still queued show it as they are made; those made are redrawn at the end.
                placing.refined = True
                return
            if ticket.status != "routed":
                return  # not posted yet: whoever posts it shows what is stored
        # The redraw, a move and a page wait in the team channel's queue at the new priority.
        self._queue.send(
            self._placement.team_channel(decision.team),
            Send(
                -self._config.priority_rank(decision.priority),
                job.received,
                self._queue.next_seq(),
                ticket_id=ticket_id,
                team=decision.team,
                kind="refined",
                urgent=self._most_urgent(decision.priority),
            ),
        )

    async def refined(self, ticket_id: int) -> None:
        """The model answered after the ticket was posted: update its posts, and page if needed."""
        async with self._locks.lock(ticket_id):
            await self._show_refined(ticket_id)
        await self._paged(ticket_id)

    async def _show_refined(
        self,
        ticket_id: int,
        *,
        ticket: StoredTicket | None = None,
        posts: Sequence[StoredPost] | None = None,
    ) -> None:
        """Redraw the posts in place; post in a team newly wanted and mark the old post moved.

        ticket and its active posts are read here unless the caller has just read them.
        """
        if ticket is None:
            ticket = await self._store.ticket(ticket_id)
        if ticket is None or ticket.status == "withdrawn":
            return
        wanted = set(self._wanted_teams(ticket))
        if posts is None:
            posts = await self._store.posts(ticket_id)
        posted = {post.team for post in posts}
        if not wanted or wanted == posted:
            await self._placement.refresh(ticket_id, ticket=ticket, posts=posts)
            return
        try:
            await self._placement.place(ticket_id, wanted, moved_by=None)
        except Exception:
            # The post stays where it is, showing the refined decision; an agent can move it.
            logger.exception("could not move ticket %s after the model's answer", ticket_id)
            await self._placement.refresh(ticket_id)

    async def expire_model_waits(self, now: datetime) -> None:
        """Mark "model did not answer" the tickets pending past the deadline (a dead refiner's)."""
        if not self._pipeline.refines:
            return
        cutoff = now - timedelta(
            seconds=self._config.llm.deadline_seconds + MODEL_LATE_MARGIN_SECONDS
        )
        for ticket_id in await self._store.expire_model_waits(received_before=cutoff):
            logger.warning(
                "ticket %s: the model never answered; its local decision stands", ticket_id
            )
            await self._placement.refresh(ticket_id)
