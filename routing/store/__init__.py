"""Persistence behind `routing.ports.TicketStore`: SQLite (embedded, the default) or PostgreSQL.

`schema.py` holds the one migration list both backends run; `sqlite.py` and `postgres.py` are
the backends. `Store` stays the name of the SQLite one, as before the package existed.
`memory.py` is a third, for tests only: nothing in the bot's settings selects it.
"""

from routing.records import (
    AuditEntry,
    DayStats,
    DraftStatus,
    PostStatus,
    StoredDraft,
    StoredPost,
    StoredReply,
    StoredTicket,
    TicketStatus,
    utc_now,
)
from routing.store.memory import MemoryStore
from routing.store.sqlite import MIGRATIONS, SqliteStore

Store = SqliteStore

__all__ = [
    "MIGRATIONS",
    "AuditEntry",
    "DayStats",
    "DraftStatus",
    "MemoryStore",
    "PostStatus",
    "SqliteStore",
    "Store",
    "StoredDraft",
    "StoredPost",
    "StoredReply",
    "StoredTicket",
    "TicketStatus",
    "utc_now",
]
