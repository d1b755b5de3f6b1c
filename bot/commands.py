"""`/triage` sub-commands: parse the text Slack sends and call the desk; returns the answer."""

from __future__ import annotations

import logging
import re
import shlex

from bot.render import escape, status_text
from routing.corrections import CORRECTABLE_FIELDS
from routing.desk import BadRequestError, Desk

logger = logging.getLogger(__name__)

# Escaped: Slack reads a bare <team> as a link and shows "team", losing the brackets.
USAGE = {
    command: f"`{escape(usage)}`"
    for command, usage in {
        "reclassify": "/triage reclassify <ticket # or message link> [category=..] [priority=..]"
        " [team=..] [sentiment=..]",
        "status": "/triage status <ticket # or message link>",
        "oncall": "/triage oncall <team> [@user or @group ...]",
        "stats": "/triage stats",
        "help": "/triage help",
    }.items()
}

HELP = "\n".join(
    [
        "*Triage commands*",
        f"{USAGE['reclassify']}: move a ticket and teach the classifier",
        f"{USAGE['status']}: where a ticket is",
        f"{USAGE['oncall']}: show or set who is paged for a team",
        f"{USAGE['stats']}: today's tickets, needs-human and approval rates",
        f"{USAGE['help']}: this help",
        "React to a ticket post with :white_check_mark: to send its draft, :x: to drop it.",
    ]
)

# What Slack sends for a mention with "escape channels, users and links" on: <@U123|name>.
_PERSON = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>|<!subteam\^(S[A-Z0-9]+)(?:\|[^>]*)?>")
# A bare id typed by hand: 9 to 11 capitals and digits with at least one digit, so a word such
# as STATUS or SUPPORT is not taken for a user group.
_RAW_ID = re.compile(r"[UWS](?=[A-Z]*[0-9])[A-Z0-9]{8,10}")


def _usage(command: str, problem: str) -> BadRequestError:
    return BadRequestError(f"{problem}\nUsage: {USAGE[command]}")


async def run_command(desk: Desk, *, user: str, text: str) -> str:
    """Run one `/triage` command for user; a bad argument raises BadRequestError with usage."""
    try:
        words = shlex.split(text)
    except ValueError:
        words = text.split()
    try:
        return await _run(desk, user=user, words=words)
    except BadRequestError as refused:
        raise BadRequestError(_disarmed(refused.message, words)) from refused


def _disarmed(message: str, words: list[str]) -> str:
    """The desk's refusal with the words it quotes back (`<!channel>`, `<@U1>`) escaped.

    The desk names an unknown team, label or reference as given, in backticks; Slack reads
    `<!channel>` there as a mention and `<https://x|here>` as a link, even in code.
    """
    quoted: set[str] = set()
    for word in words:
        for piece in (word, word.partition("=")[2]):
            if piece and piece != escape(piece):
                quoted.update({piece, piece.lower()})
    # The longest first, so a word is never escaped inside a longer one already escaped.
    for piece in sorted(quoted, key=len, reverse=True):
        message = message.replace(f"`{piece}`", f"`{escape(piece)}`")
    return message


async def _run(desk: Desk, *, user: str, words: list[str]) -> str:
    if not words or words[0] == "help":
        return HELP
    command, args = words[0].lower(), words[1:]
    if command == "reclassify":
        return await _reclassify(desk, user, args)
    if command == "status":
        if len(args) != 1:
            raise _usage("status", "Give one ticket.")
        # The desk looks a reference up only for agents: no one else can probe for tickets.
        ticket_id = await desk.find_ticket(args[0], user=user, action="see ticket status")
        return status_text(await desk.status(ticket_id, user=user))
    if command == "oncall":
        return await _oncall(desk, user, args)
    if command == "stats":
        if args:
            raise _usage("stats", f"`stats` takes no arguments (got `{escape(' '.join(args))}`).")
        return await desk.stats(user=user)
    raise BadRequestError(f"Unknown command `{escape(command)}`.\n{HELP}")


async def _reclassify(desk: Desk, user: str, args: list[str]) -> str:
    if not args:
        raise _usage("reclassify", "Give the ticket to reclassify.")
    # Before the changes are read: a non-agent's answer never depends on the ticket.
    ticket_id = await desk.find_ticket(args[0], user=user, action="reclassify tickets")
    changes: dict[str, str] = {}
    for arg in args[1:]:
        key, sep, value = arg.partition("=")
        key = key.lower()
        if sep and key in CORRECTABLE_FIELDS and not value:
            # `priority=` (or `priority= high`, which Slack splits in two) names the field.
            raise _usage(
                "reclassify", f"`{escape(key)}=` needs a value: write it right after `=`, no space."
            )
        if not sep or key not in CORRECTABLE_FIELDS:
            raise _usage(
                "reclassify",
                f"`{escape(arg)}` is not category=.., priority=.., team=.. or sentiment=..",
            )
        if key in changes:
            raise _usage("reclassify", f"`{escape(key)}` is given twice.")
        changes[key] = value.lower()
    if not changes:
        raise _usage("reclassify", "Say what to change.")
    return await desk.reclassify(
        ticket_id,
        user=user,
        category=changes.get("category"),
        priority=changes.get("priority"),
        team=changes.get("team"),
        sentiment=changes.get("sentiment"),
    )


async def _oncall(desk: Desk, user: str, args: list[str]) -> str:
    if not args:
        raise _usage("oncall", "Name the team.")
    team, people_args = args[0].lower(), args[1:]
    people: list[str] = []
    for arg in people_args:
        match = _PERSON.fullmatch(arg)
        if match:
            people.append(match.group(1) or match.group(2))
        elif _RAW_ID.fullmatch(arg):
            people.append(arg)
        else:
            # A typed `@alice` that Slack did not turn into a mention is no one it knows.
            raise _usage(
                "oncall",
                f"`{escape(arg)}` is not a person or user group: pick them from the @ list so"
                " Slack sends the mention, or give their id (U... or S...).",
            )
    return await desk.set_oncall(team, people, user=user)
