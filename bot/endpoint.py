"""The HTTP endpoint's gate: the signature first, then the body, then whose request it is.

Bolt's aiohttp adapter parses the body before its own signature check, so a malformed body got
HTTP 500 and a traceback whoever sent it. This gate runs in front of Bolt: a request without a
valid, fresh signature is refused (401) unread; a signed one whose body Bolt could not read is
refused (400); a signed one for another workspace or another app, or one that names no workspace
at all (Slack names it on every request but its URL checks), is refused (403). Each refusal is
one log line that names no customer text. What passes is dispatched to Bolt as read.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from aiohttp.typedefs import Middleware
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.request.async_internals import build_async_context
from slack_bolt.request.async_request import AsyncBoltRequest

logger = logging.getLogger(__name__)

# Slack's rule: a request signed more than five minutes ago (or ahead) is a replay.
MAX_SKEW_SECONDS = 5 * 60
# A Unix time in seconds, as Slack sends it; anything else is no timestamp at all.
_TIMESTAMP = re.compile(r"[0-9]{1,12}")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Where the gate leaves the request it read, for the handler.
_PARSED = web.RequestKey("triage.bolt_request", AsyncBoltRequest)


@dataclass(frozen=True)
class SlackIdentity:
    """Whose requests this bot serves: its workspace and its app (None: not known, not checked)."""

    team_id: str | None
    app_id: str | None
    # The Enterprise Grid organization (auth.test's enterprise_id), for an org-wide install.
    enterprise_id: str | None = None

    @classmethod
    def from_auth_test(cls, response: Mapping[str, Any]) -> SlackIdentity:
        """The identity auth.test gives for the bot token (app_id only where Slack sends it)."""
        team, app = response.get("team_id"), response.get("app_id")
        enterprise = response.get("enterprise_id")
        return cls(
            team_id=team if isinstance(team, str) and team else None,
            app_id=app if isinstance(app, str) and app else None,
            enterprise_id=enterprise if isinstance(enterprise, str) and enterprise else None,
        )


def signature_is_valid(
    secret: str, *, timestamp: str | None, signature: str | None, body: bytes, now: float
) -> bool:
    """Slack's v0 signature of the raw bytes, and a timestamp within five minutes of now."""
    if timestamp is None or signature is None or not _TIMESTAMP.fullmatch(timestamp):
        return False
    if abs(now - int(timestamp)) > MAX_SKEW_SECONDS:
        return False
    digest = hmac.new(
        secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256
    ).hexdigest()
    # Bytes on both sides: a header with characters outside ASCII is simply unequal.
    return hmac.compare_digest(f"v0={digest}".encode(), signature.encode("utf-8", "replace"))


def slack_gate(
    *,
    signing_secret: str,
    identity: SlackIdentity,
    clock: Callable[[], float] = time.time,
) -> Middleware:
    """An aiohttp middleware that checks a request before Bolt sees it (see the module doc)."""

    @web.middleware
    async def gate(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method != "POST":
            return await handler(request)
        raw = await request.read()
        if not signature_is_valid(
            signing_secret,
            timestamp=request.headers.get("X-Slack-Request-Timestamp"),
            signature=request.headers.get("X-Slack-Signature"),
            body=raw,
            now=clock(),
        ):
            logger.warning(
                "refused a request to %s: bad or stale signature; check SLACK_SIGNING_SECRET"
                " (Basic Information -> App Credentials)",
                request.path,
            )
            return web.Response(status=HTTPStatus.UNAUTHORIZED)
        problem = None
        try:
            # aiohttp's decoding (the charset the request names), then Bolt's parser and context.
            headers: dict[str, str | Sequence[str]] = dict(request.headers)
            parsed = bolt_request(await request.text(), query=request.query_string, headers=headers)
        except Exception as error:  # whatever the parser raises is a bad body
            problem = type(error).__name__
        else:
            if not isinstance(parsed.body, dict):
                problem = "not an object"
            elif "event" in parsed.body and not isinstance(parsed.body["event"], dict):
                # Bolt's middleware would raise on it (a 500): Slack's events are objects.
                problem = "its event is not an object"
        if problem is not None:
            logger.warning(
                "refused a signed request to %s: its %s body of %d bytes is not one Slack sends"
                " (%s)",
                request.path,
                request.content_type or "untyped",
                len(raw),
                problem,
            )
            return web.Response(status=HTTPStatus.BAD_REQUEST, text="malformed body")
        stranger = _stranger(parsed, identity)
        if stranger is not None:
            logger.warning(
                "refused a signed request to %s for %s: this bot serves team %s, app %s",
                request.path,
                stranger,
                identity.team_id,
                identity.app_id or "(unknown)",
            )
            return web.Response(status=HTTPStatus.FORBIDDEN, text="not this app's workspace")
        request[_PARSED] = parsed
        return await handler(request)

    return gate


def bolt_request(
    text: str, *, query: str, headers: dict[str, str | Sequence[str]]
) -> AsyncBoltRequest:
    """The request as Bolt reads it, except a form that merely contains the word "payload".

    Bolt takes any form body with "payload" anywhere in it for an interaction's `payload=` and,
    finding no such field, reads it as empty: `/triage status payload` went unanswered.
    """
    parsed = AsyncBoltRequest(body=text, query=query, headers=headers)
    if parsed.content_type != "application/json" and not text.startswith("{"):
        fields = dict(parse_qsl(text, keep_blank_values=True))
        if "payload" not in fields and parsed.body != fields:
            parsed.body = fields
            parsed.context = build_async_context(AsyncBoltContext({}), fields)
    return parsed


def slack_web_app(
    app: AsyncApp, *, path: str, signing_secret: str, identity: SlackIdentity
) -> web.Application:
    """Bolt's app over aiohttp with the gate in front; each body is read once, by the gate."""

    async def dispatch(request: web.Request) -> web.StreamResponse:
        response = await app.async_dispatch(request[_PARSED])
        return await to_aiohttp_response(response)

    web_app = web.Application(
        middlewares=[slack_gate(signing_secret=signing_secret, identity=identity)]
    )
    web_app.router.add_post(path, dispatch)
    return web_app


def _stranger(request: AsyncBoltRequest, identity: SlackIdentity) -> str | None:
    """What in the request names another workspace or app, or None when it is ours."""
    app = request.body.get("api_app_id")
    if identity.app_id is not None and app is not None and app != identity.app_id:
        return f"app {str(app)[:40]!r}"
    if identity.team_id is not None and not _names_its_workspace(request.body, identity):
        # Bolt would fall back on the event's own `team` (the author's, any company's in a
        # Slack Connect channel): a request that says nothing of its workspace is no one's.
        return "no workspace (no team_id, team or authorizations)"
    # Bolt's reading of the team: the installation's (authorizations, app_installed_team_id)
    # before the actor's, so Slack Connect events from another company's users stay ours.
    team = request.context.team_id
    if identity.team_id is not None and team is not None and team != identity.team_id:
        return f"team {str(team)[:40]!r}"
    return None


def _names_its_workspace(body: dict[str, Any], identity: SlackIdentity) -> bool:
    """True when the request says whose installation it is for, as each of Slack's kinds does.

    Events (event_callback, app_rate_limited) carry team_id and authorizations; slash commands
    team_id; interactions team.id (null in an org-wide install's, then user.team_id or
    view.team_id). An org-wide install's request may name only its organization: ours if it is
    this bot's. Slack's own URL checks (url_verification, a command URL's ssl_check) name none.
    """
    if body.get("type") == "url_verification" or body.get("ssl_check") is not None:
        return True
    team = body.get("team")
    authorizations = body.get("authorizations")
    first = authorizations[0] if isinstance(authorizations, list) and authorizations else None
    installation = first if isinstance(first, dict) else {}
    named = [
        body.get("team_id"),
        team.get("id") if isinstance(team, dict) else team,
        installation.get("team_id"),
        *(
            part.get("team_id")
            for part in (body.get("user"), body.get("view"))
            if isinstance(part, dict)
        ),
    ]
    if any(isinstance(name, str) and name for name in named):
        return True
    enterprise = body.get("enterprise_id") or installation.get("enterprise_id")
    return identity.enterprise_id is not None and enterprise == identity.enterprise_id
