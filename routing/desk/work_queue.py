"""The work queue: tickets to decide, per-channel priority posters, leases, sweeps, retries.

A ticket is claimed, not owned: this replica's leases are renewed while it holds them, and a
sweep (any replica's) takes up tickets whose lease ran out. Deciding and posting are the
desk's (the handlers given); this module only says when. With an LLM configured, the model
stage has its own bounded queue: a few refinements at a time, the most urgent first, so posts
never wait for the model.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from routing.cascade import LocalTriage
from routing.desk.limits import LEASE_RENEWALS, SEND_STALE_SECONDS, SWEEP_BATCH
from routing.desk.pacing import pace_posts_here
from routing.ports import TicketStore
from routing.records import TicketStatus

logger = logging.getLogger(__name__)


class PageClaims(Protocol):
    """The unsent page claims a replica holds, renewed and recovered with its leases."""

    async def renew(self) -> None:
        """Move this replica's unsent page claims to now."""
        ...

    async def recover_pages(self, *, claimed_before: datetime) -> int:
        """Take over the pages claimed before a time and never sent."""
        ...

    def forget(self, ticket_id: int) -> None:
        """Drop this replica's claims on a ticket's unsent pages."""
        ...


@dataclass(order=True)
class Send:
    """A message waiting in a team channel's queue: the most urgent first, then the oldest."""

    urgency: int  # minus the ticket's priority rank: the config's most urgent sorts first
    received: float  # the ticket's received time (seconds since the epoch)
    seq: int
    ticket_id: int = field(compare=False)
    team: str = field(compare=False)
    # "post": the ticket's card in this team's channel; "finish": its page notes, then routed;
    # "refined": the model answered after the ticket was posted: redraw, move, page.
    kind: Literal["post", "finish", "refined"] = field(compare=False)
    # The config's most urgent priority: posted from the channel's urgent lane, unpaced.
    urgent: bool = field(default=False, compare=False)


@dataclass(order=True)
class ModelJob:
    """A ticket waiting for the model stage: the most urgent first, then the oldest."""

    urgency: int  # as Send's, from the local decision
    received: float  # the ticket's received time: its model deadline counts from it
    seq: int
    ticket_id: int = field(compare=False)
    # The local stage's triage, which the model refines, and the stored text it read.
    local: LocalTriage = field(compare=False)
    text: str = field(compare=False)


@dataclass
class Placing:
    """A decided ticket whose posts are queued, until each has been tried."""

    recovering: bool
    urgency: int
    received: float
    urgent: bool = False  # the config's most urgent priority: its posts skip the paced lane
    waiting: set[str] = field(default_factory=set)
    failed: bool = False
    lost: bool = False
    # The model answered while the posts were queued: those made already are redrawn at the end.
    refined: bool = False


@dataclass
class _Worker:
    """The work queue's state; a stop replaces it whole."""

    # Tickets to decide (claim, classify, queue the posts), each with the claim a sweep made.
    # Ordered by how urgent the text sounds (its priority cues), then by arrival: in a burst
    # an outage is decided next, not after every ticket that came before it.
    queue: asyncio.PriorityQueue[tuple[int, int, int]] = field(
        default_factory=asyncio.PriorityQueue
    )
    queued: dict[int, TicketStatus | None] = field(default_factory=dict)
    # Two lanes per team channel, each a priority queue with its poster: a busy channel delays
    # only itself, and the most urgent tickets' lane never waits for the paced one's slots.
    channels: dict[tuple[str, bool], asyncio.PriorityQueue[Send]] = field(default_factory=dict)
    # Set while a channel's urgent lane has nothing queued or being posted: the paced lane
    # waits for it, so an urgent post held by a 429 is not overtaken by this replica's own.
    urgent_clear: dict[str, asyncio.Event] = field(default_factory=dict)
    urgent_jobs: dict[str, int] = field(default_factory=dict)
    placing: dict[int, Placing] = field(default_factory=dict)
    # Tickets this replica holds a routing lease on; renewed together while they are held.
    held: set[int] = field(default_factory=set)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    retries: dict[int, int] = field(default_factory=dict)
    timers: set[asyncio.Task[None]] = field(default_factory=set)
    seq: itertools.count[int] = field(default_factory=itertools.count)
    # Jobs put on any queue and not done yet; idle is set whenever it is 0.
    jobs: int = 0
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    # The model stage's queue, the tickets in it or being refined, and its own job count.
    models: asyncio.PriorityQueue[ModelJob] = field(default_factory=asyncio.PriorityQueue)
    refining: dict[int, int] = field(default_factory=dict)  # ticket id -> its jobs
    model_jobs: int = 0
    model_idle: asyncio.Event = field(default_factory=asyncio.Event)


class WorkQueue:
    """Queues tickets once, runs the workers and one poster per team channel, keeps leases.

    decide(ticket_id, claimed) is run by a worker for each queued ticket; post(job) and
    finish(ticket_id) by the job's channel poster (refined(ticket_id) too, for a "refined"
    job). A handler that raises has its ticket retried after the next of retry_delays, then
    left to a sweep once its lease runs out. refine(job) is run by a model worker for each
    ticket asked of the model; expire_models(now) by every sweep, for a dead replica's.
    acks_first(), if given, returns once no new ticket is being stored: a worker waits for it
    before it takes the next ticket, so a burst's acks are not slowed by deciding its first
    tickets (the critical one that comes after is decided as soon as it is stored).
    """

    def __init__(
        self,
        *,
        store: TicketStore,
        replica: str,
        lease: timedelta,
        now: Callable[[], datetime],
        retry_delays: Sequence[float],
        pages: PageClaims,
        decide: Callable[[int, TicketStatus | None], Coroutine[Any, Any, None]],
        post: Callable[[Send], Coroutine[Any, Any, None]],
        finish: Callable[[int], Coroutine[Any, Any, None]],
        settle_sends: Callable[[datetime], Coroutine[Any, Any, None]] | None = None,
        refine: Callable[[ModelJob], Coroutine[Any, Any, None]] | None = None,
        refined: Callable[[int], Coroutine[Any, Any, None]] | None = None,
        expire_models: Callable[[datetime], Coroutine[Any, Any, None]] | None = None,
        urgency: Callable[[str], int] | None = None,
        acks_first: Callable[[], Coroutine[Any, Any, None]] | None = None,
    ) -> None:
        self._store = store
        self._replica = replica
        self._lease = lease
        self._now = now
        self._retry_delays = tuple(retry_delays)
        self._pages = pages
        self._decide = decide
        self._post = post
        self._finish = finish
        self._settle_sends = settle_sends
        self._refine = refine
        self._refined = refined
        self._expire_models = expire_models
        self._urgency = urgency
        self._acks_first = acks_first
        self._state = _Worker()
        self._state.idle.set()
        self._state.model_idle.set()

    @property
    def send_stale_after(self) -> timedelta:
        """How long ago a reply still being sent must have been claimed to be settled."""
        return max(self._lease, timedelta(seconds=SEND_STALE_SECONDS))

    @property
    def placing(self) -> dict[int, Placing]:
        """Decided tickets whose posts are queued, by ticket id."""
        return self._state.placing

    @property
    def held(self) -> set[int]:
        """Tickets this replica holds a routing lease on."""
        return self._state.held

    @property
    def retries(self) -> dict[int, int]:
        """Tickets being retried, and how many retries each has had."""
        return self._state.retries

    @property
    def refining(self) -> dict[int, int]:
        """Tickets queued for the model stage or being refined here, with how many jobs each."""
        return self._state.refining

    @property
    def tasks(self) -> list[asyncio.Task[None]]:
        """The workers, posters, lease keeper and retry timers running now."""
        return [*self._state.tasks, *self._state.timers]

    def next_seq(self) -> int:
        """A number that orders jobs of equal urgency and age by when they were queued."""
        return next(self._state.seq)

    def start_workers(self, count: int) -> None:
        """Start the workers that decide queued tickets."""
        for _ in range(count):
            self._state.tasks.append(asyncio.create_task(self._worker()))

    def start_model_workers(self, count: int) -> None:
        """Start the model workers: at most this many model calls at once."""
        for _ in range(count):
            self._state.tasks.append(asyncio.create_task(self._model_worker()))

    def keep_leases(self) -> None:
        """Renew leases and page claims and sweep for abandoned work, until stopped."""
        self._state.tasks.append(asyncio.create_task(self._keep_leases()))

    async def drain(self, *, model: bool = True) -> None:
        """Wait until every queued ticket is done, retries included, or gave up.

        With model=False the model stage is not waited for (what it changes after is).
        """
        while self._state.jobs or self._state.timers or (model and self._state.model_jobs):
            if self._state.jobs:
                await self._state.idle.wait()
            elif model and self._state.model_jobs:
                await self._state.model_idle.wait()
            else:
                await asyncio.gather(*self._state.timers, return_exceptions=True)

    async def release(self) -> None:
        """End this replica's leases (after its tasks stopped): any replica routes the rest."""
        try:
            await self._store.release_leases(self._replica)
        except Exception:
            logger.exception("could not end the leases: they run out instead")
        # Nothing queued survives a stop: a start takes the tickets up again from the store.
        self._state = _Worker()
        self._state.idle.set()
        self._state.model_idle.set()

    async def sweep(self, *, new_before: datetime, limit: int) -> int:
        """Take tickets nobody is routing and queue them; how many were taken."""
        now = self._now()
        taken = await self._store.take_stale_tickets(
            self._replica, now=now, until=now + self._lease, new_before=new_before, limit=limit
        )
        for ticket_id, claimed in taken:
            if ticket_id in self._state.held:
                continue  # its own, late in renewing: still queued here
            logger.info("routing ticket %s, which no replica was routing", ticket_id)
            self._state.held.add(ticket_id)
            self.put(ticket_id, claimed)
        return len(taken)

    async def _keep_leases(self) -> None:
        """Renew this replica's leases and page claims, and take abandoned work, while it runs."""
        while True:
            await asyncio.sleep(self._lease.total_seconds() / LEASE_RENEWALS)
            try:
                if self._state.held:
                    await self._store.renew_leases(
                        self._replica, sorted(self._state.held), until=self._now() + self._lease
                    )
                await self._pages.renew()
                # New tickets are taken once they have waited a whole lease unclaimed.
                await self.sweep(new_before=self._now() - self._lease, limit=SWEEP_BATCH)
                # So are pages claimed a lease ago and never sent (their claimer is gone).
                await self._pages.recover_pages(claimed_before=self._now() - self._lease)
                # And replies whose sender died mid-send: sent if Slack has them, else drafts.
                if self._settle_sends is not None:
                    await self._settle_sends(self._now() - self.send_stale_after)
                # And tickets whose refiner died: "model did not answer" once past the deadline.
                if self._expire_models is not None:
                    await self._expire_models(self._now())
            except Exception:
                # The database away for a moment: the next round tries again.
                logger.exception("could not renew leases or sweep for abandoned tickets")

    def put(
        self, ticket_id: int, claimed: TicketStatus | None = None, *, text: str | None = None
    ) -> None:
        """Queue a ticket to decide, once: a ticket queued or being posted is not queued again.

        With its text, a ticket that sounds urgent is decided before those queued earlier.
        """
        if ticket_id in self._state.queued:
            # A sweep claimed it while it waited here: its claim says what the sweep found.
            self._state.queued[ticket_id] = claimed or self._state.queued[ticket_id]
            return
        if ticket_id in self._state.placing:
            return
        self._state.queued[ticket_id] = claimed
        self._job_added()
        urgency = self._urgency(text) if text is not None and self._urgency is not None else 0
        self._state.queue.put_nowait((-urgency, self.next_seq(), ticket_id))

    def _job_added(self) -> None:
        self._state.jobs += 1
        self._state.idle.clear()

    def _job_done(self) -> None:
        self._state.jobs -= 1
        if self._state.jobs == 0:
            self._state.idle.set()

    async def _worker(self) -> None:
        while True:
            if self._acks_first is not None:
                # New tickets being stored (Slack waits for those acks) go before deciding more.
                await self._acks_first()
            _, _, ticket_id = await self._state.queue.get()
            claimed = self._state.queued.pop(ticket_id, None)
            try:
                await self._decide(ticket_id, claimed)
            except Exception:
                # The database or Slack (a permalink) failed: the ticket stays stored.
                logger.exception("routing ticket %s failed", ticket_id)
                self.retry_later(ticket_id)
            finally:
                self._job_done()

    def ask_model(self, job: ModelJob) -> None:
        """Queue a ticket for the model stage (a newer local triage's job replaces none)."""
        refining = self._state.refining
        refining[job.ticket_id] = refining.get(job.ticket_id, 0) + 1
        self._state.model_jobs += 1
        self._state.model_idle.clear()
        self._state.models.put_nowait(job)

    async def _model_worker(self) -> None:
        assert self._refine is not None  # noqa: S101  # started only with a model stage
        while True:
            job = await self._state.models.get()
            try:
                await self._refine(job)
            except Exception:
                # The store or Slack failed: the ticket stays as posted, and a sweep marks its
                # model state late once the deadline has passed.
                logger.exception("refining ticket %s failed", job.ticket_id)
            finally:
                refining = self._state.refining
                refining[job.ticket_id] = refining.get(job.ticket_id, 1) - 1
                if refining[job.ticket_id] <= 0:
                    del refining[job.ticket_id]
                self._state.model_jobs -= 1
                if self._state.model_jobs == 0:
                    self._state.model_idle.set()

    def send(self, channel: str, job: Send) -> None:
        """Queue a message for a team channel's lane, starting the lane's poster on first use."""
        lane = (channel, job.urgent)
        queue = self._state.channels.get(lane)
        if queue is None:
            queue = self._state.channels[lane] = asyncio.PriorityQueue()
            poster = self._poster(channel, queue, paced=not job.urgent)
            self._state.tasks.append(asyncio.create_task(poster))
        self._job_added()
        if job.urgent:
            self._state.urgent_jobs[channel] = self._state.urgent_jobs.get(channel, 0) + 1
            self._urgent_clear(channel).clear()
        queue.put_nowait(job)

    def _urgent_clear(self, channel: str) -> asyncio.Event:
        clear = self._state.urgent_clear.get(channel)
        if clear is None:
            clear = self._state.urgent_clear[channel] = asyncio.Event()
            clear.set()
        return clear

    async def _poster(
        self, channel: str, queue: asyncio.PriorityQueue[Send], *, paced: bool
    ) -> None:
        """Post one lane's messages one at a time (Slack allows about one a second).

        The paced lane's posts wait for their slots in the channel (routing/desk/pacing.py),
        and for the urgent lane to be empty; the urgent lane's go at once.
        """
        if paced:
            pace_posts_here()
        while True:
            job = await queue.get()
            if paced:
                await self._urgent_clear(channel).wait()
            try:
                if job.kind == "post":
                    await self._post(job)
                elif job.kind == "refined" and self._refined is not None:
                    await self._refined(job.ticket_id)
                else:
                    await self._finish(job.ticket_id)
            except Exception:
                logger.exception("routing ticket %s failed", job.ticket_id)
                self._state.placing.pop(job.ticket_id, None)
                self.retry_later(job.ticket_id)
            finally:
                if job.urgent:
                    left = self._state.urgent_jobs[channel] = self._state.urgent_jobs[channel] - 1
                    if left == 0:
                        self._urgent_clear(channel).set()
                self._job_done()

    def retry_later(self, ticket_id: int) -> None:
        """Queue the ticket again after its next retry delay; after the last, leave it."""
        attempt = self._state.retries.get(ticket_id, 0)
        if attempt >= len(self._retry_delays):
            # Stored as it is, its lease left to run out: a sweep (of any replica) takes it up.
            logger.error(
                "ticket %s: giving up until the next start (unrouted: until a sweep takes it"
                " once its lease runs out)",
                ticket_id,
            )
            self._state.retries.pop(ticket_id, None)
            self._state.held.discard(ticket_id)
            # Its unsent pages too: no longer renewed, a sweep takes them over a lease from now.
            self._pages.forget(ticket_id)
            return
        self._state.retries[ticket_id] = attempt + 1
        delay = self._retry_delays[attempt]

        async def requeue() -> None:
            await asyncio.sleep(delay)
            self.put(ticket_id)

        timer = asyncio.create_task(requeue())
        self._state.timers.add(timer)
        timer.add_done_callback(self._state.timers.discard)
