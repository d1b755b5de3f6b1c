"""What the listeners work with (`Services`), and opening the store TRIAGE_DB names.

bot/compose.py puts them together with the desk and the app; nothing else builds a bot.
"""

from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import psycopg

from bot.settings import is_postgres_url, redact_database_url
from routing.config import TriageConfig
from routing.desk import Desk
from routing.errors import UserError
from routing.ports import TicketStore
from routing.store.postgres import PostgresStore
from routing.store.sqlite import SqliteStore

# How long the start-up check waits for another process's write lock before it lets it be.
LOCK_CHECK_SECONDS = 0.5
TABLES = "SELECT name FROM sqlite_master WHERE type = 'table'"


@dataclass(frozen=True)
class Services:
    """The desk (every ticket action) and the config it runs on."""

    desk: Desk
    config: TriageConfig


async def open_store(location: Path | str) -> TicketStore:
    """The store TRIAGE_DB names: PostgreSQL for a postgresql:// URL, else an SQLite file."""
    if isinstance(location, str) and is_postgres_url(location):
        try:
            return await PostgresStore.open(location)
        except psycopg.Error as error:
            # psycopg's message names the host and the user, never the password.
            raise UserError(
                f"setting TRIAGE_DB: cannot open {redact_database_url(location)}:"
                # psycopg's hints come on lines of their own: one line for the operator.
                f" {' '.join(str(error).split())}"
            ) from None
    check_database(Path(location))
    try:
        return await SqliteStore.open(location)
    except sqlite3.Error as error:
        # Opened, but not writable as a database (a /proc file, a full or read-only disk).
        raise UserError(
            f"setting TRIAGE_DB: cannot use {location} ({error}); point it at a SQLite file in"
            " a folder that exists and the bot may write to"
        ) from None


def check_database(database: Path) -> None:
    """Fail with one line when TRIAGE_DB cannot be opened as a SQLite database.

    Checked with the standard library before the store opens it: a failed aiosqlite open leaves
    its worker thread behind (a traceback at exit, or a process that never exits).
    """
    fix = "point it at a SQLite file in a folder that exists and the bot may write to"
    if not database.parent.is_dir():
        raise UserError(f"setting TRIAGE_DB: the folder of {database} does not exist; {fix}")
    if database.exists() and not database.is_file():
        # /dev/null, a FIFO, a directory: SQLite opens some of them and fails later, or hangs.
        raise UserError(f"setting TRIAGE_DB: {database} is not a regular file; {fix}")
    try:
        with contextlib.closing(
            sqlite3.connect(database, timeout=LOCK_CHECK_SECONDS, isolation_level=None)
        ) as connection:
            connection.execute("PRAGMA schema_version")  # reads the header: is it SQLite?
            _check_tables(connection)
            _check_writable(connection)
    except sqlite3.Error as error:
        raise UserError(f"setting TRIAGE_DB: cannot open {database} ({error}); {fix}") from None


def _check_tables(connection: sqlite3.Connection) -> None:
    """Read each table's first row: a file corrupt past its header fails here, not mid-run."""
    names = [str(row[0]) for row in connection.execute(TABLES)]
    for name in names:
        quoted = name.replace('"', '""')
        connection.execute(f'SELECT * FROM "{quoted}" LIMIT 1').fetchall()  # noqa: S608  # a name SQLite listed, quoted


def _check_writable(connection: sqlite3.Connection) -> None:
    """Write and undo it: a read-only file or mount fails here.

    Another process holding the lock (a second bot on the same file) is no problem of the file.
    """
    try:
        connection.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as error:
        if "locked" in str(error):
            return
        raise
    try:
        # The same version written back, then undone: a write SQLite refuses on a read-only
        # file (BEGIN alone succeeds there).
        (version,) = connection.execute("PRAGMA user_version").fetchone()
        connection.execute(f"PRAGMA user_version = {int(version)}")
    finally:
        connection.execute("ROLLBACK")
