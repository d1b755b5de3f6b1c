"""The sandbox: the real app, listeners and store against a local Slack stand-in, driven by text.

Each line typed (or piped in) is a customer's message in the intake channel; lines starting
with `/` are actions (`/help` lists them). Everything the bot sends is printed as a transcript.
"""

from __future__ import annotations

import asyncio
import re
import shlex
import tempfile
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from slack_bolt.async_app import AsyncApp

from bot import render
from bot.app import build_app, build_client
from bot.record import CallRecorder
from bot.runner import make_pipeline, running_desk
from bot.sandbox.events import Workspace, socket_request
from bot.sandbox.slack_api import SlackStandIn
from bot.sandbox.transcript import Transcript
from bot.services import Services
from bot.settings import Settings
from routing.cascade import Pipeline
from routing.config import SlackConfig, TeamChannelConfig, TriageConfig
from routing.desk import Desk

CUSTOMER = "U0CUSTOMER"
AGENT = "U0AGENT"
ONCALL = "U0ONCALL"
INTAKE = "C0INTAKE"
BOT_TOKEN = "xoxb-sandbox"  # noqa: S105  # the stand-in's own token, not a secret

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
  /reply #N <text>             the customer replies in ticket N's thread
  /change #N <text>            the customer edits ticket N's message
  /delete #N                   the customer deletes ticket N's message
  /as <user> <action>          do it as someone else (customer, agent, oncall or a user id)
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
        """Act on one typed line."""
        text = line.strip()
        if not text:
            return
        user: str | None = None
        if text.startswith("/as "):
            _, who, text = [*text.split(maxsplit=2), "", ""][:3]
            user = self._user(who)
        if text.startswith(":") and " " in text:
            emoji, _, reference = text.partition(" ")
            await self._react(user or self.people.agent, emoji.strip(":"), reference)
        elif text.startswith("/triage"):
            await self._command(user or self.people.agent, text.removeprefix("/triage").strip())
        elif text.startswith("/"):
            await self._action(user, text)
        else:
            number = await self.customer_message(text, user=user or CUSTOMER)
            if number is not None:
                self.transcript.say(f"[#intake] @customer: {text}  (ticket #{number})")
        await self.desk.drain()

    def _user(self, who: str) -> str:
        by_name = {name: user for user, name in self.people.users.items()}
        return by_name.get(who.lstrip("@"), who.lstrip("@"))

    async def _ticket(self, reference: str) -> tuple[int, Any] | None:
        ticket_id = int(reference.lstrip("#")) if reference.lstrip("#").isdigit() else None
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
        try:
            words = shlex.split(text)
        except ValueError:
            words = text.split()
        verb, args = words[0], words[1:]
        if verb == "/help":
            self.transcript.say(HELP)
            return
        if verb not in ("/approve", "/edit", "/escalate", "/reply", "/change", "/delete"):
            self.transcript.say(f"   (sandbox: unknown action {verb}; /help lists them)")
            return
        if not args:
            self.transcript.say(f"   (sandbox: {verb} needs a ticket, like {verb} #1)")
            return
        found = await self._ticket(args[0])
        if found is None:
            return
        ticket_id, ticket = found
        rest = " ".join(args[1:])
        if verb in ("/reply", "/change", "/delete"):
            await self._customer_action(verb, user or CUSTOMER, ticket, rest)
            return
        await self._button(verb, user or self.people.agent, ticket_id, rest)

    async def _customer_action(self, verb: str, user: str, ticket: Any, text: str) -> None:
        ws = self.workspace
        if verb == "/reply":
            reply = self.slack_api.add_message(
                ticket.channel, user=user, text=text, thread_ts=ticket.ts
            )
            self.transcript.say(f"[#intake > thread of ticket #{ticket.id}] @customer: {text}")
            event = ws.message(
                channel=ticket.channel, user=user, text=text, ts=reply["ts"], thread_ts=ticket.ts
            )
        elif verb == "/change":
            self.transcript.say(f"[#intake] @customer edits ticket #{ticket.id}: {text}")
            self.slack_api.edit_message(ticket.channel, ticket.ts, text=text)
            event = ws.message_changed(
                channel=ticket.channel,
                user=user,
                ts=ticket.ts,
                text=text,
                previous_text=ticket.text,
            )
        else:
            self.transcript.say(f"[#intake] @customer deletes ticket #{ticket.id}'s message")
            # As in Slack: a message with a thread leaves a tombstone instead of vanishing.
            has_thread = len(self.slack_api.thread(ticket.channel, ticket.ts)) > 1
            deletion = ws.message_tombstoned if has_thread else ws.message_deleted
            event = deletion(channel=ticket.channel, ts=ticket.ts, previous_text=ticket.text)
        await self.dispatch(ws.envelope(event))

    async def _button(self, verb: str, user: str, ticket_id: int, text: str) -> None:
        post = await self._live_post(ticket_id)
        if post is None:
            return
        action = {
            "/approve": render.APPROVE_ACTION,
            "/edit": render.EDIT_ACTION,
            "/escalate": render.ESCALATE_ACTION,
        }[verb]
        name = self.people.users.get(user, user)
        self.transcript.say(f"@{name} presses {verb.removeprefix('/')} on ticket #{ticket_id}")
        await self.dispatch(
            self.workspace.block_action(
                user=user,
                action_id=action,
                value=str(ticket_id),
                channel=post[0],
                message_ts=post[1],
                trigger_id=self.slack_api.new_trigger_id(),
            )
        )
        if verb == "/edit" and self.slack_api.views:
            view = self.slack_api.views[-1]
            values = {
                render.DRAFT_BLOCK: {
                    render.DRAFT_INPUT: {"type": "plain_text_input", "value": text}
                }
            }
            self.transcript.say(f"@{name} submits the edited reply: {text}")
            await self.dispatch(self.workspace.view_submission(user=user, view=view, values=values))


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
        async with running_desk(
            config=config, slack=slack, pipeline=pipeline, client=client, database=database
        ) as desk:
            # Each dispatch returns after its listener ran, so the transcript reads in order.
            app = build_app(
                client=client,
                services=Services(desk=desk, config=config),
                process_before_response=True,
            )
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


async def run_sandbox(
    settings: Settings,
    config: TriageConfig,
    *,
    stdin: TextIO,
    out: TextIO,
    record: Path | None = None,
) -> int:
    """Run the sandbox until end of input; 0 when every ticket was routed.

    With `record`, every Web API call the bot makes is appended to that file (bot/record.py).
    """
    out.write(BANNER + "\n")
    with (
        tempfile.TemporaryDirectory(prefix="triage-sandbox-") as directory,
        ExitStack() as stack,
    ):
        recorder = stack.enter_context(CallRecorder(record)) if record is not None else None
        # Wherever TRIAGE_DB points (an SQLite file or PostgreSQL); a temporary file if unset.
        database = settings.database_location(Path(directory) / "sandbox.sqlite3")
        async with open_sandbox(
            settings, config, out=out, database=database, recorder=recorder
        ) as sandbox:
            while True:
                line = await asyncio.to_thread(stdin.readline)
                if not line:
                    break
                await sandbox.line(line)
            await sandbox.desk.drain()
            unrouted = await sandbox.desk.store.unrouted_tickets()
    if unrouted:
        out.write(f"End of input: the sandbox stops; {len(unrouted)} tickets were not routed.\n")
        return 1
    out.write("End of input: the sandbox stops.\n")
    return 0
