"""The sandbox: the real app, listeners and store against a local Slack stand-in, driven by text.

Each line typed (or piped in) is a customer's message in the intake channel; lines starting
with `/` are actions (`/help` lists them). Everything the bot sends is printed as a transcript.
"""

from __future__ import annotations

import asyncio
import difflib
import json
import logging
import os
import re
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from slack_bolt.async_app import AsyncApp

from bot import render
from bot.app import build_client
from bot.compose import DeskTiming, Serving, make_pipeline, running_services
from bot.logs import LOG_FORMAT, WithheldMessageFormatter
from bot.record import CallRecorder
from bot.sandbox.events import Workspace, socket_request
from bot.sandbox.slack_api import SlackStandIn
from bot.sandbox.transcript import Transcript
from bot.services import check_database
from bot.settings import Settings
from routing.cascade import Pipeline
from routing.config import SlackConfig, TeamChannelConfig, TriageConfig
from routing.desk import Desk

CUSTOMER = "U0CUSTOMER"
AGENT = "U0AGENT"
ONCALL = "U0ONCALL"
INTAKE = "C0INTAKE"
BOT_TOKEN = "xoxb-sandbox"  # noqa: S105  # the stand-in's own token, not a secret

logger = logging.getLogger(__name__)
# Where the sandbox's log records go (not the terminal: they would cut into the transcript).
SANDBOX_LOG = Path("triage-sandbox.log")
# The format of the sandbox's log file when `triage run` set none.

# The sandbox's own actions; a line starting with any other word is a customer's message.
ACTIONS = ("/help", "/approve", "/edit", "/escalate", "/reply", "/change", "/delete")
# An agent's reaction: an emoji and a ticket, and nothing else (":( it crashed" is a message).
# What a mistyped action looks like ("/aprove #1", "/Approve"): a slash word, maybe a ticket.
_LIKE_ACTION = re.compile(r"/[A-Za-z]+(?:\s+#[0-9]{1,12}\b.*)?", re.DOTALL)
_REACTION = re.compile(r":(?P<emoji>[a-z0-9_+'\-]+):\s+(?P<ticket>#?[0-9]{1,12})")
# A Slack user id as typed in `/as U0SOMEONE ...`.
_USER_ID = re.compile(r"[UW][A-Z0-9]{2,}")

BANNER = (
    "This is the sandbox: no Slack workspace is connected. Type a customer message (one per"
    " line) or /help for agents' actions; end of input stops it.\n"
    "To connect to a real workspace, put SLACK_BOT_TOKEN and SLACK_APP_TOKEN in .env"
    " (see README: Connecting to a Slack workspace)."
)

HELP = """Sandbox actions (anything else is a customer message in #intake):
  :white_check_mark: #N        agent approves ticket N's draft with the approve emoji (:x: rejects)
  /approve #N                  agent presses Approve & send
  /edit #N <new reply>         agent presses Edit, changes the draft and sends it
  /escalate #N                 agent presses Escalate
  /triage <command>            the slash command (/triage help)
  /reply #N <text>             the ticket's author replies in ticket N's thread
  /change #N <text>            the customer edits ticket N's message
  /delete #N                   the customer deletes ticket N's message
  /as <user> <line>            a line as someone else: customer, agent, oncall, or any other
                               name or user id (a new customer)
  /help                        this list"""


def sandbox_slack_config(config: TriageConfig) -> SlackConfig:
    """The config's [slack] section, or one made up for the sandbox: a channel per team."""
    if config.slack is not None:
        return config.slack
    teams = {
        team: TeamChannelConfig(
            channel="C0" + team.upper().replace("_", ""), agents=(AGENT,), oncall=(ONCALL,)
        )
        for team in config.team_names
    }
    return SlackConfig(intake_channels=(INTAKE,), teams=teams, fallback_oncall=(ONCALL,))


@dataclass(frozen=True)
class SandboxPeople:
    """Who is who in the sandbox: channel and user names for the transcript."""

    channels: dict[str, str]
    users: dict[str, str]
    agent: str


def sandbox_people(slack: SlackConfig) -> SandboxPeople:
    """Names for every channel and person the config mentions, plus the sandbox's own."""
    channels = dict.fromkeys(slack.intake_channels, "intake")
    channels.update({settings.channel: team for team, settings in slack.teams.items()})
    users = {CUSTOMER: "customer", AGENT: "agent", ONCALL: "oncall"}
    agent = AGENT
    for settings in slack.teams.values():
        for person in (*settings.agents, *settings.oncall):
            users.setdefault(person, person.lower())
    first_agents = [a for s in slack.teams.values() for a in s.agents if not a.startswith("S")]
    if AGENT not in first_agents and first_agents:
        agent = first_agents[0]
    for person in slack.fallback_oncall:
        users.setdefault(person, person.lower())
    return SandboxPeople(channels=channels, users=users, agent=agent)


class Sandbox:
    """The running sandbox: the stand-in, the app and the desk, and what the shell typed."""

    def __init__(
        self,
        *,
        slack_api: SlackStandIn,
        app: AsyncApp,
        desk: Desk,
        workspace: Workspace,
        transcript: Transcript,
        people: SandboxPeople,
        intake: str,
    ) -> None:
        self.slack_api = slack_api
        self.app = app
        self.desk = desk
        self.workspace = workspace
        self.transcript = transcript
        self.people = people
        self.intake = intake

    async def dispatch(self, body: dict[str, Any] | str) -> int:
        """Hand a payload to the app as Socket Mode would; returns the ack's HTTP status."""
        response = await self.app.async_dispatch(socket_request(body))
        return response.status

    async def customer_message(self, text: str, *, user: str = CUSTOMER) -> int | None:
        """A customer posts in the intake channel; returns the ticket number, if one was made."""
        message = self.slack_api.add_message(self.intake, user=user, text=text)
        await self.dispatch(
            self.workspace.envelope(
                self.workspace.message(channel=self.intake, user=user, text=text, ts=message["ts"])
            )
        )
        ticket = await self.desk.store.ticket_at(self.intake, message["ts"])
        if ticket is None:
            return None
        self.transcript.remember_ticket(self.intake, message["ts"], ticket.id)
        return ticket.id

    async def line(self, line: str) -> None:
        """Act on one typed line; a line that fails says so in one line and changes nothing else."""
        text = line.strip()
        if not text:
            return
        try:
            await self._line(text)
            await self.desk.drain()
        except Exception as error:
            # Whatever goes wrong with one line, the sandbox and its tickets go on.
            logger.exception("sandbox: a line of %d characters failed", len(text))
            self.transcript.say(
                f"   (sandbox: that line failed: {type(error).__name__}: {error}; go on)"
            )

    async def _line(self, text: str) -> None:
        user: str | None = None
        if text.split(maxsplit=1)[0] == "/as":
            parts = text.split(maxsplit=2)
            if len(parts) < 3:
                self.transcript.say("   (sandbox: /as needs a person and a line, like /as bob Hi)")
                return
            user, text = self.person(parts[1]), parts[2]
        verb = text.split(maxsplit=1)[0]
        reaction = _REACTION.fullmatch(text)
        if reaction:
            await self._react(user or self.people.agent, reaction["emoji"], reaction["ticket"])
        elif verb == "/triage":
            await self._command(user or self.people.agent, text.removeprefix("/triage").strip())
        elif verb in ACTIONS:
            await self._action(user, text)
        elif user is None and self._mistyped(verb, text):
            return
        else:
            # Anything else is what a customer wrote, ":(" and "/usr/bin is missing" included.
            await self._customer_line(text, user=user or CUSTOMER)

    def _mistyped(self, verb: str, text: str) -> bool:
        """Say so, and post nothing, when a line looks like an action the sandbox has not."""
        if not _LIKE_ACTION.fullmatch(text):
            return False
        known = (*ACTIONS, "/triage", "/as")
        close = difflib.get_close_matches(verb.lower(), known, n=1, cutoff=0.7)
        if not close:
            return False  # "/frobnicate #1" is no typo of an action: a customer's words
        self.transcript.say(
            f"   (sandbox: {verb} is no action; did you mean {close[0]}? /help lists them. To"
            f" post the line as a customer's message: /as customer {text})"
        )
        return True

    async def _customer_line(self, text: str, *, user: str) -> None:
        number = await self.customer_message(text, user=user)
        made = f"ticket #{number}" if number is not None else "no ticket"
        self.transcript.say(f"[#intake] @{self.people.users.get(user, user)}: {text}  ({made})")

    def person(self, who: str) -> str:
        """The user id of a name or id; one the sandbox does not know is a new customer."""
        name = who.lstrip("@") or who
        by_name = {known: user for user, known in self.people.users.items()}
        if name in by_name:
            return by_name[name]
        if name in self.people.users:
            return name
        if _USER_ID.fullmatch(name):
            user = name
        else:
            # A made-up id in Slack's shape: "bob" is U0BOB (U0BOB2 if that one is taken).
            base = "U0" + (re.sub(r"[^A-Z0-9]", "", name.upper())[:9] or "NEW")
            user, number = base, 1
            while user in self.people.users:
                number += 1
                user = f"{base}{number}"
        self.people.users[user] = name
        self.slack_api.add_user(user, name)
        self.transcript.add_user(user, name)
        return user

    async def _ticket(self, reference: str) -> tuple[int, Any] | None:
        # ASCII digits, and few: an Arabic-Indic digit is no ticket number, and no number
        # overflows the store's integers.
        number = re.fullmatch(r"#?([0-9]{1,12})", reference)
        ticket_id = int(number.group(1)) if number else None
        ticket = await self.desk.store.ticket(ticket_id) if ticket_id is not None else None
        if ticket is None:
            self.transcript.say(f"   (sandbox: no ticket {reference!r})")
            return None
        return ticket.id, ticket

    async def _live_post(self, ticket_id: int) -> tuple[str, str] | None:
        # The live post, else the last one (a withdrawn ticket's post can still be reacted to).
        posts = (
            await self.desk.store.posts(ticket_id)
            or (await self.desk.store.posts(ticket_id, active_only=False))[-1:]
        )
        if not posts:
            self.transcript.say(f"   (sandbox: ticket #{ticket_id} has no team post yet)")
            return None
        return posts[0].channel, posts[0].ts

    async def _react(self, user: str, emoji: str, reference: str) -> None:
        found = await self._ticket(reference)
        post = await self._live_post(found[0]) if found else None
        if post is None:
            return
        self.transcript.say(
            f"[#{self.people.channels.get(post[0], post[0])}] "
            f"@{self.people.users.get(user, user)} reacts :{emoji}:"
        )
        await self.dispatch(
            self.workspace.envelope(
                self.workspace.reaction_added(
                    user=user, reaction=emoji, channel=post[0], ts=post[1], item_user="U0BOT"
                )
            )
        )

    async def _command(self, user: str, text: str) -> None:
        self.transcript.say(f"@{self.people.users.get(user, user)}: /triage {text}")
        await self.dispatch(
            self.workspace.slash_command(
                user=user,
                channel=self.intake,
                text=self._escaped_mentions(text),
                trigger_id=self.slack_api.new_trigger_id(),
            )
        )

    def _escaped_mentions(self, text: str) -> str:
        """`@name` as Slack sends it for a command with should_escape: `<@U...|name>`."""
        by_name = {name: user for user, name in self.people.users.items()}

        def escaped(match: re.Match[str]) -> str:
            user = by_name.get(match.group(1))
            return f"<@{user}|{match.group(1)}>" if user else match.group(0)

        return re.sub(r"(?<![<\w])@([\w.-]+)", escaped, text)

    async def _action(self, user: str | None, text: str) -> None:
        # Split off the verb and the ticket only: the rest is the person's text, verbatim.
        verb, *args = text.split(maxsplit=2)
        if verb == "/help":
            self.transcript.say(HELP)
            return
        if not args:
            self.transcript.say(f"   (sandbox: {verb} needs a ticket, like {verb} #1)")
            return
        rest = args[1] if len(args) > 1 else ""
        if verb in ("/edit", "/reply", "/change") and not rest:
            self.transcript.say(f"   (sandbox: {verb} needs the text too, like {verb} #1 Hello)")
            return
        actor = user or self.people.agent
        if verb not in ("/reply", "/change", "/delete") and not await self._is_agent(actor):
            # Someone who is no agent is answered by the bot alone, the same whether the ticket
            # exists or not: the press goes to the app even on no post at all.
            await self._press_as_outsider(verb, actor, args[0], rest)
            return
        found = await self._ticket(args[0])
        if found is None:
            return
        ticket_id, ticket = found
        if verb in ("/reply", "/change", "/delete"):
            # The ticket's author by default: the customer who wrote it replies, edits, deletes.
            await self._customer_action(verb, user or ticket.author or CUSTOMER, ticket, rest)
            return
        await self._button(verb, user or self.people.agent, ticket_id, rest)

    async def _customer_action(self, verb: str, user: str, ticket: Any, text: str) -> None:
        ws = self.workspace
        name = self.people.users.get(user, user)
        if verb == "/reply":
            reply = self.slack_api.add_message(
                ticket.channel, user=user, text=text, thread_ts=ticket.ts
            )
            self.transcript.say(f"[#intake > thread of ticket #{ticket.id}] @{name}: {text}")
            event = ws.message(
                channel=ticket.channel, user=user, text=text, ts=reply["ts"], thread_ts=ticket.ts
            )
        elif verb == "/change":
            self.transcript.say(f"[#intake] @{name} edits ticket #{ticket.id}: {text}")
            self.slack_api.edit_message(ticket.channel, ticket.ts, text=text)
            event = ws.message_changed(
                channel=ticket.channel,
                user=user,
                ts=ticket.ts,
                text=text,
                previous_text=ticket.text,
            )
        else:
            self.transcript.say(f"[#intake] @{name} deletes ticket #{ticket.id}'s message")
            # As in Slack: a message with a thread leaves a tombstone instead of vanishing.
            has_thread = len(self.slack_api.thread(ticket.channel, ticket.ts)) > 1
            deletion = ws.message_tombstoned if has_thread else ws.message_deleted
            event = deletion(channel=ticket.channel, ts=ticket.ts, previous_text=ticket.text)
        await self.dispatch(ws.envelope(event))

    async def _is_agent(self, user: str) -> bool:
        return any([await self.desk.is_agent(user, team) for team in self.desk.slack.teams])

    async def _press_as_outsider(self, verb: str, user: str, reference: str, text: str) -> None:
        number = re.fullmatch(r"#?([0-9]{1,12})", reference)
        ticket_id = int(number.group(1)) if number else 0
        ticket = await self.desk.store.ticket(ticket_id) if number else None
        posts = await self.desk.store.posts(ticket.id, active_only=False) if ticket else []
        team = next(iter(self.desk.slack.teams.values()))
        post = (posts[0].channel, posts[0].ts) if posts else (team.channel, "0000000000.000000")
        await self._button(verb, user, ticket_id, text, post=post)

    async def _button(
        self,
        verb: str,
        user: str,
        ticket_id: int,
        text: str,
        *,
        post: tuple[str, str] | None = None,
    ) -> None:
        post = post or await self._live_post(ticket_id)
        if post is None:
            return
        action = {
            "/approve": render.APPROVE_ACTION,
            "/edit": render.EDIT_ACTION,
            "/escalate": render.ESCALATE_ACTION,
        }[verb]
        name = self.people.users.get(user, user)
        self.transcript.say(f"@{name} presses {verb.removeprefix('/')} on ticket #{ticket_id}")
        # A button the post no longer shows (a sent draft's Approve) is pressed as an old
        # client would: with the value the post's other buttons carry.
        value = self._button_value(post) or str(ticket_id)
        opened = len(self.slack_api.views)
        await self.dispatch(
            self.workspace.block_action(
                user=user,
                action_id=action,
                value=value,
                channel=post[0],
                message_ts=post[1],
                trigger_id=self.slack_api.new_trigger_id(),
            )
        )
        if verb != "/edit":
            return
        # Only the modal this press opened, for this ticket: never an earlier ticket's.
        views = [v for v in self.slack_api.views[opened:] if _view_ticket(v) == ticket_id]
        if not views:
            self.transcript.say(
                f"   (sandbox: no Edit modal opened for ticket #{ticket_id}: nothing is submitted)"
            )
            return
        values = {
            render.DRAFT_BLOCK: {render.DRAFT_INPUT: {"type": "plain_text_input", "value": text}}
        }
        self.transcript.say(f"@{name} submits the edited reply: {text}")
        await self.dispatch(
            self.workspace.view_submission(user=user, view=views[-1], values=values)
        )

    def _button_value(self, post: tuple[str, str]) -> str | None:
        """What the buttons on the post carry, as the stand-in shows it (the ticket's public id)."""
        for message in self.slack_api.messages(post[0]):
            if message.get("ts") != post[1]:
                continue
            for block in message.get("blocks") or []:
                for element in block.get("elements") or []:
                    if element.get("type") == "button" and "value" in element:
                        return str(element["value"])
        return None


def _view_ticket(view: dict[str, Any]) -> int | None:
    """The ticket a modal was opened for (its private_metadata), if it names one."""
    try:
        return int(json.loads(view.get("private_metadata") or "{}")["ticket_id"])
    except (ValueError, KeyError, TypeError):
        return None


@asynccontextmanager
async def open_sandbox(
    settings: Settings,
    config: TriageConfig,
    *,
    out: TextIO,
    database: Path | str,
    pipeline: Pipeline | None = None,
    post_rate_per_second: float = 1.0,
    recorder: CallRecorder | None = None,
) -> AsyncIterator[Sandbox]:
    """The stand-in, the desk and the app, running until the block ends."""
    slack = sandbox_slack_config(config)
    people = sandbox_people(slack)
    transcript = Transcript(out, channels=people.channels, users=people.users)
    pipeline = pipeline or make_pipeline(settings, config)
    async with SlackStandIn(
        bot_token=BOT_TOKEN,
        channels=people.channels,
        users=people.users,
        post_rate_per_second=post_rate_per_second,
    ) as slack_api:
        slack_api.on_call(transcript.on_call)
        client = build_client(token=BOT_TOKEN, base_url=slack_api.base_url, recorder=recorder)
        # Each dispatch returns after its listener ran, so the transcript reads in order.
        async with running_services(
            config,
            slack,
            pipeline=pipeline,
            client=client,
            database=database,
            # One process: its posts take turns by the stand-in's 429s. Pacing is for replicas
            # sharing a channel (and `triage run`).
            timing=DeskTiming(post_spacing_seconds=0.0),
            serving=Serving(process_before_response=True),
        ) as bot:
            desk, app = bot.desk, bot.app
            yield Sandbox(
                slack_api=slack_api,
                app=app,
                desk=desk,
                workspace=Workspace(
                    response_url_base=slack_api.base_url.replace("/api/", "/response/")
                ),
                transcript=transcript,
                people=people,
                intake=slack.intake_channels[0],
            )


class _WarningCount(logging.Handler):
    """Counts the records at WARNING or above, to say at the end that the log file has some."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        """Count one record."""
        self.count += 1


@dataclass
class SandboxLog:
    """Where the sandbox's log records go, and how many were warnings or worse."""

    path: Path
    warnings: _WarningCount


def _log_file(path: Path) -> tuple[logging.FileHandler, Path]:
    try:
        return logging.FileHandler(path, mode="w", encoding="utf-8"), path
    except OSError:
        # A directory the user cannot write in: a file of its own in the temporary directory.
        handle, name = tempfile.mkstemp(prefix="triage-sandbox-", suffix=".log")
        os.close(handle)
        return logging.FileHandler(name, mode="w", encoding="utf-8"), Path(name)


@contextmanager
def logs_to_file(path: Path) -> Iterator[SandboxLog]:
    """While the sandbox runs, log records go to a file instead of the terminal.

    `triage run` logs to stderr, which a terminal shows among the transcript's lines; the
    sandbox takes those handlers off the root logger and puts them back when it stops.
    """
    root = logging.getLogger()
    terminals = (sys.stderr, sys.stdout, sys.__stderr__, sys.__stdout__)
    moved = [
        handler
        for handler in root.handlers
        if isinstance(handler, logging.StreamHandler)
        and not isinstance(handler, logging.FileHandler)
        and handler.stream in terminals
    ]
    to_file, path = _log_file(path)
    to_file.setFormatter(
        next((h.formatter for h in moved if h.formatter), None)
        or WithheldMessageFormatter(LOG_FORMAT)
    )
    counter = _WarningCount()
    for handler in moved:
        root.removeHandler(handler)
    root.addHandler(to_file)
    root.addHandler(counter)
    try:
        yield SandboxLog(path=path, warnings=counter)
    finally:
        root.removeHandler(counter)
        root.removeHandler(to_file)
        to_file.close()
        for handler in moved:
            root.addHandler(handler)


async def run_sandbox(
    settings: Settings,
    config: TriageConfig,
    *,
    stdin: TextIO,
    out: TextIO,
    log_path: Path = SANDBOX_LOG,
    pipeline: Pipeline | None = None,
    record: Path | None = None,
) -> int:
    """Run the sandbox until end of input; 0 when every ticket was routed.

    Log records go to log_path (by default triage-sandbox.log in the current directory), never
    among the transcript's lines. With `record`, every Web API call the bot makes is appended to
    that file (bot/record.py).
    """
    # What the operator named and the bot cannot use is one error line, before a banner that
    # would say all is well.
    if settings.database is not None:
        chosen = settings.database_location(Path())
        if isinstance(chosen, Path):
            check_database(chosen)
    with ExitStack() as stack:
        recorder = stack.enter_context(CallRecorder(record)) if record is not None else None
        out.write(BANNER + "\n")
        log = stack.enter_context(logs_to_file(log_path))
        directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="triage-sandbox-"))
        out.write(f"Log messages go to {log.path}.\n")
        # Wherever TRIAGE_DB points (an SQLite file or PostgreSQL); a temporary file if unset.
        database = settings.database_location(Path(directory) / "sandbox.sqlite3")
        async with open_sandbox(
            settings, config, out=out, database=database, pipeline=pipeline, recorder=recorder
        ) as sandbox:
            while True:
                line = await asyncio.to_thread(stdin.readline)
                if not line:
                    break
                await sandbox.line(line)
            await sandbox.desk.drain()
            unrouted = await sandbox.desk.store.unrouted_tickets()
    count = log.warnings.count
    logged = f" {count} warning{'' if count == 1 else 's'} logged in {log.path}." if count else ""
    if unrouted:
        out.write(
            f"End of input: the sandbox stops; {len(unrouted)} tickets were not routed.{logged}\n"
        )
        return 1
    out.write(f"End of input: the sandbox stops.{logged}\n")
    return 0
