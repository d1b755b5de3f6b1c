"""A burst of intake messages through the whole bot: acks, time to post, losses, duplicates.

    PYTHONPATH=. .venv/bin/python bench/bench_burst.py [--messages 1000] [--llm-delay 0.5]
        [--workers N] [--spread SECONDS]

The bot is the real `triage run --http` process. This script plays Slack and the LLM provider:
it serves the strict Web API stand-in (chat.postMessage limited to 1 post/s per channel with a
burst of 4, 429 with Retry-After beyond that) and an OpenAI-compatible stand-in that answers
every request after --llm-delay seconds. It stores each customer message in the stand-in's
intake channel, then sends all the signed `message` events at once over HTTP, as Slack would
deliver a burst, and waits until every ticket has its post in its team's channel.

Prints one JSON object: acks (p50, p99, max), time until every ticket was posted against the
lower bound the channel rate limit sets, posts lost, duplicate posts and pages, and the bot
process's peak memory (VmHWM).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

from bot.sandbox.events import Workspace
from bot.sandbox.shell import AGENT, CUSTOMER, INTAKE, ONCALL, sandbox_slack_config
from bot.sandbox.slack_api import SlackStandIn
from routing.config import load_config
from tests.slack_harness import sign, write_standin_config
from tests.standins.openai_server import OpenAIStandIn, Scripted, reply_json, reply_text

REPO = Path(__file__).resolve().parent.parent
BOT_TOKEN = "xoxb-bench"  # noqa: S105  # the stand-in's own token
SECRET = "bench-signing-secret"  # noqa: S105  # signs the bench's own requests
POST_BURST = 4

# What customers write, per (category, team); the LLM stand-in answers with these labels.
TICKETS: list[tuple[str, str, str]] = [
    ("billing", "billing", "I was charged twice for my subscription this month"),
    ("technical", "engineering", "The export to CSV fails with an error since yesterday"),
    ("account", "account_management", "I cannot log in, the password reset link never arrives"),
    ("feature_request", "product", "Could you add a dark mode to the dashboard?"),
    ("general", "support", "Where can I find your office hours and contact details?"),
]
# Every twentieth ticket is an outage: critical, so it also pages the on-call (thread and DM).
CRITICAL_EVERY = 20
CRITICAL_TEXT = "Production is down for all our users, nothing loads"
_REF = re.compile(r"ref (\d+)\b")


def ticket_text(index: int) -> str:
    """The index-th customer message (distinct, so no two tickets look like one)."""
    if index % CRITICAL_EVERY == 0:
        return f"{CRITICAL_TEXT} (ref {index})"
    return f"{TICKETS[index % len(TICKETS)][2]} (ref {index})"


def llm_answer(body: dict[str, Any], delay: float) -> Scripted:
    """Classify by the ticket's ref number, or write a short draft; both after `delay`."""
    if not body.get("response_format"):
        return Scripted(
            content=reply_text("Thanks, we are looking into it and will update you here.").content,
            delay=delay,
        )
    user_text = str(body["messages"][-1]["content"])
    refs = _REF.findall(user_text)
    index = int(refs[-1]) if refs else 1
    category, team, _ = TICKETS[index % len(TICKETS)]
    critical = index % CRITICAL_EVERY == 0
    answer = {
        "category": "technical" if critical else category,
        "priority": "critical" if critical else "medium",
        "team": "engineering" if critical else team,
        "sentiment": "angry" if critical else "neutral",
        "confidence": 0.9,
        "needs_human": critical,
        "reason": "bench",
    }
    scripted = reply_json(answer)
    return Scripted(content=scripted.content, delay=delay)


def free_port() -> int:
    """A port nothing listens on now (the bot binds it a moment later)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def peak_memory_mb(pid: int) -> float:
    """A process's peak resident memory (VmHWM), in MB."""
    status = Path(f"/proc/{pid}/status").read_text(encoding="utf-8")
    match = re.search(r"VmHWM:\s+(\d+) kB", status)
    return int(match.group(1)) / 1024 if match else float("nan")


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def ticket_posts(slack: SlackStandIn, channels: list[str]) -> list[tuple[str, int, float]]:
    """(channel, ticket id, stand-in time) of every top-level ticket post made."""
    found = []
    for call in slack.calls_to("chat.postMessage"):
        if not call.ok or call.args.get("thread_ts"):
            continue
        metadata = call.args.get("metadata")
        if isinstance(metadata, str):
            metadata = json.loads(metadata)
        channel = str(call.response.get("channel"))
        if channel in channels and isinstance(metadata, dict):
            found.append((channel, int(metadata["event_payload"]["ticket_id"]), call.at))
    return found


async def send_event(
    session: aiohttp.ClientSession,
    url: str,
    body: str,
    acks: list[float],
    statuses: Counter[int],
    after: float,
) -> None:
    """POST one signed event `after` seconds from now and record how long the ack took."""
    await asyncio.sleep(after)
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": sign(SECRET, timestamp, body),
    }
    started = time.perf_counter()
    async with session.post(url, data=body.encode(), headers=headers) as response:
        await response.read()
        statuses[response.status] += 1
    acks.append((time.perf_counter() - started) * 1000)


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


async def run(
    messages: int, llm_delay: float, workers: int | None, wait_s: float, spread_s: float
) -> dict[str, Any]:
    """Start the stand-ins and the bot, send the burst, and measure."""
    config = load_config()
    slack_config = sandbox_slack_config(config)
    team_channels = {settings.channel: team for team, settings in slack_config.teams.items()}
    with tempfile.TemporaryDirectory(prefix="triage-bench-") as directory:
        config_path = write_standin_config(Path(directory), workers=workers)
        async with (
            SlackStandIn(
                bot_token=BOT_TOKEN,
                channels={INTAKE: "intake", **team_channels},
                users={CUSTOMER: "customer", AGENT: "agent", ONCALL: "oncall"},
                post_rate_per_second=1.0,
                post_burst=POST_BURST,
            ) as slack,
            OpenAIStandIn() as llm,
        ):
            llm.default = lambda body: llm_answer(body, llm_delay)
            port = free_port()
            env = {
                **os.environ,
                "SLACK_BOT_TOKEN": BOT_TOKEN,
                "SLACK_SIGNING_SECRET": SECRET,
                "SLACK_API_URL": slack.base_url,
                "OPENAI_API_KEY": "bench-key",
                "OPENAI_BASE_URL": llm.url,
                "TRIAGE_CONFIG": str(config_path),
                "TRIAGE_DB": str(Path(directory) / "bench.sqlite3"),
                "TRIAGE_LOG_LEVEL": "ERROR",
            }
            bot = subprocess.Popen(  # noqa: ASYNC220, S603  # our own console script, one start
                [str(REPO / ".venv" / "bin" / "triage"), "run", "--http", "--port", str(port)],
                env=env,
                cwd=directory,
            )
            try:
                await wait_for_port(port, 60)
                workspace = Workspace()
                bodies = []
                for index in range(1, messages + 1):
                    text = ticket_text(index)
                    stored = slack.add_message(INTAKE, user=CUSTOMER, text=text)
                    event = workspace.message(
                        channel=INTAKE, user=CUSTOMER, text=text, ts=stored["ts"]
                    )
                    bodies.append(json.dumps(workspace.envelope(event)))
                acks: list[float] = []
                statuses: Counter[int] = Counter()
                connector = aiohttp.TCPConnector(limit=0)
                url = f"http://127.0.0.1:{port}/slack/events"
                async with aiohttp.ClientSession(connector=connector) as session:
                    started = slack_clock = time.monotonic()
                    await asyncio.gather(
                        *(
                            send_event(
                                session, url, body, acks, statuses, spread_s * i / len(bodies)
                            )
                            for i, body in enumerate(bodies)
                        )
                    )
                    sent_s = time.monotonic() - started
                    deadline = started + wait_s
                    while True:
                        posted = {
                            ticket for _, ticket, _ in ticket_posts(slack, list(team_channels))
                        }
                        if len(posted) >= messages or time.monotonic() > deadline:
                            break
                        await asyncio.sleep(0.2)
                    # Let pages and anything still queued finish before counting duplicates.
                    await asyncio.sleep(3)
                memory = peak_memory_mb(bot.pid)
            finally:
                bot.terminate()
                bot.wait(timeout=30)

            posts = ticket_posts(slack, list(team_channels))
            last_post_s = max((at for _, _, at in posts), default=slack_clock) - slack_clock
            per_channel = Counter(channel for channel, _, _ in posts)
            duplicates = sum(
                count - 1 for count in Counter(t for _, t, _ in posts).values() if count > 1
            )
            thread_posts = Counter(
                str(call.response.get("channel"))
                for call in slack.calls_to("chat.postMessage")
                if call.ok and call.args.get("thread_ts")
            )
            page_notes = [
                call
                for call in slack.calls_to("chat.postMessage")
                if call.ok and call.args.get("thread_ts") and "needs a human" in str(call.args)
            ]
            page_ids = Counter(
                match.group(1)
                for c in page_notes
                if (match := re.search(r"#(\d+)", str(c.args.get("text"))))
            )
            # Posts in the busiest channel (cards and thread notes share its bucket), less burst.
            busiest = max(team_channels, key=lambda c: per_channel[c] + thread_posts[c])
            bound_s = (per_channel[busiest] + thread_posts[busiest] - POST_BURST) / 1.0
            rate_limited = sum(
                1 for call in slack.calls_to("chat.postMessage") if call.http_status == 429
            )
            return {
                "messages": messages,
                "llm_delay_s": llm_delay,
                "events_spread_over_s": spread_s,
                "workers": workers or slack_config.workers,
                "acks_ms": {
                    "p50": round(percentile(acks, 0.50), 1),
                    "p99": round(percentile(acks, 0.99), 1),
                    "max": round(max(acks), 1),
                    "statuses": dict(statuses),
                },
                "burst_sent_s": round(sent_s, 2),
                "all_posted_s": round(last_post_s, 1),
                "lower_bound_s": round(bound_s, 1),
                "ratio_to_bound": round(last_post_s / bound_s, 2) if bound_s > 0 else None,
                "posts_per_channel": {team_channels[c]: per_channel[c] for c in team_channels},
                "posts_lost": messages - len({t for _, t, _ in posts}),
                "duplicate_posts": duplicates,
                "pages": len(page_notes),
                "duplicate_pages": sum(count - 1 for count in page_ids.values() if count > 1),
                "llm_requests": len(llm.requests),
                "slack_429s": rate_limited,
                "auth_test_calls": len(slack.calls_to("auth.test")),
                "bot_peak_memory_mb": round(memory, 1),
                "machine": f"{platform.machine()}, {os.cpu_count()} cores,"
                f" Python {platform.python_version()}",
            }


def main() -> None:
    """Parse the options, run once, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--llm-delay", type=float, default=0.5)
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="[slack] workers; the config's default when omitted",
    )
    parser.add_argument(
        "--timeout", type=float, default=1200.0, help="seconds to wait for every post"
    )
    parser.add_argument(
        "--spread", type=float, default=0.0, help="send the events over this many seconds"
    )
    args = parser.parse_args()
    figures = asyncio.run(
        run(args.messages, args.llm_delay, args.workers, args.timeout, args.spread)
    )
    json.dump(figures, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
