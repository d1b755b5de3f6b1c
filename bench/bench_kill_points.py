"""Kill and restart the bot at random points, with critical tickets among ordinary ones.

    PYTHONPATH=. .venv/bin/python bench/bench_kill_points.py [--rounds 10] [--per-round 100]
        [--replicas 1] [--sqlite] [--seed 0] [--kill-window 20]
        [--kill-points random,page,reply] [--json]

The real `triage run --http` (one replica by default; --replicas N share the database) against
the strict Web API stand-in (1 post/s per channel, burst 4) and the LLM stand-in (500 ms an
answer). The store is PostgreSQL (a throwaway server as the tests start theirs, or
TRIAGE_BENCH_DB) or, with --sqlite, one SQLite file. Each round sends --per-round customer
messages over --spread seconds (every twentieth an outage from a customer of its own: critical,
paged in the thread and by DM), and SIGKILLs a replica at a random moment of the round (uniform
over --kill-window seconds), then starts it again. --kill-points makes some kills exact instead
(cycled over the rounds): `page` kills the bot the moment Slack takes a thread page (before its
answer reaches the bot, and before the DM), `reply` the moment Slack takes a customer reply;
with no such moment within --kill-window the kill falls at its end. Every fifth ticket is
approved as soon as its post appears, by the agent's reaction on one replica and the Approve
button on another at once, so kills also land while replies are sent; an approval the bot says did
not reach the customer is approved again, as the agent is asked to. A request no replica
answers with 200 is sent again every 2 s for up to a minute (Slack retries, compressed). After
the last round the run waits until every ticket is posted, paged and replied to, or --timeout.

Reported: lost tickets (a message with no team post), unsent pages (a critical ticket without
its thread page or its DM), double pages, double replies, double posts (all goal 0), approvals
never answered by a reply, and each round's kill moment.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from bench.botrun import (
    BotProcess,
    Cluster,
    Outcome,
    Stage,
    approve_again,
    deliveries,
    is_critical,
    machine,
    outcome,
    postgres_database,
    stage,
    ticket_text,
)
from bot.sandbox.shell import CUSTOMER, INTAKE
from bot.sandbox.slack_api import RecordedCall

APPROVE_EVERY = 5
DOWN_S = 0.5
KILL_POINTS = ("random", "page", "reply")
JSON_KEYS = (
    "lost_tickets",
    "unsent_pages",
    "double_pages",
    "double_replies",
    "double_posts",
    "approvals_unanswered",
)


class Trigger:
    """Kills a replica from inside the stand-in, the moment Slack takes a page or a reply.

    The stand-in calls it before it answers the request, so the bot never hears that Slack has
    the message. Exact with one replica; with more, the victim may not be the one that sent it.
    """

    def __init__(self, scene: Stage) -> None:
        self.scene = scene
        self.armed: str | None = None
        self.victim: BotProcess | None = None
        self.fired = asyncio.Event()
        scene.slack.on_call(self._seen)

    def arm(self, point: str, victim: BotProcess) -> None:
        """Kill `victim` at the next such call."""
        self.armed, self.victim = point, victim
        self.fired.clear()

    def disarm(self) -> None:
        """No kill from here on."""
        self.armed = None

    def _seen(self, call: RecordedCall) -> None:
        if self.armed is None or self.victim is None or self.victim.process is None:
            return
        if call.method != "chat.postMessage" or not call.ok or not call.args.get("thread_ts"):
            return
        channel = str(call.response.get("channel"))
        page = channel in self.scene.team_channels and "needs a human" in str(call.args)
        reply = channel == INTAKE
        if (self.armed == "page" and page) or (self.armed == "reply" and reply):
            self.victim.process.send_signal(signal.SIGKILL)
            self.armed = None
            self.fired.set()


@contextmanager
def database(args: argparse.Namespace, scene: Stage) -> Iterator[str]:
    """The SQLite file, or PostgreSQL."""
    if args.sqlite:
        yield str(scene.directory / "kill.sqlite3")
        return
    with postgres_database(os.environ.get("TRIAGE_BENCH_DB")) as url:
        yield url


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start everything, play the rounds, wait for the end, count."""
    rng = random.Random(args.seed)  # noqa: S311  # picks kill moments, no secret
    async with stage(llm_delay=args.llm_delay, rate=args.rate) as scene:
        with database(args, scene) as db:
            bots = [BotProcess(scene, db, name=f"replica{i}") for i in range(args.replicas)]
            for bot in bots:
                bot.start()
            try:
                await asyncio.gather(*(bot.ready() for bot in bots))
                async with deliveries() as send:
                    cluster = Cluster(scene, bots, send, attempts=30, retry_after_s=2.0)
                    return await _rounds(scene, cluster, args, rng)
            finally:
                for bot in bots:
                    bot.stop()


async def _rounds(
    scene: Stage, cluster: Cluster, args: argparse.Namespace, rng: random.Random
) -> dict[str, Any]:
    messages: dict[int, str] = {}  # ref -> ts
    approved: set[int] = set()
    turn = itertools.count()
    stop_watching = asyncio.Event()

    async def approvals() -> None:
        """Approve every fifth ticket as soon as its post appears, and again when told to."""
        approved_again = 0  # approvals the bot said were lost (a kill mid-send)
        while not stop_watching.is_set():
            seen = outcome(scene)
            for post in seen.posts:
                ref = post.ref
                if ref is not None and ref % APPROVE_EVERY == 0 and ref not in approved:
                    approved.add(ref)
                    cluster.approve(post, messages[ref], next(turn))
            approved_again = approve_again(
                scene, cluster, seen, messages, turn, handled=approved_again
            )
            await asyncio.sleep(0.2)

    watcher = asyncio.create_task(approvals())
    trigger = Trigger(scene)
    points = args.kill_points.split(",")
    kills: list[dict[str, Any]] = []
    started = time.monotonic()
    for round_number in range(args.rounds):
        first = round_number * args.per_round + 1
        refs = range(first, first + args.per_round)
        round_started = time.monotonic()
        for offset, ref in enumerate(refs):
            # Each outage from a customer of its own: one customer's outages within ten minutes
            # make one page and a count (README, "Noise is held down"), not a page each.
            author = f"U0OUTAGE{ref:05d}" if is_critical(ref) else CUSTOMER
            ts, body = scene.customer_message(ticket_text(ref), user=author)
            messages[ref] = ts
            cluster.background(_later(cluster, offset, body, args.spread * offset / len(refs)))
        victim = rng.randrange(len(cluster.bots))
        point = points[round_number % len(points)]
        if point == "random":
            await asyncio.sleep(rng.uniform(0.5, args.kill_window))
        else:
            trigger.arm(point, cluster.bots[victim])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(trigger.fired.wait(), args.kill_window)
            trigger.disarm()
            if not trigger.fired.is_set():
                point += " (none came: at the window's end)"
        kill_at = time.monotonic() - round_started
        seen = outcome(scene)
        kills.append(
            {
                "round": round_number + 1,
                "point": point,
                "at_s": round(kill_at, 1),
                "replica": victim,
                "posted_by_then": len(seen.refs_posted()),
                "of": len(messages),
            }
        )
        cluster.bots[victim].kill()
        await asyncio.sleep(DOWN_S)
        cluster.bots[victim].start()
        await cluster.bots[victim].ready()
        kills[-1]["restart_s"] = round(time.monotonic() - round_started - kill_at, 1)
    rounds_s = time.monotonic() - started

    criticals = {ref for ref in messages if is_critical(ref)}
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        seen = outcome(scene)
        if (
            len(seen.refs_posted()) >= len(messages)
            and not _unsent_pages(seen, criticals)
            and all(messages[ref] in seen.replies for ref in approved)
            and not cluster.tasks
        ):
            break
        await asyncio.sleep(0.5)
    stop_watching.set()
    await watcher
    await cluster.settle()
    await asyncio.sleep(3)  # anything still in flight lands before doubles are counted
    seen = outcome(scene)
    figures: dict[str, Any] = {
        "lost_tickets": len(set(messages) - seen.refs_posted()),
        "unsent_pages": len(_unsent_pages(seen, criticals)),
        "double_pages": seen.duplicate_pages(),
        "double_replies": seen.duplicate_replies(),
        "double_posts": seen.duplicate_posts(),
        "approvals_unanswered": sum(1 for ref in approved if messages[ref] not in seen.replies),
        "doubled_posts": seen.doubled_posts(started),
        "rounds": args.rounds,
        "tickets": len(messages),
        "critical_tickets": len(criticals),
        "approvals": len(approved),
        "replicas": len(cluster.bots),
        "store": "SQLite" if args.sqlite else "PostgreSQL",
        "requests_undelivered": cluster.undelivered,
        "acks_ms": cluster.send.ack_figures(),
        "rounds_s": round(rounds_s, 1),
        "settled_s": round(time.monotonic() - started, 1),
        "seed": args.seed,
        "kills": kills,
        "machine": machine(),
    }
    return figures


async def _later(cluster: Cluster, index: int, body: str, after: float) -> None:
    await asyncio.sleep(after)
    await cluster.deliver(index, body)


def _unsent_pages(seen: Outcome, criticals: set[int]) -> set[int]:
    """Critical refs posted without a thread page or without a DM (or not posted at all)."""
    ids: dict[int, set[int]] = {}
    for post in seen.posts:
        if post.ref in criticals:
            ids.setdefault(post.ref, set()).add(post.ticket_id)
    unsent = set()
    for ref in criticals:
        tickets = ids.get(ref, set())
        threads = any(seen.thread_pages.get(ticket) for ticket in tickets)
        dms = any(seen.direct_pages.get(ticket) for ticket in tickets)
        if not (threads and dms):
            unsent.add(ref)
    return unsent


def main() -> None:
    """Parse the options, run once, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--per-round", type=int, default=100, help="customer messages a round")
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--sqlite", action="store_true", help="one SQLite file, not PostgreSQL")
    parser.add_argument("--seed", type=int, default=0, help="chooses the kill moments")
    parser.add_argument(
        "--kill-window", type=float, default=20.0, help="a kill falls in this many s of a round"
    )
    parser.add_argument(
        "--kill-points",
        default="random",
        help=f"kill moments cycled over the rounds, from {', '.join(KILL_POINTS)}",
    )
    parser.add_argument("--spread", type=float, default=5.0, help="a round's messages over s")
    parser.add_argument("--rate", type=float, default=1.0, help="posts per second per channel")
    parser.add_argument("--llm-delay", type=float, default=0.5)
    parser.add_argument("--timeout", type=float, default=600.0, help="s to wait at the end")
    parser.add_argument("--json", action="store_true", help="one line, the headline keys only")
    args = parser.parse_args()
    if not set(args.kill_points.split(",")) <= set(KILL_POINTS):
        parser.error(f"--kill-points: each one of {', '.join(KILL_POINTS)}")
    figures = asyncio.run(run(args))
    if args.json:
        print(json.dumps({key: figures[key] for key in JSON_KEYS}))
    else:
        json.dump(figures, sys.stdout, indent=2)
        print()


if __name__ == "__main__":
    main()
