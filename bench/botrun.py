"""What the whole-bot benchmarks share: stand-ins, bot processes, deliveries, counting.

The bot is always the real console script in its own process; the benchmark plays Slack (the
strict Web API stand-in of the sandbox, 1 post/s per channel with a burst of 4 unless told
otherwise) and the LLM provider (an OpenAI-compatible stand-in answering after a delay).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import re
import signal
import socket
import subprocess
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Coroutine, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bot import render
from bot.sandbox.events import Workspace
from bot.sandbox.shell import AGENT, CUSTOMER, INTAKE, ONCALL, sandbox_slack_config
from bot.sandbox.slack_api import RecordedCall, SlackStandIn
from routing.config import load_config
from tests.slack_harness import sign, write_standin_config
from tests.standins.openai_server import OpenAIStandIn, Scripted, reply_json, reply_text
from tests.standins.postgres_server import PostgresServer

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
_REF = re.compile(r"\(ref (\d+)\)")
_TICKET = re.compile(r"[Tt]icket #(\d+)")


def is_critical(index: int, every: int = CRITICAL_EVERY) -> bool:
    """Whether the index-th message is an outage (every `every`-th; none when it is 0)."""
    return every > 0 and index % every == 0


def ticket_text(index: int, critical_every: int = CRITICAL_EVERY) -> str:
    """The index-th customer message (distinct, so no two tickets look like one)."""
    if is_critical(index, critical_every):
        return f"{CRITICAL_TEXT} (ref {index})"
    return f"{TICKETS[index % len(TICKETS)][2]} (ref {index})"


def ref_of(text: str) -> int | None:
    """The ref number a bench message carries, if any."""
    refs = _REF.findall(text)
    return int(refs[-1]) if refs else None


def llm_answer(body: dict[str, Any], delay: float) -> Scripted:
    """Classify by the ticket's ref number, or write a short draft; both after `delay`."""
    if not body.get("response_format"):
        return Scripted(
            content=reply_text("Thanks, we are looking into it and will update you here.").content,
            delay=delay,
        )
    index = ref_of(str(body["messages"][-1]["content"])) or 1
    category, team, _ = TICKETS[index % len(TICKETS)]
    critical = is_critical(index)
    answer = {
        "category": "technical" if critical else category,
        "priority": "critical" if critical else "medium",
        "team": "engineering" if critical else team,
        "sentiment": "angry" if critical else "neutral",
        "confidence": 0.9,
        "needs_human": critical,
        "reason": "bench",
    }
    return Scripted(content=reply_json(answer).content, delay=delay)


def free_port() -> int:
    """A port nothing listens on now (the bot binds it a moment later)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def peak_memory_mb(pid: int) -> float:
    """A process's peak resident memory (VmHWM), in MB."""
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="utf-8")
    except OSError:
        return float("nan")
    match = re.search(r"VmHWM:\s+(\d+) kB", status)
    return int(match.group(1)) / 1024 if match else float("nan")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds a live process has used (/proc/PID/stat)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    # Fields 14 and 15 of stat(5), counted after the command's closing parenthesis.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile (NaN for no values)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def machine() -> str:
    """Cores, Python and the load average: the figures depend on what else runs."""
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()},"
        f" load {load}"
    )


# --- the stand-ins ------------------------------------------------------------------------


@dataclass
class Stage:
    """Slack's and the LLM provider's stand-ins, the bot's config, and a scratch directory."""

    slack: SlackStandIn
    llm: OpenAIStandIn
    team_channels: dict[str, str]  # channel id -> team
    config_path: Path
    directory: Path
    workspace: Workspace
    rate: float

    def env(self, database: str) -> dict[str, str]:
        """The environment of one bot process against these stand-ins and this database."""
        return {
            **os.environ,
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": self.slack.base_url,
            "OPENAI_API_KEY": "bench-key",
            "OPENAI_BASE_URL": self.llm.url,
            "TRIAGE_CONFIG": str(self.config_path),
            "TRIAGE_DB": database,
            "TRIAGE_LOG_LEVEL": "ERROR",
        }

    def customer_message(
        self, text: str, *, event_id: str | None = None, user: str = CUSTOMER
    ) -> tuple[str, str]:
        """Store a customer's intake message in the stand-in; returns (ts, its event's body)."""
        if user != CUSTOMER:
            self.slack.add_user(user, user.lower())  # a customer of its own (adding is idempotent)
        stored = self.slack.add_message(INTAKE, user=user, text=text)
        event = self.workspace.message(channel=INTAKE, user=user, text=text, ts=stored["ts"])
        return str(stored["ts"]), json.dumps(self.workspace.envelope(event, event_id=event_id))


@contextlib.asynccontextmanager
async def stage(
    *, llm_delay: float, workers: int | None = None, rate: float = 1.0
) -> AsyncIterator[Stage]:
    """Start both stand-ins with the default config's channels; the config file written."""
    config = load_config()
    slack_config = sandbox_slack_config(config)
    team_channels = {settings.channel: team for team, settings in slack_config.teams.items()}
    with tempfile.TemporaryDirectory(prefix="triage-bench-") as name:
        directory = Path(name)
        config_path = write_standin_config(directory, workers=workers)
        async with (
            SlackStandIn(
                bot_token=BOT_TOKEN,
                channels={INTAKE: "intake", **team_channels},
                users={CUSTOMER: "customer", AGENT: "agent", ONCALL: "oncall"},
                post_rate_per_second=rate,
                post_burst=POST_BURST,
            ) as slack,
            OpenAIStandIn() as llm,
        ):
            llm.default = lambda body: llm_answer(body, llm_delay)
            yield Stage(
                slack=slack,
                llm=llm,
                team_channels=team_channels,
                config_path=config_path,
                directory=directory,
                workspace=Workspace(
                    response_url_base=slack.base_url.replace("/api/", "/response/")
                ),
                rate=rate,
            )


@contextlib.contextmanager
def postgres_database(bench_db: str | None) -> Iterator[str]:
    """TRIAGE_BENCH_DB when given, else a throwaway server started as the tests start theirs."""
    if bench_db:
        yield bench_db
        return
    with PostgresServer() as server:
        yield server.url


# --- bot processes ------------------------------------------------------------------------


@dataclass
class BotProcess:
    """One `triage run --http` replica; restartable, its CPU counted over every life."""

    stage: Stage
    database: str
    name: str
    profile: Path | None = None
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    cpu_before_ready: float = 0.0  # start-up (model load, migrations, catch-up) of every life
    cpu_total: float = 0.0  # of the lives that ended
    lives: int = 0
    peak_memory_mb: float = 0.0
    profiles: list[Path] = field(default_factory=list)
    _spies: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        """Where Slack's requests go."""
        return f"http://127.0.0.1:{self.port}/slack/events"

    @property
    def alive(self) -> bool:
        """Whether the process runs."""
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Start a new life of the process (sampled by py-spy when a profile file is named)."""
        self.process = subprocess.Popen(  # noqa: S603  # our own console script
            [str(REPO / ".venv" / "bin" / "triage"), "run", "--http", "--port", str(self.port)],
            env=self.stage.env(self.database),
            cwd=self.stage.directory,
        )
        self.lives += 1

    async def ready(self, seconds: float = 120) -> None:
        """Wait until the bot accepts connections; its start-up CPU is noted."""
        deadline = time.monotonic() + seconds
        while True:
            if not self.alive:
                raise RuntimeError(f"{self.name} exited while starting")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                await writer.wait_closed()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
        assert self.process is not None
        pid = self.process.pid
        self.cpu_before_ready += cpu_seconds(pid)
        if self.profile is not None:
            self._spy(pid)

    def _spy(self, pid: int) -> None:
        """Sample the process with py-spy from now on (the burst, not the start-up).

        Every thread (the model's forward pass runs off the event loop), active samples only;
        py-spy stops and writes the file when the bot exits, SIGKILL included.
        """
        assert self.profile is not None
        spy = REPO / ".venv" / "bin" / "py-spy"
        if not spy.is_file():
            raise SystemExit(f"--profile needs py-spy: `make install-dev` installs it ({spy})")
        # Appended, not a suffix replaced: "run.prof-replica0" and "run.prof-replica1" were
        # both "run.0.txt", and the replicas' samplers wrote one file.
        output = self.profile.with_name(f"{self.profile.name}.{self.lives - 1}.txt")
        output.parent.mkdir(parents=True, exist_ok=True)
        self._spies.append(
            subprocess.Popen(  # noqa: S603  # a fixed command
                [
                    str(spy),
                    *("record", "--pid", str(pid), "--format", "raw", "--output", str(output)),
                    *("--rate", "100", "--nonblocking", "--full-filenames"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        self.profiles.append(output)

    def cpu_now(self) -> float:
        """CPU seconds of every life so far, the running one included."""
        running = cpu_seconds(self.process.pid) if self.alive and self.process else 0.0
        return self.cpu_total + running

    def _end(self, how: signal.Signals) -> None:
        if self.process is None:
            return
        if self.alive:
            self.cpu_total += cpu_seconds(self.process.pid)
            self.peak_memory_mb = max(self.peak_memory_mb, peak_memory_mb(self.process.pid))
            self.process.send_signal(how)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None
        for spy in self._spies:
            spy.wait(timeout=60)
        self._spies.clear()

    def kill(self) -> None:
        """SIGKILL: a crash, nothing flushed."""
        self._end(signal.SIGKILL)

    def stop(self) -> None:
        """SIGTERM: the bot's own orderly stop (a profile is written then)."""
        self._end(signal.SIGTERM)


# --- deliveries -----------------------------------------------------------------------------


@dataclass
class Deliveries:
    """Signed requests to the bot, with their ack times and outcomes."""

    session: aiohttp.ClientSession
    acks_ms: list[float] = field(default_factory=list)
    statuses: Counter[int | str] = field(default_factory=Counter)

    async def post(
        self, url: str, body: str, *, form: bool = False, retry_num: int | None = None
    ) -> bool:
        """POST one signed request; True when the bot answered 200."""
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/x-www-form-urlencoded" if form else "application/json",
            "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": sign(SECRET, timestamp, body),
        }
        if retry_num:
            headers |= {"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": "timeout"}
        started = time.perf_counter()
        try:
            async with self.session.post(url, data=body.encode(), headers=headers) as response:
                await response.read()
                status: int | str = response.status
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            self.statuses[type(error).__name__] += 1
            return False
        self.statuses[status] += 1
        if status == 200:  # HTTP OK
            self.acks_ms.append((time.perf_counter() - started) * 1000)
        return status == 200  # HTTP OK

    def ack_figures(self) -> dict[str, Any]:
        """p50, p99 and max of the acks, and how every request ended."""
        return {
            "p50": round(percentile(self.acks_ms, 0.50), 1),
            "p99": round(percentile(self.acks_ms, 0.99), 1),
            "max": round(max(self.acks_ms, default=float("nan")), 1),
            "statuses": {str(key): count for key, count in self.statuses.items()},
        }


@contextlib.asynccontextmanager
async def deliveries() -> AsyncIterator[Deliveries]:
    """A client session with no connection limit (a burst is many requests at once)."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        yield Deliveries(session)


# --- what reached Slack ---------------------------------------------------------------------


def _metadata(call: RecordedCall) -> dict[str, Any]:
    metadata = call.args.get("metadata")
    if isinstance(metadata, str):
        metadata = json.loads(metadata)
    return metadata if isinstance(metadata, dict) else {}


@dataclass(frozen=True)
class Post:
    """One top-level ticket post in a team channel."""

    channel: str
    ts: str
    ticket_id: int
    ref: int | None  # the bench message it shows
    at: float  # the stand-in's clock
    approve_value: str | None  # what the Approve & send button carries


def _approve_value(call: RecordedCall) -> str | None:
    blocks = call.args.get("blocks")
    if isinstance(blocks, str):
        blocks = json.loads(blocks)
    for block in blocks or []:
        for element in block.get("elements", []) if isinstance(block, dict) else []:
            if isinstance(element, dict) and element.get("action_id") == render.APPROVE_ACTION:
                return str(element.get("value"))
    return None


def ticket_posts(slack: SlackStandIn, channels: list[str]) -> list[Post]:
    """Every top-level ticket post made in the team channels, in order."""
    found = []
    for call in slack.calls_to("chat.postMessage"):
        if not call.ok or call.args.get("thread_ts"):
            continue
        channel = str(call.response.get("channel"))
        payload = _metadata(call).get("event_payload")
        if channel in channels and isinstance(payload, dict):
            found.append(
                Post(
                    channel=channel,
                    ts=str(call.response["ts"]),
                    ticket_id=int(payload["ticket_id"]),
                    ref=ref_of(
                        str(call.args.get("text", "")) + json.dumps(call.args.get("blocks"))
                    ),
                    at=call.at,
                    approve_value=_approve_value(call),
                )
            )
    return found


@dataclass
class Outcome:
    """What the bot sent, counted per bench message (its ref)."""

    posts: list[Post]
    # (ref, channel) -> how many ticket posts
    posts_per_message: Counter[tuple[int, str]]
    # ticket id -> stand-in times of its thread pages, per channel
    thread_pages: dict[int, list[tuple[str, float]]]
    # ticket id -> stand-in times of its DMs to the on-call
    direct_pages: dict[int, list[float]]
    # customer message ts -> stand-in times of the bot's replies in its thread
    replies: dict[str, list[float]]
    thread_notes: Counter[str]  # every thread post per team channel (pages and notes)
    rate_limited: int

    def refs_posted(self) -> set[int]:
        """The bench messages that have a team post."""
        return {ref for ref, _ in self.posts_per_message}

    def duplicate_posts(self) -> int:
        """Posts beyond one per message and team channel."""
        return sum(count - 1 for count in self.posts_per_message.values())

    def doubled_posts(self, since: float) -> list[dict[str, Any]]:
        """Each message posted twice in one channel: its ref, ticket ids and post times."""
        doubled = []
        for (ref, channel), count in sorted(self.posts_per_message.items()):
            if count > 1:
                posts = [p for p in self.posts if p.ref == ref and p.channel == channel]
                doubled.append(
                    {
                        "ref": ref,
                        "tickets": sorted({post.ticket_id for post in posts}),
                        "posted_at_s": [round(post.at - since, 1) for post in posts],
                    }
                )
        return doubled

    def duplicate_pages(self) -> int:
        """Thread pages beyond one per ticket and channel, DMs beyond one per thread page."""
        doubled = 0
        for ticket, pages in self.thread_pages.items():
            per_channel = Counter(channel for channel, _ in pages)
            doubled += sum(count - 1 for count in per_channel.values())
            doubled += max(0, len(self.direct_pages.get(ticket, [])) - len(per_channel))
        for ticket, dms in self.direct_pages.items():
            if ticket not in self.thread_pages:
                doubled += max(0, len(dms) - 1)
        return doubled

    def duplicate_replies(self) -> int:
        """Replies beyond one in a customer's thread."""
        return sum(len(times) - 1 for times in self.replies.values() if times)

    def bound_s(self) -> tuple[str, float]:
        """The busiest team channel and the least time its posts take at the rate limit."""
        per_channel = Counter(post.channel for post in self.posts)
        busiest = max(per_channel, key=lambda c: per_channel[c] + self.thread_notes[c])
        return busiest, float(per_channel[busiest] + self.thread_notes[busiest] - POST_BURST)


def outcome(stage: Stage) -> Outcome:
    """Count what reached the stand-in so far."""
    channels = list(stage.team_channels)
    posts = ticket_posts(stage.slack, channels)
    per_message: Counter[tuple[int, str]] = Counter(
        (post.ref, post.channel) for post in posts if post.ref is not None
    )
    thread_pages: dict[int, list[tuple[str, float]]] = defaultdict(list)
    direct_pages: dict[int, list[float]] = defaultdict(list)
    replies: dict[str, list[float]] = defaultdict(list)
    thread_notes: Counter[str] = Counter()
    rate_limited = 0
    for call in stage.slack.calls_to("chat.postMessage"):
        if call.http_status == 429:  # Too Many Requests
            rate_limited += 1
        if not call.ok:
            continue
        channel = str(call.response.get("channel"))
        thread_ts = call.args.get("thread_ts")
        text = str(call.args.get("text", ""))
        ticket = _TICKET.search(text)
        if thread_ts and channel in stage.team_channels:
            thread_notes[channel] += 1
            if ticket and "needs a human" in text:
                thread_pages[int(ticket.group(1))].append((channel, call.at))
        elif thread_ts and channel == INTAKE:
            replies[str(thread_ts)].append(call.at)
        elif call.args.get("channel") == f"D{ONCALL[1:]}" and ticket:
            direct_pages[int(ticket.group(1))].append(call.at)
    return Outcome(
        posts=posts,
        posts_per_message=per_message,
        thread_pages=dict(thread_pages),
        direct_pages=dict(direct_pages),
        replies=dict(replies),
        thread_notes=thread_notes,
        rate_limited=rate_limited,
    )


def write_calls(slack: SlackStandIn, path: Path, *, since: float = 0.0) -> None:
    """Every Web API call the stand-in answered, one JSON line each (for reading a run after)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for call in slack.calls:
            line = {
                "at": round(call.at - since, 3),
                "method": call.method,
                "status": call.http_status,
                "args": call.args,
                "response": call.response,
            }
            out.write(json.dumps(line, default=str) + "\n")


def approvals_undone(slack: SlackStandIn) -> list[int]:
    """Tickets whose approval the bot told the agent did not reach the customer, per DM."""
    undone = []
    for call in slack.calls_to("chat.postMessage"):
        text = str(call.args.get("text", ""))
        if call.ok and call.args.get("channel") == AGENT and "did not reach the customer" in text:
            ticket = _TICKET.search(text)
            if ticket:
                undone.append(int(ticket.group(1)))
    return undone


def approve_again(
    stage: Stage,
    cluster: Cluster,
    seen: Outcome,
    ts_of: Mapping[int, str],
    turn: Iterator[int],
    *,
    handled: int,
) -> int:
    """Approve again each approval the bot said did not reach the customer (a kill mid-send).

    As the agent is asked to. The first `handled` of them were approved again before; returns
    how many are handled now.
    """
    undone = approvals_undone(stage.slack)
    for ticket_id in undone[handled:]:
        again = next((p for p in seen.posts if p.ticket_id == ticket_id), None)
        if again is not None and again.ref is not None and again.ref in ts_of:
            cluster.approve(again, ts_of[again.ref], next(turn))
    return len(undone)


def approval_bodies(stage: Stage, post: Post) -> tuple[str, str]:
    """An agent's approval of a post twice over: the reaction event and the button's form."""
    reaction = stage.workspace.reaction_added(
        user=AGENT, reaction="white_check_mark", channel=post.channel, ts=post.ts, item_user="U0BOT"
    )
    button = stage.workspace.block_action(
        user=AGENT,
        action_id=render.APPROVE_ACTION,
        value=post.approve_value or str(post.ticket_id),
        channel=post.channel,
        message_ts=post.ts,
        trigger_id=stage.slack.new_trigger_id(),
    )
    return json.dumps(stage.workspace.envelope(reaction)), button


class Cluster:
    """Replicas behind one address book: requests retried on the next replica, as Slack does."""

    def __init__(
        self,
        scene: Stage,
        bots: list[BotProcess],
        send: Deliveries,
        *,
        attempts: int = 3,
        retry_after_s: float = 1.0,
    ) -> None:
        self.scene = scene
        self.bots = bots
        self.send = send
        self.attempts = attempts
        self.retry_after_s = retry_after_s
        self.undelivered = 0  # requests no replica took after every attempt
        self.approved: dict[str, int] = {}  # customer message ts -> ref, for approved tickets
        self.tasks: set[asyncio.Task[None]] = set()

    async def deliver(
        self, first: int, body: str, *, form: bool = False, retry_num: int | None = None
    ) -> None:
        """Send to replica `first`, then to the next ones while none answers 200."""
        for attempt in range(self.attempts):
            bot = self.bots[(first + attempt) % len(self.bots)]
            retry = ((retry_num or 0) + attempt) or None
            if bot.alive and await self.send.post(bot.url, body, form=form, retry_num=retry):
                return
            await asyncio.sleep(self.retry_after_s)
        self.undelivered += 1

    def background(self, delivery: Coroutine[Any, Any, None]) -> None:
        """Run a delivery without waiting for it (settle() waits for all of them)."""
        task = asyncio.create_task(delivery)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def approve(self, post: Post, ts: str, turn: int) -> None:
        """The agent's reaction on one replica and the Approve button on another, at once."""
        assert post.ref is not None
        self.approved[ts] = post.ref
        reaction, button = approval_bodies(self.scene, post)
        self.background(self.deliver(turn, reaction))
        self.background(self.deliver(turn + 1, button, form=True))

    async def settle(self) -> None:
        """Wait for every delivery still under way."""
        while self.tasks:
            await asyncio.gather(*self.tasks)


# --- profiles -------------------------------------------------------------------------------

_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def _area(filename: str) -> str:
    """Which part of the code a sampled frame belongs to (a package, or a project file)."""
    path = filename.replace("\\", "/")
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    for part in ("routing/", "bot/"):
        if path.startswith(part) or f"/{part}" in path:
            return part + path.split(part, 1)[1]
    if "/lib/python3" in path:
        inner = path.split("/lib/python3", 1)[1].split("/", 1)[-1]
        return "stdlib:" + inner.split("/", 1)[0].removesuffix(".py")
    return path


def profile_summary(files: list[Path], *, top: int = 20) -> dict[str, Any]:
    """Where the sampled processes were busy: by area and function, self and inclusive.

    Reads py-spy's raw format (one line per distinct stack, outermost frame first, then the
    number of samples); a sample is 10 ms of a thread running.
    """
    self_by_area: Counter[str] = Counter()
    self_by_function: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    samples = 0
    for path in files:
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            samples += count
            frames = []
            for frame in stack.split(";"):
                match = _FRAME.match(frame)
                function, area = (
                    (match["function"], _area(match["file"])) if match else (frame, "?")
                )
                frames.append((f"{area}:{function}", area))
            name, area = frames[-1]
            self_by_area[area] += count
            self_by_function[name] += count
            # A function counts once per stack, however deep it recurses.
            for project in {name for name, area in frames if area.startswith(("routing/", "bot/"))}:
                inclusive[project] += count

    def share(counter: Counter[str]) -> dict[str, float]:
        return {key: round(value / samples, 3) for key, value in counter.most_common(top)}

    if samples == 0:
        return {}
    return {
        "samples": samples,
        "self_by_area": share(self_by_area),
        "self_by_function": share(self_by_function),
        "project_inclusive": share(inclusive),
    }
