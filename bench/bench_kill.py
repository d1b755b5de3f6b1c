"""Kill the bot at random points and restart it: lost tickets, unsent pages, doubles.

    PYTHONPATH=. .venv/bin/python bench/bench_kill.py [--rounds 10] [--tickets 30] [--seed 1]

The bot is the real `triage run --http` process (offline classifier, SQLite). This script plays
Slack with the strict Web API stand-in. Each round sends a batch of customers' messages (every
fifth an outage: critical, paged in the thread and by DM), presses Approve & send on the
previous round's tickets, then kills the bot with SIGKILL after a random delay, restarts it,
and waits until Slack has been quiet for a while. At the end it counts, from what Slack holds:
tickets with no team post, tickets needing a human with no page note, critical tickets with no
DM, page notes and DMs sent twice, and customer threads with more than one reply.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

from bot import render
from bot.sandbox.events import Workspace
from bot.sandbox.shell import AGENT, INTAKE, ONCALL, sandbox_slack_config
from bot.sandbox.slack_api import SlackStandIn
from routing.config import load_config
from tests.slack_harness import sign, write_standin_config

REPO = Path(__file__).resolve().parent.parent
BOT_TOKEN = "xoxb-bench"  # noqa: S105  # the stand-in's own token
SECRET = "bench-signing-secret"  # noqa: S105  # signs the bench's own requests
TEXTS = (
    "I was charged twice for my subscription this month",
    "The export to CSV fails with an error since yesterday",
    "I cannot log in, the password reset link never arrives",
    "Could you add a dark mode to the dashboard?",
    "Production is down for all our users, nothing loads, urgent",
)
# Slack quiet this long after a restart: the bot has finished what it had.
QUIET_SECONDS = 4.0


def free_port() -> int:
    """A port nothing listens on now (the bot binds it a moment later)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def wait_for_port(port: int, seconds: float) -> None:
    """Wait until the bot accepts connections."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            await writer.wait_closed()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


def _metadata(call_args: dict[str, Any]) -> dict[str, Any]:
    metadata = call_args.get("metadata")
    if isinstance(metadata, str):
        metadata = json.loads(metadata)
    return metadata if isinstance(metadata, dict) else {}


async def _post(session: aiohttp.ClientSession, url: str, body: str, content_type: str) -> None:
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": sign(SECRET, timestamp, body),
    }
    try:
        async with session.post(url, data=body.encode(), headers=headers) as response:
            await response.read()
    except aiohttp.ClientError:
        pass  # the bot was killed under this request: Slack would retry an event, not a press


async def _quiet(slack: SlackStandIn, seconds: float) -> None:
    """Wait until the stand-in has had no call for `seconds`."""
    seen = -1
    while len(slack.calls) != seen:
        seen = len(slack.calls)
        await asyncio.sleep(seconds)


def _start(env: dict[str, str], port: int, directory: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # noqa: S603  # our own console script
        [str(REPO / ".venv" / "bin" / "triage"), "run", "--http", "--port", str(port)],
        env=env,
        cwd=directory,
    )


async def run(rounds: int, tickets: int, seed: int) -> dict[str, Any]:
    """Play the rounds and count what Slack holds at the end."""
    chance = random.Random(seed)  # noqa: S311  # kill points and texts, not secrets
    config = load_config()
    slack_config = sandbox_slack_config(config)
    team_channels = {settings.channel: team for team, settings in slack_config.teams.items()}
    customers = {f"U0C{index:05d}": f"customer {index}" for index in range(rounds * tickets)}
    kills: list[float] = []
    with tempfile.TemporaryDirectory(prefix="triage-kill-") as directory:
        config_path = write_standin_config(Path(directory))
        database = Path(directory) / "bench.sqlite3"
        async with SlackStandIn(
            bot_token=BOT_TOKEN,
            channels={INTAKE: "intake", **team_channels},
            users={AGENT: "agent", ONCALL: "oncall", **customers},
            post_rate_per_second=float("inf"),
        ) as slack:
            port = free_port()
            env = {
                **os.environ,
                "SLACK_BOT_TOKEN": BOT_TOKEN,
                "SLACK_SIGNING_SECRET": SECRET,
                "SLACK_API_URL": slack.base_url,
                "TRIAGE_CONFIG": str(config_path),
                "TRIAGE_DB": str(database),
                "TRIAGE_LOG_LEVEL": "ERROR",
            }
            env.pop("OPENAI_API_KEY", None)
            url = f"http://127.0.0.1:{port}/slack/events"
            workspace = Workspace(response_url_base=slack.base_url.replace("/api/", "/response/"))
            people = iter(customers)
            bot = _start(env, port, directory)
            await wait_for_port(port, 120)
            async with aiohttp.ClientSession() as session:
                for _ in range(rounds):
                    # The previous rounds' posted tickets get an agent's Approve & send.
                    presses = []
                    for call in slack.calls_to("chat.postMessage"):
                        payload = _metadata(call.args).get("event_payload") or {}
                        if call.ok and _metadata(call.args).get("event_type") == (
                            render.TICKET_METADATA
                        ):
                            presses.append(
                                workspace.block_action(
                                    user=AGENT,
                                    action_id=render.APPROVE_ACTION,
                                    value=str(payload["ticket_id"]),
                                    channel=str(call.response["channel"]),
                                    message_ts=str(call.response["ts"]),
                                    trigger_id=slack.new_trigger_id(),
                                )
                            )
                    events = []
                    for index in range(tickets):
                        text = f"{TEXTS[index % len(TEXTS)]} (ref {chance.randrange(10**9)})"
                        user = next(people)
                        stored = slack.add_message(INTAKE, user=user, text=text)
                        event = workspace.message(
                            channel=INTAKE, user=user, text=text, ts=stored["ts"]
                        )
                        events.append(json.dumps(workspace.envelope(event)))
                    work = [
                        *(_post(session, url, body, "application/json") for body in events),
                        *(
                            _post(session, url, body, "application/x-www-form-urlencoded")
                            for body in chance.sample(presses, min(len(presses), tickets))
                        ),
                    ]
                    sending = asyncio.gather(*work)
                    delay = chance.uniform(0.0, 6.0)
                    kills.append(round(delay, 2))
                    await asyncio.sleep(delay)
                    bot.send_signal(signal.SIGKILL)
                    bot.wait(timeout=30)
                    await sending
                    bot = _start(env, port, directory)
                    await wait_for_port(port, 120)
                    await _quiet(slack, QUIET_SECONDS)
            bot.terminate()
            bot.wait(timeout=30)
            return _count(slack, database, team_channels, kills, rounds, tickets)


def _count(
    slack: SlackStandIn,
    database: Path,
    team_channels: dict[str, str],
    kills: list[float],
    rounds: int,
    tickets: int,
) -> dict[str, Any]:
    with sqlite3.connect(database) as db:
        rows = db.execute("SELECT id, ts, escalation_json, decision_json FROM tickets").fetchall()
        drafts = dict(db.execute("SELECT ticket_id, status FROM drafts").fetchall())
    needing = {row[0] for row in rows if row[2] and json.loads(row[2])["needs_human"]}
    critical = {row[0] for row in rows if row[3] and json.loads(row[3])["priority"] == "critical"}
    ok_posts = [c for c in slack.calls_to("chat.postMessage") if c.ok]
    cards = Counter(
        int(_metadata(c.args)["event_payload"]["ticket_id"])
        for c in ok_posts
        if _metadata(c.args).get("event_type") == render.TICKET_METADATA
    )
    notes = Counter(
        (
            int(_metadata(c.args)["event_payload"]["ticket_id"]),
            str(_metadata(c.args)["event_payload"]["page"]),
            int(_metadata(c.args)["event_payload"]["part"]),
        )
        for c in ok_posts
        if _metadata(c.args).get("event_type") == render.PAGE_METADATA
    )
    dms = Counter(
        int(match.group(1))
        for c in ok_posts
        if c.args.get("channel") == f"D{ONCALL[1:]}"
        and (match := re.search(r"ticket #(\d+)", str(c.args.get("text"))))
    )
    replies = Counter(
        str(c.args.get("thread_ts"))
        for c in ok_posts
        if c.args.get("channel") == INTAKE and c.args.get("thread_ts")
    )
    paged = {ticket for ticket, _, _ in notes}
    return {
        "rounds": rounds,
        "messages": rounds * tickets,
        "kill_after_s": kills,
        "tickets_stored": len(rows),
        "tickets_lost": rounds * tickets - len(cards),
        "duplicate_posts": sum(n - 1 for n in cards.values()),
        "needing_a_human": len(needing),
        "critical": len(critical),
        "unsent_pages": len(needing - paged),
        "critical_without_dm": len(critical - set(dms)),
        "double_page_notes": sum(n - 1 for n in notes.values()),
        "double_dms": sum(n - 1 for n in dms.values()),
        "replies_sent": sum(1 for status in drafts.values() if status == "sent"),
        "double_replies": sum(n - 1 for n in replies.values()),
        "drafts_left_sending": sum(1 for status in drafts.values() if status == "sending"),
        "team_channels": len(team_channels),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores,"
        f" Python {platform.python_version()}",
    }


def main() -> None:
    """Parse the options, run, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--tickets", type=int, default=30, help="messages per round")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    figures = asyncio.run(run(args.rounds, args.tickets, args.seed))
    json.dump(figures, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
