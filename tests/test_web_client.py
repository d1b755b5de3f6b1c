"""The bot's Web API client: one HTTP session while the bot runs, its connections kept alive."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from bot.app import build_client, kept_alive


@pytest.fixture
async def api() -> AsyncIterator[tuple[str, list[int]]]:
    """A Web API that answers ok to chat.postMessage and notes each caller's port."""
    ports: list[int] = []

    async def post_message(request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        ports.append(int(peer[1]) if peer else -1)
        return web.json_response({"ok": True, "channel": "C0BILLING", "ts": "1700000000.000100"})

    app = web.Application()
    app.router.add_post("/api/chat.postMessage", post_message)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/api/", ports
    finally:
        await runner.cleanup()


async def test_calls_while_kept_alive_share_one_connection(api: tuple[str, list[int]]) -> None:
    """Five posts in a row go over one connection, not five; the session is closed after."""
    base_url, ports = api
    client = build_client(token="xoxb-test", base_url=base_url, timeout=7)
    async with kept_alive(client):
        assert client.session is not None
        assert client.session.timeout.total == 7
        for number in range(5):
            response = await client.chat_postMessage(channel="C0BILLING", text=f"note {number}")
            assert response["ok"]
        session = client.session
    assert len(ports) == 5
    assert len(set(ports)) == 1
    assert client.session is None
    assert session.closed


async def test_without_a_session_each_call_opens_a_connection(api: tuple[str, list[int]]) -> None:
    """What kept_alive saves: slack_sdk alone connects once per call."""
    base_url, ports = api
    client = build_client(token="xoxb-test", base_url=base_url)
    for number in range(3):
        await client.chat_postMessage(channel="C0BILLING", text=f"note {number}")
    assert len(set(ports)) == 3
