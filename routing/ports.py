"""The interfaces `routing/` depends on, so what sits behind them can be swapped.

`Clock` is where the desk reads the time: the composition root (bot/compose.py) hands one to
the desk, which gives each part the reading it needs; a test hands in its own (`SystemClock` is
the machine's).

`TicketStore` is what the desk (and the sandbox, the tests and the benchmarks) use of a store:
routing/store/ has an SQLite and a PostgreSQL backend that both satisfy it. A claim (a method
that says it "wins" or returns False when taken) is a compare-and-set that exactly one of any
number of concurrent callers wins, across connections and processes on PostgreSQL.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from routing.models import Decision, Escalation, LabeledExample, LayerCall
from routing.records import (
    AuditEntry,
    ClaimedTicket,
    DayStats,
    HeldReaction,
    LeasedTicket,
    ModelState,
    PendingFollowUp,
    PostStatus,
    StoredBurst,
    StoredDraft,
    StoredPage,
    StoredPost,
    StoredReply,
    StoredTicket,
    TicketStatus,
    utc_now,
)


class Clock(Protocol):
    """The desk's two readings of time: wall time to store and compare, a steady one to count."""

    def now(self) -> datetime:
        """The current time in UTC: what is stored and compared across replicas (leases)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps: intervals within one process (caches, bursts)."""
        ...


class SystemClock:
    """The machine's clocks: what the runner, the sandbox and the benchmarks run on."""

    def now(self) -> datetime:
        """The current time in UTC."""
        return utc_now()

    def monotonic(self) -> float:
        """time.monotonic()."""
        return time.monotonic()


class TicketStore(Protocol):
    """Tickets, decisions, drafts, posts, pages, on-call, audit and corrections, kept durably."""

    async def close(self) -> None:
        """Close the store; every write has been committed already."""
        ...

    async def schema_version(self) -> int:
        """How many migrations of routing/store/schema.py have run on this database."""
        ...

    # --- events ---------------------------------------------------------------------------

    async def first_delivery(self, event_id: str) -> bool:
        """Record an event id; False when it was seen before (a retry or redelivery)."""
        ...

    async def forget_events(self, *, before: datetime) -> int:
        """Drop event ids recorded before a time; returns how many."""
        ...

    # --- tickets --------------------------------------------------------------------------

    async def add_ticket(
        self, *, channel: str, ts: str, author: str | None, text: str, received_at: datetime
    ) -> int | None:
        """Store a new ticket; None when this (channel, ts) is already a ticket."""
        ...

    async def ticket(self, ticket_id: int) -> StoredTicket | None:
        """The ticket with this id."""
        ...

    async def ticket_at(self, channel: str, ts: str) -> StoredTicket | None:
        """The ticket made from the message at (channel, ts)."""
        ...

    async def ticket_ts_range(self, channel: str) -> tuple[str, str] | None:
        """The ts of the first and of the latest message in a channel that is a ticket."""
        ...

    async def unrouted_tickets(self) -> list[StoredTicket]:
        """Tickets stored but not posted yet (new, or interrupted while routing), oldest first."""
        ...

    async def unpaged_tickets(self, *, since: datetime) -> list[int]:
        """Routed tickets received since a time that need a human and were never paged."""
        ...

    async def claim_for_routing(
        self, ticket_id: int, *, holder: str, now: datetime, until: datetime
    ) -> TicketStatus | None:
        """Claim a ticket for routing, leased to holder until a time; one of any racers wins.

        A new ticket, one holder has already, or one whose lease expired before now can be
        claimed. Returns "new" for its first claim, "routing" when an earlier claim may have
        posted it (look for that post before posting), None when it is routed or withdrawn or
        another holder's lease still runs.
        """
        ...

    async def claim_ticket(
        self, ticket_id: int, *, holder: str, now: datetime, until: datetime
    ) -> ClaimedTicket | None:
        """claim_for_routing, and the ticket as claimed with its active posts and replies.

        One statement on PostgreSQL (the decide step's reads come with its claim); None when
        claim_for_routing would return None.
        """
        ...

    async def renew_leases(self, holder: str, ticket_ids: Sequence[int], *, until: datetime) -> int:
        """Extend holder's leases on these tickets to a time (one statement); how many it holds."""
        ...

    async def renew_lease(
        self, holder: str, ticket_id: int, *, until: datetime
    ) -> LeasedTicket | None:
        """Extend holder's lease on one ticket and read it, in one statement.

        Read with its active posts, replies, draft and public id (the post step's reads). None
        when holder no longer holds it (another replica took it over, or it is routed or
        withdrawn): read the ticket to tell which.
        """
        ...

    async def take_stale_tickets(
        self, holder: str, *, now: datetime, until: datetime, new_before: datetime, limit: int
    ) -> list[tuple[int, TicketStatus]]:
        """Claim, as claim_for_routing does, up to limit tickets that nobody is routing.

        Those are tickets still new that were stored before new_before (their replica died
        before claiming them), and tickets being routed whose lease expired before now. Oldest
        first; each with what claim_for_routing would have returned. A ticket is taken by one
        caller however many race (PostgreSQL skips rows another caller has locked).
        """
        ...

    async def release_leases(self, holder: str) -> int:
        """End holder's leases (a replica stopping), so any replica takes the tickets at once."""
        ...

    async def mark_routed(self, ticket_id: int) -> None:
        """The ticket is posted in every team channel it belongs to; its lease ends."""
        ...

    async def mark_withdrawn(self, ticket_id: int) -> bool:
        """The customer deleted the message; False if it was already withdrawn."""
        ...

    async def set_text(self, ticket_id: int, text: str, *, edited_ts: str | None = None) -> bool:
        """Replace a ticket's text after the customer edited the message; False if not replaced.

        With the edit's Slack ts, an edit older than the one the text is from changes nothing
        (Slack may deliver an older edit's retry after a newer edit).
        """
        ...

    async def set_permalink(self, ticket_id: int, permalink: str) -> None:
        """Remember the link to the customer's message."""
        ...

    async def record_triage(
        self,
        ticket_id: int,
        *,
        layers: Sequence[LayerCall],
        decision: Decision,
        escalation: Escalation,
        model_state: ModelState | None = None,
        draft: tuple[str, str] | None = None,
        permalink: str | None = None,
    ) -> None:
        """Keep every layer's output and the final decision of one classification run.

        model_state is "pending" when the model stage will refine this decision, else None.
        With draft (text, source), the draft is stored as set_draft stores it, and with
        permalink the link to the message as set_permalink does: all in one transaction.
        """
        ...

    async def record_refinement(
        self,
        ticket_id: int,
        *,
        layers: Sequence[LayerCall],
        decision: Decision,
        escalation: Escalation,
        state: ModelState,
        draft: tuple[str, str] | None = None,
        replacing: str | None = None,
    ) -> bool:
        """Keep the model stage's layers, decision and state, if the ticket still waits for it.

        One transaction, and only while model_state is "pending" (False, nothing written, once
        a sweep marked it late). draft (text, source) replaces the pending draft whose text is
        `replacing` (the local stage's), never one an agent edited, approved, sent or rejected.
        """
        ...

    async def expire_model_waits(self, *, received_before: datetime) -> list[int]:
        """Mark "late" the tickets received before a time still waiting for the model; ids."""
        ...

    async def set_decision(
        self, ticket_id: int, decision: Decision, escalation: Escalation
    ) -> None:
        """Replace the final decision (an agent's reclassification)."""
        ...

    async def layer_calls(self, ticket_id: int) -> list[LayerCall]:
        """Every layer's output for a ticket, over all its classification runs, in order."""
        ...

    async def add_reply(self, ticket_id: int, *, ts: str, author: str | None, text: str) -> bool:
        """Add a thread reply to a ticket; False if this reply was stored already."""
        ...

    async def set_reply_text(self, ticket_id: int, *, ts: str, text: str) -> bool:
        """Change a stored thread reply's text; False if it is not one of the ticket's replies."""
        ...

    async def replies(self, ticket_id: int) -> list[StoredReply]:
        """The thread replies under a ticket, oldest first."""
        ...

    # --- drafts ---------------------------------------------------------------------------

    async def set_draft(self, ticket_id: int, *, text: str, source: str) -> None:
        """Store a new pending draft for a ticket, replacing one that was not sent."""
        ...

    async def draft(self, ticket_id: int) -> StoredDraft | None:
        """The ticket's draft."""
        ...

    async def claim_draft(self, ticket_id: int, agent: str) -> bool:
        """Take a pending draft for sending; exactly one of several concurrent callers wins."""
        ...

    async def reject_draft(self, ticket_id: int, agent: str) -> bool:
        """Drop a pending draft; False if it was not pending."""
        ...

    async def finish_draft(self, ticket_id: int, *, sent_ts: str | None) -> None:
        """Settle a claimed draft: sent (with the reply's ts), or pending again if it failed."""
        ...

    async def settle_draft(
        self, ticket_id: int, *, claimed_at: datetime, sent_ts: str | None
    ) -> bool:
        """Settle a send claim still the one read (decided_at == claimed_at): sent, or pending.

        A compare-and-set: of replicas settling one stale claim at once, one wins (True); the
        others change nothing, and neither audit nor tell anyone.
        """
        ...

    async def sending_drafts(self, *, claimed_before: datetime | None = None) -> list[int]:
        """Tickets whose draft is being sent, claimed before a time if given (fate unknown)."""
        ...

    async def edit_draft(self, ticket_id: int, text: str) -> bool:
        """Change a pending draft's text; False if it is no longer pending."""
        ...

    # --- posts ----------------------------------------------------------------------------

    async def add_post(self, ticket_id: int, *, team: str, channel: str, ts: str) -> None:
        """Remember a ticket's post in a team channel."""
        ...

    async def posts(self, ticket_id: int, *, active_only: bool = True) -> list[StoredPost]:
        """A ticket's team posts, first posted first."""
        ...

    async def post_at(self, channel: str, ts: str) -> StoredPost | None:
        """The team post at (channel, ts), if it is one of ours."""
        ...

    async def hold_reaction(
        self, channel: str, ts: str, *, user: str, reaction: str, at: datetime
    ) -> None:
        """Keep an agent's emoji on (channel, ts), not yet a recorded post, until it is one."""
        ...

    async def take_held_reactions(self, channel: str, ts: str) -> list[HeldReaction]:
        """Take (delete and return, oldest first) the emoji held on (channel, ts).

        Atomic across connections: of callers racing for the same held emoji, one gets it.
        """
        ...

    async def forget_held_reactions(self, *, before: datetime) -> int:
        """Drop emoji held since before a time (their message never became a post)."""
        ...

    async def public_id(self, ticket_id: int) -> str:
        """The ticket's public id: random, made the first time it is asked for, then kept."""
        ...

    async def ticket_by_public_id(self, public_id: str) -> int | None:
        """The ticket with this public id, if this database made it."""
        ...

    async def set_post_status(
        self,
        post_id: int,
        status: PostStatus,
        *,
        moved_to: str | None = None,
        moved_by: str | None = None,
    ) -> None:
        """Mark a post moved (where to, by whom) or withdrawn."""
        ...

    # --- pages and on-call ----------------------------------------------------------------

    async def claim_page(
        self,
        ticket_id: int,
        *,
        team: str,
        people: Sequence[str],
        reasons: Sequence[str],
        direct: bool = False,
        asked_by: str | None = None,
    ) -> bool:
        """Claim a page (team is its key) for sending; False if it was claimed already.

        The page stays unsent (listed by `unsent_pages`) until `mark_page_sent`.
        """
        ...

    async def release_page(self, ticket_id: int, *, team: str) -> None:
        """Forget a page claim whose message Slack did not take, so it is tried again."""
        ...

    async def pages(self, ticket_id: int) -> list[str]:
        """The keys of the pages claimed for a ticket (sent or not)."""
        ...

    async def page(self, ticket_id: int, *, team: str) -> StoredPage | None:
        """One page claim by its key."""
        ...

    async def mark_page_noted(self, ticket_id: int, *, team: str) -> None:
        """The page's thread note is in Slack."""
        ...

    async def mark_page_sent(self, ticket_id: int, *, team: str) -> None:
        """The page's note and every DM are in Slack: the page is done."""
        ...

    async def unsent_pages(self, *, claimed_before: datetime) -> list[StoredPage]:
        """Pages claimed before a time and not yet sent (a crash or a refusal), oldest first."""
        ...

    async def retake_page(self, ticket_id: int, *, team: str, claimed_at: datetime) -> bool:
        """Take over an unsent page whose claim is still the one read (its claimed_at).

        Exactly one of several callers that read the same claim wins; the claim is then new.
        """
        ...

    async def let_go_page(self, ticket_id: int, *, team: str, claimed_at: datetime) -> bool:
        """Give up an unsent page this caller holds by claimed_at: anyone may take it at once.

        Its claim time becomes PAGE_LET_GO_AT; False if it was sent or taken over meanwhile.
        """
        ...

    async def claim_direct_page(self, ticket_id: int, *, person: str, page: str) -> bool:
        """Claim a critical ticket's DM to one person (once per ticket); False if claimed."""
        ...

    async def mark_direct_page_sent(self, ticket_id: int, *, person: str) -> None:
        """The DM to this person is in Slack."""
        ...

    async def direct_pages(self, ticket_id: int) -> dict[str, tuple[str, bool]]:
        """Each person DMed (or being DMed) about a ticket: the page's key, and whether sent."""
        ...

    async def take_post_slot(self, channel: str, *, now: datetime, spacing: float) -> datetime:
        """Take the channel's next post slot: the later of now and the slot after the last taken.

        The slot after it is then `spacing` seconds later; one taker per slot, however many
        replicas ask at once.
        """
        ...

    async def join_burst(
        self,
        customer: str,
        oncall: str,
        *,
        ticket_id: int,
        channel: str,
        ts: str,
        key: str,
        critical: bool,
        at: datetime,
        window: timedelta,
    ) -> StoredBurst:
        """The burst of pages to this on-call about this customer that a page at `at` is in.

        This ticket leads a new one (started at `at`) when none started within window before
        at, or when this page is critical and the one going on is not critical for the same
        page key (another team's outage is another incident: its on-call is told, not counted);
        otherwise the one going on is returned as it is (led by this ticket or another). One
        caller starts it, however many replicas ask at once.
        """
        ...

    async def end_burst(
        self, customer: str, oncall: str, *, ticket_id: int, started_at: datetime
    ) -> None:
        """Forget the burst this ticket started at started_at (its page was not sent now)."""
        ...

    async def count_in_burst(
        self, customer: str, oncall: str, *, lead: int, ticket_id: int
    ) -> tuple[int, ...]:
        """Count a ticket under the burst led by lead (once); the tickets counted, in order."""
        ...

    async def claim_burst_followup(self, customer: str, oncall: str, *, lead: int) -> bool:
        """Claim the posting of the note counting a burst's tickets; False if claimed before."""
        ...

    async def release_burst_followup(self, customer: str, oncall: str, *, lead: int) -> None:
        """Give up a claim on the counting note that was not posted (the next count posts it)."""
        ...

    async def set_burst_followup(
        self, customer: str, oncall: str, *, lead: int, channel: str, ts: str
    ) -> None:
        """The note counting a burst's tickets is in Slack at (channel, ts)."""
        ...

    async def burst_followup(
        self, customer: str, oncall: str, *, lead: int
    ) -> tuple[str, str] | bool | None:
        """The counting note's (channel, ts); True while claimed, not yet posted; None: none."""
        ...

    async def pending_follow_ups(self, *, stored_before: datetime) -> list[PendingFollowUp]:
        """Follow-ups stored (or taken over) before a time whose after-ack work is not done.

        add_reply, set_reply_text, set_text and mark_withdrawn record one in the same
        transaction as the customer's words, whenever they change something.
        """
        ...

    async def retake_follow_up(self, pending: PendingFollowUp) -> bool:
        """Take over a pending follow-up still as read (its at); exactly one caller wins."""
        ...

    async def finish_follow_up(self, ticket_id: int, *, kind: str, ref: str) -> None:
        """A follow-up's after-ack work is done."""
        ...

    async def set_oncall(self, team: str, people: Sequence[str], set_by: str) -> None:
        """Replace a team's on-call (overrides the config until changed again)."""
        ...

    async def oncall(self, team: str) -> tuple[str, ...] | None:
        """The on-call set with `/triage oncall`, or None when the config's applies."""
        ...

    # --- audit and corrections ------------------------------------------------------------

    async def audit(
        self,
        *,
        ticket_id: int | None,
        actor: str,
        action: str,
        before: Any = None,
        after: Any = None,
    ) -> None:
        """Record an action: who, what, when, and the state before and after."""
        ...

    async def audit_log(self, ticket_id: int | None = None) -> list[AuditEntry]:
        """Audit entries, oldest first; all of them, or one ticket's."""
        ...

    async def add_correction(
        self, example: LabeledExample, *, ticket_id: int | None, by: str
    ) -> None:
        """Store an agent's correction as a labeled example."""
        ...

    async def corrections(self) -> list[LabeledExample]:
        """Every correction, oldest first: the classifier learns them again at start-up."""
        ...

    # --- reports --------------------------------------------------------------------------

    async def day_stats(self, day: date) -> DayStats:
        """Counts for tickets received on one UTC day."""
        ...
