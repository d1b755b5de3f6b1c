"""Two `triage run --http` replicas on one PostgreSQL: one is killed holding tickets.

The replicas are real processes; this test plays Slack (the strict stand-in, whose rate limiter
reads a clock the test moves) and the customer (signed events over HTTP, all to the first
replica). The first replica claims every ticket, its posts are held back by 429s, and it is
killed with SIGKILL at the instant Slack has taken one of its posts, before it can store it.
The second replica takes the tickets over once their leases run out: each is posted once, and
the post the dead replica made is found again, not made twice.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import socket
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest

from bot import render
from bot.sandbox.events import Workspace
from bot.sandbox.shell import AGENT, CUSTOMER, INTAKE, ONCALL, sandbox_slack_config
from bot.sandbox.slack_api import RecordedCall, SlackStandIn
from routing.config import load_config
from tests.slack_harness import sign, write_standin_config
from tests.timekeeping import ManualClock, until

BOT_TOKEN = "xoxb-replica-test"  # the stand-in's token
SECRET = "replica-test-secret"  # signs this test's own requests
BILLING = "C0BILLING"
TICKETS = 5
# Short, so the test waits little for the dead replica's leases to run out.
LEASE_SECONDS = "3"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _serving(port: int, process: asyncio.subprocess.Process) -> bool:
    if process.returncode is not None:
        raise AssertionError(f"the replica exited with {process.returncode} while starting")
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    await writer.wait_closed()
    return True


def _dead(pid: int) -> bool:
    """True once the process is gone or a zombie (SIGKILL delivered, nothing more runs)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8").rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return True
    return state in ("Z", "X")


def _ticket_id(call: RecordedCall) -> int | None:
    """The ticket a successful top-level post is for (its metadata), else None."""
    if not call.ok or call.method != "chat.postMessage" or call.args.get("thread_ts"):
        return None
    metadata = call.args.get("metadata")
    if isinstance(metadata, str):
        metadata = json.loads(metadata)
    if not isinstance(metadata, dict) or metadata.get("event_type") != render.TICKET_METADATA:
        return None  # not a ticket's post (an on-call's DM, tagged with its page)
    return int(metadata["event_payload"]["ticket_id"])


def _messages_posted(slack: SlackStandIn) -> int:
    return sum(1 for call in slack.calls_to("chat.postMessage") if call.ok)


async def _tickets(url: str) -> list[dict[str, Any]]:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as connection:
        cursor = await connection.execute(
            "SELECT id, status, claimed_by, claims FROM tickets ORDER BY id"
        )
        rows = await cursor.fetchall()
    return [{"id": r[0], "status": r[1], "claimed_by": r[2], "claims": r[3]} for r in rows]


async def _posts(url: str) -> list[tuple[int, str]]:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as connection:
        cursor = await connection.execute("SELECT ticket_id, ts FROM posts ORDER BY id")
        return [(int(r[0]), str(r[1])) for r in await cursor.fetchall()]


def _pid_of(holder: str | None) -> int | None:
    """The process id in a lease holder's name (host:pid:nonce)."""
    return int(holder.split(":")[-2]) if holder else None


@pytest.mark.slow  # end to end: two `triage run --http` processes on one PostgreSQL
async def test_a_replica_killed_holding_tickets_loses_and_doubles_nothing(
    tmp_path: Path, postgres_url: str
) -> None:
    """SIGKILL mid-post: the other replica routes every held ticket once, finding the last post."""
    config = load_config()
    teams = sandbox_slack_config(config).teams
    clock = ManualClock()
    async with SlackStandIn(
        bot_token=BOT_TOKEN,
        channels={INTAKE: "intake"} | {s.channel: team for team, s in teams.items()},
        users={CUSTOMER: "customer", AGENT: "agent", ONCALL: "oncall"},
        # One post, then 429s until the clock moves: the first replica's posts are held back.
        post_rate_per_second=1.0,
        post_burst=1,
        clock=clock,
    ) as slack:
        config_path = write_standin_config(tmp_path)
        env = {
            "PATH": os.environ.get("PATH", ""),
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": slack.base_url,
            "TRIAGE_CONFIG": str(config_path),
            "TRIAGE_DB": postgres_url,
            "TRIAGE_LEASE_SECONDS": LEASE_SECONDS,
            "TRIAGE_LOG_LEVEL": "ERROR",
        }
        ports = [_free_port(), _free_port()]
        replicas = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                "run",
                "--http",
                "--port",
                str(port),
                env=env,
                cwd=tmp_path,
            )
            for port in ports
        ]
        doomed, survivor = replicas
        killed: list[RecordedCall] = []
        armed = False

        def kill_on_post(call: RecordedCall) -> None:
            # Runs after the stand-in made the post and before it answers: the replica dies
            # with the post in Slack and not in the database.
            if armed and not killed and _ticket_id(call) is not None:
                os.kill(doomed.pid, signal.SIGKILL)
                while not _dead(doomed.pid):
                    time.sleep(0.001)
                killed.append(call)

        slack.on_call(kill_on_post)
        try:
            for port, replica in zip(ports, replicas, strict=True):
                await until(lambda p=port, r=replica: _serving(p, r), what=f"serving on {port}")
            workspace = Workspace()
            url = f"http://127.0.0.1:{ports[0]}/slack/events"
            async with aiohttp.ClientSession() as session:
                for n in range(TICKETS):
                    text = f"I was charged twice this month, order {n}"
                    message = slack.add_message(INTAKE, user=CUSTOMER, text=text)
                    event = workspace.message(
                        channel=INTAKE, user=CUSTOMER, text=text, ts=message["ts"]
                    )
                    body = json.dumps(workspace.envelope(event))
                    stamp = str(int(time.time()))
                    headers = {
                        "Content-Type": "application/json",
                        "X-Slack-Request-Timestamp": stamp,
                        "X-Slack-Signature": sign(SECRET, stamp, body),
                    }
                    async with session.post(url, data=body, headers=headers) as response:
                        assert response.status == 200

            async def all_claimed() -> bool:
                rows = await _tickets(postgres_url)
                return len(rows) == TICKETS and all(r["status"] != "new" for r in rows)

            await until(all_claimed, what="every ticket claimed")
            await until(
                lambda: any(c.http_status == 429 for c in slack.calls), what="a post held back"
            )
            held = {
                row["id"]
                for row in await _tickets(postgres_url)
                if row["status"] == "routing" and _pid_of(row["claimed_by"]) == doomed.pid
            }
            assert held, "the first replica holds claimed tickets"
            # One token at a time until the first replica's next post lands and kills it.
            armed = True
            while not killed:
                # (A token may go to a page note in a ticket's thread: then another.)
                made = _messages_posted(slack)
                clock.advance(1.0)
                await until(lambda m=made: _messages_posted(slack) > m, what="a post for a token")
            await doomed.wait()
            assert doomed.returncode == -signal.SIGKILL
            # Slack lets everything through now: only the leases hold the tickets back.
            slack.post_rate_per_second = math.inf

            async def all_routed() -> bool:
                rows = await _tickets(postgres_url)
                return all(r["status"] == "routed" for r in rows)

            await until(all_routed, what="every ticket routed by the surviving replica")
            assert survivor.returncode is None
        finally:
            for replica in replicas:
                if replica.returncode is None:
                    replica.kill()
                    await replica.wait()

        posted = Counter(ticket for call in slack.calls if (ticket := _ticket_id(call)) is not None)
        rows = await _tickets(postgres_url)
        assert posted == Counter({row["id"]: 1 for row in rows})
        assert len(rows) == TICKETS
        # The dead replica's last post was found again by its metadata and stored, not redone.
        last = killed[0]
        last_ticket = _ticket_id(last)
        assert (last_ticket, str(last.response["ts"])) in await _posts(postgres_url)
        assert slack.calls_to("conversations.history")
        # Every ticket the dead replica held was finished by the survivor.
        finished_by = {row["id"]: _pid_of(row["claimed_by"]) for row in rows}
        assert {finished_by[ticket] for ticket in held} == {survivor.pid}
        assert last_ticket in held
        assert [m for m in slack.messages(BILLING) if "metadata" in m] != []
