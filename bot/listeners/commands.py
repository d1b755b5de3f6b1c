"""The `/triage` slash command: acked at once, answered privately once the work is done."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot.commands import run_command
from bot.services import Services
from routing.desk import ActionRefusedError


def register(app: AsyncApp, services: Services) -> None:
    """Listen to /triage (declared in manifest.yml)."""

    @app.command("/triage")
    async def on_triage(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        try:
            answer = await run_command(
                services.desk, user=command["user_id"], text=command.get("text") or ""
            )
        except ActionRefusedError as refused:
            answer = refused.message
        await respond(text=answer, response_type="ephemeral")
