"""Start-up: Socket Mode, HTTP, or the sandbox, over the bot bot/compose.py builds."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import ssl
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import aiohttp
import aiohttp.web
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.app import build_client
from bot.compose import DeskTiming, Serving, make_pipeline, running_services
from bot.endpoint import SlackIdentity, slack_web_app
from bot.record import CallRecorder, recording
from bot.services import check_database
from bot.settings import Settings
from routing.config import SlackConfig, TriageConfig, default_config_path
from routing.desk import Desk
from routing.errors import ConfigError, UserError

if TYPE_CHECKING:
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

logger = logging.getLogger(__name__)

# What a client raises when the other end cannot be reached at all: DNS, refused, TLS, time-outs
# (aiohttp's errors are OSErrors; TimeoutError is asyncio's too).
UNREACHABLE = (aiohttp.ClientError, OSError, TimeoutError)
# How long the Socket Mode host may take to accept a connection before start-up gives up.
SOCKET_CHECK_SECONDS = 15.0
# The SQLite file a real workspace's bot keeps when TRIAGE_DB is unset.
DEFAULT_DATABASE = Path("triage.sqlite3")


def require_slack_config(config: TriageConfig) -> SlackConfig:
    """The [slack] section, which a real workspace needs (the sandbox makes its own)."""
    if config.slack is None:
        # The packaged default is no file to edit: point at a copy of one's own first.
        start = (
            "write your own copy with `triage init-config DIR`, name it in TRIAGE_CONFIG, and in"
            " it uncomment "
            if config.source == default_config_path()
            else "add "
        )
        raise ConfigError(
            config.source,
            "slack",
            "missing: the bot needs the intake channel and each team's channel",
            f'{start}[slack] with intake_channels = ["C..."] and a [slack.teams.<team>] table'
            " per team (see README: Connecting to a Slack workspace)",
        )
    return config.slack


def _reason(error: BaseException) -> str:
    """Why a connection failed, in a few words (the full error is one long line of repr)."""
    if isinstance(error, aiohttp.ClientConnectorError):
        error = error.os_error
    if isinstance(error, ssl.SSLError | aiohttp.ClientSSLError):
        return "TLS failed"
    if isinstance(error, socket.gaierror):
        return "DNS lookup failed"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, TimeoutError | aiohttp.ServerTimeoutError):
        return "timed out"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()
    return type(error).__name__


def unreachable(api_url: str, error: BaseException) -> UserError:
    """Slack's Web API could not be reached: say where it was looked for and what to check."""
    host = urlsplit(api_url).hostname or api_url
    return UserError(
        f"cannot reach Slack at {host} ({_reason(error)}): check the network, any proxy"
        f" (HTTPS_PROXY) and SLACK_API_URL (now {api_url})"
    )


def not_slack(error: SlackApiError) -> bool:
    """True when the answer was no Web API answer at all (an HTML page, a 404, a proxy's)."""
    data = error.response.data
    return not isinstance(data, dict) or not isinstance(data.get("error"), str)


def not_slack_api(base_url: str, error: SlackApiError) -> UserError:
    """The one line for an address that answers, but not as Slack's Web API does."""
    return UserError(
        f"setting SLACK_API_URL: {base_url} answered HTTP {error.response.status_code}, not as"
        " Slack's Web API does; unset SLACK_API_URL (the default is https://slack.com/api/) or"
        " check the proxy in between"
    )


async def check_token(client: AsyncWebClient) -> SlackIdentity:
    """Fail at start-up, naming the setting, when Slack refuses the bot token or is unreachable.

    Returns whose bot the token is (workspace and app): HTTP mode serves only their requests.
    """
    try:
        response = await client.auth_test()
    except SlackApiError as error:
        if not_slack(error):
            raise not_slack_api(client.base_url, error) from None
        raise UserError(
            f"setting SLACK_BOT_TOKEN: Slack refused it ({error.response['error']});"
            " copy the Bot User OAuth Token from OAuth & Permissions"
        ) from None
    except UNREACHABLE as error:
        raise unreachable(client.base_url, error) from None
    return SlackIdentity.from_auth_test(response.data if isinstance(response.data, dict) else {})


async def connect_socket_mode(handler: AsyncSocketModeHandler) -> None:
    """Open the first Socket Mode connection, or fail with one line saying why.

    slack_sdk's client retries a failed connection forever, every ping interval, with a traceback
    in the log each time: right for a reconnect, but at start-up a bad app token or a blocked
    network would only fill the log. So the first URL is asked for here, its host is checked
    (DNS, TCP, TLS; through the proxy when one is set), and only then does the client connect.
    """
    client = handler.client
    try:
        response = await client.web_client.apps_connections_open(app_token=client.app_token)
    except SlackApiError as error:
        if not_slack(error):
            raise not_slack_api(client.web_client.base_url, error) from None
        raise UserError(
            f"setting SLACK_APP_TOKEN: Slack refused it ({error.response['error']}); generate"
            " an app-level token with connections:write under Basic Information -> App-Level"
            " Tokens"
        ) from None
    except UNREACHABLE as error:
        raise unreachable(client.web_client.base_url, error) from None
    url = str(response["url"])
    await _check_reachable(url, proxy=client.proxy)
    # The URL is single-use: the client connects with this one instead of asking again.
    client.wss_uri = url
    await handler.connect_async()  # type: ignore[no-untyped-call]  # Bolt is untyped


async def _check_reachable(url: str, *, proxy: str | None) -> None:
    parts = urlsplit(proxy or url)
    secure = proxy is None and parts.scheme == "wss"
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme in ("wss", "https") else 80)
    try:
        async with asyncio.timeout(SOCKET_CHECK_SECONDS):
            _, writer = await asyncio.open_connection(host, port, ssl=secure or None)
    except UNREACHABLE as error:
        where = f"the proxy {host}" if proxy else f"Slack's Socket Mode host {host}"
        raise UserError(
            f"cannot reach {where} ({_reason(error)}): check the network and that any proxy"
            " (HTTPS_PROXY) lets WebSockets through, or serve HTTP with `triage run --http`"
        ) from None
    writer.close()
    with contextlib.suppress(OSError):  # reached is all that was asked; a rude close is fine
        await writer.wait_closed()


async def run_slack(
    settings: Settings,
    config: TriageConfig,
    *,
    http: bool,
    port: int,
    record: Path | None = None,
) -> None:
    """Serve a real workspace: Socket Mode by default, the Events API over HTTP with --http.

    With `record`, every Web API call is appended to that file (bot/record.py).
    """
    with ExitStack() as stack:
        recorder = stack.enter_context(CallRecorder(record)) if record is not None else None
        await _run_slack(settings, config, http=http, port=port, recorder=recorder)


async def _run_slack(
    settings: Settings,
    config: TriageConfig,
    *,
    http: bool,
    port: int,
    recorder: CallRecorder | None,
) -> None:
    slack = require_slack_config(config)
    assert settings.slack_bot_token is not None  # noqa: S101  # the caller checked
    if http and settings.slack_signing_secret is None:
        raise UserError(
            "setting SLACK_SIGNING_SECRET: missing; HTTP mode checks every request with it"
            " (Basic Information -> App Credentials)"
        )
    if not http and settings.slack_app_token is None:
        raise UserError(
            "setting SLACK_APP_TOKEN: missing; Socket Mode needs an app-level token (xapp-) with"
            " connections:write, or run `triage run --http` behind a public URL"
        )
    database = settings.database_location(DEFAULT_DATABASE)
    if isinstance(database, Path):
        check_database(database)  # before the slow start, not after it
    client = build_client(
        token=settings.slack_bot_token.get_secret_value(),
        base_url=settings.slack_api_url,
        recorder=recorder,
    )
    identity = await check_token(client)
    stop_on_sigterm()
    pipeline = make_pipeline(settings, config)
    secret = (
        settings.slack_signing_secret.get_secret_value()
        if http and settings.slack_signing_secret is not None
        else None
    )
    async with running_services(
        config,
        slack,
        pipeline=pipeline,
        client=client,
        database=database,
        timing=DeskTiming(lease_seconds=settings.lease_seconds),
        serving=Serving(signing_secret=secret),
    ) as bot:
        desk, app = bot.desk, bot.app
        if http:
            assert secret is not None  # noqa: S101  # checked above
            web_app = slack_web_app(
                app, path="/slack/events", signing_secret=secret, identity=_known(identity)
            )
            await _serve_http(web_app, port, desk)
        else:
            from slack_bolt.adapter.socket_mode.async_handler import (
                AsyncSocketModeHandler,
            )

            assert settings.slack_app_token is not None  # noqa: S101  # checked above
            handler = AsyncSocketModeHandler(
                app,
                settings.slack_app_token.get_secret_value(),
                # apps.connections.open goes where every other call goes.
                web_client=recording(AsyncWebClient(base_url=settings.slack_api_url), recorder),
            )
            try:
                await connect_socket_mode(handler)
                logger.warning("connected to Slack in Socket Mode; Ctrl-C stops the bot")
                # Connected first: what arrives from now on comes as events, the rest is read back.
                await desk.catch_up()
                await asyncio.Event().wait()
            finally:
                # Its connection monitor would otherwise outlive the bot.
                await handler.close_async()  # type: ignore[no-untyped-call]


def stop_on_sigterm() -> None:
    """Stop on SIGTERM (a deploy, systemd, Kubernetes) as on Ctrl-C.

    The workers stop and the database closes; stored tickets not yet routed are routed at the
    next start.
    """
    task = asyncio.current_task()
    if task is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)


def _known(identity: SlackIdentity) -> SlackIdentity:
    """The identity, said once at start when auth.test left part of it out."""
    if identity.app_id is None:
        logger.warning(
            "auth.test named no app id: requests are checked for the workspace (%s) only",
            identity.team_id,
        )
    return identity


async def _serve_http(web_app: object, port: int, desk: Desk) -> None:
    from aiohttp import web  # only HTTP mode needs the server

    assert isinstance(web_app, web.Application)  # noqa: S101  # Bolt's aiohttp adapter
    runner = web.AppRunner(web_app)
    await runner.setup()
    site = web.TCPSite(runner, host="0.0.0.0", port=port)  # noqa: S104  # a server, by design
    try:
        await site.start()
    except OSError as error:
        await runner.cleanup()
        raise UserError(
            f"--port {port}: cannot listen there ({error.strerror}); choose another port"
        ) from None
    logger.warning("serving Slack requests on port %s at /slack/events", port)
    try:
        await desk.catch_up()  # serving first: nothing falls between the read-back and events
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
