"""The HTTP endpoint's gate: the signature first, then the body, then whose request it is.

Bolt's aiohttp adapter parses the body before its own signature check, so a malformed body got
HTTP 500 and a traceback whoever sent it. This gate runs in front of Bolt: a request without a
valid, fresh signature is refused (401) unread; a signed one whose body Bolt could not read is
refused (400); a signed one for another workspace or another app is refused (403). Each refusal
is one log line that names no customer text. What passes is handed to Bolt unchanged.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware
from slack_bolt.request.async_request import AsyncBoltRequest

logger = logging.getLogger(__name__)

# Slack's rule: a request signed more than five minutes ago (or ahead) is a replay.
MAX_SKEW_SECONDS = 5 * 60
# A Unix time in seconds, as Slack sends it; anything else is no timestamp at all.
_TIMESTAMP = re.compile(r"[0-9]{1,12}")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class SlackIdentity:
    """Whose requests this bot serves: its workspace and its app (None: not known, not checked)."""

    team_id: str | None
    app_id: str | None

    @classmethod
    def from_auth_test(cls, response: Mapping[str, Any]) -> SlackIdentity:
        """The identity auth.test gives for the bot token (app_id only where Slack sends it)."""
        team, app = response.get("team_id"), response.get("app_id")
        return cls(
            team_id=team if isinstance(team, str) and team else None,
            app_id=app if isinstance(app, str) and app else None,
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
            # Read exactly as Bolt will read it next: the same decoding, parser and context.
            text = await request.text()
            parsed = AsyncBoltRequest(
                body=text,
                query=request.query_string,
                headers=dict(request.headers),
            )
        except Exception as error:  # whatever the parser raises is a bad body
            problem = type(error).__name__
        else:
            if not isinstance(parsed.body, dict):
                problem = "not an object"
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
        return await handler(request)

    return gate


def _stranger(request: AsyncBoltRequest, identity: SlackIdentity) -> str | None:
    """What in the request names another workspace or app, or None when it is ours."""
    app = request.body.get("api_app_id")
    if identity.app_id is not None and app is not None and app != identity.app_id:
        return f"app {str(app)[:40]!r}"
    # Bolt's reading of the team: the installation's (authorizations, app_installed_team_id)
    # before the actor's, so Slack Connect events from another company's users stay ours.
    team = request.context.team_id
    if identity.team_id is not None and team is not None and team != identity.team_id:
        return f"team {str(team)[:40]!r}"
    return None


def guard(web_app: web.Application, *, signing_secret: str, identity: SlackIdentity) -> None:
    """Put the gate in front of Bolt's aiohttp app (before it starts serving)."""
    web_app.middlewares.append(slack_gate(signing_secret=signing_secret, identity=identity))
