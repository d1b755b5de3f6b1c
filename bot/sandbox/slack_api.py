"""A strict local stand-in of the Slack Web API and of Socket Mode, for tests and the sandbox.

It serves `/api/<method>` on 127.0.0.1 in Slack's wire format, so the real
`slack_sdk.web.async_client.AsyncWebClient` (and Bolt on top of it) talks to it unchanged. It is
strict where Slack is: required arguments come from Slack's own method reference (packaged in
`reference/methods/`), channels, users, messages and triggers must exist, Block Kit limits are
enforced, and chat.postMessage is rate limited per channel with a real 429 and Retry-After.
Every call is recorded with its payload and answer, failures included.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import itertools
import json
import logging
import math
import re
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType, TracebackType
from typing import Any, Self
from urllib.parse import urlencode

from aiohttp import WSCloseCode, WSMsgType, web

from bot.sandbox import block_kit

logger = logging.getLogger(__name__)

ENVELOPE_KINDS = ("events_api", "slash_commands", "interactive")
MAX_TEXT_CHARS = 40_000
RECOMMENDED_TEXT_CHARS = 4_000
MAX_MARKDOWN_TEXT_CHARS = 12_000
MAX_VIEW_BYTES = 250_000
MESSAGE_METHODS = ("chat.postMessage", "chat.update", "chat.postEphemeral")
# Which Slack error a missing required argument produces, in order of preference; the first
# one the method's reference lists wins, else Slack's generic invalid_arguments.
MISSING_ARGUMENT_ERRORS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "channel": ("channel_not_found",),
        "user": ("user_not_found", "user_not_in_channel"),
        "usergroup": ("no_such_subteam",),
        "ts": ("message_not_found", "thread_not_found"),
        "message_ts": ("message_not_found",),
        "timestamp": ("no_item_specified", "message_not_found"),
        "name": ("invalid_name",),
    }
)
TS_PATTERN = re.compile(r"^\d{10}\.\d{6}$")
TRIGGER_PATTERN = re.compile(r"^\d+\.\d+\.[0-9a-f]+$")
EMOJI_PATTERN = re.compile(r"^[a-z0-9_+'-]+(::skin-tone-[2-6])?$")


@dataclass(frozen=True)
class RecordedCall:
    """One Web API call as the stand-in received and answered it (the token is left out)."""

    method: str
    args: dict[str, Any]
    response: dict[str, Any]
    http_status: int
    at: float
    # chat.* posting without a top-level text: Slack accepts it, the README forbids it.
    missing_text: bool = False
    # Things Slack accepts silently but that are almost surely bugs (e.g. "orphan_thread_ts").
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether Slack would have answered ok: true."""
        return bool(self.response.get("ok"))

    @property
    def error(self) -> str | None:
        """Slack's error code, None on success."""
        error = self.response.get("error")
        return error if isinstance(error, str) else None


@dataclass
class _Late:
    """Calls of a method whose answer is held back until the client has given up."""

    times: int
    # False: the call is not carried out either (lost on the way); True: Slack did it.
    carried_out: bool
    when: Callable[[dict[str, Any]], bool] | None


class _SlackError(Exception):
    """Answer the call with ok: false and this error (and HTTP status, headers, extra fields)."""

    def __init__(
        self,
        error: str,
        *,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(error)
        self.error = error
        self.status = status
        self.headers = dict(headers or {})
        self.extra = extra


def _missing_field(name: str) -> dict[str, Any]:
    return {"response_metadata": {"messages": [f"[ERROR] missing required field: {name}"]}}


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _flag(value: Any) -> bool:
    """A Slack boolean argument: JSON true, or "true" / "1" from a query string or form."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true")
    return bool(value)


def _int_arg(value: Any, default: int, *, low: int, high: int) -> int:
    try:
        number = int(value) if value is not None else default
    except (TypeError, ValueError):
        number = default
    return max(low, min(high, number))


def _ts_micros(ts: str) -> int:
    seconds, _, fraction = ts.partition(".")
    return int(seconds) * 1_000_000 + int(fraction.ljust(6, "0")[:6] or "0")


def _ts_bound(value: Any, error: str) -> int | None:
    """A history bound (oldest / latest) in microseconds, None when absent."""
    if _blank(value):
        return None
    try:
        return _ts_micros(str(value))
    except ValueError:
        raise _SlackError(error) from None


def _format_ts(micros: int) -> str:
    return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


def _load_reference() -> dict[str, dict[str, Any]]:
    """Slack's method reference, from the copy packaged with the bot (CI has no /work/shared)."""
    folder = resources.files("bot.sandbox").joinpath("reference", "methods")
    return {
        entry.name.removesuffix(".json"): json.loads(entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".json")
    }


class SlackStandIn:
    """Serves Slack's Web API and Socket Mode on 127.0.0.1 from an in-memory workspace."""

    def __init__(
        self,
        *,
        bot_token: str = "xoxb-sandbox",  # noqa: S107 - a stand-in's fixed fake token
        app_token: str | None = None,
        team_id: str = "T0SANDBOX",
        team_name: str = "Sandbox",
        team_domain: str = "sandbox",
        bot_user_id: str = "U0BOT",
        bot_id: str = "B0BOT",
        bot_name: str = "triage",
        app_id: str = "A0SANDBOX",
        channels: Mapping[str, str] | None = None,
        users: Mapping[str, str] | None = None,
        usergroups: Mapping[str, Sequence[str]] | None = None,
        post_rate_per_second: float = 1.0,
        post_burst: int = 4,
        trigger_ttl: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if post_rate_per_second <= 0 or post_burst < 1:
            raise ValueError("post_rate_per_second must be > 0 and post_burst >= 1")
        self.bot_token = bot_token
        self.app_token = app_token
        self.team_id = team_id
        self.team_name = team_name
        self.team_domain = team_domain
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.bot_name = bot_name
        self.app_id = app_id
        self.post_rate_per_second = post_rate_per_second
        self.post_burst = post_burst
        self.trigger_ttl = trigger_ttl
        self._clock = clock
        self._wall_clock = wall_clock
        self.calls: list[RecordedCall] = []
        self.envelopes: list[dict[str, Any]] = []

        self._channels: dict[str, str] = {}
        self._users: dict[str, str] = {}
        self._usergroups: dict[str, list[str]] = {}
        self._dm_of_user: dict[str, str] = {}
        self._user_of_dm: dict[str, str] = {}
        for channel_id, name in (channels or {}).items():
            self.add_channel(channel_id, name)
        for user_id, name in (users or {}).items():
            self.add_user(user_id, name)
        for group_id, members in (usergroups or {}).items():
            self.add_usergroup(group_id, members)

        self._messages: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
        self._by_ts: dict[tuple[str, str], dict[str, Any]] = {}
        self._replies: defaultdict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        self._ephemerals: list[dict[str, Any]] = []
        self._views: list[dict[str, Any]] = []
        self._responses: list[dict[str, Any]] = []
        self._last_ts = 0
        self._ids = itertools.count(1)
        self._triggers: dict[str, float] = {}
        self._used_triggers: set[str] = set()
        self._buckets: dict[str, tuple[float, float]] = {}
        self._forced: defaultdict[str, deque[_SlackError]] = defaultdict(deque)
        # Channels that refuse every post, with the error they answer (fail_posts_in).
        self._refusing: dict[str, str] = {}
        self._listeners: list[Callable[[RecordedCall], None]] = []
        self._late: defaultdict[str, list[_Late]] = defaultdict(list)
        # Held answers wait for this (set when the stand-in closes).
        self._release = asyncio.Event()
        # (method, args) of every call whose answer was held back, in order.
        self.held: list[tuple[str, dict[str, Any]]] = []
        # Warnings of the call being answered (answering never awaits, so one list suffices).
        self._warnings: list[str] = []

        self._reference = _load_reference()
        self._handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.getPermalink": self._chat_get_permalink,
            "views.open": self._views_open,
            "conversations.history": self._conversations_history,
            "conversations.replies": self._conversations_replies,
            "users.info": self._users_info,
            "usergroups.users.list": self._usergroups_users_list,
            "reactions.add": self._reactions_add,
            "apps.connections.open": self._apps_connections_open,
        }
        unreferenced = sorted(set(self._handlers) - set(self._reference))
        if unreferenced:
            raise RuntimeError(f"packaged Slack method reference lacks {unreferenced}")

        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._sockets: list[web.WebSocketResponse] = []
        self._socket_tickets: set[str] = set()
        self._connections_made = 0
        self._socket_changed = asyncio.Event()
        self._acks: dict[str, asyncio.Future[dict[str, Any]]] = {}

    # -- lifecycle ---------------------------------------------------------------------------

    def response_url(self, user: str) -> str:
        """A fresh response_url (as on a slash command or a button press) answering user."""
        return f"http://127.0.0.1:{self._started_port()}/response/{user}/{next(self._ids)}"

    @property
    def responses(self) -> list[dict[str, Any]]:
        """What the app posted to response_urls, in order, each with the "user" it answered."""
        return copy.deepcopy(self._responses)

    async def _serve_response_url(self, request: web.Request) -> web.Response:
        # Bolt's respond() posts JSON here; recorded like a Web API call so a transcript sees it.
        body = await request.json()
        user = request.match_info["user"]
        self._responses.append({**body, "user": user})
        call = RecordedCall(
            method="response_url",
            args={**body, "user": user},
            response={"ok": True},
            http_status=200,
            at=self._clock(),
        )
        self.calls.append(call)
        for listener in self._listeners:
            try:
                listener(call)
            except Exception:
                logger.exception("on_call listener failed for response_url")
        return web.Response(text="ok")

    @property
    def base_url(self) -> str:
        """The base_url to give AsyncWebClient / AsyncApp."""
        return f"http://127.0.0.1:{self._started_port()}/api/"

    @property
    def socket_url(self) -> str:
        """The Socket Mode endpoint (apps.connections.open adds a one-time ticket to it)."""
        return f"ws://127.0.0.1:{self._started_port()}/socket"

    def _started_port(self) -> int:
        if self._port is None:
            raise RuntimeError("the Slack stand-in is not started")
        return self._port

    async def start(self) -> None:
        """Listen on a free port of 127.0.0.1."""
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._serve_api)
        app.router.add_get("/socket", self._serve_socket)
        app.router.add_post("/response/{user}/{number}", self._serve_response_url)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = self._runner.addresses[0][1]

    async def close(self) -> None:
        """Close Socket Mode connections, fail pending acks, stop listening."""
        self._release.set()
        for ws in list(self._sockets):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"stand-in closing")
        for future in self._acks.values():
            future.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    # -- the workspace -----------------------------------------------------------------------

    def add_channel(self, channel_id: str, name: str) -> None:
        """Create a public channel the bot is in."""
        self._channels[channel_id] = name.removeprefix("#")

    def add_user(self, user_id: str, display_name: str) -> None:
        """Create a human member of the workspace."""
        self._users[user_id] = display_name

    def add_usergroup(self, group_id: str, members: Sequence[str]) -> None:
        """Create a user group ("S...") with these member user ids."""
        self._usergroups[group_id] = list(members)

    def new_trigger_id(self) -> str:
        """Issue a trigger_id, as Slack does with a slash command or an interaction."""
        trigger = f"{next(self._ids)}.{int(self._wall_clock())}.{uuid.uuid4().hex[:24]}"
        self._triggers[trigger] = self._clock()
        return trigger

    def add_message(
        self,
        channel: str,
        *,
        user: str,
        text: str,
        thread_ts: str | None = None,
        subtype: str | None = None,
        files: Sequence[Mapping[str, Any]] | None = None,
        ts: str | None = None,
        fields: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Store a message as if a human posted it; returns it (with its ts) for the event.

        fields are set on the message as they are (blocks, attachments, a malformed text).
        """
        channel = self._known_channel(channel)
        if user not in self._users:
            raise ValueError(f"unknown user {user!r}: add_user() it first")
        if ts is not None:
            if not TS_PATTERN.match(ts) or (channel, ts) in self._by_ts:
                raise ValueError(f"ts {ts!r} is malformed or already used in {channel}")
            self._last_ts = max(self._last_ts, _ts_micros(ts))
        message: dict[str, Any] = {
            "type": "message",
            "user": user,
            "text": text,
            "ts": ts or self._next_ts(),
            "team": self.team_id,
            "client_msg_id": str(uuid.uuid4()),
        }
        if subtype is not None:
            message["subtype"] = subtype
        if files is not None:
            message["files"] = [dict(file) for file in files]
        if fields is not None:
            message.update(fields)
        if thread_ts is not None:
            parent = self._by_ts.get((channel, thread_ts))
            if parent is None or parent.get("thread_ts", parent["ts"]) != parent["ts"]:
                raise ValueError(f"no top-level message {thread_ts} in {channel}")
            message["thread_ts"] = thread_ts
        self._store(channel, message)
        return copy.deepcopy(message)

    def edit_message(self, channel: str, ts: str, *, text: str) -> dict[str, Any]:
        """Change a person's message as if they edited it; returns it for the event."""
        message = self._by_ts.get((self._known_channel(channel), ts))
        if message is None:
            raise ValueError(f"no message {ts} in {channel}")
        message["text"] = text
        message["edited"] = {"user": message.get("user"), "ts": self._next_ts()}
        return copy.deepcopy(message)

    def _known_channel(self, channel: str) -> str:
        if channel in self._channels or channel in self._user_of_dm:
            return channel
        if channel in self._users:
            return self._dm_with(channel)
        raise ValueError(f"unknown channel {channel!r}: add_channel() it first")

    def _dm_with(self, user_id: str) -> str:
        channel = self._dm_of_user.get(user_id)
        if channel is None:
            channel = f"D{user_id[1:]}"
            self._dm_of_user[user_id] = channel
            self._user_of_dm[channel] = user_id
        return channel

    def _next_ts(self) -> str:
        # Slack's ts: epoch seconds with 6 decimals, unique and increasing within the workspace.
        self._last_ts = max(int(self._wall_clock() * 1_000_000), self._last_ts + 1)
        return _format_ts(self._last_ts)

    def _store(self, channel: str, message: dict[str, Any]) -> None:
        self._messages[channel].append(message)
        self._by_ts[(channel, message["ts"])] = message
        parent_ts = message.get("thread_ts")
        parent = self._by_ts.get((channel, parent_ts)) if parent_ts else None
        if parent is None or parent is message:
            return
        replies = self._replies[(channel, parent["ts"])]
        replies.append(message)
        message["parent_user_id"] = parent.get("user")
        # Slack marks the parent as a thread root and keeps its reply summary current.
        reply_users = list(dict.fromkeys(reply.get("user") for reply in replies))
        parent.update(
            thread_ts=parent["ts"],
            reply_count=len(replies),
            reply_users=reply_users,
            reply_users_count=len(reply_users),
            latest_reply=message["ts"],
        )

    # -- what happened -----------------------------------------------------------------------

    def on_call(self, callback: Callable[[RecordedCall], None]) -> None:
        """Call callback(call) after every Web API call, failures included."""
        self._listeners.append(callback)

    def calls_to(self, method: str) -> list[RecordedCall]:
        """The recorded calls of one method, in order."""
        return [call for call in self.calls if call.method == method]

    def messages(self, channel: str) -> list[dict[str, Any]]:
        """Every message of a channel (thread replies included), in the order posted."""
        return copy.deepcopy(self._messages.get(channel, []))

    def thread(self, channel: str, ts: str) -> list[dict[str, Any]]:
        """A thread's parent then its replies, oldest first; empty if there is no such message."""
        message = self._by_ts.get((channel, ts))
        if message is None:
            return []
        parent = self._by_ts.get((channel, message.get("thread_ts", ts)), message)
        return copy.deepcopy([parent, *self._replies.get((channel, parent["ts"]), [])])

    @property
    def ephemerals(self) -> list[dict[str, Any]]:
        """Ephemeral messages posted, in order (they never appear in history)."""
        return copy.deepcopy(self._ephemerals)

    @property
    def views(self) -> list[dict[str, Any]]:
        """Modals opened, in order, as views.open returned them."""
        return copy.deepcopy(self._views)

    # -- error injection ---------------------------------------------------------------------

    def rate_limit_next(self, method: str, retry_after: int = 1) -> None:
        """Answer the next call of method with HTTP 429 and this Retry-After."""
        self._forced[method].append(
            _SlackError("ratelimited", status=429, headers={"Retry-After": str(retry_after)})
        )

    def fail_next(self, method: str, error: str = "internal_error", status: int = 200) -> None:
        """Answer the next call of method with ok: false and this error (HTTP 200 or 5xx)."""
        self._forced[method].append(_SlackError(error, status=status))

    def answer_late(
        self,
        method: str,
        *,
        times: int = 1,
        when: Callable[[dict[str, Any]], bool] | None = None,
    ) -> None:
        """Carry out the next calls of method (those when(args) accepts) but answer none of them.

        Slack took the message; its answer comes after the client's timeout (it is held until
        the stand-in closes), so the client raises a timeout for a call that succeeded.
        """
        self._late[method].append(_Late(times=times, carried_out=True, when=when))

    def never_answer(
        self,
        method: str,
        *,
        times: int = 1,
        when: Callable[[dict[str, Any]], bool] | None = None,
    ) -> None:
        """Hold the next calls of method (those when(args) accepts) without carrying them out."""
        self._late[method].append(_Late(times=times, carried_out=False, when=when))

    def _held(self, method: str, args: dict[str, Any]) -> _Late | None:
        for late in self._late.get(method, []):
            if late.times > 0 and (late.when is None or late.when(args)):
                late.times -= 1
                self.held.append((method, copy.deepcopy(args)))
                return late
        return None

    def fail_posts_in(self, channel: str, error: str = "channel_not_found") -> None:
        """Refuse every chat.postMessage in channel with this error until told otherwise.

        As Slack does for a channel that was deleted ("channel_not_found") or that the bot was
        never invited to ("not_in_channel"): no retry helps.
        """
        self._refusing[channel] = error

    # -- HTTP --------------------------------------------------------------------------------

    async def _serve_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        reference = self._reference.get(method, {})
        args, token, bad_body = await self._read_args(
            request, json_accepted=bool(reference.get("json_input_supported"))
        )
        late = None if bad_body else self._held(method, args)
        if late is not None and not late.carried_out:
            await self._release.wait()
            return web.json_response({"ok": False, "error": "fatal_error"}, status=503)
        # From here on nothing awaits, so concurrent calls see and change state one at a time.
        warnings: list[str] = []
        try:
            if bad_body:
                raise _SlackError(bad_body)
            body = {"ok": True, **self._dispatch(method, args, token, warnings)}
            status, headers = 200, {}
        except _SlackError as failure:
            body = {"ok": False, "error": failure.error, **failure.extra}
            status, headers = failure.status, failure.headers
        missing_text = method in MESSAGE_METHODS and _blank(
            args.get("text") or args.get("markdown_text")
        )
        if missing_text:
            warnings.append("missing_text")
        elif method in MESSAGE_METHODS and len(str(args.get("text", ""))) > RECOMMENDED_TEXT_CHARS:
            # Slack takes up to 40,000 but asks for at most 4,000 (notifications, screen readers).
            warnings.append("text_over_4000_chars")
        call = RecordedCall(
            method=method,
            args=args,
            response=copy.deepcopy(body),
            http_status=status,
            at=self._clock(),
            missing_text=missing_text,
            warnings=tuple(warnings),
        )
        self.calls.append(call)
        for listener in self._listeners:
            try:
                listener(call)
            except Exception:
                # A broken transcript printer must not turn a good answer into a 500.
                logger.exception("on_call listener failed for %s", method)
        if late is not None:
            await self._release.wait()  # the client timed out long before
        return web.json_response(body, status=status, headers=headers)

    async def _read_args(
        self, request: web.Request, *, json_accepted: bool
    ) -> tuple[dict[str, Any], str | None, str | None]:
        """The call's arguments (query, then form or JSON body), its token, and a body error."""
        args: dict[str, Any] = dict(request.query)
        if request.method == "POST" and request.can_read_body:
            if request.content_type == "application/json":
                try:
                    body = json.loads(await request.text())
                except ValueError:
                    return args, None, "invalid_json"
                if not isinstance(body, dict):
                    return args, None, "invalid_json"
                # Slack reads no token from a JSON body, and JSON only for methods that say so.
                body.pop("token", None)
                if json_accepted:
                    args.update(body)
            else:
                form = await request.post()
                args.update({key: value for key, value in form.items() if isinstance(value, str)})
        body_token = args.pop("token", None)
        header = request.headers.get("Authorization", "")
        token = header[len("Bearer ") :].strip() if header.startswith("Bearer ") else body_token
        return args, token or None, None

    def _dispatch(
        self, method: str, args: dict[str, Any], token: str | None, warnings: list[str]
    ) -> dict[str, Any]:
        handler = self._handlers.get(method)
        if handler is None:
            raise _SlackError("unknown_method", req_method=method)
        self._authenticate(method, token)
        forced = self._forced.get(method)
        if forced:
            raise forced.popleft()
        reference = self._reference[method]
        errors = reference.get("errors", {})
        for name in reference["args"].get("required", []):
            if name != "token" and _blank(args.get(name)):
                code = next(
                    (e for e in MISSING_ARGUMENT_ERRORS.get(name, ()) if e in errors),
                    "invalid_arguments",
                )
                raise _SlackError(code, **_missing_field(name))
        self._warnings = warnings
        return handler(args)

    def _authenticate(self, method: str, token: str | None) -> None:
        if not token:
            raise _SlackError("not_authed")
        # apps.connections.open takes only the app-level token, every other method the bot's.
        wanted = self.app_token if method == "apps.connections.open" else self.bot_token
        if token == wanted:
            return
        if token in (self.bot_token, self.app_token):
            raise _SlackError("not_allowed_token_type")
        raise _SlackError("invalid_auth")

    # -- argument helpers --------------------------------------------------------------------

    def _channel(self, value: Any, *, by_name: bool = False, user_dm: bool = False) -> str:
        """A channel id the workspace knows; names and user ids only where the method allows."""
        key = str(value)
        if key in self._channels or key in self._user_of_dm:
            return key
        if user_dm and key in self._users:
            return self._dm_with(key)
        if by_name:
            name = key.removeprefix("#")
            for channel_id, channel_name in self._channels.items():
                if channel_name == name:
                    return channel_id
        raise _SlackError("channel_not_found")

    @staticmethod
    def _json_arg(args: dict[str, Any], name: str, error: str) -> Any:
        """A JSON-valued argument; a form or query string carries it as a JSON string."""
        value = args.get(name)
        if isinstance(value, str):
            if not value.strip():
                return None
            try:
                value = json.loads(value)
            except ValueError:
                raise _SlackError(error) from None
            args[name] = value
        return value

    def _content(self, args: dict[str, Any], *, update: bool = False) -> dict[str, Any]:
        """The message fields a chat.* call sets, after Slack's checks on them."""
        text = args.get("text")
        text = None if text is None else str(text)
        markdown = args.get("markdown_text")
        blocks = self._json_arg(args, "blocks", "invalid_blocks_format")
        attachments = self._json_arg(args, "attachments", "invalid_attachments")
        metadata = self._json_arg(args, "metadata", "invalid_metadata_format")
        if markdown and (text or blocks):
            raise _SlackError("markdown_text_conflict")
        if not (text or blocks or attachments or markdown):
            raise _SlackError("no_text")
        if text and len(text) > MAX_TEXT_CHARS:
            raise _SlackError("msg_too_long")
        if isinstance(markdown, str) and len(markdown) > MAX_MARKDOWN_TEXT_CHARS:
            raise _SlackError("msg_too_long")
        fields: dict[str, Any] = {}
        if text is not None or not update:
            fields["text"] = text or ""
        if markdown:
            fields["text"] = str(markdown)
        if blocks is not None:
            if not isinstance(blocks, list):
                raise _SlackError("invalid_blocks_format")
            errors = block_kit.message_block_errors(blocks)
            if errors:
                raise _SlackError(
                    "invalid_blocks",
                    errors=errors,
                    response_metadata={"messages": [f"[ERROR] {e}" for e in errors]},
                )
            fields["blocks"] = blocks
        if attachments is not None:
            if not isinstance(attachments, list):
                raise _SlackError("invalid_attachments")
            if len(attachments) > 100:
                raise _SlackError("too_many_attachments")
            fields["attachments"] = attachments
        if metadata is not None:
            error = block_kit.metadata_error(metadata)
            if error:
                raise _SlackError(error)
            fields["metadata"] = metadata
        return fields

    def _take_post_token(self, channel: str) -> None:
        """Slack's ~1 message/s per channel with short bursts, as a token bucket."""
        if math.isinf(self.post_rate_per_second):
            return
        now = self._clock()
        tokens, last = self._buckets.get(channel, (float(self.post_burst), now))
        tokens = min(float(self.post_burst), tokens + (now - last) * self.post_rate_per_second)
        if tokens < 1.0:
            self._buckets[channel] = (tokens, now)
            wait = (1.0 - tokens) / self.post_rate_per_second
            retry_after = max(1, math.ceil(wait))
            raise _SlackError("ratelimited", status=429, headers={"Retry-After": str(retry_after)})
        self._buckets[channel] = (tokens - 1.0, now)

    def _render(self, message: dict[str, Any], *, with_metadata: bool) -> dict[str, Any]:
        rendered = copy.deepcopy(message)
        if not with_metadata:
            rendered.pop("metadata", None)
        return rendered

    # -- methods -----------------------------------------------------------------------------

    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": f"https://{self.team_domain}.slack.com/",
            "team": self.team_name,
            "user": self.bot_name,
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            # Slack's reference lists app_id in auth.test's answer; HTTP mode checks it.
            "app_id": self.app_id,
            "is_enterprise_install": False,
        }

    def _chat_post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args["channel"], by_name=True, user_dm=True)
        if channel in self._refusing:
            raise _SlackError(self._refusing[channel])
        self._take_post_token(channel)
        fields = self._content(args)
        message: dict[str, Any] = {
            "type": "message",
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "team": self.team_id,
            **fields,
        }
        thread_ts = args.get("thread_ts")
        if not _blank(thread_ts):
            thread_ts = str(thread_ts)
            if not TS_PATTERN.match(thread_ts):
                raise _SlackError(
                    "invalid_thread_ts",
                    response_metadata={
                        "messages": [f"[ERROR] {thread_ts} is not a valid thread_ts"]
                    },
                )
            parent = self._by_ts.get((channel, thread_ts))
            if parent is None or parent.get("thread_ts", parent["ts"]) != parent["ts"]:
                # Slack answers ok and the reply is seen nowhere: flag it instead of failing.
                self._warnings.append("orphan_thread_ts")
            message["thread_ts"] = thread_ts
            if _flag(args.get("reply_broadcast")):
                message["subtype"] = "thread_broadcast"
        for flag in ("unfurl_links", "unfurl_media"):
            if flag in args:
                message[flag] = _flag(args[flag])
        message["ts"] = self._next_ts()
        self._store(channel, message)
        return {"channel": channel, "ts": message["ts"], "message": copy.deepcopy(message)}

    def _chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args["channel"])
        message = self._by_ts.get((channel, str(args["ts"])))
        if message is None:
            raise _SlackError("message_not_found")
        if message.get("user") != self.bot_user_id or message.get("bot_id") != self.bot_id:
            raise _SlackError("cant_update_message")
        message.update(self._content(args, update=True))
        message["edited"] = {"user": self.bot_user_id, "ts": self._next_ts()}
        return {
            "channel": channel,
            "ts": message["ts"],
            "text": message.get("text", ""),
            "message": copy.deepcopy(message),
        }

    def _chat_post_ephemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args["channel"], by_name=True)
        user = str(args["user"])
        if user not in self._users:
            raise _SlackError("user_not_in_channel")
        ephemeral = {"channel": channel, "user": user, **self._content(args)}
        if not _blank(args.get("thread_ts")):
            ephemeral["thread_ts"] = str(args["thread_ts"])
        ephemeral["message_ts"] = self._next_ts()
        self._ephemerals.append(ephemeral)
        return {"message_ts": ephemeral["message_ts"]}

    def _chat_get_permalink(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args["channel"])
        message = self._by_ts.get((channel, str(args["message_ts"])))
        if message is None:
            raise _SlackError("message_not_found")
        ts = message["ts"]
        link = f"https://{self.team_domain}.slack.com/archives/{channel}/p{ts.replace('.', '')}"
        thread_ts = message.get("thread_ts")
        if thread_ts and thread_ts != ts:
            link += "?" + urlencode({"thread_ts": thread_ts, "cid": channel})
        return {"channel": channel, "permalink": link}

    def _views_open(self, args: dict[str, Any]) -> dict[str, Any]:
        trigger = args.get("trigger_id") or args.get("interactivity_pointer")
        if _blank(trigger):
            raise _SlackError("invalid_arguments", **_missing_field("trigger_id"))
        trigger = str(trigger)
        if not TRIGGER_PATTERN.match(trigger):
            raise _SlackError("invalid_trigger_id")
        if trigger in self._used_triggers:
            raise _SlackError("exchanged_trigger_id")
        issued = self._triggers.get(trigger)
        # Slack cannot tell a trigger it never issued from one it forgot: both are expired.
        if issued is None or self._clock() - issued > self.trigger_ttl:
            raise _SlackError("expired_trigger_id")
        view = self._json_arg(args, "view", "invalid_arguments")
        errors = block_kit.view_errors(view)
        if errors:
            raise _SlackError(
                "invalid_arguments",
                response_metadata={"messages": [f"[ERROR] {e}" for e in errors]},
            )
        if len(json.dumps(view)) > MAX_VIEW_BYTES:
            raise _SlackError("view_too_large")
        self._used_triggers.add(trigger)
        view_id = f"V{next(self._ids):08d}"
        opened = {
            "id": view_id,
            "team_id": self.team_id,
            "type": view["type"],
            "title": view["title"],
            "submit": view.get("submit"),
            "close": view.get("close"),
            "blocks": view["blocks"],
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "external_id": view.get("external_id", ""),
            "state": {"values": {}},
            "hash": f"{int(self._wall_clock())}.{uuid.uuid4().hex[:8]}",
            "clear_on_close": _flag(view.get("clear_on_close")),
            "notify_on_close": _flag(view.get("notify_on_close")),
            "previous_view_id": None,
            "root_view_id": view_id,
            "app_id": self.app_id,
            "app_installed_team_id": self.team_id,
            "bot_id": self.bot_id,
        }
        self._views.append(opened)
        return {"view": copy.deepcopy(opened)}

    def _page(
        self,
        messages: list[dict[str, Any]],
        args: dict[str, Any],
        *,
        default_limit: int,
        max_limit: int,
    ) -> dict[str, Any]:
        """One page of messages after cursor, with Slack's has_more / next_cursor."""
        cursor = args.get("cursor")
        if not _blank(cursor):
            try:
                start = int(base64.urlsafe_b64decode(str(cursor)).decode().removeprefix("next:"))
            except ValueError:
                raise _SlackError("invalid_cursor") from None
            messages = messages[start:]
        else:
            start = 0
        limit = _int_arg(args.get("limit"), default_limit, low=1, high=max_limit)
        with_metadata = _flag(args.get("include_all_metadata"))
        page = messages[:limit]
        answer: dict[str, Any] = {
            "messages": [self._render(m, with_metadata=with_metadata) for m in page],
            "has_more": len(messages) > limit,
        }
        if answer["has_more"]:
            token = base64.urlsafe_b64encode(f"next:{start + limit}".encode()).decode()
            answer["response_metadata"] = {"next_cursor": token}
        return answer

    def _conversations_history(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args["channel"])
        oldest = _ts_bound(args.get("oldest"), "invalid_ts_oldest")
        latest = _ts_bound(args.get("latest"), "invalid_ts_latest")
        inclusive = _flag(args.get("inclusive"))
        shown = []
        for message in reversed(self._messages.get(channel, [])):
            # History holds top-level messages (and broadcast replies), never thread replies.
            if message.get("thread_ts", message["ts"]) != message["ts"] and (
                message.get("subtype") != "thread_broadcast"
            ):
                continue
            at = _ts_micros(message["ts"])
            if oldest is not None and (at < oldest or (at == oldest and not inclusive)):
                continue
            if latest is not None and (at > latest or (at == latest and not inclusive)):
                continue
            shown.append(message)
        return {**self._page(shown, args, default_limit=100, max_limit=999), "pin_count": 0}

    def _conversations_replies(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args["channel"])
        message = self._by_ts.get((channel, str(args["ts"])))
        if message is None:
            raise _SlackError("thread_not_found")
        root = self._by_ts.get((channel, message.get("thread_ts", message["ts"])), message)
        thread = [root, *self._replies.get((channel, root["ts"]), [])]
        return self._page(thread, args, default_limit=1000, max_limit=1000)

    def _users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        user_id = str(args["user"])
        is_bot = user_id == self.bot_user_id
        if not is_bot and user_id not in self._users:
            raise _SlackError("user_not_found")
        display = self.bot_name if is_bot else self._users[user_id]
        profile: dict[str, Any] = {
            "display_name": display,
            "display_name_normalized": display,
            "real_name": display,
            "real_name_normalized": display,
        }
        if is_bot:
            profile["bot_id"] = self.bot_id
        return {
            "user": {
                "id": user_id,
                "team_id": self.team_id,
                "name": display.lower().replace(" ", "."),
                "real_name": display,
                "deleted": False,
                "is_bot": is_bot,
                "is_app_user": False,
                "profile": profile,
            }
        }

    def _usergroups_users_list(self, args: dict[str, Any]) -> dict[str, Any]:
        members = self._usergroups.get(str(args["usergroup"]))
        if members is None:
            raise _SlackError("no_such_subteam")
        return {"users": list(members)}

    def _reactions_add(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(args["channel"])
        name = str(args["name"])
        if not EMOJI_PATTERN.match(name):
            raise _SlackError("invalid_name")
        message = self._by_ts.get((channel, str(args["timestamp"])))
        if message is None:
            raise _SlackError("message_not_found")
        reactions: list[dict[str, Any]] = message.setdefault("reactions", [])
        reaction = next((r for r in reactions if r["name"] == name), None)
        if reaction is None:
            reaction = {"name": name, "users": [], "count": 0}
            reactions.append(reaction)
        if self.bot_user_id in reaction["users"]:
            raise _SlackError("already_reacted")
        reaction["users"].append(self.bot_user_id)
        reaction["count"] += 1
        return {}

    def _apps_connections_open(self, args: dict[str, Any]) -> dict[str, Any]:
        ticket = uuid.uuid4().hex
        self._socket_tickets.add(ticket)
        return {"url": f"{self.socket_url}?{urlencode({'ticket': ticket, 'app_id': self.app_id})}"}

    # -- Socket Mode -------------------------------------------------------------------------

    async def _serve_socket(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        if ticket not in self._socket_tickets:
            # Slack's socket URLs are single-use: reconnecting needs a new apps.connections.open.
            return web.Response(status=401, text="invalid or used ticket")
        self._socket_tickets.discard(ticket)
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets.append(ws)
        self._connections_made += 1
        self._socket_changed.set()
        try:
            await ws.send_json(
                {
                    "type": "hello",
                    "num_connections": len(self._sockets),
                    "debug_info": {"host": "sandbox", "approximate_connection_time": 18060},
                    "connection_info": {"app_id": self.app_id},
                }
            )
            async for frame in ws:
                if frame.type == WSMsgType.TEXT:
                    self._on_socket_text(frame.data)
        finally:
            self._sockets.remove(ws)
            self._socket_changed.set()
        return ws

    def _on_socket_text(self, data: str) -> None:
        try:
            ack = json.loads(data)
        except ValueError:
            logger.warning("Socket Mode client sent non-JSON text: %.200s", data)
            return
        envelope_id = ack.get("envelope_id") if isinstance(ack, dict) else None
        future = self._acks.get(str(envelope_id))
        if future is None:
            logger.warning("ack for an unknown or already acked envelope: %.200s", data)
        elif not future.done():
            future.set_result(ack)

    async def _open_socket(self, wait_seconds: float) -> web.WebSocketResponse:
        async with asyncio.timeout(wait_seconds):
            while True:
                open_sockets = [ws for ws in self._sockets if not ws.closed]
                if open_sockets:
                    # The newest connection, as a client replacing its session expects.
                    return open_sockets[-1]
                self._socket_changed.clear()
                await self._socket_changed.wait()

    async def send_envelope(
        self,
        kind: str,
        payload: Mapping[str, Any],
        *,
        retry_attempt: int = 0,
        retry_reason: str = "",
        ack_timeout: float = 3.0,
        connect_timeout: float = 10.0,
    ) -> dict[str, Any]:
        """Deliver one Socket Mode envelope and return the client's ack (TimeoutError if none).

        kind is "events_api", "slash_commands" or "interactive"; Slack waits 3 s for the ack.
        """
        if kind not in ENVELOPE_KINDS:
            raise ValueError(f"kind must be one of {ENVELOPE_KINDS}, not {kind!r}")
        ws = await self._open_socket(connect_timeout)
        envelope: dict[str, Any] = {
            "envelope_id": str(uuid.uuid4()),
            "type": kind,
            "payload": dict(payload),
            "accepts_response_payload": kind != "events_api",
        }
        if kind == "events_api":
            # Only event deliveries are retried by Slack, so only they carry the retry fields.
            envelope.update(retry_attempt=retry_attempt, retry_reason=retry_reason)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._acks[envelope["envelope_id"]] = future
        self.envelopes.append(envelope)
        try:
            await ws.send_json(envelope)
            async with asyncio.timeout(ack_timeout):
                return await future
        finally:
            del self._acks[envelope["envelope_id"]]

    async def request_reconnect(
        self, reason: str = "refresh_requested", *, reconnect_timeout: float = 10.0
    ) -> None:
        """Send Slack's disconnect message (as before a routine refresh); wait for a new socket."""
        connections_before = self._connections_made
        for ws in list(self._sockets):
            with contextlib.suppress(ConnectionError):
                await ws.send_json({"type": "disconnect", "reason": reason})
        async with asyncio.timeout(reconnect_timeout):
            while self._connections_made == connections_before:
                self._socket_changed.clear()
                await self._socket_changed.wait()
