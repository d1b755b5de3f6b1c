"""The triage desk: tickets in, team posts, pages and approved replies out, with no Slack types.

The Slack edge turns events into calls on `Desk` and implements `Outbox` (how a card, a note, a
page or a reply reaches people). Every action is stored before it is shown, so a retried event, a
second agent or a restart finds the work already done. `Desk` is a thin facade over the parts in
this package, each one class with one job.
"""

from routing.desk.facade import Desk
from routing.desk.limits import (
    BURST_WINDOW_SECONDS,
    CATCH_UP_OVERLAP_SECONDS,
    CATCH_UP_WINDOW_SECONDS,
    EDIT_WINDOW_SECONDS,
    EVENT_MEMORY,
    GROUP_CACHE_SECONDS,
    LEASE_RENEWALS,
    LEASE_SECONDS,
    OPS_ALERT_INTERVAL_SECONDS,
    READ_BACK_RETRY_DELAYS,
    ROUTING_RETRY_DELAYS,
    START_SWEEP_BATCH,
    SWEEP_BATCH,
    UNPAGED_LOOKBACK,
)
from routing.desk.pacing import PostPacer
from routing.desk.types import (
    STALE_POST,
    ActionRefusedError,
    BadRequestError,
    CustomerMessage,
    DirectPage,
    NotAllowedError,
    Note,
    Outbox,
    PageNotSentError,
    PostRef,
    StalePostError,
    StatusReport,
    TicketCard,
)

__all__ = [
    "BURST_WINDOW_SECONDS",
    "CATCH_UP_OVERLAP_SECONDS",
    "CATCH_UP_WINDOW_SECONDS",
    "EDIT_WINDOW_SECONDS",
    "EVENT_MEMORY",
    "GROUP_CACHE_SECONDS",
    "LEASE_RENEWALS",
    "LEASE_SECONDS",
    "OPS_ALERT_INTERVAL_SECONDS",
    "READ_BACK_RETRY_DELAYS",
    "ROUTING_RETRY_DELAYS",
    "STALE_POST",
    "START_SWEEP_BATCH",
    "SWEEP_BATCH",
    "UNPAGED_LOOKBACK",
    "ActionRefusedError",
    "BadRequestError",
    "CustomerMessage",
    "Desk",
    "DirectPage",
    "NotAllowedError",
    "Note",
    "Outbox",
    "PageNotSentError",
    "PostPacer",
    "PostRef",
    "StalePostError",
    "StatusReport",
    "TicketCard",
]
