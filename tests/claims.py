"""Test helpers that reach into a store's file or database, as a crash long ago would leave it."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg


def age_send_claims(database: Path | str, seconds: float) -> None:
    """Move every reply claim this many seconds into the past, as if made that long ago."""
    if isinstance(database, Path):
        with sqlite3.connect(database) as connection:
            for ticket_id, decided_at in connection.execute(
                "SELECT ticket_id, decided_at FROM drafts WHERE status = 'sending'"
            ).fetchall():
                moved = datetime.fromisoformat(decided_at) - timedelta(seconds=seconds)
                connection.execute(
                    "UPDATE drafts SET decided_at = ? WHERE ticket_id = ?",
                    (moved.astimezone(UTC).isoformat(), ticket_id),
                )
        return
    with psycopg.connect(database, autocommit=True) as connection:
        connection.execute(
            "UPDATE drafts SET decided_at = decided_at - make_interval(secs => %s)"
            " WHERE status = 'sending'",
            (seconds,),
        )


@contextmanager
def held_write_lock(database: Path | str) -> Iterator[None]:
    """Another process's connection holding the store's write lock until the block ends.

    SQLite: BEGIN IMMEDIATE on the file. PostgreSQL: the ticket and reply tables locked
    against every write (reads still pass), in a transaction rolled back at the end.
    """
    if isinstance(database, Path):
        other = sqlite3.connect(database, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            yield
            other.execute("ROLLBACK")
        finally:
            other.close()
        return
    with psycopg.connect(database) as connection:
        connection.execute("LOCK TABLE tickets, ticket_replies IN EXCLUSIVE MODE")
        try:
            yield
        finally:
            connection.rollback()


def age_follow_ups(database: Path | str, seconds: float) -> None:
    """Move every pending follow-up this many seconds into the past, as if stored that long ago."""
    if isinstance(database, Path):
        with sqlite3.connect(database) as connection:
            for ticket_id, kind, ref, at in connection.execute(
                "SELECT ticket_id, kind, ref, at FROM pending_follow_ups"
            ).fetchall():
                moved = datetime.fromisoformat(at) - timedelta(seconds=seconds)
                connection.execute(
                    "UPDATE pending_follow_ups SET at = ? WHERE ticket_id = ? AND kind = ?"
                    " AND ref = ?",
                    (moved.astimezone(UTC).isoformat(), ticket_id, kind, ref),
                )
        return
    with psycopg.connect(database, autocommit=True) as connection:
        connection.execute(
            "UPDATE pending_follow_ups SET at = at - make_interval(secs => %s)", (seconds,)
        )
