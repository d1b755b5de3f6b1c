"""A burst of intake messages through the whole bot: acks, time to post, losses, duplicates.

    PYTHONPATH=. .venv/bin/python bench/bench_burst.py [--messages 1000] [--llm-delay 0.5]
        [--workers N] [--spread SECONDS] [--profile FILE]

The bot is the real `triage run --http` process. This script plays Slack and the LLM provider:
it serves the strict Web API stand-in (chat.postMessage limited to 1 post/s per channel with a
burst of 4, 429 with Retry-After beyond that) and an OpenAI-compatible stand-in that answers
every request after --llm-delay seconds. It stores each customer message in the stand-in's
intake channel, then sends all the signed `message` events at once over HTTP, as Slack would
deliver a burst, and waits until every ticket has its post in its team's channel.

Prints one JSON object: acks (p50, p99, max), time until every ticket was posted against the
lower bound the channel rate limit sets, posts lost, duplicate posts and pages, the bot
process's CPU seconds per ticket and peak memory (VmHWM); with --profile, py-spy samples the
bot's threads and where they were busy is printed too (the raw stacks stay in FILE.0.txt).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from bench.botrun import (
    BotProcess,
    deliveries,
    machine,
    outcome,
    profile_summary,
    stage,
    ticket_text,
)
from bot.sandbox.shell import sandbox_slack_config
from routing.config import load_config


async def run(
    messages: int,
    llm_delay: float,
    workers: int | None,
    wait_s: float,
    spread_s: float,
    profile: Path | None,
) -> dict[str, Any]:
    """Start the stand-ins and the bot, send the burst, and measure."""
    async with stage(llm_delay=llm_delay, workers=workers) as scene:
        database = str(scene.directory / "bench.sqlite3")
        bot = BotProcess(scene, database, name="bot", profile=profile)
        bot.start()
        try:
            await bot.ready()
            bodies = [scene.customer_message(ticket_text(i))[1] for i in range(1, messages + 1)]
            async with deliveries() as send:

                async def deliver(index: int, body: str) -> None:
                    await asyncio.sleep(spread_s * index / len(bodies))
                    await send.post(bot.url, body)

                started = slack_clock = time.monotonic()
                cpu_start = bot.cpu_now()
                await asyncio.gather(*(deliver(i, body) for i, body in enumerate(bodies)))
                sent_s = time.monotonic() - started
                deadline = started + wait_s
                while len(outcome(scene).refs_posted()) < messages:
                    if time.monotonic() > deadline:
                        break
                    await asyncio.sleep(0.2)
                # Let pages and anything still queued finish before counting duplicates.
                await asyncio.sleep(3)
            cpu_burst = bot.cpu_now() - cpu_start
        finally:
            bot.stop()
        seen = outcome(scene)
        last_post_s = max((post.at for post in seen.posts), default=slack_clock) - slack_clock
        busiest, bound_s = seen.bound_s()
        per_channel = {
            team: sum(1 for post in seen.posts if post.channel == channel)
            for channel, team in scene.team_channels.items()
        }
        figures: dict[str, Any] = {
            "messages": messages,
            "llm_delay_s": llm_delay,
            "events_spread_over_s": spread_s,
            "workers": workers or sandbox_slack_config(load_config()).workers,
            "acks_ms": send.ack_figures(),
            "burst_sent_s": round(sent_s, 2),
            "all_posted_s": round(last_post_s, 1),
            "lower_bound_s": round(bound_s, 1),
            "busiest_channel": scene.team_channels[busiest],
            "ratio_to_bound": round(last_post_s / bound_s, 2) if bound_s > 0 else None,
            "posts_per_channel": per_channel,
            "posts_lost": messages - len(seen.refs_posted()),
            "duplicate_posts": seen.duplicate_posts(),
            "pages": sum(len(pages) for pages in seen.thread_pages.values()),
            "duplicate_pages": seen.duplicate_pages(),
            "llm_requests": len(scene.llm.requests),
            "slack_429s": seen.rate_limited,
            "auth_test_calls": len(scene.slack.calls_to("auth.test")),
            "bot_cpu_s": {"start_up": round(bot.cpu_before_ready, 1), "burst": round(cpu_burst, 1)},
            "cpu_ms_per_ticket": round(cpu_burst / messages * 1000, 1),
            "bot_peak_memory_mb": round(bot.peak_memory_mb, 1),
            "machine": machine(),
        }
        if profile is not None:
            figures["profile"] = profile_summary(bot.profiles)
        return figures


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
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="sample the bot with py-spy, stacks in FILE.0.txt",
    )
    args = parser.parse_args()
    figures = asyncio.run(
        run(args.messages, args.llm_delay, args.workers, args.timeout, args.spread, args.profile)
    )
    json.dump(figures, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
