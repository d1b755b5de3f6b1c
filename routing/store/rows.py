"""Stored rows as records, the same for both backends; only the reading of times differs.

SQLite keeps times as ISO 8601 text, PostgreSQL as TIMESTAMPTZ: each backend passes its own
`to_time`, everything else about a row is one mapping.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from routing.models import Decision, Escalation
from routing.records import StoredBurst, StoredDraft, StoredPage, StoredPost, StoredTicket


class Row(Protocol):
    """A database row read by column name (sqlite3.Row and psycopg's dict rows alike)."""

    def __getitem__(self, key: str) -> Any: ...


# A stored time as an aware UTC datetime.
ToTime = Callable[[Any], datetime]


def new_public_id() -> str:
    """A ticket's public id: 128 random bits, URL-safe; no database makes the same one twice."""
    return secrets.token_urlsafe(16)


def _maybe(to_time: ToTime, value: Any) -> datetime | None:
    return to_time(value) if value else None


def ticket_from_row(row: Row, to_time: ToTime) -> StoredTicket:
    """A tickets row as a StoredTicket."""
    return StoredTicket(
        id=row["id"],
        channel=row["channel"],
        ts=row["ts"],
        author=row["author"],
        text=row["text"],
        status=row["status"],
        decision=Decision.model_validate_json(row["decision_json"])
        if row["decision_json"]
        else None,
        escalation=Escalation.model_validate_json(row["escalation_json"])
        if row["escalation_json"]
        else None,
        permalink=row["permalink"],
        received_at=to_time(row["received_at"]),
        routed_at=_maybe(to_time, row["routed_at"]),
        language=row["language"],
        model_state=row["model_state"],
    )


def post_from_row(row: Row) -> StoredPost:
    """A posts row as a StoredPost."""
    return StoredPost(
        id=row["id"],
        ticket_id=row["ticket_id"],
        team=row["team"],
        channel=row["channel"],
        ts=row["ts"],
        status=row["status"],
        moved_to=row["moved_to"],
        moved_by=row["moved_by"],
    )


def draft_from_row(row: Row, to_time: ToTime) -> StoredDraft:
    """A drafts row as a StoredDraft."""
    return StoredDraft(
        ticket_id=row["ticket_id"],
        text=row["text"],
        source=row["source"],
        status=row["status"],
        decided_by=row["decided_by"],
        reply_ts=row["reply_ts"],
        created_at=to_time(row["created_at"]),
        decided_at=_maybe(to_time, row["decided_at"]),
        tried_at=_maybe(to_time, row["tried_at"]),
    )


def page_from_row(row: Row, to_time: ToTime) -> StoredPage:
    """A pages row as a StoredPage."""
    return StoredPage(
        ticket_id=row["ticket_id"],
        key=row["team"],
        people=tuple(json.loads(row["people_json"])),
        reasons=tuple(json.loads(row["reasons_json"])),
        direct=bool(row["direct"]),
        asked_by=row["asked_by"],
        claimed_at=to_time(row["at"]),
        noted_at=_maybe(to_time, row["noted_at"]),
        sent_at=_maybe(to_time, row["sent_at"]),
    )


def burst_from_row(row: Row, to_time: ToTime) -> StoredBurst:
    """A page_bursts row as a StoredBurst."""
    return StoredBurst(
        customer=row["customer"],
        oncall=row["oncall"],
        ticket_id=row["ticket_id"],
        channel=row["channel"],
        ts=row["ts"],
        key=row["page_key"],
        critical=bool(row["critical"]),
        started_at=to_time(row["started_at"]),
    )
