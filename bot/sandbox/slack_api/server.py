"""The stand-in's HTTP server: `/api/<method>` read, authenticated, checked and dispatched.

`SlackStandIn` is what tests, the sandbox and the benchmarks hold: it puts the parts beside it
together (the workspace, the method families, faults, the call log, Socket Mode) and serves
them on 127.0.0.1; its methods set the workspace up, inject faults and show what happened.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

from aiohttp import web

from bot.sandbox.slack_api.calls import CallLog, RecordedCall
from bot.sandbox.slack_api.chat import ChatMethods
from bot.sandbox.slack_api.conversations import ConversationMethods
from bot.sandbox.slack_api.directory import DirectoryMethods
from bot.sandbox.slack_api.faults import Faults, PostRateLimit
from bot.sandbox.slack_api.socket_mode import SocketMode
from bot.sandbox.slack_api.views import ViewMethods
from bot.sandbox.slack_api.wire import (
    MESSAGE_METHODS,
    MISSING_ARGUMENT_ERRORS,
    RECOMMENDED_TEXT_CHARS,
    Handler,
    SlackError,
    blank,
    load_reference,
    missing_field,
)
from bot.sandbox.slack_api.workspace import WorkspaceState


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
        scopes: Collection[str] | None = None,
    ) -> None:
        """scopes: the bot token's scopes (a manifest's); None grants every scope."""
        self._scopes = None if scopes is None else frozenset(scopes)
        self._rate_limit = PostRateLimit(
            rate_per_second=post_rate_per_second, burst=post_burst, clock=clock
        )
        self.bot_token = bot_token
        self.app_token = app_token
        self._clock = clock
        self._workspace = WorkspaceState(
            team_id=team_id,
            team_name=team_name,
            team_domain=team_domain,
            bot_user_id=bot_user_id,
            bot_id=bot_id,
            bot_name=bot_name,
            app_id=app_id,
            trigger_ttl=trigger_ttl,
            clock=clock,
            wall_clock=wall_clock,
        )
        for channel_id, name in (channels or {}).items():
            self.add_channel(channel_id, name)
        for user_id, name in (users or {}).items():
            self.add_user(user_id, name)
        for group_id, members in (usergroups or {}).items():
            self.add_usergroup(group_id, members)
        self._faults = Faults()
        self._log = CallLog()
        self._socket = SocketMode(app_id=app_id, socket_url=lambda: self.socket_url)
        # The same lists the parts keep: every call answered, every answer held, every envelope.
        self.calls: list[RecordedCall] = self._log.calls
        self.held: list[tuple[str, dict[str, Any]]] = self._faults.held
        self.envelopes: list[dict[str, Any]] = self._socket.envelopes
        self._responses: list[dict[str, Any]] = []
        # Held answers wait for this (set when the stand-in closes).
        self._release = asyncio.Event()

        self._reference = load_reference()
        chat = ChatMethods(self._workspace, rate_limit=self._rate_limit, faults=self._faults)
        self._handlers: dict[str, Handler] = {
            **DirectoryMethods(self._workspace).handlers(),
            **chat.handlers(),
            **ViewMethods(self._workspace).handlers(),
            **ConversationMethods(self._workspace).handlers(),
            **self._socket.handlers(),
        }
        unreferenced = sorted(set(self._handlers) - set(self._reference))
        if unreferenced:
            raise RuntimeError(f"packaged Slack method reference lacks {unreferenced}")

        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    # -- who the bot is, and Slack's limits (a test may change the limits) ---------------------

    @property
    def team_id(self) -> str:
        """The workspace's id (T...)."""
        return self._workspace.team_id

    @property
    def team_name(self) -> str:
        """The workspace's name."""
        return self._workspace.team_name

    @property
    def team_domain(self) -> str:
        """The workspace's domain: https://<domain>.slack.com."""
        return self._workspace.team_domain

    @property
    def bot_user_id(self) -> str:
        """The bot's user id (U...)."""
        return self._workspace.bot_user_id

    @property
    def bot_id(self) -> str:
        """The bot's bot id (B...)."""
        return self._workspace.bot_id

    @property
    def bot_name(self) -> str:
        """The bot user's name."""
        return self._workspace.bot_name

    @property
    def app_id(self) -> str:
        """The app's id (A...)."""
        return self._workspace.app_id

    @property
    def post_rate_per_second(self) -> float:
        """chat.postMessage's rate per channel (math.inf: unlimited)."""
        return self._rate_limit.rate_per_second

    @post_rate_per_second.setter
    def post_rate_per_second(self, rate: float) -> None:
        self._rate_limit.rate_per_second = rate

    @property
    def post_burst(self) -> int:
        """How many posts a channel takes at once before the rate applies."""
        return self._rate_limit.burst

    @property
    def trigger_ttl(self) -> float:
        """How long a trigger_id stays usable, in seconds of the clock."""
        return self._workspace.trigger_ttl

    @trigger_ttl.setter
    def trigger_ttl(self, seconds: float) -> None:
        self._workspace.trigger_ttl = seconds

    # -- lifecycle ---------------------------------------------------------------------------

    def response_url(self, user: str) -> str:
        """A fresh response_url (as on a slash command or a button press) answering user."""
        port = self._started_port()
        return f"http://127.0.0.1:{port}/response/{user}/{self._workspace.next_id()}"

    @property
    def responses(self) -> list[dict[str, Any]]:
        """What the app posted to response_urls, in order, each with the "user" it answered."""
        return copy.deepcopy(self._responses)

    async def _serve_response_url(self, request: web.Request) -> web.Response:
        # Bolt's respond() posts JSON here; recorded like a Web API call so a transcript sees it.
        body = await request.json()
        user = request.match_info["user"]
        self._responses.append({**body, "user": user})
        self._log.record(
            RecordedCall(
                method="response_url",
                args={**body, "user": user},
                response={"ok": True},
                http_status=200,
                at=self._clock(),
            )
        )
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
        app.router.add_get("/socket", self._socket.serve)
        app.router.add_post("/response/{user}/{number}", self._serve_response_url)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = self._runner.addresses[0][1]

    async def close(self) -> None:
        """Close Socket Mode connections, fail pending acks, stop listening."""
        self._release.set()
        await self._socket.close()
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

    # -- the workspace (bot.sandbox.slack_api.workspace) ---------------------------------------

    def add_channel(self, channel_id: str, name: str) -> None:
        """Create a public channel the bot is in."""
        self._workspace.add_channel(channel_id, name)

    def add_user(self, user_id: str, display_name: str) -> None:
        """Create a human member of the workspace."""
        self._workspace.add_user(user_id, display_name)

    def add_usergroup(self, group_id: str, members: Sequence[str]) -> None:
        """Create a user group ("S...") with these member user ids."""
        self._workspace.add_usergroup(group_id, members)

    def new_trigger_id(self) -> str:
        """Issue a trigger_id, as Slack does with a slash command or an interaction."""
        return self._workspace.new_trigger_id()

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
        return self._workspace.add_message(
            channel,
            user=user,
            text=text,
            thread_ts=thread_ts,
            subtype=subtype,
            files=files,
            ts=ts,
            fields=fields,
        )

    def edit_message(self, channel: str, ts: str, *, text: str) -> dict[str, Any]:
        """Change a person's message as if they edited it; returns it for the event."""
        return self._workspace.edit_message(channel, ts, text=text)

    # -- what happened (bot.sandbox.slack_api.calls, .workspace) -------------------------------

    def on_call(self, callback: Callable[[RecordedCall], None]) -> None:
        """Call callback(call) after every Web API call, failures included."""
        self._log.on_call(callback)

    def calls_to(self, method: str) -> list[RecordedCall]:
        """The recorded calls of one method, in order."""
        return self._log.calls_to(method)

    def messages(self, channel: str) -> list[dict[str, Any]]:
        """Every message of a channel (thread replies included), in the order posted."""
        return self._workspace.messages(channel)

    def thread(self, channel: str, ts: str) -> list[dict[str, Any]]:
        """A thread's parent then its replies, oldest first; empty if there is no such message."""
        return self._workspace.thread(channel, ts)

    @property
    def ephemerals(self) -> list[dict[str, Any]]:
        """Ephemeral messages posted, in order (they never appear in history)."""
        return copy.deepcopy(self._workspace.ephemerals)

    @property
    def views(self) -> list[dict[str, Any]]:
        """Modals opened, in order, as views.open returned them."""
        return copy.deepcopy(self._workspace.views)

    # -- error injection (bot.sandbox.slack_api.faults) ----------------------------------------

    def rate_limit_next(self, method: str, retry_after: int = 1) -> None:
        """Answer the next call of method with HTTP 429 and this Retry-After."""
        self._faults.rate_limit_next(method, retry_after)

    def fail_next(self, method: str, error: str = "internal_error", status: int = 200) -> None:
        """Answer the next call of method with ok: false and this error (HTTP 200 or 5xx)."""
        self._faults.fail_next(method, error, status)

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
        self._faults.answer_late(method, times=times, when=when)

    def never_answer(
        self,
        method: str,
        *,
        times: int = 1,
        when: Callable[[dict[str, Any]], bool] | None = None,
    ) -> None:
        """Hold the next calls of method (those when(args) accepts) without carrying them out."""
        self._faults.never_answer(method, times=times, when=when)

    def fail_posts_in(self, channel: str, error: str = "channel_not_found") -> None:
        """Refuse every chat.postMessage in channel with this error until told otherwise.

        As Slack does for a channel that was deleted ("channel_not_found") or that the bot was
        never invited to ("not_in_channel"): no retry helps.
        """
        self._faults.fail_posts_in(channel, error)

    # -- Socket Mode (bot.sandbox.slack_api.socket_mode) ---------------------------------------

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
        return await self._socket.send_envelope(
            kind,
            payload,
            retry_attempt=retry_attempt,
            retry_reason=retry_reason,
            ack_timeout=ack_timeout,
            connect_timeout=connect_timeout,
        )

    async def request_reconnect(
        self, reason: str = "refresh_requested", *, reconnect_timeout: float = 10.0
    ) -> None:
        """Send Slack's disconnect message (as before a routine refresh); wait for a new socket."""
        await self._socket.request_reconnect(reason, reconnect_timeout=reconnect_timeout)

    # -- HTTP --------------------------------------------------------------------------------

    async def _serve_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        reference = self._reference.get(method, {})
        args, token, bad_body = await self._read_args(
            request, json_accepted=bool(reference.get("json_input_supported"))
        )
        late = None if bad_body else self._faults.take_held(method, args)
        if late is not None and not late.carried_out:
            await self._release.wait()
            return web.json_response({"ok": False, "error": "fatal_error"}, status=503)
        # From here on nothing awaits, so concurrent calls see and change state one at a time.
        warnings: list[str] = []
        try:
            if bad_body:
                raise SlackError(bad_body)
            body = {"ok": True, **self._dispatch(method, args, token, warnings)}
            status, headers = 200, {}
        except SlackError as failure:
            body = {"ok": False, "error": failure.error, **failure.extra}
            status, headers = failure.status, failure.headers
        missing_text = method in MESSAGE_METHODS and blank(
            args.get("text") or args.get("markdown_text")
        )
        if missing_text:
            warnings.append("missing_text")
        elif method in MESSAGE_METHODS and len(str(args.get("text", ""))) > RECOMMENDED_TEXT_CHARS:
            # Slack takes up to 40,000 but asks for at most 4,000 (notifications, screen readers).
            warnings.append("text_over_4000_chars")
        self._log.record(
            RecordedCall(
                method=method,
                args=args,
                response=copy.deepcopy(body),
                http_status=status,
                at=self._clock(),
                missing_text=missing_text,
                warnings=tuple(warnings),
            )
        )
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
            raise SlackError("unknown_method", req_method=method)
        self._authenticate(method, token)
        self._check_scope(method, args)
        forced = self._faults.take_forced(method)
        if forced is not None:
            raise forced
        reference = self._reference[method]
        errors = reference.get("errors", {})
        for name in reference["args"].get("required", []):
            if name != "token" and blank(args.get(name)):
                code = next(
                    (e for e in MISSING_ARGUMENT_ERRORS.get(name, ()) if e in errors),
                    "invalid_arguments",
                )
                raise SlackError(code, **missing_field(name))
        return handler(args, warnings)

    def _check_scope(self, method: str, args: dict[str, Any]) -> None:
        """missing_scope, as Slack answers it, when the token has none of the scopes needed."""
        if self._scopes is None:
            return
        needed = self._needed_scopes(method, args)
        if needed and not needed & self._scopes:
            provided = ",".join(sorted(self._scopes))
            raise SlackError("missing_scope", needed=",".join(sorted(needed)), provided=provided)

    def _needed_scopes(self, method: str, args: dict[str, Any]) -> frozenset[str]:
        """The scopes any one of which lets the bot call method with these arguments.

        A conversation's history needs the scope of its kind (a DM's im:history); opening a
        DM needs im:write, a group DM mpim:write; any other method one of its reference's.
        """
        space = self._workspace
        channel = str(args.get("channel") or "")
        if method in ("conversations.history", "conversations.replies"):
            if channel in space.user_of_dm:
                return frozenset({"im:history"})
            if channel in space.group_dms:
                return frozenset({"mpim:history"})
            return frozenset({"channels:history", "groups:history"})
        if method == "conversations.open":
            people = [user for user in str(args.get("users") or "").split(",") if user.strip()]
            if channel in space.user_of_dm or (not channel and len(people) <= 1):
                return frozenset({"im:write"})
            return frozenset({"mpim:write"})
        return frozenset(self._reference[method].get("scope", {}).get("bot") or ())

    def _authenticate(self, method: str, token: str | None) -> None:
        if not token:
            raise SlackError("not_authed")
        # apps.connections.open takes only the app-level token, every other method the bot's.
        wanted = self.app_token if method == "apps.connections.open" else self.bot_token
        if token == wanted:
            return
        if token in (self.bot_token, self.app_token):
            raise SlackError("not_allowed_token_type")
        raise SlackError("invalid_auth")
