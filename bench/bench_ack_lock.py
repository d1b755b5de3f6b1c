"""How long a store-first write takes to be refused while another process holds SQLite's lock.

    .venv/bin/python bench/bench_ack_lock.py

The bot's SQLite store with its production settings (5 s busy timeout, retries, the ack bound);
a second connection holds `BEGIN IMMEDIATE` on the file. Each write made before Slack's ack (a
new ticket, a thread reply, an edit, a deletion) is timed until StoreUnavailableError, one after
another and then ten new tickets at once (a burst during the lock). Slack waits 3 s for an ack.
Prints one JSON object.
"""

from __future__ import annotations

import asyncio
import json
import platform
import sqlite3
import tempfile
import time
from collections.abc import Awaitable
from pathlib import Path

from routing.errors import StoreUnavailableError
from routing.records import utc_now
from routing.store.retry import ACK_WRITE_SECONDS
from routing.store.sqlite import SqliteStore

CHANNEL = "C0INTAKE"
AUTHOR = "U0CUSTOMER"
BURST = 10


async def _refused_after(write: Awaitable[object]) -> float:
    """Seconds until the write was refused (it must be)."""
    started = time.perf_counter()
    try:
        await write
    except StoreUnavailableError:
        return time.perf_counter() - started
    raise AssertionError("the write was stored although the file was locked")


async def main() -> None:
    """Time the refusals and print them."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "triage.sqlite3"
        store = await SqliteStore.open(path)
        try:
            ticket_id = await store.add_ticket(
                channel=CHANNEL,
                ts="1700000000.000100",
                author=AUTHOR,
                text="hi",
                received_at=utc_now(),
            )
            assert ticket_id is not None
            await store.add_reply(ticket_id, ts="1700000001.000100", author=AUTHOR, text="a")
            other = sqlite3.connect(path, isolation_level=None)
            other.execute("BEGIN IMMEDIATE")
            try:
                single = {
                    "ticket": await _refused_after(
                        store.add_ticket(
                            channel=CHANNEL,
                            ts="1700000002.000100",
                            author=AUTHOR,
                            text="x",
                            received_at=utc_now(),
                        )
                    ),
                    "reply": await _refused_after(
                        store.add_reply(ticket_id, ts="1700000003.000100", author=AUTHOR, text="b")
                    ),
                    "edit": await _refused_after(store.set_text(ticket_id, "hello")),
                    "deletion": await _refused_after(store.mark_withdrawn(ticket_id)),
                }
                burst = await asyncio.gather(
                    *(
                        _refused_after(
                            store.add_ticket(
                                channel=CHANNEL,
                                ts=f"17000001{n:02d}.000100",
                                author=AUTHOR,
                                text="x",
                                received_at=utc_now(),
                            )
                        )
                        for n in range(BURST)
                    )
                )
            finally:
                other.execute("ROLLBACK")
                other.close()
        finally:
            await store.close()
    print(
        json.dumps(
            {
                "ack_write_seconds": ACK_WRITE_SECONDS,
                "refused_after_s": {what: round(seconds, 3) for what, seconds in single.items()},
                f"burst_of_{BURST}_refused_after_max_s": round(max(burst), 3),
                "python": platform.python_version(),
                "sqlite": sqlite3.sqlite_version,
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
