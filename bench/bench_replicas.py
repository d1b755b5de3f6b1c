"""Three replicas on one PostgreSQL through a burst, Slack's redeliveries and a crash.

    PYTHONPATH=. .venv/bin/python bench/bench_replicas.py [--events 1000] [--replicas 3]
        [--llm-delay 0.5] [--spread SECONDS] [--approve-every 10] [--profile FILE]
        [--calls FILE] [--burst-critical-every N] [--json]

Three `triage run --http` processes share one PostgreSQL database (a throwaway server started
as the tests start theirs, or TRIAGE_BENCH_DB when set), the strict Web API stand-in (1 post/s
per channel, burst 4, 429 beyond) and the LLM stand-in (every answer after 500 ms). The
customer messages' events go round-robin to the replicas, and every event is delivered once
more, with Slack's retry headers, to a different replica a second later. A request a replica
does not answer with 200 (it is down) is sent again to the next replica after a second, up to
three times, as Slack retries. When half the tickets are posted, one replica is SIGKILLed and
started again. The burst is ordinary tickets (with --burst-critical-every N, every N-th is an
outage too, which pages); ten seconds into it a critical ticket arrives. Every tenth ticket, once
posted, is approved by an agent twice at once: the reaction on one replica and the Approve
button on another; an approval the bot says did not reach the customer (a replica killed while
sending the reply) is approved again, as the agent is asked to.

Reported: time until every ticket was posted against the least time the busiest channel's
rate limit allows (ratio, goal <= 1.05), messages with no post (lost), duplicate posts, pages
and customer replies (goal 0), ack p50 / p99, the critical ticket's seconds until its team post
and its page (goal < 5 s), and the replicas' CPU per ticket (from ready on: the start-up's
model load is counted apart). With --profile, py-spy samples every replica and where they were
busy is reported. --json prints one line with the headline figures only.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from bench.botrun import (
    CRITICAL_EVERY,
    CRITICAL_TEXT,
    BotProcess,
    Cluster,
    Outcome,
    Stage,
    approvals_undone,
    approve_again,
    deliveries,
    machine,
    outcome,
    postgres_database,
    profile_summary,
    stage,
    ticket_text,
    write_calls,
)

REDELIVER_AFTER_S = 1.0
CRITICAL_AT_S = 10.0
DOWN_S = 1.0  # between the SIGKILL and the new start
JSON_KEYS = (
    "lost",
    "duplicate_posts",
    "duplicate_pages",
    "duplicate_replies",
    "ratio_to_bound",
    "ack_p99_ms",
    "critical_post_s",
    "critical_page_s",
    "cpu_ms_per_ticket",
)


async def event(cluster: Cluster, index: int, body: str, after: float) -> None:
    """One event on its replica, then its redelivery on the next one."""
    await asyncio.sleep(after)
    first = index % len(cluster.bots)
    await cluster.deliver(first, body)
    await asyncio.sleep(REDELIVER_AFTER_S)
    await cluster.deliver(first + 1, body, retry_num=1)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start the database, the stand-ins and the replicas; send the burst; measure."""
    with postgres_database(os.environ.get("TRIAGE_BENCH_DB")) as database:
        async with stage(llm_delay=args.llm_delay, workers=args.workers) as scene:
            bots = [
                BotProcess(
                    scene,
                    database,
                    name=f"replica{i}",
                    profile=args.profile.with_name(f"{args.profile.name}-replica{i}")
                    if args.profile
                    else None,
                )
                for i in range(args.replicas)
            ]
            for bot in bots:  # all at once: migrations and recovery must bear it
                bot.start()
            try:
                await asyncio.gather(*(bot.ready() for bot in bots))
                async with deliveries() as send:
                    return await _measure(scene, bots, Cluster(scene, bots, send), args)
            finally:
                for bot in bots:
                    bot.stop()


async def _measure(
    scene: Stage, bots: list[BotProcess], burst: Cluster, args: argparse.Namespace
) -> dict[str, Any]:
    events = args.events
    messages: dict[int, tuple[str, str]] = {}  # ref -> (ts, body)
    for ref in range(1, events + 1):
        messages[ref] = scene.customer_message(ticket_text(ref, args.burst_critical_every))
    # The critical ticket gets a ref of its own that the LLM stand-in calls critical.
    critical_ref = (events // CRITICAL_EVERY + 1) * CRITICAL_EVERY
    ts_of = {ts: ref for ref, (ts, _) in messages.items()}

    cpu_start = sum(bot.cpu_now() for bot in bots)
    started = time.monotonic()
    sending = [
        asyncio.create_task(event(burst, i, body, args.spread * i / events))
        for i, (_, body) in enumerate(messages.values())
    ]

    async def critical() -> float:
        await asyncio.sleep(CRITICAL_AT_S)
        ts, body = scene.customer_message(f"{CRITICAL_TEXT} (ref {critical_ref})")
        ts_of[ts] = critical_ref
        sent_at = time.monotonic()
        await burst.deliver(1, body)  # a replica that is never killed
        return sent_at

    critical_task = asyncio.create_task(critical())
    victim = bots[0]
    kill_times: list[float] = []  # when killed, when ready again

    restart_cpu: list[float] = []  # the new life's start-up, counted apart

    async def crash() -> None:
        kill_times.append(time.monotonic() - started)
        victim.kill()
        await asyncio.sleep(DOWN_S)
        before = victim.cpu_before_ready
        victim.start()
        await victim.ready()
        restart_cpu.append(victim.cpu_before_ready - before)
        kill_times.append(time.monotonic() - started)

    crashing: asyncio.Task[None] | None = None
    approved_refs: set[int] = set()
    approve_turn = itertools.count()
    approved_again = 0  # approvals the bot said were lost (a kill mid-send): approved again
    deadline = started + args.timeout
    while True:
        seen = outcome(scene)
        posted = seen.refs_posted()
        for post in seen.posts:
            if (
                post.ref is not None
                and post.ref % args.approve_every == 0
                and post.ref not in approved_refs
                and post.ref != critical_ref
            ):
                approved_refs.add(post.ref)
                burst.approve(post, messages[post.ref][0], next(approve_turn))
        approved_again = approve_again(
            scene,
            burst,
            seen,
            {ref: ts for ref, (ts, _) in messages.items()},
            approve_turn,
            handled=approved_again,
        )
        if crashing is None and len(posted) >= events // 2:
            crashing = asyncio.create_task(crash())
        replied = {ts for ts in seen.replies if ts in burst.approved}
        done = (
            len(posted & set(messages)) >= events
            and critical_ref in posted
            and len(replied) >= len(burst.approved)
            and critical_task.done()
            and crashing is not None
            and crashing.done()
        )
        if done or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    await asyncio.gather(*sending)
    if crashing is not None:
        await crashing
    # Pages, redeliveries and approvals still in flight land before duplicates are counted.
    await burst.settle()
    await asyncio.sleep(3)
    if args.calls is not None:
        write_calls(scene.slack, args.calls, since=started)
    cpu = sum(bot.cpu_now() for bot in bots) - cpu_start - sum(restart_cpu)
    critical_sent = critical_task.result() if critical_task.done() else None
    return _figures(
        scene,
        bots,
        burst,
        outcome(scene),
        args=args,
        started=started,
        cpu=cpu,
        critical=(critical_ref, critical_sent),
        kill=(*kill_times, None, None)[:2],
        ts_of=ts_of,
    )


def _figures(
    scene: Stage,
    bots: list[BotProcess],
    burst: Cluster,
    seen: Outcome,
    *,
    args: argparse.Namespace,
    started: float,
    cpu: float,
    critical: tuple[int, float | None],
    kill: tuple[float | None, ...],
    ts_of: dict[str, int],
) -> dict[str, Any]:
    events = args.events
    critical_ref, critical_sent = critical
    last_post_s = max((post.at for post in seen.posts), default=started) - started
    busiest, bound_s = seen.bound_s()
    wanted = set(range(1, events + 1)) | {critical_ref}
    critical_posts = [post for post in seen.posts if post.ref == critical_ref]
    critical_ids = {post.ticket_id for post in critical_posts}
    critical_post_s = critical_page_s = critical_dm_s = None
    if critical_sent is not None and critical_posts:
        critical_post_s = min(post.at for post in critical_posts) - critical_sent
        threads = [at for ticket in critical_ids for _, at in seen.thread_pages.get(ticket, [])]
        dms = [at for ticket in critical_ids for at in seen.direct_pages.get(ticket, [])]
        if threads or dms:
            critical_page_s = min(threads + dms) - critical_sent
        if dms:
            critical_dm_s = min(dms) - critical_sent
    tickets = len(wanted)
    headline: dict[str, Any] = {
        "lost": len(wanted - seen.refs_posted()),
        "duplicate_posts": seen.duplicate_posts(),
        "duplicate_pages": seen.duplicate_pages(),
        "duplicate_replies": seen.duplicate_replies(),
        "ratio_to_bound": round(last_post_s / bound_s, 2) if bound_s > 0 else None,
        "ack_p99_ms": burst.send.ack_figures()["p99"],
        "critical_post_s": _round(critical_post_s),
        "critical_page_s": _round(critical_page_s),
        "cpu_ms_per_ticket": round(cpu / tickets * 1000, 1),
    }
    assert tuple(headline) == JSON_KEYS
    replies = {ts: times for ts, times in seen.replies.items() if ts in burst.approved}
    figures = {
        **headline,
        "events": events,
        "replicas": len(bots),
        "llm_delay_s": args.llm_delay,
        "events_spread_over_s": args.spread,
        "acks_ms": burst.send.ack_figures(),
        "requests_undelivered": burst.undelivered,
        "all_posted_s": round(last_post_s, 1),
        "lower_bound_s": round(bound_s, 1),
        "busiest_channel": scene.team_channels[busiest],
        "doubled_posts": seen.doubled_posts(started),
        "killed_at_s": _round(kill[0]),
        "restarted_at_s": _round(kill[1]),
        "critical_dm_s": _round(critical_dm_s),
        "pages": sum(len(pages) for pages in seen.thread_pages.values()),
        "direct_pages": sum(len(dms) for dms in seen.direct_pages.values()),
        "approvals": len(burst.approved),
        "approvals_replied": len(replies),
        "approvals_said_lost": len(approvals_undone(scene.slack)),
        "replies_for_unknown_threads": sum(
            len(times) for ts, times in seen.replies.items() if ts not in ts_of
        ),
        "slack_429s": seen.rate_limited,
        "llm_requests": len(scene.llm.requests),
        "bot_cpu_s": {
            "start_up": round(sum(bot.cpu_before_ready for bot in bots), 1),
            "burst": round(cpu, 1),
        },
        "tickets_per_cpu_second": round(tickets / cpu, 1) if cpu > 0 else None,
        "bot_peak_memory_mb": round(max(bot.peak_memory_mb for bot in bots), 1),
        "database": "TRIAGE_BENCH_DB" if os.environ.get("TRIAGE_BENCH_DB") else "own PostgreSQL",
        "machine": machine(),
    }
    if args.profile is not None:
        figures["profile"] = profile_summary([path for bot in bots for path in bot.profiles])
    return figures


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def main() -> None:
    """Parse the options, run once, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000, help="customer messages")
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--llm-delay", type=float, default=0.5)
    parser.add_argument(
        "--workers", type=int, help="[slack] workers of each replica (default: the config's)"
    )
    parser.add_argument(
        "--spread", type=float, default=0.0, help="send the events over this many seconds"
    )
    parser.add_argument(
        "--approve-every", type=int, default=10, help="approve every Nth ticket once posted"
    )
    parser.add_argument(
        "--timeout", type=float, default=1800.0, help="seconds to wait for every post"
    )
    parser.add_argument(
        "--profile", type=Path, default=None, help="sample the replicas with py-spy (FILE-*)"
    )
    parser.add_argument(
        "--calls", type=Path, default=None, help="write Slack's stand-in's calls (JSON lines)"
    )
    parser.add_argument(
        "--burst-critical-every",
        type=int,
        default=0,
        help="make every N-th burst message an outage too (0: the burst is all ordinary"
        " tickets, as the critical-ticket figure is defined; 20 pages on-call in the burst)",
    )
    parser.add_argument("--json", action="store_true", help="one line, the headline keys only")
    args = parser.parse_args()
    figures = asyncio.run(run(args))
    if args.json:
        print(json.dumps({key: figures[key] for key in JSON_KEYS}))
    else:
        json.dump(figures, sys.stdout, indent=2)
        print()


if __name__ == "__main__":
    main()
