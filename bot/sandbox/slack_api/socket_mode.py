"""Socket Mode: apps.connections.open's one-use URLs, the WebSocket, envelopes and their acks."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode

from aiohttp import WSCloseCode, WSMsgType, web

from bot.sandbox.slack_api.wire import Handler

logger = logging.getLogger(__name__)

ENVELOPE_KINDS = ("events_api", "slash_commands", "interactive")


class SocketMode:
    """Slack's side of Socket Mode: hands out socket URLs, sends envelopes, collects acks."""

    def __init__(self, *, app_id: str, socket_url: Callable[[], str]) -> None:
        self._app_id = app_id
        self._socket_url = socket_url
        # Every envelope sent, in order.
        self.envelopes: list[dict[str, Any]] = []
        self._sockets: list[web.WebSocketResponse] = []
        self._socket_tickets: set[str] = set()
        self._connections_made = 0
        self._socket_changed = asyncio.Event()
        self._acks: dict[str, asyncio.Future[dict[str, Any]]] = {}

    def handlers(self) -> dict[str, Handler]:
        """The Web API method that opens a connection, by its name."""
        return {"apps.connections.open": self.connections_open}

    def connections_open(self, args: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
        """apps.connections.open: a socket URL with a ticket good for one connection."""
        ticket = uuid.uuid4().hex
        self._socket_tickets.add(ticket)
        return {
            "url": f"{self._socket_url()}?{urlencode({'ticket': ticket, 'app_id': self._app_id})}"
        }

    async def serve(self, request: web.Request) -> web.StreamResponse:
        """The WebSocket endpoint: says hello, then reads acks until the client leaves."""
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
                    "connection_info": {"app_id": self._app_id},
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

    async def close(self) -> None:
        """Close every connection and fail the acks still awaited."""
        for ws in list(self._sockets):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"stand-in closing")
        for future in self._acks.values():
            future.cancel()
