"""The real app over HTTP with signed requests, a real AsyncWebClient and the strict stand-in."""

from __future__ import annotations

import json
import math
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web
from slack_sdk.signature import SignatureVerifier

from bot import render
from bot.app import build_client
from bot.compose import DeskTiming, Serving, running_services
from bot.endpoint import SlackIdentity, slack_web_app
from bot.sandbox.events import Workspace
from bot.sandbox.shell import AGENT, CUSTOMER, INTAKE, ONCALL, sandbox_slack_config
from bot.sandbox.slack_api import SlackStandIn
from routing.cascade import LLMLayer, build_pipeline
from routing.config import LanguagesConfig, SlackConfig, TriageConfig, load_config
from routing.desk import LEASE_SECONDS, ROUTING_RETRY_DELAYS, Desk
from routing.embedding import Embedder
from routing.language import LanguageDetector
from routing.ports import Clock, SystemClock, TicketStore
from routing.records import utc_now
from tests.timekeeping import DeskClock, ManualClock


def _desk_clock(timing: _Timing) -> Clock:
    """The machine's clocks, but for the readings a test picked (a steady clock, a wall time)."""
    if timing.desk_clock is None and timing.desk_now is None:
        return SystemClock()
    return DeskClock(wall=timing.desk_now or utc_now, steady=timing.desk_clock or time.monotonic)


SIGNING_SECRET = "test-signing-secret"  # a test's own secret
# One language detector for every harness: its model loads once per test run, not per test.
LANGUAGES = LanguageDetector(candidates=LanguagesConfig().candidates)
BOT_TOKEN = "xoxb-test"
OUTSIDER = "U0OUTSIDER"


def sign(secret: str, timestamp: str, body: str) -> str:
    """Slack's request signature: v0= HMAC-SHA256 of v0:timestamp:body."""
    signature = SignatureVerifier(secret).generate_signature(timestamp=timestamp, body=body)
    assert signature is not None
    return signature


class Harness:
    """One running bot: send it Slack's requests, read what it sent to Slack."""

    def __init__(
        self,
        *,
        slack: SlackStandIn,
        desk: Desk,
        config: TriageConfig,
        slack_config: SlackConfig,
        url: str,
        session: aiohttp.ClientSession,
    ) -> None:
        self.slack = slack
        self.desk = desk
        self.store = desk.store
        self.config = config
        self.slack_config = slack_config
        self.url = url
        self.session = session
        self.workspace = Workspace(response_url_base=slack.base_url.replace("/api/", "/response/"))

    # --- requests from Slack, signed --------------------------------------------------------

    async def send(
        self, raw: str, *, content_type: str, headers: dict[str, str] | None = None
    ) -> tuple[int, str]:
        """POST a signed request to /slack/events; returns status and body."""
        timestamp = str(int(time.time()))
        signature = sign(SIGNING_SECRET, timestamp, raw)
        all_headers = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": signature,
            **(headers or {}),
        }
        async with self.session.post(self.url, data=raw.encode(), headers=all_headers) as response:
            return response.status, await response.text()

    async def event(
        self, event: dict[str, Any], *, event_id: str | None = None, retry: int | None = None
    ) -> int:
        """Deliver an event (a retry carries Slack's retry headers)."""
        headers = (
            {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
            if retry
            else None
        )
        body = json.dumps(self.workspace.envelope(event, event_id=event_id))
        status, _ = await self.send(body, content_type="application/json", headers=headers)
        return status

    async def form(self, raw: str) -> int:
        """Deliver a form-encoded request (a slash command or an interaction)."""
        status, _ = await self.send(raw, content_type="application/x-www-form-urlencoded")
        return status

    # --- people's actions -----------------------------------------------------------------

    async def customer_says(
        self,
        text: str,
        *,
        user: str = CUSTOMER,
        thread_ts: str | None = None,
        subtype: str | None = None,
        files: list[dict[str, Any]] | None = None,
    ) -> str:
        """A human posts in the intake channel and Slack delivers the event; returns its ts."""
        message = self.slack.add_message(
            INTAKE, user=user, text=text, thread_ts=thread_ts, subtype=subtype, files=files
        )
        extra = {"files": files} if files else None
        event = self.workspace.message(
            channel=INTAKE,
            user=user,
            text=text,
            ts=message["ts"],
            thread_ts=thread_ts,
            subtype=subtype,
            extra=extra,
        )
        assert await self.event(event) == 200
        return str(message["ts"])

    async def customer_edits(self, ts: str, text: str, *, previous: str) -> int:
        """The customer edits their intake message at ts and Slack delivers message_changed."""
        edit = self.workspace.message_changed(
            channel=INTAKE, user=CUSTOMER, ts=ts, text=text, previous_text=previous
        )
        return await self.event(edit)

    async def ticket_for(self, ts: str) -> int:
        """The id of the ticket made from the intake message at ts."""
        ticket = await self.store.ticket_at(INTAKE, ts)
        assert ticket is not None, f"no ticket for {ts}"
        return ticket.id

    async def new_ticket(self, text: str) -> int:
        """A customer message, routed: returns its ticket id."""
        ts = await self.customer_says(text)
        await self.desk.drain()
        return await self.ticket_for(ts)

    async def react(self, user: str, emoji: str, ticket_id: int) -> int:
        """A reaction on the ticket's first team post (live, moved or withdrawn)."""
        (post, *_) = await self.store.posts(ticket_id, active_only=False)
        event = self.workspace.reaction_added(
            user=user, reaction=emoji, channel=post.channel, ts=post.ts, item_user="U0BOT"
        )
        return await self.event(event)

    def button_value(self, channel: str, ts: str) -> str:
        """What the buttons on the bot's message at (channel, ts) carry, as Slack shows it."""
        (message,) = [m for m in self.slack.messages(channel) if m["ts"] == ts]
        (value,) = {
            str(element["value"])
            for block in message.get("blocks", [])
            for element in block.get("elements", [])
            if element.get("type") == "button"
        }
        return value

    async def press(self, user: str, action_id: str, ticket_id: int) -> int:
        """A button on the ticket's live team post, carrying the value its buttons show.

        A button the post no longer shows (a sent draft's Approve) is pressed as an old client
        would, with the same value.
        """
        (post, *_) = await self.store.posts(ticket_id)
        return await self.form(
            self.workspace.block_action(
                user=user,
                action_id=action_id,
                value=self.button_value(post.channel, post.ts),
                channel=post.channel,
                message_ts=post.ts,
                trigger_id=self.slack.new_trigger_id(),
            )
        )

    async def command(self, user: str, text: str) -> str:
        """Run `/triage text`; returns what the person was answered."""
        before = len(self.slack.responses)
        status = await self.form(
            self.workspace.slash_command(
                user=user, channel=INTAKE, text=text, trigger_id=self.slack.new_trigger_id()
            )
        )
        assert status == 200
        answers = self.slack.responses[before:]
        assert len(answers) == 1, answers
        assert answers[0]["response_type"] == "ephemeral"
        return str(answers[0]["text"])

    async def submit_edit(self, user: str, view: dict[str, Any], text: str) -> int:
        """Submit the Edit modal with new text."""
        values = {
            render.DRAFT_BLOCK: {render.DRAFT_INPUT: {"type": "plain_text_input", "value": text}}
        }
        return await self.form(self.workspace.view_submission(user=user, view=view, values=values))

    # --- what reached Slack ---------------------------------------------------------------

    def channel_of(self, team: str) -> str:
        """A team's channel id."""
        return self.slack_config.teams[team].channel

    def posts_in(self, team: str) -> list[dict[str, Any]]:
        """The bot's top-level ticket posts in a team's channel, in order."""
        return [
            message
            for message in self.slack.messages(self.channel_of(team))
            if "thread_ts" not in message or message["thread_ts"] == message["ts"]
        ]

    def thread_of(self, channel: str, ts: str) -> list[dict[str, Any]]:
        """The replies under a message (its thread without the parent)."""
        return self.slack.thread(channel, ts)[1:]

    def all_ticket_posts(self) -> list[dict[str, Any]]:
        """Every top-level post of every team channel."""
        return [post for team in self.slack_config.teams for post in self.posts_in(team)]


def write_standin_config(directory: Path, *, workers: int | None = None) -> Path:
    """The default config plus a [slack] section for the stand-in's channels, as a file."""
    config = load_config()
    slack = f'\n[slack]\nintake_channels = ["{INTAKE}"]\nfallback_oncall = ["{ONCALL}"]\n'
    if workers is not None:
        slack += f"workers = {workers}\n"
    lines = [config.source.read_text(encoding="utf-8"), slack]
    for team, settings in sandbox_slack_config(config).teams.items():
        lines.append(
            f'[slack.teams.{team}]\nchannel = "{settings.channel}"\n'
            f'agents = ["{AGENT}"]\noncall = ["{ONCALL}"]\n'
        )
    path = directory / "config.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    # The config names its examples file relative to itself.
    (directory / config.examples_path.name).write_text(
        config.examples_path.read_text(encoding="utf-8"), encoding="utf-8"
    )
    return path


MANIFEST = Path(__file__).resolve().parent.parent / "manifest.yml"


def manifest_scopes() -> tuple[str, ...]:
    """The bot token's scopes manifest.yml asks for: the stand-in grants exactly these."""
    manifest = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    return tuple(manifest["oauth_config"]["scopes"]["bot"])


def standin_for(
    config: TriageConfig,
    slack_config: SlackConfig | None = None,
    *,
    post_rate_per_second: float = math.inf,
    post_burst: int = 4,
    clock: Callable[[], float] | None = None,
) -> SlackStandIn:
    """A stand-in workspace with the config's channels and the tests' people.

    Its rate limiter and its 3 s trigger expiry read clock, by default one that stands still
    until a test moves it: no test depends on how fast the machine answers. The bot's token has
    the manifest's scopes, no more: a call the manifest does not allow is missing_scope.
    """
    slack_config = slack_config or sandbox_slack_config(config)
    channels = {INTAKE: "intake"} | {
        settings.channel: team for team, settings in slack_config.teams.items()
    }
    users = {CUSTOMER: "customer", AGENT: "agent", ONCALL: "oncall", OUTSIDER: "outsider"}
    for settings in slack_config.teams.values():
        users.update({person: person.lower() for person in (*settings.agents, *settings.oncall)})
    return SlackStandIn(
        bot_token=BOT_TOKEN,
        channels=channels,
        users=users,
        usergroups={"S0BILLAGENTS": ["U0BILLA", "U0BILLB"]},
        post_rate_per_second=post_rate_per_second,
        post_burst=post_burst,
        clock=clock or ManualClock(),
        scopes=manifest_scopes(),
    )


@asynccontextmanager
async def running_bot(
    tmp_path: Path,
    embedder: Embedder,
    *,
    config: TriageConfig,
    slack_config: SlackConfig | None = None,
    llm: LLMLayer | None = None,
    post_rate_per_second: float = math.inf,
    post_burst: int = 4,
    clock: Callable[[], float] | None = None,
    database: Path | str | None = None,
    workspace: SlackStandIn | None = None,
    retry_delays: Sequence[float] = ROUTING_RETRY_DELAYS,
    client_timeout: int = 30,
    desk_clock: Callable[[], float] | None = None,
    store: TicketStore | None = None,
    lease_seconds: float = LEASE_SECONDS,
    process_before_response: bool = True,
    desk_now: Callable[[], datetime] | None = None,
    post_spacing_seconds: float = 0.0,
) -> AsyncIterator[Harness]:
    """Start the desk and the app served over HTTP (and a stand-in unless one is given).

    post_spacing_seconds paces posts per channel (0: unpaced, the stand-in's 429s steer);
    client_timeout bounds each Web API call (seconds); desk_clock is the desk's clock;
    lease_seconds the desk's routing lease (its sweep runs three times per lease). With a
    store, that store instead of opening `database`; process_before_response=False serves as
    `triage run` does (Bolt acks before the listeners run).
    """
    timing = _Timing(client_timeout, desk_clock, lease_seconds, desk_now, post_spacing_seconds)
    slack_config = slack_config or sandbox_slack_config(config)
    if workspace is None:
        async with (
            standin_for(
                config,
                slack_config,
                post_rate_per_second=post_rate_per_second,
                post_burst=post_burst,
                clock=clock,
            ) as slack,
            _serving(
                tmp_path,
                embedder,
                config,
                slack_config,
                llm,
                database,
                slack,
                retry_delays,
                timing,
                store=store,
                process_before_response=process_before_response,
            ) as bot,
        ):
            yield bot
    else:
        async with _serving(
            tmp_path,
            embedder,
            config,
            slack_config,
            llm,
            database,
            workspace,
            retry_delays,
            timing,
            store=store,
            process_before_response=process_before_response,
        ) as bot:
            yield bot


@dataclass(frozen=True)
class _Timing:
    client_timeout: int
    desk_clock: Callable[[], float] | None
    lease_seconds: float
    desk_now: Callable[[], datetime] | None = None
    post_spacing_seconds: float = 0.0


@asynccontextmanager
async def _serving(
    tmp_path: Path,
    embedder: Embedder,
    config: TriageConfig,
    slack_config: SlackConfig,
    llm: LLMLayer | None,
    database: Path | str | None,
    slack: SlackStandIn,
    retry_delays: Sequence[float],
    timing: _Timing,
    *,
    store: TicketStore | None,
    process_before_response: bool,
) -> AsyncIterator[Harness]:
    client = build_client(token=BOT_TOKEN, base_url=slack.base_url, timeout=timing.client_timeout)
    pipeline = build_pipeline(config, embedder=embedder, llm=llm, languages=LANGUAGES)
    # An SQLite path or a postgresql:// URL, opened as the runner opens TRIAGE_DB.
    async with running_services(
        config,
        slack_config,
        pipeline=pipeline,
        client=client,
        database=database or tmp_path / "triage.sqlite3",
        store=store,
        timing=DeskTiming(
            clock=_desk_clock(timing),
            lease_seconds=timing.lease_seconds,
            retry_delays=retry_delays,
            read_back_delays=(0.0, 0.0),  # a refused history read is tried again at once
            # Unpaced unless a test asks: the stand-in's 429s are what most tests steer by.
            post_spacing_seconds=timing.post_spacing_seconds,
        ),
        serving=Serving(
            signing_secret=SIGNING_SECRET, process_before_response=process_before_response
        ),
    ) as bot:
        # Served as `triage run --http` serves it, for the stand-in's workspace and app.
        web_app = slack_web_app(
            bot.app,
            path="/slack/events",
            signing_secret=SIGNING_SECRET,
            identity=SlackIdentity(team_id=slack.team_id, app_id=slack.app_id),
        )
        runner = web.AppRunner(web_app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        await bot.desk.catch_up()
        port = runner.addresses[0][1]
        try:
            async with aiohttp.ClientSession() as session:
                yield Harness(
                    slack=slack,
                    desk=bot.desk,
                    config=config,
                    slack_config=slack_config,
                    url=f"http://127.0.0.1:{port}/slack/events",
                    session=session,
                )
        finally:
            await runner.cleanup()
